//! Versioned stores: every write carries a version, and two writers can never
//! reorder or lose each other's updates.
//!
//! Both stores keep any [`Model`] as the value of an envelope item:
//!
//! | attribute | holds |
//! |---|---|
//! | `id` (S) | the id: hash key of both tables |
//! | `version` (N) | the version: the range key of the multi-version table |
//! | `value` (M) | the model's ordinary attributes |
//! | one per `#[large]` attribute (S) | the `s3://` pointer |
//!
//! Objects follow the core layout with `pk` = id, and in the multi-version store
//! `sk` = version, so every version has its own objects.

use std::fmt;
use std::marker::PhantomData;

use aws_sdk_dynamodb::types::AttributeValue;
use futures_util::stream::{self, Stream};
use tracing::field::Empty;
use tracing::Span;

use crate::backend::{Query, TableSpec};
use crate::changes::LargeValues;
use crate::condition::ItemUpdate;
use crate::error::{Error, Result};
use crate::maintenance::{
    display, GcOptions, GcReport, Progress, TableRef, VerifyOptions, VerifyReport,
};
use crate::model::{Item, KeyKind, Model};
use crate::protocol::decide::Plan;
use crate::protocol::item::{State, Target, PLACEHOLDER};
use crate::retry::RetryPolicy;
use crate::store::{
    new_token, next_version, number_attr, record_values, traced, Bodies, Cleanup, Store, Stored,
    UploadOrder, READ_RACE_LOST, READ_RACE_RETRIES,
};

const ID: &str = "id";
const VERSION: &str = "version";
const VALUE: &str = "value";

/// The span of the versioned store operation `$name` on the value `$id` of
/// `$core`'s table. `version`, `attrs`, `bytes`, `attempts`, `requests` and
/// `cleanup` are recorded as they become known.
macro_rules! span {
    ($name:literal, $core:expr, $id:expr) => {
        tracing::info_span!(
            $name,
            store = if $core.multi { "multi" } else { "single" },
            table = %$core.table,
            id = $id,
            version = Empty,
            attrs = Empty,
            bytes = Empty,
            attempts = Empty,
            requests = Empty,
            cleanup = Empty,
        )
    };
}

/// Records what a write did in its span.
fn record_written(span: &Span, written: &Result<Written>) {
    if let Ok(w) = written {
        span.record("version", w.version);
        span.record("attempts", w.attempts);
        w.cleanup.record_in(span);
    }
}

/// Records the version read in its span.
fn record_read<M>(span: &Span, read: &Result<Versioned<M>>) {
    if let Ok(v) = read {
        span.record("version", v.version);
    }
}

/// The version of an envelope item.
fn version_of(item: &Item) -> Result<u64> {
    number_attr(item, VERSION).ok_or_else(|| Error::Codec {
        direction: "decode",
        attr: VERSION.to_owned(),
        source: "missing or not a number".into(),
    })
}

/// A value with the version it was read at.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<M> {
    /// The version.
    pub version: u64,
    /// The value, large fields loaded.
    pub value: M,
}

/// What a versioned write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The version written.
    pub version: u64,
    /// Attempts it took (1 without contention).
    pub attempts: u32,
    /// Objects of the replaced version removed, and the ones left for collection.
    pub cleanup: Cleanup,
}

/// Newest first or oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Highest version first.
    NewestFirst,
    /// Lowest version first.
    OldestFirst,
}

/// What [`MultiVersionStore::prune`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    /// The versions deleted, newest first.
    pub versions: Vec<u64>,
    /// Their objects deleted, and the ones left for collection.
    pub cleanup: Cleanup,
}

/// The parts both stores share.
struct Core<M> {
    store: Store,
    table: String,
    prefix: String,
    start: u64,
    retry: RetryPolicy,
    multi: bool,
    _model: PhantomData<fn() -> M>,
}

impl<M> fmt::Debug for Core<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VersionedStore")
            .field("table", &self.table)
            .field("prefix", &self.prefix)
            .field("start", &self.start)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// How a put treats what is stored.
#[derive(Clone, Copy)]
enum Expect {
    /// `put(id, version)`: any lower version (single) or no such version (multi);
    /// an identical value at the same version is an idempotent success.
    Lower,
    /// `put_latest` / `update`: the stored latest must still be this one.
    Exactly(Option<u64>),
}

/// An envelope without vhs's bookkeeping, for comparing values.
/// What a stored version holds, bookkeeping left out, and the time of the
/// write (`updated_at`, an attribute of the value) too: a put of the same
/// value later is the same content.
fn content(item: &Item, updated_at: Option<&str>) -> Item {
    item.iter()
        .filter(|(k, _)| !k.starts_with("vhs:"))
        .map(|(k, v)| match (k.as_str(), v, updated_at) {
            (VALUE, AttributeValue::M(value), Some(attr)) => {
                let mut value = value.clone();
                value.remove(attr);
                (k.clone(), AttributeValue::M(value))
            }
            _ => (k.clone(), v.clone()),
        })
        .collect()
}

impl<M: Model> Core<M> {
    fn new(store: &Store, table: String, multi: bool) -> Result<Self> {
        if let Some(index) = M::SCHEMA.indexes.first() {
            return Err(Error::invalid(format!(
                "model of table `{}` declares secondary index `{}`, which a versioned store cannot serve: it keeps each value in one `value` attribute, keyed by `id` and `version`, so no index key is a top-level attribute; store this model with `Store` itself",
                M::SCHEMA.table,
                index.name
            )));
        }
        if let Some(a) = M::SCHEMA
            .large
            .iter()
            .find(|a| [ID, VERSION, VALUE].contains(&a.name))
        {
            return Err(Error::invalid(format!(
                "large attribute `{}` clashes with the versioned store's attributes `id`, `version`, `value`; rename it with #[vhs(rename = \"...\")]",
                a.name
            )));
        }
        let prefix = store.table_prefix(&table)?;
        Ok(Core {
            store: store.clone(),
            table,
            prefix,
            start: 0,
            retry: RetryPolicy::default(),
            multi,
            _model: PhantomData,
        })
    }

    /// The DynamoDB key of `id` (at `version` in the multi-version store).
    fn key(&self, id: &str, version: u64) -> Item {
        let mut key = Item::new();
        key.insert(ID.to_owned(), AttributeValue::S(id.to_owned()));
        if self.multi {
            key.insert(VERSION.to_owned(), AttributeValue::N(version.to_string()));
        }
        key
    }

    fn target(&self, id: &str, version: u64) -> Result<Target> {
        if id.is_empty() {
            return Err(Error::invalid(
                "the id is empty; DynamoDB key strings must be non-empty",
            ));
        }
        Ok(target_of(
            &self.table,
            self.store.bucket(),
            &self.prefix,
            self.multi,
            M::SCHEMA.large.iter().map(|a| a.name).collect(),
            id,
            self.multi.then_some(version),
        ))
    }

    async fn ensure_table(&self) -> Result<()> {
        let spec = TableSpec {
            name: self.table.clone(),
            hash_key: (ID.to_owned(), KeyKind::String),
            range_key: self.multi.then(|| (VERSION.to_owned(), KeyKind::Number)),
            indexes: Vec::new(),
            streams: false,
            point_in_time_recovery: false,
        };
        self.store.backend().create_table(&spec).await
    }

    fn table_ref(&self) -> TableRef {
        let (multi, table, prefix) = (self.multi, self.table.clone(), self.prefix.clone());
        let bucket = self.store.bucket().to_owned();
        let large: Vec<&'static str> = M::SCHEMA.large.iter().map(|a| a.name).collect();
        TableRef {
            table: self.table.clone(),
            prefix: self.prefix.clone(),
            large: large.clone(),
            keys: (ID, self.multi.then_some(VERSION)),
            target_of: Box::new(move |k| {
                let version = match (multi, &k.range) {
                    (true, Some(v)) => Some(v.parse::<u64>().ok()?),
                    (false, None) => None,
                    _ => return None,
                };
                Some(target_of(
                    &table,
                    &bucket,
                    &prefix,
                    multi,
                    large.clone(),
                    &k.hash,
                    version,
                ))
            }),
            describe: Box::new(move |item| {
                let id = display(item.get(ID));
                if multi {
                    format!("id={id}, version={}", display(item.get(VERSION)))
                } else {
                    format!("id={id}")
                }
            }),
            discovered: None,
        }
    }

    fn describe(&self, id: &str) -> String {
        format!("id={id:?}")
    }

    /// The envelope item of `value` at `version`, without pointers.
    fn record(&self, target: &Target, version: u64, value: &M) -> Result<Item> {
        let mut record = target.key.clone();
        record.insert(VERSION.to_owned(), AttributeValue::N(version.to_string()));
        let mut value = value.to_item()?;
        crate::model::stamp_updated_at::<M>(&mut value);
        record.insert(VALUE.to_owned(), AttributeValue::M(value));
        Ok(record)
    }

    /// Splits an envelope into its version and its stored value.
    fn open(&self, mut item: Item) -> Result<(u64, Stored<M>)> {
        let version = version_of(&item)?;
        let mut inner = match item.remove(VALUE) {
            Some(AttributeValue::M(m)) => m,
            None => Item::new(),
            Some(_) => {
                return Err(Error::Codec {
                    direction: "decode",
                    attr: VALUE.to_owned(),
                    source: "not a map".into(),
                })
            }
        };
        for a in M::SCHEMA.large {
            if let Some(p) = item.remove(a.name) {
                inner.insert(a.name.to_owned(), p);
            }
        }
        Ok((version, Stored::from_item(inner)?))
    }

    /// Loads every large value of an envelope.
    async fn read(&self, item: Item, bodies: Option<&Bodies>) -> Result<Versioned<M>> {
        let id = match item.get(ID) {
            Some(AttributeValue::S(id)) => id.clone(),
            _ => {
                return Err(Error::Codec {
                    direction: "decode",
                    attr: ID.to_owned(),
                    source: "missing or not a string".into(),
                })
            }
        };
        let (version, mut stored) = self.open(item)?;
        let target = self.target(&id, version)?;
        self.store
            .load_all_with(&target, &mut stored, bodies)
            .await?;
        Ok(Versioned {
            version,
            value: stored.model,
        })
    }

    /// The latest version with its large values. A newer version may replace the
    /// one read and delete its objects meanwhile: then the read starts over. A
    /// missing object of a version that is still the latest is a dangling pointer.
    /// Also returns the envelope as read.
    /// `bodies`: objects fetched by earlier attempts of the same call.
    async fn read_latest(
        &self,
        id: &str,
        bodies: Option<&Bodies>,
    ) -> Result<Option<(Versioned<M>, Item)>> {
        let mut item = self.latest_item(id).await?;
        for _ in 0..=READ_RACE_RETRIES {
            let Some(current) = item else {
                return Ok(None);
            };
            let version = number_attr(&current, VERSION);
            match self
                .read(current.clone(), bodies)
                .await
                .map(|v| (v, current))
            {
                Err(e @ Error::DanglingPointer { .. }) => {
                    item = self.latest_item(id).await?;
                    if item.as_ref().and_then(|i| number_attr(i, VERSION)) == version {
                        return Err(e);
                    }
                }
                other => return other.map(Some),
            }
        }
        // Lost every race to a newer version: retryable, never a dangling pointer.
        Err(Error::Busy {
            table: self.table.clone(),
            key: self.describe(id),
            reason: READ_RACE_LOST.to_owned(),
        })
    }

    /// The newest live envelope of `id`, if any (consistent); placeholders left by
    /// deletes are skipped.
    async fn latest_item(&self, id: &str) -> Result<Option<Item>> {
        // Validates the id for both stores.
        let target = self.target(id, 0)?;
        if !self.multi {
            let item = self
                .store
                .backend()
                .get_item(&self.table, &target.key, true)
                .await?;
            return Ok(State::of(item).live().cloned());
        }
        let mut start = None;
        loop {
            let page = self
                .store
                .backend()
                .query(&Query {
                    descending: true,
                    limit: Some(8),
                    start,
                    consistent: true,
                    ..Query::new(&self.table, ID, AttributeValue::S(id.to_owned()))
                })
                .await?;
            if let Some(live) = page
                .items
                .into_iter()
                .find(|i| !i.contains_key(PLACEHOLDER))
            {
                return Ok(Some(live));
            }
            match page.last_key {
                Some(k) => start = Some(k),
                None => return Ok(None),
            }
        }
    }

    async fn get_latest(&self, id: &str) -> Result<Versioned<M>> {
        match self.read_latest(id, None).await? {
            Some((latest, _)) => Ok(latest),
            None => Err(Error::NoVersionExists {
                table: self.table.clone(),
                key: self.describe(id),
            }),
        }
    }

    /// Whether a write with `token` of `version` of `id` landed: its token is
    /// in the history of the item it wrote (the latest envelope in the
    /// single-version store, that version's in the multi-version one), whatever
    /// happened to the item since (a later version, a delete: the history
    /// survives both).
    async fn landed(&self, id: &str, version: u64, token: &str) -> Result<bool> {
        let item = self
            .store
            .backend()
            .get_item(&self.table, &self.key(id, version), true)
            .await?;
        Ok(State::of(item).wrote(token))
    }

    /// One put attempt of `value` at `version` under `expect`, with `token`;
    /// `known`: the envelope the caller just read (single-version), if it did.
    async fn put_once(
        &self,
        id: &str,
        version: u64,
        value: &M,
        expect: Expect,
        token: &str,
        known: Option<Option<Item>>,
    ) -> Result<Written> {
        let target = self.target(id, version)?;
        let mut record = self.record(&target, version, value)?;
        let values = LargeValues::of(value)?;
        record_values(&Span::current(), [&values]);
        let conflict = |found: Option<u64>| match expect {
            Expect::Lower => match found {
                Some(f) if f > version => Error::HigherVersionExists {
                    table: self.table.clone(),
                    key: self.describe(id),
                    version,
                    found: f,
                },
                _ => Error::VersionAlreadyExists {
                    table: self.table.clone(),
                    key: self.describe(id),
                    version,
                },
            },
            Expect::Exactly(expected) => Error::VersionConflict {
                table: self.table.clone(),
                key: self.describe(id),
                expected: expected.unwrap_or(self.start),
                found,
            },
        };
        let store = &self.store;
        let uploads = store.prepare_record(&target, &values, &mut record).await?;
        let order = match known {
            // Every version is its own item: a create.
            _ if self.multi => UploadOrder::Unread,
            // Values the live item read already points to are not sent again
            // (an unchanged attribute of a read-modify-write). Never a
            // placeholder's pointers: those objects are being deleted.
            Some(item) => UploadOrder::AfterRead(State::of(item)),
            // The uploads and the read at once; created objects come into
            // existence after the read.
            None => UploadOrder::WhileReading,
        };
        let large: Vec<&'static str> = M::SCHEMA.large.iter().map(|a| a.name).collect();
        let ours = content(&record, M::SCHEMA.updated_at);
        let written = store
            .write_with_token::<M>(
                &target,
                uploads,
                order,
                large.clone(),
                token.to_owned(),
                |state| {
                    let Some(stored) = state.live() else {
                        return match expect {
                            Expect::Exactly(Some(_)) if !self.multi => Plan::Fail(conflict(None)),
                            _ => Plan::Put(record.clone()),
                        };
                    };
                    let found = number_attr(stored, VERSION);
                    if matches!(expect, Expect::Lower)
                        && found == Some(version)
                        && content(stored, M::SCHEMA.updated_at) == ours
                    {
                        // `put` of the identical value at this version: idempotent
                        // success. (A read-modify-write that computed the same value as
                        // a concurrent one did not write it: that is a conflict.)
                        return Plan::Done;
                    }
                    let replace = match expect {
                        _ if self.multi => false,
                        Expect::Lower => found.is_some_and(|f| f < version),
                        Expect::Exactly(expected) => expected.is_some() && found == expected,
                    };
                    if !replace {
                        return Plan::Fail(conflict(if self.multi {
                            Some(version)
                        } else {
                            found
                        }));
                    }
                    let mut update = ItemUpdate::default();
                    for (name, v) in &record {
                        if name != ID {
                            update.set.push((name.clone(), v.clone()));
                        }
                    }
                    for attr in &large {
                        if !record.contains_key(*attr) {
                            update.remove.push((*attr).to_owned());
                        }
                    }
                    Plan::Update(update, None)
                },
            )
            .await?;
        Ok(Written {
            version,
            attempts: 1,
            cleanup: written.cleanup,
        })
    }

    /// One read-modify-write attempt: reads the latest, applies `f` (or `init` when
    /// there is none and `init` is given), writes latest + 1. `tried` holds the
    /// (version, token) of earlier attempts: one that landed is the result, and
    /// `f` is not applied again.
    async fn update_once<F, I>(
        &self,
        id: &str,
        f: &mut F,
        init: Option<&mut I>,
        tried: &mut Vec<(u64, String)>,
        bodies: &Bodies,
    ) -> Result<Written>
    where
        F: FnMut(M) -> M + Send,
        I: FnMut() -> M + Send,
    {
        if let Some(done) = self.earlier_attempt(id, tried).await? {
            return Ok(done);
        }
        let (expected, next, value, known) = match self.read_latest(id, Some(bodies)).await? {
            Some((current, item)) => {
                let next = next_version(current.version)?;
                (Some(current.version), next, f(current.value), Some(item))
            }
            None => match init {
                Some(init) => (None, self.start, f(init()), None),
                None => {
                    return Err(Error::NoVersionExists {
                        table: self.table.clone(),
                        key: self.describe(id),
                    })
                }
            },
        };
        let token = new_token();
        tried.push((next, token.clone()));
        self.put_once(
            id,
            next,
            &value,
            Expect::Exactly(expected),
            &token,
            known.map(Some),
        )
        .await
    }

    /// The earlier attempt that landed, if one did.
    async fn earlier_attempt(&self, id: &str, tried: &[(u64, String)]) -> Result<Option<Written>> {
        for (version, token) in tried {
            if self.landed(id, *version, token).await? {
                return Ok(Some(Written {
                    version: *version,
                    attempts: 1,
                    cleanup: Cleanup::default(),
                }));
            }
        }
        Ok(None)
    }

    async fn put_latest_once(
        &self,
        id: &str,
        value: &M,
        tried: &mut Vec<(u64, String)>,
    ) -> Result<Written> {
        if let Some(done) = self.earlier_attempt(id, tried).await? {
            return Ok(done);
        }
        let item = self.latest_item(id).await?;
        let latest = item.as_ref().map(version_of).transpose()?;
        let next = match latest {
            Some(v) => next_version(v)?,
            None => self.start,
        };
        let token = new_token();
        tried.push((next, token.clone()));
        self.put_once(id, next, value, Expect::Exactly(latest), &token, Some(item))
            .await
    }

    /// `update_once` until it succeeds, with the retry policy.
    async fn update<F, I>(&self, id: &str, f: &mut F, mut init: Option<&mut I>) -> Result<Written>
    where
        F: FnMut(M) -> M + Send,
        I: FnMut() -> M + Send,
    {
        let mut tried = Vec::new();
        let bodies = Bodies::default();
        let mut attempt = 1;
        loop {
            match self
                .update_once(id, f, init.as_deref_mut(), &mut tried, &bodies)
                .await
            {
                Ok(mut written) => {
                    written.attempts = attempt;
                    return Ok(written);
                }
                Err(e) if self.retry.again(&e, attempt).await => attempt += 1,
                Err(e) => return Err(e),
            }
        }
    }

    async fn put_latest(&self, id: &str, value: &M) -> Result<Written> {
        let mut tried = Vec::new();
        let mut attempt = 1;
        loop {
            match self.put_latest_once(id, value, &mut tried).await {
                Ok(mut written) => {
                    written.attempts = attempt;
                    return Ok(written);
                }
                Err(e) if self.retry.again(&e, attempt).await => attempt += 1,
                Err(e) => return Err(e),
            }
        }
    }

    async fn delete_version(&self, id: &str, version: u64) -> Result<Cleanup> {
        let target = self.target(id, version)?;
        match self
            .store
            .delete_record(&target, None, Some((VERSION, version)))
            .await
        {
            Ok((_, cleanup)) => Ok(cleanup),
            Err(Error::ConditionFailed { .. })
            | Err(Error::NotFound { .. })
            | Err(Error::VersionConflict { .. }) => Err(Error::NotFound {
                table: self.table.clone(),
                key: format!("id={id:?}, version={version}"),
            }),
            Err(e) => Err(e),
        }
    }
}

/// The target of `id` (at `version` in a multi-version table).
fn target_of(
    table: &str,
    bucket: &str,
    prefix: &str,
    multi: bool,
    large: Vec<&'static str>,
    id: &str,
    version: Option<u64>,
) -> Target {
    let mut key = Item::new();
    key.insert(ID.to_owned(), AttributeValue::S(id.to_owned()));
    let (range, describe) = match version.filter(|_| multi) {
        Some(v) => {
            key.insert(VERSION.to_owned(), AttributeValue::N(v.to_string()));
            (Some(v.to_string()), format!("id={id:?}, version={v}"))
        }
        None => (None, format!("id={id:?}")),
    };
    Target {
        table: table.to_owned(),
        bucket: bucket.to_owned(),
        prefix: prefix.to_owned(),
        key,
        hash_attr: ID,
        hash: id.to_owned(),
        range,
        large,
        plain: if multi {
            vec![VALUE]
        } else {
            vec![VERSION, VALUE]
        },
        describe,
    }
}

macro_rules! shared_api {
    () => {
        /// Versions start here (default 0).
        pub fn start_version(mut self, version: u64) -> Self {
            self.core.start = version;
            self
        }

        /// The retry policy of `update`, `upsert` and `put_latest`.
        pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
            self.core.retry = policy;
            self
        }

        /// The table name.
        pub fn table(&self) -> &str {
            &self.core.table
        }

        /// Deletes orphaned objects of this table's items: see
        /// [`Store::gc`](crate::Store::gc).
        pub async fn gc(
            &self,
            options: &GcOptions,
            progress: impl Fn(Progress) + Send + Sync,
        ) -> Result<GcReport> {
            let span = tracing::info_span!(
                "versioned_gc",
                table = %self.core.table,
                requests = Empty,
            );
            let table = self.core.table_ref();
            let gc = self.core.store.gc_table(&table, options, &progress);
            traced(&span, gc).await
        }

        /// Checks the invariants for this table: see
        /// [`Store::verify`](crate::Store::verify).
        pub async fn verify(
            &self,
            options: &VerifyOptions,
            progress: impl Fn(Progress) + Send + Sync,
        ) -> Result<VerifyReport> {
            let span = tracing::info_span!(
                "versioned_verify",
                table = %self.core.table,
                requests = Empty,
            );
            let table = self.core.table_ref();
            let verify = self.core.store.verify_table(&table, options, &progress);
            traced(&span, verify).await
        }

        /// Creates the table with the right key schema if it does not exist.
        pub async fn ensure_table(&self) -> Result<()> {
            let span = tracing::info_span!(
                "versioned_ensure_table",
                table = %self.core.table,
                requests = Empty,
            );
            traced(&span, self.core.ensure_table()).await
        }

        /// The newest version of `id` ([`Error::NoVersionExists`] if there is none; a
        /// missing object is [`Error::DanglingPointer`]).
        pub async fn get_latest(&self, id: &str) -> Result<Versioned<M>> {
            let span = span!("versioned_get_latest", self.core, id);
            let read = traced(&span, self.core.get_latest(id)).await;
            record_read(&span, &read);
            read
        }

        /// Writes `value` at the version after the stored latest (or at the start
        /// version), retrying with the retry policy if another writer takes that
        /// version first.
        pub async fn put_latest(&self, id: &str, value: &M) -> Result<Written> {
            let span = span!("versioned_put_latest", self.core, id);
            let written = traced(&span, self.core.put_latest(id, value)).await;
            record_written(&span, &written);
            written
        }

        /// Reads the latest, applies `f`, writes latest + 1, and repeats the whole
        /// read-modify-write (with the retry policy) when another writer got there
        /// first: no update is ever lost. [`Error::NoVersionExists`] if there is none.
        pub async fn update<F>(&self, id: &str, mut f: F) -> Result<Written>
        where
            F: FnMut(M) -> M + Send,
        {
            let span = span!("versioned_update", self.core, id);
            let written = traced(&span, self.core.update(id, &mut f, None::<&mut fn() -> M>)).await;
            record_written(&span, &written);
            written
        }

        /// Like [`update`](Self::update), but starts from `init()` at the start
        /// version when `id` has no version yet.
        pub async fn upsert<I, F>(&self, id: &str, mut init: I, mut f: F) -> Result<Written>
        where
            I: FnMut() -> M + Send,
            F: FnMut(M) -> M + Send,
        {
            let span = span!("versioned_upsert", self.core, id);
            let written = traced(&span, self.core.update(id, &mut f, Some(&mut init))).await;
            record_written(&span, &written);
            written
        }
    };
}

/// A table keyed by `id` that keeps only the newest version of each value.
pub struct SingleVersionStore<M> {
    core: Core<M>,
}

impl<M> fmt::Debug for SingleVersionStore<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.fmt(f)
    }
}

impl<M: Model> SingleVersionStore<M> {
    /// A single-version store in `table` (hash key `id` (S)), with `store`'s
    /// backend, bucket, prefix and options.
    pub fn new(store: &Store, table: impl Into<String>) -> Result<Self> {
        Ok(SingleVersionStore {
            core: Core::new(store, table.into(), false)?,
        })
    }

    shared_api!();

    /// Writes `value` at `version` if no version is stored or the stored one is
    /// lower; [`Error::HigherVersionExists`] or [`Error::VersionAlreadyExists`]
    /// otherwise. Re-putting the identical value at the same version succeeds.
    pub async fn put(&self, id: &str, version: u64, value: &M) -> Result<Written> {
        let span = span!("versioned_put", self.core, id);
        span.record("version", version);
        let token = new_token();
        let written = self
            .core
            .put_once(id, version, value, Expect::Lower, &token, None);
        let written = traced(&span, written).await;
        record_written(&span, &written);
        written
    }

    /// Deletes the value if its stored version is `version` (DynamoDB first, then
    /// its objects, through the cleanup guard); [`Error::NotFound`] otherwise.
    pub async fn delete_version(&self, id: &str, version: u64) -> Result<Cleanup> {
        let span = span!("versioned_delete_version", self.core, id);
        span.record("version", version);
        let cleanup = traced(&span, self.core.delete_version(id, version)).await;
        if let Ok(cleanup) = &cleanup {
            cleanup.record_in(&span);
        }
        cleanup
    }
}

/// A table keyed by `id` and `version` that keeps every version of each value.
pub struct MultiVersionStore<M> {
    core: Core<M>,
}

impl<M> fmt::Debug for MultiVersionStore<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.fmt(f)
    }
}

impl<M: Model> MultiVersionStore<M> {
    /// A multi-version store in `table` (hash key `id` (S), range key `version`
    /// (N)), with `store`'s backend, bucket, prefix and options.
    pub fn new(store: &Store, table: impl Into<String>) -> Result<Self> {
        Ok(MultiVersionStore {
            core: Core::new(store, table.into(), true)?,
        })
    }

    shared_api!();

    /// Writes `value` as `version`; never overwrites a version
    /// ([`Error::VersionAlreadyExists`], except for the identical value, which
    /// succeeds).
    pub async fn put(&self, id: &str, version: u64, value: &M) -> Result<Written> {
        let span = span!("versioned_put", self.core, id);
        span.record("version", version);
        let token = new_token();
        let written = self
            .core
            .put_once(id, version, value, Expect::Lower, &token, None);
        let written = traced(&span, written).await;
        record_written(&span, &written);
        written
    }

    /// One version ([`Error::NotFound`] if it does not exist).
    pub async fn get(&self, id: &str, version: u64) -> Result<Versioned<M>> {
        let span = span!("versioned_get", self.core, id);
        span.record("version", version);
        traced(&span, self.get_version(id, version)).await
    }

    async fn get_version(&self, id: &str, version: u64) -> Result<Versioned<M>> {
        let target = self.core.target(id, version)?;
        match self
            .core
            .store
            .backend()
            .get_item(&self.core.table, &target.key, true)
            .await?
        {
            Some(item) if !item.contains_key(PLACEHOLDER) => self.core.read(item, None).await,
            _ => Err(target.not_found()),
        }
    }

    /// Every version of `id`, as a stream read page by page (consistent reads).
    pub fn versions<'a>(
        &'a self,
        id: &'a str,
        order: Order,
    ) -> impl Stream<Item = Result<u64>> + Send + 'a {
        let pages = stream::try_unfold(Some(None), move |next: Option<Option<Item>>| async move {
            let Some(start) = next else {
                return Ok(None);
            };
            let span = span!("versioned_versions", self.core, id);
            let query = Query {
                descending: order == Order::NewestFirst,
                limit: Some(500),
                start,
                consistent: true,
                ..Query::new(&self.core.table, ID, AttributeValue::S(id.to_owned()))
            };
            let page = traced(&span, self.core.store.backend().query(&query)).await?;
            let versions: Vec<Result<u64>> = page
                .items
                .iter()
                .filter(|i| !i.contains_key(PLACEHOLDER))
                .map(version_of)
                .collect();
            let next = page.last_key.map(Some);
            Ok::<_, Error>(Some((stream::iter(versions), next)))
        });
        futures_util::TryStreamExt::try_flatten(pages)
    }

    /// Deletes one version (DynamoDB first, then its objects, through the cleanup
    /// guard); [`Error::NotFound`] if it does not exist.
    pub async fn delete_version(&self, id: &str, version: u64) -> Result<Cleanup> {
        let span = span!("versioned_delete_version", self.core, id);
        span.record("version", version);
        let cleanup = traced(&span, self.core.delete_version(id, version)).await;
        if let Ok(cleanup) = &cleanup {
            cleanup.record_in(&span);
        }
        cleanup
    }

    /// Deletes every version but the newest `keep_last`, oldest objects included.
    pub async fn prune(&self, id: &str, keep_last: usize) -> Result<Pruned> {
        let span = span!("versioned_prune", self.core, id);
        let pruned = traced(&span, self.prune_all(id, keep_last)).await;
        if let Ok(pruned) = &pruned {
            pruned.cleanup.record_in(&span);
        }
        pruned
    }

    async fn prune_all(&self, id: &str, keep_last: usize) -> Result<Pruned> {
        use futures_util::TryStreamExt;
        let all: Vec<u64> = self.versions(id, Order::NewestFirst).try_collect().await?;
        let mut pruned = Pruned::default();
        for version in all.into_iter().skip(keep_last) {
            match self.core.delete_version(id, version).await {
                Ok(c) => {
                    pruned.versions.push(version);
                    pruned.cleanup.deleted.extend(c.deleted);
                    pruned.cleanup.leftover.extend(c.leftover);
                }
                // Deleted meanwhile by someone else: the goal is reached.
                Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(pruned)
    }
}
