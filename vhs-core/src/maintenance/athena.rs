//! GC and verify's Athena engine: the table's references and the bucket's
//! listing written to S3 as files, the anti-joins run by Athena.
//!
//! vhs scans the table (parallel Scan, as the in-process engine does) and
//! writes, per page, the object keys its live items reference (the rule of
//! the in-process engine: every top-level String attribute holding
//! `s3://{bucket}/...`) and, for verify, each pointer with its item's key;
//! it lists the table's prefix (ListObjectsV2) and writes the listing. Then
//! Athena joins them with the statements of `vhs-core/sql/`
//! (`unreferenced.sql`, `dangling.sql`), which vhs sends word for word.
//! Memory stays bounded by a page: no set of references is kept in this
//! process.
//!
//! The candidates then go through the unchanged paths: GC marks each on its
//! item with a write that requires no reference to it (so an object a writer
//! pointed to after the snapshot is rescued, never deleted), verify reads
//! each dangling pointer's item again and sends a HeadObject before it
//! reports it.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use bytes::Bytes;
use futures_util::future::join_all;

use crate::backend::{
    BackendExt as _, ObjectInfo, PutObject, QueryStart, QueryState, Scan, Signal,
};
use crate::checksum::ChecksumAlgorithm;
use crate::error::{Error, Result};
use crate::layout::{escape, unescape, ObjectKey};
use crate::model::Item;
use crate::protocol::item::PLACEHOLDER;
use crate::store::Store;

use super::listing::key_hash;
use super::{
    key_texts, BrokenPointer, ForeignTally, Progress, TableRef, VerifyOptions, VerifyReport,
};

const CREATE_LISTING: &str = include_str!("../../sql/create_listing.sql");
const CREATE_REFERENCES: &str = include_str!("../../sql/create_references.sql");
const CREATE_POINTERS: &str = include_str!("../../sql/create_pointers.sql");
const UNREFERENCED: &str = include_str!("../../sql/unreferenced.sql");
const DANGLING: &str = include_str!("../../sql/dangling.sql");
const DROP_TABLE: &str = include_str!("../../sql/drop_table.sql");
const CREATE_EXPORT: &str = include_str!("../../sql/create_export.sql");
const UNREFERENCED_EXPORT: &str = include_str!("../../sql/unreferenced_export.sql");

/// Lines per file vhs writes (about 10 MB of keys).
const LINES_PER_FILE: usize = 50_000;

/// How GC and verify find their candidates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Engine {
    /// Scan and list in this process, the referenced keys kept in memory as
    /// 128-bit hashes (~32 MiB per million pointers). The default.
    #[default]
    InProcess,
    /// Write the references and the listing to S3 and let Athena compute the
    /// unreferenced objects and the dangling pointers (see
    /// [`AthenaOptions`]): memory bounded by a page. Not available on
    /// [`MemoryBackend`](crate::MemoryBackend), which has no SQL engine.
    Athena(AthenaOptions),
}

/// Where the Athena engine writes and queries.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AthenaOptions {
    /// `s3://bucket/prefix/` under which each run writes its files (in
    /// `vhs-{table}-{run}/`) and Athena its results. It must not lie under
    /// the table's own object prefix (GC would list the files as objects).
    pub output: String,
    /// The Glue database the run's tables are created in (and dropped from
    /// afterwards). It must exist. Default `default`.
    pub database: String,
    /// The Athena workgroup; `None`: `primary`.
    pub workgroup: Option<String>,
    /// How often a running query is polled. Default 1 s.
    pub poll: Duration,
    /// Keep the run's files and tables afterwards (to read them, or to query
    /// them again). Default `false`: both are removed.
    pub keep: bool,
    /// Where the referenced keys come from. Default [`References::Scan`].
    pub references: References,
}

/// Where the Athena engine's GC reads which objects the items reference.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum References {
    /// vhs's own scan writes them as files (the default).
    #[default]
    Scan,
    /// An existing DynamoDB table export (ExportTableToPointInTime, format
    /// `DYNAMODB_JSON`, or [`Store::write_export`]): `uri` is its directory,
    /// `s3://bucket/prefix/AWSDynamoDB/{exportId}/`. Athena reads its
    /// `data/`; the grace period is measured from the export's `exportTime`
    /// (its `manifest-summary.json`), so an object written after the
    /// snapshot is never a candidate. vhs's scan still runs for its checks
    /// (foreign writers and pointers, dead marks and placeholders, item
    /// count) but writes no references. GC only: verify refuses it.
    Export {
        /// `s3://bucket/prefix/AWSDynamoDB/{exportId}/`.
        uri: String,
    },
}

impl AthenaOptions {
    /// Files and results under `output` (`s3://bucket/prefix/`), the
    /// `default` database, the `primary` workgroup.
    pub fn new(output: impl Into<String>) -> Self {
        AthenaOptions {
            output: output.into(),
            database: "default".to_owned(),
            workgroup: None,
            poll: Duration::from_secs(1),
            keep: false,
            references: References::Scan,
        }
    }
    /// Reads the references from a DynamoDB export at `uri`
    /// (`s3://bucket/prefix/AWSDynamoDB/{exportId}/`): sets
    /// [`AthenaOptions::references`] to [`References::Export`].
    pub fn from_export(mut self, uri: impl Into<String>) -> Self {
        self.references = References::Export { uri: uri.into() };
        self
    }
    /// Sets [`AthenaOptions::database`].
    pub fn database(mut self, database: impl Into<String>) -> Self {
        self.database = database.into();
        self
    }
    /// Sets [`AthenaOptions::workgroup`].
    pub fn workgroup(mut self, workgroup: impl Into<String>) -> Self {
        self.workgroup = Some(workgroup.into());
        self
    }
    /// Sets [`AthenaOptions::poll`].
    pub fn poll(mut self, every: Duration) -> Self {
        self.poll = every;
        self
    }
    /// Sets [`AthenaOptions::keep`].
    pub fn keep(mut self, yes: bool) -> Self {
        self.keep = yes;
        self
    }
}

/// Refuses the Athena engine in a shard (`--shard I/N`): a shard checks its
/// objects against their items, with no join to run.
pub(super) fn one_engine(shard: bool, engine: &Engine) -> Result<()> {
    if shard && matches!(engine, Engine::Athena(_)) {
        return Err(Error::invalid(
            "a shard (--shard) runs in process: choose either --shard or --engine athena",
        ));
    }
    Ok(())
}

/// What the scan found: the referenced keys in memory (in-process), or a
/// run whose references are files in S3 (Athena).
pub(super) enum Found {
    /// The referenced object keys, as hashes.
    Set(HashSet<u128>),
    /// An Athena run.
    Athena(Box<Run>),
}

impl Found {
    /// The time the references were taken at, when not now: an export's
    /// `exportTime`. GC measures the grace period from it.
    pub(super) fn as_of(&self) -> Option<SystemTime> {
        match self {
            Found::Athena(run) => run.as_of,
            Found::Set(_) => None,
        }
    }
}

/// One Athena run: its files and tables.
pub(super) struct Run {
    options: AthenaOptions,
    /// The export's time, with [`References::Export`].
    as_of: Option<SystemTime>,
    /// The bucket and key prefix (ending in `/`) of the run's files.
    bucket: String,
    base: String,
    /// Unique per run: names the tables.
    id: String,
    /// Tables created so far (dropped at the end).
    tables: Vec<String>,
    /// Files written so far (deleted at the end).
    files: Vec<String>,
}

/// Splits `s3://bucket/prefix/` into the bucket and the prefix (ending in `/`
/// unless empty).
fn split_uri(uri: &str) -> Result<(String, String)> {
    let rest = uri.strip_prefix("s3://").ok_or_else(|| {
        Error::invalid(format!(
            "Athena output {uri:?} is not an s3://bucket/prefix/ URI"
        ))
    })?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(Error::invalid(format!(
            "Athena output {uri:?} names no bucket"
        )));
    }
    let mut prefix = prefix.to_owned();
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    Ok((bucket.to_owned(), prefix))
}

/// A statement of `sql/` with its comment lines dropped and each `{name}`
/// replaced.
fn statement(template: &str, values: &[(&str, &str)]) -> String {
    let mut sql = template
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    for (name, value) in values {
        sql = sql.replace(&format!("{{{name}}}"), value);
    }
    sql.trim().to_owned()
}

/// The escaped fields of one line.
fn line(fields: &[&str]) -> String {
    let mut out = fields
        .iter()
        .map(|f| escape(f))
        .collect::<Vec<_>>()
        .join("\t");
    out.push('\n');
    out
}

/// A field of a result row, unescaped.
fn field(row: &[Option<String>], i: usize) -> Result<String> {
    let text = row.get(i).cloned().flatten().unwrap_or_default();
    unescape(&text).ok_or_else(|| Error::Backend {
        service: "athena",
        operation: "GetQueryResults",
        code: None,
        retryable: false,
        message: format!("a result field {text:?} is not an escaped value vhs wrote"),
        source: None,
    })
}

/// A numeric field of a result row (`None` for NULL or empty).
fn number(row: &[Option<String>], i: usize) -> Option<u64> {
    row.get(i)
        .cloned()
        .flatten()
        .and_then(|t| t.trim().parse::<i64>().ok())
        .map(|n| n.max(0) as u64)
}

/// Lines waiting to be written as one file.
struct Buffer {
    name: String,
    text: String,
    lines: usize,
    parts: usize,
}

impl Buffer {
    fn new(name: impl Into<String>) -> Self {
        Buffer {
            name: name.into(),
            text: String::new(),
            lines: 0,
            parts: 0,
        }
    }
}

impl Run {
    fn new(store: &Store, table: &TableRef, options: &AthenaOptions) -> Result<Run> {
        let (bucket, prefix) = split_uri(&options.output)?;
        if bucket == store.bucket() && prefix.starts_with(&table.object_prefix()) {
            return Err(Error::invalid(format!(
                "Athena output {} lies under the table's objects (s3://{}/{}): GC would list \
                 its files as objects; choose another prefix or bucket",
                options.output,
                store.bucket(),
                table.object_prefix()
            )));
        }
        let id = format!("{:016x}", fastrand::u64(..));
        let safe: String = table
            .table
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        Ok(Run {
            options: options.clone(),
            as_of: None,
            base: format!("{prefix}vhs-{safe}-{id}/"),
            bucket,
            id,
            tables: Vec::new(),
            files: Vec::new(),
        })
    }

    /// The `s3://` location of one kind of file.
    fn location(&self, kind: &str) -> String {
        format!("s3://{}/{}{kind}/", self.bucket, self.base)
    }

    /// Writes `buffer` as its next file, if it holds lines; returns the key.
    async fn flush(&self, store: &Store, buffer: &mut Buffer) -> Result<Option<String>> {
        if buffer.lines == 0 {
            return Ok(None);
        }
        let key = format!("{}{}/part-{:05}.tsv", self.base, buffer.name, buffer.parts);
        buffer.parts += 1;
        buffer.lines = 0;
        let body = Bytes::from(std::mem::take(&mut buffer.text));
        store
            .backend()
            .put_object(PutObject {
                bucket: self.bucket.clone(),
                key: key.clone(),
                checksum: ChecksumAlgorithm::Md5.digest(&body),
                body,
                content_type: "text/tab-separated-values".to_owned(),
                content_encoding: None,
                metadata: Default::default(),
                storage_class: None,
                tags: Vec::new(),
                if_none_match: false,
                complete_after: Signal::open(),
            })
            .await?;
        Ok(Some(key))
    }

    /// Appends a line; writes a file when the buffer is full.
    async fn push(&mut self, store: &Store, buffer: &mut Buffer, text: String) -> Result<()> {
        buffer.text.push_str(&text);
        buffer.lines += 1;
        if buffer.lines >= LINES_PER_FILE {
            if let Some(key) = self.flush(store, buffer).await? {
                self.files.push(key);
            }
        }
        Ok(())
    }

    /// Runs one statement to its end; returns its rows (header dropped).
    async fn query(&self, store: &Store, sql: String) -> Result<Vec<Vec<Option<String>>>> {
        let backend = store.backend();
        let id = backend
            .start_query_execution(&QueryStart {
                sql: sql.clone(),
                database: self.options.database.clone(),
                workgroup: self.options.workgroup.clone(),
                output: Some(self.location("results")),
            })
            .await?;
        let status = loop {
            let status = backend.get_query_execution(&id).await?;
            match &status.state {
                QueryState::Running => tokio::time::sleep(self.options.poll).await,
                QueryState::Succeeded => break status,
                QueryState::Failed(reason) => {
                    let first = sql.lines().next().unwrap_or_default();
                    return Err(Error::Backend {
                        service: "athena",
                        operation: "GetQueryExecution",
                        code: Some("QueryFailed".into()),
                        retryable: false,
                        message: format!("query {id} ({first} ...) failed: {reason}"),
                        source: None,
                    });
                }
            }
        };
        tracing::debug!(query = %id, scanned_bytes = status.scanned_bytes, "athena query done");
        let select = sql.trim_start().to_ascii_uppercase().starts_with("SELECT");
        let mut rows = Vec::new();
        let mut next = None;
        let mut first = true;
        loop {
            let page = backend.get_query_results(&id, next.take()).await?;
            let mut page_rows = page.rows.into_iter();
            if first && select {
                // The header row (column names).
                page_rows.next();
            }
            first = false;
            rows.extend(page_rows);
            match page.next {
                Some(n) => next = Some(n),
                None => return Ok(rows),
            }
        }
    }

    /// Creates the run's table of one kind of file.
    async fn create(&mut self, store: &Store, template: &str, kind: &str) -> Result<String> {
        let location = self.location(kind);
        self.create_at(store, template, kind, location).await
    }

    /// Creates the run's table `kind` over the files at `location`.
    async fn create_at(
        &mut self,
        store: &Store,
        template: &str,
        kind: &str,
        location: String,
    ) -> Result<String> {
        let name = format!("vhs_{}_{kind}", self.id);
        let sql = statement(template, &[("table", &name), ("location", &location)]);
        self.tables.push(name.clone());
        self.query(store, sql).await?;
        Ok(name)
    }

    /// Drops the run's tables and deletes its files (and Athena's results),
    /// unless [`AthenaOptions::keep`].
    async fn finish(self, store: &Store) -> Result<()> {
        if self.options.keep {
            return Ok(());
        }
        // Drops every table and deletes every file even when one fails;
        // reports the first failure.
        let mut first = None;
        for table in &self.tables {
            if let Err(e) = self
                .query(store, statement(DROP_TABLE, &[("table", table)]))
                .await
            {
                first.get_or_insert(e);
            }
        }
        let deleted = self.delete_files(store).await;
        match first {
            Some(e) => Err(e),
            None => deleted,
        }
    }

    /// Deletes every object under the run's prefix.
    async fn delete_files(&self, store: &Store) -> Result<()> {
        let mut next = None;
        loop {
            let page = store
                .backend()
                .list_objects(&self.bucket, &self.base, next)
                .await?;
            let keys: Vec<String> = page.objects.into_iter().map(|o| o.key).collect();
            for chunk in keys.chunks(crate::backend::MAX_DELETE_BATCH) {
                store
                    .backend()
                    .delete_objects(&self.bucket, chunk, crate::backend::Attempts::Retried)
                    .await?;
            }
            match page.next {
                Some(n) => next = Some(n),
                None => return Ok(()),
            }
        }
    }
}

/// The object keys `item` references: its top-level String attributes
/// holding `{prefix}` (`s3://{bucket}/`), the key after it. The rule of the
/// in-process engine's scan.
fn references<'a>(prefix: &'a str, item: &'a Item) -> impl Iterator<Item = &'a str> + 'a {
    item.values().filter_map(move |v| match v {
        AttributeValue::S(s) => s.strip_prefix(prefix),
        _ => None,
    })
}

impl Store {
    /// Scans `table` for `engine`: with the in-process engine, the
    /// referenced keys in memory; with Athena, written to S3 as files. Every
    /// page goes to `on_page` as [`Store::scan_table`] hands it.
    pub(super) async fn discover<F, Fut>(
        &self,
        table: &TableRef,
        engine: &Engine,
        segments: u32,
        progress: &(dyn Fn(Progress) + Send + Sync),
        on_page: F,
    ) -> Result<(Found, u64)>
    where
        F: Fn(Vec<Item>) -> Fut + Sync,
        Fut: std::future::Future<Output = Result<()>> + Send,
    {
        match engine {
            Engine::InProcess => {
                let (set, items) = self.scan_table(table, segments, progress, on_page).await?;
                Ok((Found::Set(set), items))
            }
            Engine::Athena(options) => {
                let mut run = Run::new(self, table, options)?;
                if let References::Export { uri } = &options.references {
                    run.as_of = Some(self.export_time(uri).await?);
                }
                let items = self
                    .export_scan(table, &mut run, segments, progress, on_page, |_, _| {
                        Vec::new()
                    })
                    .await?;
                Ok((Found::Athena(Box::new(run)), items))
            }
        }
    }

    /// The parallel scan of the Athena engine: every page to `on_page`, its
    /// references (and the lines `pointers` makes of each live item) written
    /// as files. Returns the items scanned.
    async fn export_scan<F, Fut, P>(
        &self,
        table: &TableRef,
        run: &mut Run,
        segments: u32,
        progress: &(dyn Fn(Progress) + Send + Sync),
        on_page: F,
        pointers: P,
    ) -> Result<u64>
    where
        F: Fn(Vec<Item>) -> Fut + Sync,
        Fut: std::future::Future<Output = Result<()>> + Send,
        P: Fn(&TableRef, &Item) -> Vec<String> + Sync,
    {
        let prefix = format!("s3://{}/", self.bucket());
        // With an export, Athena reads the references from it.
        let write_references = run.options.references == References::Scan;
        let scanned = AtomicU64::new(0);
        let segments = segments.max(1);
        let shared: &Run = run;
        let runs = (0..segments).map(|segment| {
            let (prefix, scanned, on_page, pointers) = (&prefix, &scanned, &on_page, &pointers);
            async move {
                // Each segment writes its own files.
                let mut refs = Buffer::new(format!("references/s{segment:04}"));
                let mut ptrs = Buffer::new(format!("pointers/s{segment:04}"));
                let mut files = Vec::new();
                let mut start = None;
                loop {
                    let page = self
                        .backend()
                        .scan(&Scan {
                            segment: (segments > 1).then_some((segment, segments)),
                            start,
                            consistent: true,
                            ..Scan::new(&table.table)
                        })
                        .await?;
                    if table.discovered.is_some() {
                        for item in &page.items {
                            table.pointers(self.bucket(), item);
                        }
                    }
                    for item in page.items.iter().filter(|i| !i.contains_key(PLACEHOLDER)) {
                        for key in references(prefix, item).filter(|_| write_references) {
                            refs.text.push_str(&line(&[key]));
                            refs.lines += 1;
                        }
                        for l in pointers(table, item) {
                            ptrs.text.push_str(&l);
                            ptrs.lines += 1;
                        }
                    }
                    for buffer in [&mut refs, &mut ptrs] {
                        if buffer.lines >= LINES_PER_FILE {
                            files.extend(shared.flush(self, buffer).await?);
                        }
                    }
                    let n = scanned.fetch_add(page.items.len() as u64, Ordering::Relaxed)
                        + page.items.len() as u64;
                    progress(Progress::ItemsScanned(n));
                    on_page(page.items).await?;
                    match page.last_key {
                        Some(k) => start = Some(k),
                        None => break,
                    }
                }
                for buffer in [&mut refs, &mut ptrs] {
                    files.extend(shared.flush(self, buffer).await?);
                }
                Ok::<_, Error>(files)
            }
        });
        let mut files = Vec::new();
        for written in join_all(runs).await {
            files.extend(written?);
        }
        run.files.extend(files);
        Ok(scanned.load(Ordering::Relaxed))
    }

    /// Writes the listing of the table's prefix as files (the objects
    /// [`Store::for_each_object`] yields); returns how many.
    async fn export_listing(
        &self,
        table: &TableRef,
        run: &mut Run,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<u64> {
        let prefix = table.object_prefix();
        let settings = crate::protocol::agreed::settings_key(&table.prefix);
        let mut buffer = Buffer::new("listing");
        let mut next = None;
        let mut listed = 0;
        loop {
            let page = self
                .backend()
                .list_objects(self.bucket(), &prefix, next)
                .await?;
            for o in page.objects {
                if o.key == settings {
                    continue;
                }
                listed += 1;
                let millis = o
                    .last_modified
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map(|d| d.as_millis().to_string())
                    .unwrap_or_default();
                let text = format!("{}\t{}\t{millis}\n", escape(&o.key), o.size);
                run.push(self, &mut buffer, text).await?;
            }
            progress(Progress::ObjectsListed(listed));
            match page.next {
                Some(n) => next = Some(n),
                None => break,
            }
        }
        if let Some(key) = run.flush(self, &mut buffer).await? {
            run.files.push(key);
        }
        Ok(listed)
    }

    /// Lists the table's objects and hands each one `found` does not
    /// reference to `each`; returns how many objects were listed. With
    /// Athena: the listing is written, the anti-join run
    /// (`unreferenced.sql`), the run's tables and files removed.
    pub(super) async fn for_each_unreferenced(
        &self,
        table: &TableRef,
        found: Found,
        progress: &(dyn Fn(Progress) + Send + Sync),
        mut each: impl FnMut(ObjectInfo),
    ) -> Result<u64> {
        match found {
            Found::Set(set) => {
                self.for_each_object(table, progress, |o| {
                    if !set.contains(&key_hash(&o.key)) {
                        each(o)
                    }
                })
                .await
            }
            Found::Athena(mut run) => {
                let listed = self.export_listing(table, &mut run, progress).await?;
                let rows = self.unreferenced(&mut run).await;
                let finished = Run::finish(*run, self).await;
                for o in rows? {
                    each(o);
                }
                finished?;
                Ok(listed)
            }
        }
    }

    /// Creates the listing and references tables and runs `unreferenced.sql`
    /// (with an export: its table and `unreferenced_export.sql`).
    async fn unreferenced(&self, run: &mut Run) -> Result<Vec<ObjectInfo>> {
        let listing = run.create(self, CREATE_LISTING, "listing").await?;
        let sql = match run.options.references.clone() {
            References::Scan => {
                let references = run.create(self, CREATE_REFERENCES, "references").await?;
                statement(
                    UNREFERENCED,
                    &[("listing", &listing), ("references", &references)],
                )
            }
            References::Export { uri } => {
                let (bucket, prefix) = split_uri(&uri)?;
                let data = format!("s3://{bucket}/{prefix}data/");
                let export = run.create_at(self, CREATE_EXPORT, "export", data).await?;
                let bucket_prefix = format!("s3://{}/", self.bucket());
                statement(
                    UNREFERENCED_EXPORT,
                    &[
                        ("listing", &listing),
                        ("export", &export),
                        ("bucket", self.bucket()),
                        ("skip", &bucket_prefix.len().to_string()),
                    ],
                )
            }
        };
        run.query(self, sql)
            .await?
            .into_iter()
            .map(|row| {
                let mut o = ObjectInfo::new(field(&row, 0)?, number(&row, 1).unwrap_or(0));
                o.last_modified = number(&row, 2).map(|ms| UNIX_EPOCH + Duration::from_millis(ms));
                Ok(o)
            })
            .collect()
    }

    /// [`Store::verify`] with the Athena engine: the pointers checked by the
    /// anti-join `dangling.sql`, each dangling one read again (its item, then
    /// a HeadObject) before it is reported.
    pub(super) async fn verify_athena(
        &self,
        table: &TableRef,
        options: &VerifyOptions,
        athena: &AthenaOptions,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<VerifyReport> {
        if options.rehash {
            return Err(Error::invalid(
                "verify --rehash reads every object: run it with the in-process engine",
            ));
        }
        if let References::Export { .. } = athena.references {
            return Err(Error::invalid(
                "verify cannot read a DynamoDB export (--from-export): its dangling pointers need \
                 each item's key and vhs's pointer checks; run verify on Athena with vhs's scan",
            ));
        }
        let mut run = Run::new(self, table, athena)?;
        let outside = ForeignTally::default();
        let counted = AtomicU64::new(0);
        let broken = std::sync::Mutex::new(VerifyReport::default());
        let result = async {
            let items = self
                .export_scan(
                    table,
                    &mut run,
                    options.segments,
                    progress,
                    |page| {
                        outside.note(table, self.bucket(), &page);
                        async { Ok(()) }
                    },
                    |table, item| self.pointer_lines(table, item, &counted, &broken),
                )
                .await?;
            let listed = self.export_listing(table, &mut run, progress).await?;
            let orphans = self.unreferenced(&mut run).await?;
            let pointers = run.create(self, CREATE_POINTERS, "pointers").await?;
            let listing = format!("vhs_{}_listing", run.id);
            let sql = statement(DANGLING, &[("pointers", &pointers), ("listing", &listing)]);
            let dangling = run.query(self, sql).await?;
            Ok::<_, Error>((items, listed, orphans, dangling))
        }
        .await;
        let finished = run.finish(self).await;
        let (items, _listed, orphans, dangling) = result?;
        finished?;
        let mut report = broken.into_inner().unwrap_or_else(|e| e.into_inner());
        report.items = items;
        report.pointers = counted.into_inner();
        progress(Progress::PointersChecked(report.pointers));
        (report.foreign_pointers, report.foreign_pointer_examples) = outside.finish();
        for o in orphans {
            if ObjectKey::parse(&table.prefix, &o.key).is_some() {
                report.orphans += 1;
                report.orphan_bytes += o.size;
            } else {
                report.foreign += 1;
            }
        }
        for row in dangling {
            let (key, hash, range, attr) = (
                field(&row, 0)?,
                field(&row, 1)?,
                field(&row, 2)?,
                field(&row, 3)?,
            );
            if let Some(found) = self.recheck(table, &key, hash, range, &attr).await? {
                report.dangling.push(found);
            }
        }
        for list in [
            &mut report.dangling,
            &mut report.integrity,
            &mut report.bad_pointers,
        ] {
            list.sort_by(|a, b| (&a.key, &a.attr).cmp(&(&b.key, &b.attr)));
        }
        Ok(report)
    }

    /// The pointer lines of one live item (verify): each pointer that names
    /// an object of this store; the others go to `broken` as bad pointers,
    /// as the in-process engine judges them.
    fn pointer_lines(
        &self,
        table: &TableRef,
        item: &Item,
        counted: &AtomicU64,
        broken: &std::sync::Mutex<VerifyReport>,
    ) -> Vec<String> {
        let (held, inline) = table.pointers(self.bucket(), item);
        let target = super::item_target(table, item);
        let keys = key_texts(table, item);
        let mut lines = Vec::new();
        let mut bad = Vec::new();
        counted.fetch_add(held.len() as u64, Ordering::Relaxed);
        for (attr, value) in held {
            let checked = match &target {
                Some(target) => self.check_pointer(target, attr, &value).map(|(p, _)| p),
                None => Err(Error::BadPointer {
                    attr: attr.to_owned(),
                    value: value.clone(),
                    reason:
                        "its item's key cannot name an object (a number key that is not an integer)"
                            .to_owned(),
                }),
            };
            match checked {
                Ok(pointer) => lines.push(line(&[
                    &pointer.key,
                    &keys[0],
                    keys.get(1).map_or("", String::as_str),
                    attr,
                ])),
                Err(e) => bad.push(BrokenPointer {
                    item: (table.describe)(item),
                    key: keys.clone(),
                    attr: attr.to_owned(),
                    value,
                    problem: e.to_string(),
                }),
            }
        }
        let mut report = broken.lock().unwrap_or_else(|e| e.into_inner());
        report.inline += inline;
        report.bad_pointers.extend(bad);
        lines
    }

    /// A pointer the snapshot found dangling, read again: its item (still
    /// live, still holding the same pointer at `attr`), then its object. The
    /// broken pointer if it still dangles.
    async fn recheck(
        &self,
        table: &TableRef,
        key: &str,
        hash: String,
        range: String,
        attr: &str,
    ) -> Result<Option<BrokenPointer>> {
        let object_key = ObjectKey {
            hash,
            range: table.keys.1.map(|_| range),
            attr: String::new(),
            encoding: None,
            // Unused: only the key parts name the target.
            checksum: ChecksumAlgorithm::Md5.digest(b""),
        };
        let Some(target) = (table.target_of)(&object_key) else {
            return Ok(None);
        };
        let Some(item) = self
            .backend()
            .get_item(&target.table, &target.key, true)
            .await?
        else {
            return Ok(None);
        };
        if item.contains_key(PLACEHOLDER) {
            return Ok(None);
        }
        let Some(value) = table
            .pointers(self.bucket(), &item)
            .0
            .into_iter()
            .find(|(a, _)| *a == attr)
            .map(|(_, v)| v)
        else {
            return Ok(None);
        };
        if value != format!("s3://{}/{key}", self.bucket()) {
            return Ok(None);
        }
        match self.check_object(&target, attr, &value, false).await {
            Ok(()) => Ok(None),
            Err(e @ Error::DanglingPointer { .. }) => Ok(Some(BrokenPointer {
                item: (table.describe)(&item),
                key: key_texts(table, &item),
                attr: attr.to_owned(),
                value,
                problem: e.to_string(),
            })),
            Err(Error::BadPointer { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A table snapshot [`Store::write_export`] wrote, in the layout of a
/// DynamoDB export (`DYNAMODB_JSON`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportManifest {
    /// `s3://bucket/prefix/AWSDynamoDB/{exportId}/`: what
    /// [`AthenaOptions::from_export`] takes.
    pub uri: String,
    /// When the scan started: its `manifest-summary.json` `exportTime`.
    pub export_time: SystemTime,
    /// Items written.
    pub items: u64,
    /// Data files written (`data/*.json.gz`).
    pub files: u64,
}

/// One attribute value as DynamoDB's export writes it (`{"S":"..."}`, ...).
fn dynamodb_json(value: &AttributeValue) -> serde_json::Value {
    use base64::Engine as _;
    use serde_json::{json, Value};
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    match value {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::B(b) => json!({ "B": b64(b.as_ref()) }),
        AttributeValue::Ss(v) => json!({ "SS": v }),
        AttributeValue::Ns(v) => json!({ "NS": v }),
        AttributeValue::Bs(v) => {
            json!({ "BS": v.iter().map(|b| b64(b.as_ref())).collect::<Vec<_>>() })
        }
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(b) => json!({ "NULL": b }),
        AttributeValue::L(l) => json!({ "L": l.iter().map(dynamodb_json).collect::<Vec<_>>() }),
        AttributeValue::M(m) => {
            let map: serde_json::Map<String, Value> = m
                .iter()
                .map(|(k, v)| (k.clone(), dynamodb_json(v)))
                .collect();
            json!({ "M": map })
        }
        _ => Value::Null,
    }
}

/// One line of a data file: `{"Item":{...}}` and a newline.
fn export_line(item: &Item) -> String {
    let map: serde_json::Map<String, serde_json::Value> = item
        .iter()
        .map(|(k, v)| (k.clone(), dynamodb_json(v)))
        .collect();
    let mut text = serde_json::json!({ "Item": map }).to_string();
    text.push('\n');
    text
}

/// Gzips `text`.
fn gzip(text: &str) -> Result<Bytes> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder
        .write_all(text.as_bytes())
        .and_then(|()| encoder.finish())
        .map(Bytes::from)
        .map_err(|e| Error::invalid(format!("gzip of an export file failed: {e}")))
}

/// RFC 3339 in UTC with milliseconds, as DynamoDB writes `exportTime`.
fn rfc3339(time: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Store {
    /// The `exportTime` of the export at `uri` (its `manifest-summary.json`).
    async fn export_time(&self, uri: &str) -> Result<SystemTime> {
        let (bucket, prefix) = split_uri(uri)?;
        let key = format!("{prefix}manifest-summary.json");
        let bad = |why: String| {
            Error::invalid(format!(
                "s3://{bucket}/{key}: {why} (--from-export takes the export's directory, \
                 s3://bucket/prefix/AWSDynamoDB/ID/)"
            ))
        };
        let Some(object) = self.backend().get_object(&bucket, &key).await? else {
            return Err(bad("no such object".to_owned()));
        };
        let summary: serde_json::Value = serde_json::from_slice(&object.body)
            .map_err(|e| bad(format!("not a manifest summary: {e}")))?;
        let text = summary
            .get("exportTime")
            .and_then(|t| t.as_str())
            .ok_or_else(|| bad("no exportTime".to_owned()))?;
        let time = chrono::DateTime::parse_from_rfc3339(text)
            .map_err(|e| bad(format!("exportTime {text:?}: {e}")))?;
        Ok(SystemTime::from(time))
    }

    /// Writes a snapshot of `M`'s table under `uri` (`s3://bucket/prefix/`)
    /// in the layout of a DynamoDB export to S3 (format `DYNAMODB_JSON`):
    /// `AWSDynamoDB/{exportId}/manifest-summary.json` (with `exportTime`,
    /// the time the scan started), `manifest-files.json` (one JSON line per
    /// data file, with `dataFileS3Key`) and `data/*.json.gz` (one
    /// `{"Item":{...}}` per line). A parallel, consistent scan in `segments`
    /// segments, one data file per segment and 50,000 items. For an export
    /// without point-in-time recovery; GC reads either with
    /// [`AthenaOptions::from_export`].
    pub async fn write_export<M: crate::model::Model>(
        &self,
        uri: &str,
        segments: u32,
    ) -> Result<ExportManifest> {
        let table = TableRef::of::<M>(self)?;
        let (bucket, prefix) = split_uri(uri)?;
        let id = format!(
            "{:013}-{:08x}",
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0),
            fastrand::u32(..)
        );
        let base = format!("{prefix}AWSDynamoDB/{id}/");
        let export_time = SystemTime::now();
        let segments = segments.max(1);
        let put = |key: String, body: Bytes, content_type: &str| PutObject {
            bucket: bucket.clone(),
            key,
            checksum: ChecksumAlgorithm::Md5.digest(&body),
            body,
            content_type: content_type.to_owned(),
            content_encoding: None,
            metadata: Default::default(),
            storage_class: None,
            tags: Vec::new(),
            if_none_match: false,
            complete_after: Signal::open(),
        };
        let runs = (0..segments).map(|segment| {
            let (table, base, put) = (&table, &base, &put);
            async move {
                // (data file key, items) of each file written.
                let mut written = Vec::new();
                let (mut text, mut count, mut start) = (String::new(), 0u64, None);
                loop {
                    let page = self
                        .backend()
                        .scan(&Scan {
                            segment: (segments > 1).then_some((segment, segments)),
                            start,
                            consistent: true,
                            ..Scan::new(&table.table)
                        })
                        .await?;
                    for item in &page.items {
                        text.push_str(&export_line(item));
                        count += 1;
                    }
                    let last = page.last_key.is_none();
                    if (count as usize >= LINES_PER_FILE || last) && count > 0 {
                        let key = format!("{base}data/{segment:04}-{:05}.json.gz", written.len());
                        let body = gzip(&std::mem::take(&mut text))?;
                        self.backend()
                            .put_object(put(key.clone(), body, "application/gzip"))
                            .await?;
                        written.push((key, count));
                        count = 0;
                    }
                    match page.last_key {
                        Some(k) => start = Some(k),
                        None => break,
                    }
                }
                Ok::<_, Error>(written)
            }
        });
        let mut files = Vec::new();
        for written in join_all(runs).await {
            files.extend(written?);
        }
        let items: u64 = files.iter().map(|(_, n)| n).sum();
        let manifest: String = files
            .iter()
            .map(|(key, n)| {
                let mut l = serde_json::json!({
                    "itemCount": n,
                    "dataFileS3Key": key,
                })
                .to_string();
                l.push('\n');
                l
            })
            .collect();
        let summary = serde_json::json!({
            "version": "2020-06-30",
            "exportArn": format!("vhs:write_export:{}/{id}", table.table),
            "exportTime": rfc3339(export_time),
            "startTime": rfc3339(export_time),
            "endTime": rfc3339(SystemTime::now()),
            "tableArn": table.table,
            "s3Bucket": bucket,
            "s3Prefix": prefix,
            "manifestFilesS3Key": format!("{base}manifest-files.json"),
            "billedSizeBytes": 0,
            "itemCount": items,
            "outputFormat": "DYNAMODB_JSON",
        });
        self.backend()
            .put_object(put(
                format!("{base}manifest-files.json"),
                Bytes::from(manifest),
                "application/json",
            ))
            .await?;
        self.backend()
            .put_object(put(
                format!("{base}manifest-summary.json"),
                Bytes::from(summary.to_string()),
                "application/json",
            ))
            .await?;
        Ok(ExportManifest {
            uri: format!("s3://{bucket}/{base}"),
            // The millisecond the summary records.
            export_time: UNIX_EPOCH
                + Duration::from_millis(
                    export_time
                        .duration_since(UNIX_EPOCH)
                        .map(|d| d.as_millis() as u64)
                        .unwrap_or(0),
                ),
            items,
            files: files.len() as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_drop_comments_and_fill_names() {
        let sql = statement(
            UNREFERENCED,
            &[
                ("listing", "vhs_1_listing"),
                ("references", "vhs_1_references"),
            ],
        );
        assert!(!sql.contains("--"), "{sql}");
        assert!(!sql.contains('{'), "{sql}");
        assert!(sql.starts_with("SELECT o.key"), "{sql}");
        assert!(sql.contains("FROM vhs_1_listing o"), "{sql}");
        let ddl = statement(
            CREATE_LISTING,
            &[("table", "t"), ("location", "s3://b/p/listing/")],
        );
        assert!(ddl.starts_with("CREATE EXTERNAL TABLE t ("), "{ddl}");
        assert!(ddl.ends_with("LOCATION 's3://b/p/listing/'"), "{ddl}");
    }

    #[test]
    fn output_uris_split_and_refuse_non_s3() {
        assert_eq!(
            split_uri("s3://b/x/y").unwrap(),
            ("b".to_owned(), "x/y/".to_owned())
        );
        assert_eq!(
            split_uri("s3://b").unwrap(),
            ("b".to_owned(), String::new())
        );
        assert!(split_uri("b/x").is_err());
        assert!(split_uri("s3:///x").is_err());
    }

    #[test]
    fn lines_escape_tabs_and_newlines_and_read_back() {
        let l = line(&["a\tb\nc/d", ""]);
        assert_eq!(l.matches('\t').count(), 1);
        assert_eq!(l.matches('\n').count(), 1);
        let row: Vec<Option<String>> = l
            .trim_end()
            .split('\t')
            .map(|s| Some(s.to_owned()))
            .collect();
        assert_eq!(field(&row, 0).unwrap(), "a\tb\nc/d");
        assert_eq!(field(&row, 1).unwrap(), "");
        assert_eq!(number(&[Some("12".into())], 0), Some(12));
        assert_eq!(number(&[None], 0), None);
    }

    #[test]
    fn export_lines_are_dynamodb_json() {
        let mut item = Item::new();
        item.insert("pk".into(), AttributeValue::S("a\tb".into()));
        item.insert("n".into(), AttributeValue::N("1".into()));
        item.insert("b".into(), AttributeValue::B(vec![0u8, 1].into()));
        item.insert(
            "l".into(),
            AttributeValue::L(vec![AttributeValue::Bool(true), AttributeValue::Null(true)]),
        );
        let line = export_line(&item);
        assert!(
            line.ends_with('\n') && !line.trim_end().contains('\n'),
            "{line}"
        );
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({"Item": {
                "pk": {"S": "a\tb"},
                "n": {"N": "1"},
                "b": {"B": "AAE="},
                "l": {"L": [{"BOOL": true}, {"NULL": true}]},
            }})
        );
        let ddl = statement(
            UNREFERENCED_EXPORT,
            &[
                ("listing", "l"),
                ("export", "e"),
                ("bucket", "bkt"),
                ("skip", "9"),
            ],
        );
        assert!(
            !ddl.contains("{skip}") && !ddl.contains("{bucket}"),
            "{ddl}"
        );
        // ministack rewrites quoted 's3://' literals into file paths.
        assert!(!ddl.contains("'s3://"), "{ddl}");
        assert!(ddl.contains("'s3:' || '//bkt/'"), "{ddl}");
    }

    #[test]
    fn references_follow_the_in_process_rule() {
        let mut item = Item::new();
        item.insert("a".into(), AttributeValue::S("s3://b/p/k1".into()));
        item.insert("b".into(), AttributeValue::S("s3://other/k2".into()));
        item.insert("c".into(), AttributeValue::N("1".into()));
        let found: Vec<&str> = references("s3://b/", &item).collect();
        assert_eq!(found, ["p/k1"]);
    }
}
