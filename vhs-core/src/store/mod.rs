//! The [`Store`]: transactional and step-by-step operations over a backend.
//!
//! Each operation reads in one file, with the types it returns beside it:
//! `create`, `read`, `update`, `delete`, and `staged` (the step-by-step API). The
//! rules they follow to never delete a referenced object are in
//! [`protocol`](crate::protocol).

mod batch;
mod calls;
mod create;
mod delete;
mod janitor;
mod limit;
mod query;
mod read;
mod staged;
mod transact;
mod transfer;
mod update;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::types::AttributeValue;
use bytes::Bytes;
use futures_util::future::{join_all, BoxFuture};
use tracing::field::Empty;
use tracing::Span;

pub use calls::Put;
pub use delete::{Deleted, Precondition};
pub use query::{Cursor, ItemFailure, Page, QueryBuilder, ScanBuilder};
pub(crate) use read::Bodies;
pub use read::Stored;
pub use staged::{Staged, StagedAttr, StagedObject, UpdateFragment};
pub use transact::{Commit, Transaction};
pub(crate) use transfer::ObjectPut;
pub use update::Updated;

use crate::backend::{
    item_size, Backend, PutOutcome, Signal, TableSpec, MAX_ITEM_BYTES, MAX_KEY_BYTES,
    MAX_OBJECT_BYTES, MAX_PUT_OBJECT_BYTES, MIN_PART_BYTES,
};
use crate::blob::{md5_of, md5_of_blob, Blob};
use crate::cache::{CacheOptions, ReadCache};
use crate::changes::LargeValues;
use crate::error::{Error, Result};
use crate::layout::{escape, normalize_prefix, object_id, Encoding, Md5Sum, Pointer};
use crate::model::{Item, Key, Model};
use crate::protocol::clock::{Settings, Tokens};
use crate::protocol::decide::Plan;
use crate::protocol::engine::{self, Env, Uploads};
use crate::protocol::item::{ObjectRef, State, Target};
pub(crate) use crate::protocol::machine::UploadOrder;
use crate::protocol::machine::{Commit as CommitMachine, CommitConfig, Committed};
pub use crate::protocol::Cleanup;
pub(crate) use crate::protocol::Tally;
use crate::retry::RetryPolicy;
pub use janitor::Background;
use janitor::Janitor;
pub(crate) use limit::traced;

/// Behaviour switches of a [`Store`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// When the DynamoDB write of a create or update fails, delete the objects the
    /// call created (never one the stored item references). Default `true`.
    ///
    /// Objects created by a call whose *upload* step fails are always removed,
    /// since no item can reference them yet.
    pub clean_up_when_failed: bool,
    /// After a successful update, delete the old objects the new item no longer
    /// references. Default `true`.
    pub clean_up_when_succeeded: bool,
    /// How many S3 requests one call runs at once. Default 16.
    pub max_concurrency: usize,
    /// The protocol's time bound `R` (see [`protocol::spec`](crate::protocol::spec)),
    /// **recorded for a table the first time a store needs it**
    /// ([`Store::ensure_table`] does): every process working on that table
    /// then uses the recorded value, whatever its own options say, so two
    /// processes can never disagree. Every request must land within `R/4` of
    /// being sent, or never; a write uploads again if more than `R/2` passed
    /// since its uploads began; a deleter does not send a delete more than
    /// `R/4` after its mark; marks and reservations are dead (taken over by GC
    /// and by writers) `R + S` after their stamp; empty placeholders are
    /// removed `2R + S` after their newest stamp. Default 1 hour.
    pub retention: Duration,
    /// The bound `S` on the difference between any two clocks (of the hosts
    /// running vhs against a table), recorded with the retention. A stamp more
    /// than `S` in the future is never judged dead. Default: 2 minutes, or a
    /// quarter of the retention if that is shorter.
    pub max_clock_skew: Option<Duration>,
    /// How long a write waits for a deletion of the same object (or of the item)
    /// to finish before giving up with [`Error::Busy`]. Default: 50 attempts, 5 ms
    /// doubling up to 500 ms.
    pub wait: RetryPolicy,
    /// Deferred cleanup: an update or delete returns once its commit is durable,
    /// and deletes the objects it replaced on the store's background queue (see
    /// [`Store::flush`]). One round trip fewer for both. Default `false`: they are
    /// deleted before the call returns.
    pub defer_cleanup: bool,
    /// Where background jobs run. Default [`Background::Spawn`].
    pub background: Background,
    /// How many background jobs may be queued or running at once; a call that
    /// would queue one more waits. Default 1024.
    pub cleanup_queue: usize,
    /// Values larger than this go up by multipart upload, values up to it by one
    /// PutObject. Default 16 MiB; at most 5 GiB (S3's PutObject limit).
    pub multipart_threshold: u64,
    /// The size of a multipart upload's parts, and of the ranges a download
    /// fetches. Default 8 MiB; at least 5 MiB (S3's minimum part). A value above
    /// 10,000 parts of this size (78 GiB by default) uses larger parts.
    pub part_size: u64,
    /// How many parts of one value are sent or fetched at once. A transfer holds
    /// at most `part_concurrency + 2` parts in memory. Default 4.
    pub part_concurrency: usize,
    /// Store-wide bound on requests in flight, per service: at most this many
    /// DynamoDB requests and this many S3 requests at once, over every call and
    /// background job of the store (and its clones). Ten thousand concurrent calls
    /// queue for permits instead of opening ten thousand connections. Default 128.
    pub max_in_flight: usize,
    /// Store-wide bound on the bytes of download ranges in flight or waiting to
    /// be written, over every read of the store (and its clones) that goes range
    /// by range: [`Store::download_large`], [`Store::read_large_range`], `Blob`
    /// values read by [`Store::get_large`], queries and scans, `verify` with
    /// `rehash`. A download always gets at least one range. Default 32 MiB.
    pub download_buffer: u64,
    /// Where a [`Blob`](crate::Blob) value read back is spooled when it is larger
    /// than one download range ([`Options::part_size`]): a temporary file,
    /// removed when the last clone of the `Blob` is dropped. Default:
    /// [`std::env::temp_dir`].
    pub spool_dir: Option<std::path::PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            clean_up_when_failed: true,
            clean_up_when_succeeded: true,
            max_concurrency: 16,
            retention: Duration::from_secs(3600),
            max_clock_skew: None,
            wait: RetryPolicy::attempts(50),
            defer_cleanup: false,
            background: Background::Spawn,
            cleanup_queue: 1024,
            multipart_threshold: 16 * 1024 * 1024,
            part_size: 8 * 1024 * 1024,
            part_concurrency: 4,
            max_in_flight: 128,
            download_buffer: 32 * 1024 * 1024,
            spool_dir: None,
        }
    }
}

impl Options {
    /// The protocol settings these options propose for a table that has none
    /// recorded yet.
    pub fn settings(&self) -> Settings {
        Settings::new(
            self.retention,
            self.max_clock_skew
                .unwrap_or_else(|| Duration::from_secs(120).min(self.retention / 4)),
        )
    }
}

/// Builds a [`Store`].
pub struct StoreBuilder {
    backend: Arc<dyn Backend>,
    bucket: String,
    prefix: String,
    options: Options,
    tables: HashMap<String, String>,
    table_prefixes: HashMap<String, String>,
    on_cleanup: Option<janitor::OnCleanup>,
    cache: Option<CacheOptions>,
}

impl StoreBuilder {
    /// Objects go under this key prefix, each table's under `{prefix}/{table}`
    /// unless [`table_prefix`](Self::table_prefix) says otherwise. Leading,
    /// trailing and doubled slashes are removed, so `"/docs//v1/"` becomes `docs/v1`.
    pub fn prefix(mut self, prefix: impl AsRef<str>) -> Self {
        self.prefix = normalize_prefix(prefix.as_ref());
        self
    }

    /// Stores model `M` in `table` instead of its default table.
    pub fn table_for<M: Model>(self, table: impl Into<String>) -> Self {
        self.table(M::SCHEMA.table, table)
    }

    /// Every model whose default table is `default` uses `table` instead.
    pub fn table(mut self, default: impl Into<String>, table: impl Into<String>) -> Self {
        self.tables.insert(default.into(), table.into());
        self
    }

    /// Puts the objects of `table` (the table name as stored, after any
    /// [`table`](Self::table) mapping) under exactly `prefix` instead of
    /// `{store prefix}/{table}`: for example the prefix another library (such as
    /// pynamodb_mate) wrote that table's objects under. No other table may use
    /// the same prefix or one nested in it: [`build`](Self::build) refuses it.
    pub fn table_prefix(mut self, table: impl Into<String>, prefix: impl AsRef<str>) -> Self {
        self.table_prefixes
            .insert(table.into(), normalize_prefix(prefix.as_ref()));
        self
    }

    /// Replaces all options.
    pub fn options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }

    /// Sets [`Options::clean_up_when_failed`].
    pub fn clean_up_when_failed(mut self, yes: bool) -> Self {
        self.options.clean_up_when_failed = yes;
        self
    }

    /// Sets [`Options::clean_up_when_succeeded`].
    pub fn clean_up_when_succeeded(mut self, yes: bool) -> Self {
        self.options.clean_up_when_succeeded = yes;
        self
    }

    /// Sets [`Options::max_concurrency`] (at least 1).
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.options.max_concurrency = n;
        self
    }

    /// Sets [`Options::retention`].
    pub fn retention(mut self, retention: Duration) -> Self {
        self.options.retention = retention;
        self
    }

    /// Sets [`Options::max_clock_skew`].
    pub fn max_clock_skew(mut self, skew: Duration) -> Self {
        self.options.max_clock_skew = Some(skew);
        self
    }

    /// Sets [`Options::wait`].
    pub fn wait(mut self, policy: RetryPolicy) -> Self {
        self.options.wait = policy;
        self
    }

    /// Sets [`Options::defer_cleanup`].
    pub fn defer_cleanup(mut self, yes: bool) -> Self {
        self.options.defer_cleanup = yes;
        self
    }

    /// Sets [`Options::background`].
    pub fn background(mut self, background: Background) -> Self {
        self.options.background = background;
        self
    }

    /// Sets [`Options::cleanup_queue`] (at least 1).
    pub fn cleanup_queue(mut self, jobs: usize) -> Self {
        self.options.cleanup_queue = jobs;
        self
    }

    /// Sets [`Options::multipart_threshold`].
    pub fn multipart_threshold(mut self, bytes: u64) -> Self {
        self.options.multipart_threshold = bytes;
        self
    }

    /// Sets [`Options::part_size`].
    pub fn part_size(mut self, bytes: u64) -> Self {
        self.options.part_size = bytes;
        self
    }

    /// Sets [`Options::max_in_flight`] (at least 1).
    pub fn max_in_flight(mut self, requests: usize) -> Self {
        self.options.max_in_flight = requests;
        self
    }

    /// Sets [`Options::download_buffer`].
    pub fn download_buffer(mut self, bytes: u64) -> Self {
        self.options.download_buffer = bytes;
        self
    }

    /// Sets [`Options::spool_dir`].
    pub fn spool_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.options.spool_dir = Some(dir.into());
        self
    }

    /// Sets [`Options::part_concurrency`] (at least 1).
    pub fn part_concurrency(mut self, parts: usize) -> Self {
        self.options.part_concurrency = parts;
        self
    }

    /// Calls `f` with the outcome of every background job (deletes, and the marks
    /// removed after them), as it finishes: say, to log leftovers.
    pub fn on_cleanup(mut self, f: impl Fn(&Cleanup) + Send + Sync + 'static) -> Self {
        self.on_cleanup = Some(Arc::new(f));
        self
    }

    /// Turns the read cache on (it is off by default): items read by
    /// [`Store::get_large`], query and scan pages, and object bodies, shared by
    /// the store's clones. Every write through this store invalidates what is
    /// cached of its table; **writes by other processes are not seen** until
    /// the TTL passes (see [`CacheOptions`]). Consistent reads bypass it.
    pub fn cache(mut self, options: CacheOptions) -> Self {
        self.cache = Some(options);
        self
    }

    /// The store. Fails with [`Error::InvalidInput`], before anything is sent,
    /// on a bucket name S3 refuses (3 to 63 characters of lowercase letters,
    /// digits, `.` and `-`, a letter or digit first and last, no `..`, not an
    /// IPv4 address, none of S3's reserved prefixes and suffixes such as
    /// `xn--` and `-s3alias`), a zero concurrency, and on two tables whose
    /// objects would share a prefix (equal, or one inside the other).
    pub fn build(self) -> Result<Store> {
        check_bucket_name(&self.bucket)?;
        if self.options.max_concurrency == 0 {
            return Err(Error::invalid("max_concurrency must be at least 1"));
        }
        self.options.settings().check()?;
        if self.options.cleanup_queue == 0 {
            return Err(Error::invalid("cleanup_queue must be at least 1"));
        }
        if self.options.max_in_flight == 0 {
            return Err(Error::invalid("max_in_flight must be at least 1"));
        }
        if self.options.part_concurrency == 0 {
            return Err(Error::invalid("part_concurrency must be at least 1"));
        }
        if !(MIN_PART_BYTES..=MAX_PUT_OBJECT_BYTES).contains(&self.options.part_size) {
            return Err(Error::invalid(format!(
                "part_size is {} bytes; S3 parts are {MIN_PART_BYTES} to {MAX_PUT_OBJECT_BYTES} bytes",
                self.options.part_size
            )));
        }
        if self.options.multipart_threshold > MAX_PUT_OBJECT_BYTES {
            return Err(Error::invalid(format!(
                "multipart_threshold is {} bytes, above the {MAX_PUT_OBJECT_BYTES} a single PutObject accepts",
                self.options.multipart_threshold
            )));
        }
        let cache = self.cache.map(|o| Arc::new(ReadCache::new(o)));
        let store = Store {
            inner: Arc::new(Inner {
                janitor: Janitor::new(
                    self.options.background,
                    self.options.cleanup_queue,
                    self.on_cleanup,
                ),
                backend: Arc::new(limit::Limited::new(
                    self.backend,
                    self.options.max_in_flight,
                    cache.clone(),
                )),
                cache,
                settings: std::sync::Mutex::new(HashMap::new()),
                downloads: Arc::new(tokio::sync::Semaphore::new(transfer::budget_permits(
                    self.options.download_buffer,
                ))),
                bucket: self.bucket,
                prefix: self.prefix,
                options: self.options,
                tables: self.tables,
                table_prefixes: self.table_prefixes,
            }),
        };
        let known: HashSet<&str> = store
            .inner
            .tables
            .values()
            .chain(store.inner.table_prefixes.keys())
            .map(String::as_str)
            .collect();
        for table in known {
            store.table_prefix(table)?;
        }
        Ok(store)
    }
}

/// Checks `name` against S3's naming rules for general purpose buckets:
/// 3 to 63 characters; only lowercase letters, digits, `.` and `-`; a letter
/// or digit first and last; no `..`; not an IPv4 address; none of the
/// reserved prefixes (`xn--`, `sthree-`, `amzn-s3-demo-`) or suffixes
/// (`-s3alias`, `--ol-s3`, `.mrap`, `--x-s3`, `--table-s3`).
///
/// [`Error::InvalidInput`] names the bucket and the rule broken.
pub(crate) fn check_bucket_name(name: &str) -> Result<()> {
    const PREFIXES: [&str; 3] = ["xn--", "sthree-", "amzn-s3-demo-"];
    const SUFFIXES: [&str; 5] = ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"];
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let broken = if !(3..=63).contains(&name.len()) {
        Some(format!(
            "must be 3 to 63 characters long, not {}",
            name.len()
        ))
    } else if let Some(c) = name.chars().find(|&c| !(alnum(c) || c == '.' || c == '-')) {
        Some(format!(
            "may hold only lowercase letters, digits, '.' and '-', not {c:?}"
        ))
    } else if !name.starts_with(alnum) || !name.ends_with(alnum) {
        Some("must start and end with a lowercase letter or a digit".to_owned())
    } else if name.contains("..") {
        Some("must not contain two adjacent periods".to_owned())
    } else if name.parse::<std::net::Ipv4Addr>().is_ok() {
        Some("must not be formatted as an IP address".to_owned())
    } else if let Some(p) = PREFIXES.iter().find(|p| name.starts_with(*p)) {
        Some(format!("must not start with the reserved prefix {p:?}"))
    } else {
        SUFFIXES
            .iter()
            .find(|x| name.ends_with(*x))
            .map(|x| format!("must not end with the reserved suffix {x:?}"))
    };
    match broken {
        Some(rule) => Err(Error::invalid(format!(
            "bucket name {name:?} is not valid in S3: it {rule}"
        ))),
        None => Ok(()),
    }
}

/// A handle on one bucket + prefix and the tables of the models stored through it.
///
/// Cheap to clone; clones share the backend.
///
/// ```
/// use vhs_core::{MemoryBackend, Store};
/// let store = Store::builder(MemoryBackend::new(), "my-bucket")
///     .prefix("/docs//")
///     .build()
///     .unwrap();
/// assert_eq!(store.prefix(), "docs");
/// assert_eq!(store.table_prefix("notes").unwrap(), "docs/notes");
/// ```
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Arc<dyn Backend>,
    cache: Option<Arc<ReadCache>>,
    /// The protocol settings recorded for each table prefix, once read.
    settings: std::sync::Mutex<HashMap<String, Settings>>,
    bucket: String,
    prefix: String,
    options: Options,
    tables: HashMap<String, String>,
    table_prefixes: HashMap<String, String>,
    janitor: Janitor,
    /// [`Options::download_buffer`] in MiB permits: ranges of downloads in
    /// flight or waiting to be written, over every call of the store.
    downloads: Arc<tokio::sync::Semaphore>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.inner.backend)
            .field("bucket", &self.inner.bucket)
            .field("prefix", &self.inner.prefix)
            .field("options", &self.inner.options)
            .field("tables", &self.inner.tables)
            .field("table_prefixes", &self.inner.table_prefixes)
            .field("cache", &self.inner.cache)
            .finish()
    }
}

/// Records how many large values `values` hold (removals left out) and their
/// bytes in `span`'s `attrs` and `bytes` fields.
pub(crate) fn record_values<'a, M: 'a>(
    span: &Span,
    values: impl IntoIterator<Item = &'a LargeValues<M>>,
) {
    if span.is_disabled() {
        return;
    }
    let (attrs, bytes) = values
        .into_iter()
        .flat_map(|values| values.values.iter())
        .filter_map(|(_, blob)| blob.as_ref())
        .fold((0u64, 0u64), |(n, bytes), blob| (n + 1, bytes + blob.len()));
    span.record("attrs", attrs);
    span.record("bytes", bytes);
}

/// An upload planned and validated, not yet done.
pub(crate) struct Upload {
    index: usize,
    attr: &'static str,
    /// The object to write; `None` for a removal or an inline value.
    target: Option<(String, Md5Sum, Blob)>,
    /// A value kept in the item (`#[large(inline_below = N)]`).
    inline: Option<Bytes>,
    /// How the object's bytes encode the value.
    encoding: Option<Encoding>,
}

/// How [`Store::plan`] stores one value.
enum Planned {
    /// In the item.
    Inline(Bytes),
    /// As an object with this MD5.
    Object(Md5Sum, Blob),
}

impl Upload {
    /// What the attribute will hold in the item: the `s3://` URI of the object,
    /// the inline value, or `None` for a removal.
    fn stored(&self, bucket: &str) -> Option<AttributeValue> {
        if let Some(bytes) = &self.inline {
            return Some(AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(
                bytes.to_vec(),
            )));
        }
        let (key, _, _) = self.target.as_ref()?;
        Some(AttributeValue::S(
            Pointer {
                bucket: bucket.to_owned(),
                key: key.clone(),
            }
            .uri(),
        ))
    }
}

/// A `warn` event per object a cleanup left for GC, with the reason (in the
/// span of the operation, or of the background job, that left it).
pub(crate) fn warn_leftovers(bucket: &str, cleanup: &Cleanup) {
    for (key, reason) in &cleanup.leftover {
        tracing::warn!(
            uri = %format_args!("s3://{bucket}/{key}"),
            error = %reason,
            "object not deleted: left for GC"
        );
    }
}

/// A fresh write token.
pub(crate) fn new_token() -> String {
    Tokens::random().next()
}

/// What [`Store::write`] did: the staged values, the commit, and what its
/// deletions came to so far.
pub(crate) struct Written<M> {
    pub staged: Staged<M>,
    pub committed: Committed,
    pub cleanup: Cleanup,
}

/// The object writes of one call, as the protocol's engine sends them.
pub(crate) struct Puts<'a> {
    pub store: &'a Store,
    pub puts: Vec<ObjectPut>,
}

impl Uploads for Puts<'_> {
    fn put<'b>(&'b self, upload: usize, after: &'b Signal) -> BoxFuture<'b, Result<PutOutcome>> {
        Box::pin(self.store.put_object(&self.puts[upload], after))
    }
}

impl Env for Store {
    fn backend(&self) -> &Arc<dyn Backend> {
        &self.inner.backend
    }
    fn wait(&self) -> &RetryPolicy {
        &self.inner.options.wait
    }
    fn max_concurrency(&self) -> usize {
        self.inner.options.max_concurrency
    }
    fn defer(&self, job: BoxFuture<'static, Cleanup>) -> BoxFuture<'_, ()> {
        Box::pin(Store::defer(self, job))
    }
}

/// Reads that found an object deleted by a concurrent replacement are repeated
/// this many times before [`Error::Busy`] is reported.
pub(crate) const READ_RACE_RETRIES: usize = 5;
/// The [`Error::Busy`] reason of a read that lost every race to a writer
/// replacing (and deleting) the objects it was reading.
pub(crate) const READ_RACE_LOST: &str =
    "every read lost the race to a concurrent write that replaced the objects it was reading";

/// Rejects an item DynamoDB would reject for its size, before anything is written.
fn check_item_size(target: &Target, item: &Item) -> Result<()> {
    let size = item_size(item);
    if size > MAX_ITEM_BYTES {
        return Err(Error::invalid(format!(
            "item {} is {size} bytes in DynamoDB after its large values moved to S3, above the limit of {MAX_ITEM_BYTES}; mark more fields #[large]",
            target.describe
        )));
    }
    Ok(())
}

/// The version attribute of `M` with the version the caller read (`given`): a
/// versioned model must say it (with `how`), an unversioned one cannot.
pub(crate) fn version_read<M: Model>(
    given: Option<u64>,
    how: &str,
) -> Result<Option<(&'static str, u64)>> {
    match (M::SCHEMA.version, given) {
        (Some(attr), Some(v)) => Ok(Some((attr, v))),
        (None, None) => Ok(None),
        (Some(attr), None) => Err(Error::invalid(format!(
            "table `{}` is versioned by `{attr}`: say which version you read with `{how}`",
            M::SCHEMA.table
        ))),
        (None, Some(_)) => Err(Error::invalid(format!(
            "`if_version` on table `{}`, whose model has no #[vhs(version)] attribute",
            M::SCHEMA.table
        ))),
    }
}

/// The version after `version`.
pub(crate) fn next_version(version: u64) -> Result<u64> {
    version
        .checked_add(1)
        .ok_or_else(|| Error::invalid("version overflow: the item is at u64::MAX"))
}

/// A number attribute as `u64`, if present and one.
pub(crate) fn number_attr(item: &Item, attr: &str) -> Option<u64> {
    match item.get(attr)? {
        AttributeValue::N(n) => n.parse().ok(),
        _ => None,
    }
}

fn now_iso8601() -> String {
    aws_sdk_dynamodb::primitives::DateTime::from(SystemTime::now())
        .fmt(aws_sdk_dynamodb::primitives::DateTimeFormat::DateTime)
        .unwrap_or_default()
}

/// Whether two prefixes overlap: equal, or one a path prefix of the other.
fn nested(a: &str, b: &str) -> bool {
    let inside = |outer: &str, inner: &str| {
        outer.is_empty() || inner == outer || inner.starts_with(&format!("{outer}/"))
    };
    inside(a, b) || inside(b, a)
}

impl Store {
    /// Starts building a store over `backend`, with objects in `bucket`.
    pub fn builder(backend: impl Backend, bucket: impl Into<String>) -> StoreBuilder {
        StoreBuilder {
            backend: Arc::new(backend),
            bucket: bucket.into(),
            prefix: String::new(),
            options: Options::default(),
            tables: HashMap::new(),
            table_prefixes: HashMap::new(),
            on_cleanup: None,
            cache: None,
        }
    }

    /// The read cache, if the store has one ([`StoreBuilder::cache`]).
    pub(crate) fn cache(&self) -> Option<&ReadCache> {
        self.inner.cache.as_deref()
    }

    /// The backend (for calls of your own, or to inspect it in tests).
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.inner.backend
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.inner.bucket
    }

    /// The normalized store prefix (`""` for none).
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The options.
    pub fn options(&self) -> &Options {
        &self.inner.options
    }

    /// The table model `M` is stored in.
    pub fn table_name<M: Model>(&self) -> &str {
        self.inner
            .tables
            .get(M::SCHEMA.table)
            .map(String::as_str)
            .unwrap_or(M::SCHEMA.table)
    }

    /// The prefix the objects of `table` go under: the configured one
    /// ([`StoreBuilder::table_prefix`]), else `{store prefix}/{table}`. An error if
    /// it would overlap the prefix of another table configured on this store.
    pub fn table_prefix(&self, table: &str) -> Result<String> {
        let of = |t: &str| match self.inner.table_prefixes.get(t) {
            Some(p) => p.clone(),
            None => normalize_prefix(&format!("{}/{t}", self.inner.prefix)),
        };
        let mine = of(table);
        if table.is_empty() {
            return Err(Error::invalid("table name is empty"));
        }
        for other in self.inner.table_prefixes.keys() {
            if other != table && nested(&mine, &of(other)) {
                return Err(Error::invalid(format!(
                    "tables `{table}` and `{other}` would share the object prefix {:?} / {:?}; give each table its own prefix",
                    mine,
                    of(other)
                )));
            }
        }
        Ok(mine)
    }

    /// Creates `M`'s table (pay-per-request) with the secondary indexes `M`
    /// declares, if it does not exist; if it does, creates the global indexes
    /// it lacks. Models sharing one table (a single-table design) each add
    /// their own indexes. A local index missing from an existing table is an
    /// error: DynamoDB creates those with the table only.
    pub async fn ensure_table<M: Model>(&self) -> Result<()> {
        let schema = M::SCHEMA;
        let key = |k: crate::model::KeyDef| (k.name.to_owned(), k.kind);
        let spec = TableSpec {
            name: self.table_name::<M>().to_owned(),
            hash_key: key(schema.hash_key),
            range_key: schema.range_key.map(key),
            indexes: schema
                .indexes
                .iter()
                .map(|i| crate::backend::IndexSpec {
                    name: i.name.to_owned(),
                    kind: i.kind,
                    hash_key: key(i.hash_key),
                    range_key: i.range_key.map(key),
                    projection: i.projection(),
                })
                .collect(),
            streams: false,
            point_in_time_recovery: false,
        };
        self.ensure_table_spec(&spec).await
    }

    /// Creates a table from its [`TableSpec`] (keys, indexes, stream,
    /// point-in-time recovery), or brings an existing one up to it: adds the
    /// global indexes, the stream and the point-in-time recovery it lacks, and
    /// waits until the table and its indexes are active. What
    /// [`ensure_table`](Self::ensure_table) does for a model, and `vhs provision`
    /// for a table described on the command line.
    ///
    /// It also records the table's protocol settings (the retention and the
    /// clock skew bound, from this store's [`Options`]) with its objects if
    /// none are recorded yet, and reads them if they are: every process then
    /// uses the same (see [`Options::retention`]). The bucket must exist.
    pub async fn ensure_table_spec(&self, spec: &TableSpec) -> Result<()> {
        let span = tracing::info_span!("ensure_table", table = %spec.name, requests = Empty);
        traced(&span, async {
            self.inner.backend.create_table(spec).await?;
            let prefix = self.table_prefix(&spec.name)?;
            self.settings_of_prefix(&prefix).await?;
            Ok(())
        })
        .await
    }

    /// The protocol settings recorded for `table` (recording this store's if
    /// there are none yet): what every process uses for it.
    pub async fn protocol_settings(&self, table: &str) -> Result<Settings> {
        let prefix = self.table_prefix(table)?;
        self.settings_of_prefix(&prefix).await
    }

    /// Creates the bucket if this account does not have it yet.
    pub async fn ensure_bucket(&self) -> Result<()> {
        let bucket = &self.inner.bucket;
        let span = tracing::info_span!("ensure_bucket", bucket = %bucket, requests = Empty);
        traced(&span, self.inner.backend.create_bucket(bucket)).await
    }

    /// Creates the bucket if needed, then applies `spec`'s settings: public
    /// access blocked, default encryption, a lifecycle rule aborting incomplete
    /// multipart uploads (and expiring noncurrent versions) under the prefix.
    /// Idempotent. `spec.name` must be this store's bucket.
    pub async fn ensure_bucket_with(&self, spec: &crate::backend::BucketSpec) -> Result<()> {
        if spec.name != self.inner.bucket {
            return Err(Error::invalid(format!(
                "bucket spec names {:?}, but this store's bucket is {:?}",
                spec.name, self.inner.bucket
            )));
        }
        let span = tracing::info_span!("ensure_bucket_with", bucket = %spec.name, requests = Empty);
        traced(&span, async {
            self.ensure_bucket().await?;
            self.inner.backend.configure_bucket(spec).await
        })
        .await
    }

    /// The S3 key of a large value of the item with `key` whose stored bytes
    /// (compressed, for an attribute with `compress`) have the MD5 `md5_hex`.
    pub fn object_key<M: Model>(&self, key: &Key<M>, attr: &str, md5_hex: &str) -> Result<String> {
        let index = M::SCHEMA.require_large(attr)?;
        let id = object_id(M::SCHEMA.large[index].compress, md5_hex);
        Ok(self.target(key)?.render_key(attr, &id))
    }

    pub(crate) fn target<M: Model>(&self, key: &Key<M>) -> Result<Target> {
        key.validate()?;
        let table = self.table_name::<M>().to_owned();
        Ok(Target {
            prefix: self.table_prefix(&table)?,
            bucket: self.inner.bucket.clone(),
            table,
            key: key.to_item(),
            hash_attr: M::SCHEMA.hash_key.name,
            hash: key.hash().as_str().to_owned(),
            range: key.range().map(|r| r.as_str().to_owned()),
            large: M::SCHEMA.large.iter().map(|a| a.name).collect(),
            plain: M::SCHEMA.attributes.to_vec(),
            describe: key.to_string(),
        })
    }

    fn pointer_to(&self, key: String) -> Pointer {
        Pointer {
            bucket: self.inner.bucket.clone(),
            key,
        }
    }

    /// Validates large values and computes their keys, before any write. Values
    /// are hashed concurrently, off the executor's worker threads.
    pub(crate) async fn plan<M: Model>(
        &self,
        target: &Target,
        values: &LargeValues<M>,
    ) -> Result<Vec<Upload>> {
        // Every check that needs no hash first, so bad input costs no hashing.
        for (index, blob) in &values.values {
            let attr = M::SCHEMA.large[*index].name;
            let Some(b) = blob else { continue };
            if b.len() > MAX_OBJECT_BYTES {
                return Err(Error::invalid(format!(
                    "large attribute `{attr}` is {} bytes, above S3's 5 TiB object limit ({MAX_OBJECT_BYTES} bytes)",
                    b.len()
                )));
            }
            // The key's length does not depend on the MD5's digits.
            let id = object_id(M::SCHEMA.large[*index].compress, &"0".repeat(32));
            let key_len = target.render_key(attr, &id).len();
            if key_len > MAX_KEY_BYTES {
                return Err(Error::invalid(format!(
                    "the S3 key for attribute `{attr}` of item {} would be {key_len} bytes, above S3's limit of {MAX_KEY_BYTES}; use shorter keys or a shorter prefix",
                    target.describe,
                )));
            }
        }
        let threshold = self.inner.options.multipart_threshold;
        let hashes = values.values.iter().map(|(index, blob)| async move {
            let inline_below = M::SCHEMA.large[*index].inline_below;
            match blob {
                None => Ok(None),
                Some(blob) if blob.len() < inline_below => {
                    let bytes = blob.to_bytes().await?;
                    if bytes.len() as u64 != blob.len() {
                        return Err(crate::blob::changed(
                            blob.path().unwrap_or_else(|| std::path::Path::new("?")),
                        ));
                    }
                    Ok(Some(Planned::Inline(bytes)))
                }
                Some(blob) => {
                    // Compressed first: the object holds, and its MD5 names,
                    // the compressed bytes.
                    let compressed;
                    let blob = match M::SCHEMA.large[*index].compress {
                        Some(encoding) => {
                            compressed = crate::compress::compress(blob, encoding).await?;
                            &compressed
                        }
                        None => blob,
                    };
                    // A file small enough for one PutObject is read now, and
                    // hashed from the very bytes that will be sent.
                    let blob = match blob.path() {
                        Some(_) if blob.len() <= threshold => {
                            let bytes = blob.to_bytes().await?;
                            if bytes.len() as u64 != blob.len() {
                                return Err(crate::blob::changed(
                                    blob.path().unwrap_or_else(|| std::path::Path::new("?")),
                                ));
                            }
                            Blob::from_bytes(bytes)
                        }
                        _ => blob.clone(),
                    };
                    let md5 = match blob.as_bytes() {
                        Some(b) => md5_of(b).await,
                        None => md5_of_blob(&blob).await?,
                    };
                    Ok(Some(Planned::Object(md5, blob)))
                }
            }
        });
        let hashed = join_all(hashes).await;
        let mut uploads = Vec::with_capacity(values.values.len());
        for ((index, _), hashed) in values.values.iter().zip(hashed) {
            let attr = M::SCHEMA.large[*index].name;
            let encoding = M::SCHEMA.large[*index].compress;
            let (object, inline) = match hashed? {
                None => (None, None),
                Some(Planned::Inline(bytes)) => (None, Some(bytes)),
                Some(Planned::Object(md5, blob)) => {
                    let id = object_id(encoding, &md5.hex);
                    (Some((target.render_key(attr, &id), md5, blob)), None)
                }
            };
            uploads.push(Upload {
                index: *index,
                attr,
                target: object,
                inline,
                encoding,
            });
        }
        uploads.sort_by_key(|u| u.index);
        Ok(uploads)
    }

    /// The object writes of planned uploads.
    pub(crate) fn requests<M: Model>(&self, target: &Target, uploads: &[Upload]) -> Vec<ObjectPut> {
        let mut metadata = HashMap::new();
        metadata.insert("pk".to_owned(), escape(&target.hash));
        if let Some(r) = &target.range {
            metadata.insert("sk".to_owned(), escape(r));
        }
        metadata.insert("updated_at".to_owned(), now_iso8601());
        uploads
            .iter()
            .filter_map(|u| {
                let (object_key, md5, body) = u.target.as_ref()?;
                let mut metadata = metadata.clone();
                metadata.insert("attr".to_owned(), escape(u.attr));
                Some(ObjectPut {
                    bucket: self.inner.bucket.clone(),
                    key: object_key.clone(),
                    body: body.clone(),
                    md5: md5.clone(),
                    content_type: M::SCHEMA.large[u.index].content_type.to_owned(),
                    metadata,
                })
            })
            .collect()
    }

    /// The objects planned uploads write, one per upload with an object, in
    /// the order of [`Store::requests`].
    pub(crate) fn objects_of(&self, target: &Target, uploads: &[Upload]) -> Vec<ObjectRef> {
        uploads
            .iter()
            .filter_map(|u| {
                let (_, md5, _) = u.target.as_ref()?;
                Some(target.object(u.attr, &object_id(u.encoding, &md5.hex)))
            })
            .collect()
    }

    /// The staged result of planned uploads, `created` telling, per object,
    /// whether this call created it.
    pub(crate) fn staged_of<M: Model>(
        &self,
        target: &Target,
        uploads: &[Upload],
        created: &[bool],
    ) -> Staged<M> {
        let mut created = created.iter();
        let attrs = uploads
            .iter()
            .map(|u| StagedAttr {
                attr: u.attr,
                inline: u.inline.clone(),
                object: u.target.as_ref().map(|(key, md5, body)| StagedObject {
                    pointer: self.pointer_to(key.clone()),
                    encoding: u.encoding,
                    md5: md5.hex.clone(),
                    size: body.len(),
                    created: created.next().copied().unwrap_or(false),
                }),
            })
            .collect();
        Staged::new(target.clone(), attrs)
    }

    /// The protocol settings of `target`'s table: the ones recorded with its
    /// objects (recording this store's if there are none yet), read once per
    /// store and table.
    pub(crate) async fn settings_for(&self, target: &Target) -> Result<Settings> {
        self.settings_of_prefix(&target.prefix).await
    }

    pub(crate) async fn settings_of_prefix(&self, prefix: &str) -> Result<Settings> {
        if let Some(s) = self
            .inner
            .settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(prefix)
        {
            return Ok(*s);
        }
        let proposed = self.inner.options.settings();
        let recorded = crate::protocol::agreed::load_or_record(
            self.inner.backend.as_ref(),
            &self.inner.bucket,
            prefix,
            proposed,
        )
        .await?;
        recorded.check()?;
        self.inner
            .settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(prefix.to_owned(), recorded);
        Ok(recorded)
    }

    /// A write of one item through the protocol (the commit machine):
    /// `uploads` sent as `order` says, then the write `plan` wants on the
    /// state read, deciding again on every state a failed condition returns;
    /// then the release of what it replaced in `changed` attributes.
    pub(crate) async fn write<M: Model>(
        &self,
        target: &Target,
        uploads: Vec<Upload>,
        order: UploadOrder,
        changed: Vec<&'static str>,
        plan: impl FnMut(&State) -> Plan + Send,
    ) -> Result<Written<M>> {
        self.write_with_token(target, uploads, order, changed, new_token(), plan)
            .await
    }

    /// [`Store::write`] whose write carries `token` (in the item's history once
    /// it landed).
    pub(crate) async fn write_with_token<M: Model>(
        &self,
        target: &Target,
        uploads: Vec<Upload>,
        order: UploadOrder,
        changed: Vec<&'static str>,
        token: String,
        mut plan: impl FnMut(&State) -> Plan + Send,
    ) -> Result<Written<M>> {
        let settings = self.settings_for(target).await?;
        let puts = Puts {
            store: self,
            puts: self.requests::<M>(target, &uploads),
        };
        let options = &self.inner.options;
        let config = CommitConfig {
            target: Arc::new(target.clone()),
            objects: self.objects_of(target, &uploads),
            order,
            changed,
            clean_up_when_failed: options.clean_up_when_failed,
            clean_up_when_succeeded: options.clean_up_when_succeeded,
            defer_cleanup: options.defer_cleanup,
            settings,
        };
        let machine = CommitMachine::new(config, token, Tokens::random());
        let out = engine::drive(self, &puts, machine, |m, input, now| {
            m.step(input, now, &mut plan)
        })
        .await;
        warn_leftovers(&self.inner.bucket, &out.cleanup);
        let committed = out.result?;
        Ok(Written {
            staged: self.staged_of(target, &uploads, &out.created),
            committed,
            cleanup: out.cleanup,
        })
    }

    /// Checks a pointer before it is followed: in this bucket, under the
    /// table's prefix, ending in an MD5 (and a known encoding), and naming
    /// the very item (`target`) and attribute (`attr`) that hold it. Any other
    /// is [`Error::BadPointer`]: never read from, never deleted. (An item that
    /// points to another item's object would otherwise read a value its owner
    /// may delete at any time.)
    pub(crate) fn check_pointer(
        &self,
        target: &Target,
        attr: &str,
        uri: &str,
    ) -> Result<(Pointer, String)> {
        let bad = |reason: String| Error::BadPointer {
            attr: attr.to_owned(),
            value: uri.to_owned(),
            reason,
        };
        let prefix = &target.prefix;
        let pointer = Pointer::parse(uri).map_err(|e| bad(e.to_string()))?;
        if pointer.bucket != self.inner.bucket {
            return Err(bad(format!(
                "it names bucket {:?}, not {:?}",
                pointer.bucket, self.inner.bucket
            )));
        }
        if !prefix.is_empty() && !pointer.key.starts_with(&format!("{prefix}/")) {
            return Err(bad(format!("it is outside the table's prefix {prefix:?}")));
        }
        let md5 = pointer
            .key
            .rsplit('/')
            .next()
            .and_then(|s| s.strip_prefix("md5="))
            .filter(|m| m.len() == 32 && m.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| bad("its key does not end in md5=<32 hex digits>".to_owned()))?
            .to_ascii_lowercase();
        let mut segments = pointer.key.rsplit('/');
        if let Some(name) = segments.nth(1).and_then(|s| s.strip_prefix("enc=")) {
            if Encoding::from_name(name).is_none() {
                return Err(bad(format!("its key names an unknown encoding {name:?}")));
            }
        }
        if target
            .owned(attr, &AttributeValue::S(uri.to_owned()))
            .is_none()
        {
            let named = crate::layout::ObjectKey::parse(prefix, &pointer.key)
                .map(|k| {
                    let range = k.range.map(|r| format!(", sk={r:?}")).unwrap_or_default();
                    format!("pk={:?}{range}, attr={:?}", k.hash, k.attr)
                })
                .unwrap_or_else(|| "something outside vhs's key layout".to_owned());
            return Err(bad(format!(
                "its key names {named}, not this item ({}) and attribute {attr:?}: that object is not this item's to read",
                target.describe
            )));
        }
        Ok((pointer, md5))
    }

    pub(crate) async fn fetch(
        &self,
        attr: &str,
        (pointer, md5): &(Pointer, String),
    ) -> Result<Bytes> {
        let object = self
            .read_object(&pointer.bucket, &pointer.key)
            .await?
            .ok_or_else(|| dangling(attr, pointer))?;
        checked(attr, pointer, md5, object.body).await
    }
}

/// The error for a pointer whose object does not exist.
pub(crate) fn dangling(attr: &str, pointer: &Pointer) -> Error {
    Error::DanglingPointer {
        attr: attr.to_owned(),
        uri: pointer.uri(),
    }
}

/// `body` if its MD5 is the one its key names, else [`Error::Integrity`].
pub(crate) async fn checked(
    attr: &str,
    pointer: &Pointer,
    md5: &str,
    body: Bytes,
) -> Result<Bytes> {
    let actual = md5_of(&body).await.hex;
    if actual != md5 {
        return Err(Error::Integrity {
            attr: attr.to_owned(),
            uri: pointer.uri(),
            expected: md5.to_owned(),
            actual,
        });
    }
    Ok(body)
}

/// The encoding an object key records (its `enc=` segment, just before `md5=`),
/// for a key [`Store::check_pointer`] accepted.
pub(crate) fn encoding_in_key(key: &str) -> Option<Encoding> {
    let name = key.rsplit('/').nth(1)?.strip_prefix("enc=")?;
    Encoding::from_name(name)
}
