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
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use futures_util::stream::{self, Stream};

use crate::backend::{Conditional, Query, TableSpec};
use crate::changes::LargeValues;
use crate::condition::Condition;
use crate::error::{Error, Result};
use crate::maintenance::{
    display, GcOptions, GcReport, Progress, TableRef, VerifyOptions, VerifyReport,
};
use crate::model::{Item, KeyKind, Model};
use crate::store::{next_version, number_attr, Cleanup, Store, Stored, Target, READ_RACE_RETRIES};

const ID: &str = "id";
const VERSION: &str = "version";
const VALUE: &str = "value";

/// How often and how patiently to repeat a call that failed with a retryable
/// error ([`Error::is_retryable`]): exponential backoff with full jitter.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// The backoff before the second attempt; doubled each time.
    pub base_delay: Duration,
    /// The longest backoff.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 100 attempts, 5 ms doubling up to 500 ms: enough for a 16-writer contention
    /// on one id to settle.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 100,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(500),
        }
    }
}

impl RetryPolicy {
    /// A policy of `max_attempts` attempts with the default delays.
    pub fn attempts(max_attempts: u32) -> Self {
        RetryPolicy {
            max_attempts: max_attempts.max(1),
            ..Self::default()
        }
    }

    /// After failed attempt number `attempt` ended in `error`: whether to try again;
    /// if so, first sleeps the backoff.
    async fn again(&self, error: &Error, attempt: u32) -> bool {
        if !error.is_retryable() || attempt >= self.max_attempts.max(1) {
            return false;
        }
        tokio::time::sleep(self.backoff(attempt)).await;
        true
    }

    /// The backoff after failed attempt number `attempt` (1-based): a random
    /// duration between zero and `min(max_delay, base_delay * 2^(attempt-1))`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let cap = exp.min(self.max_delay);
        let nanos = cap.as_nanos().min(u64::MAX as u128) as u64;
        Duration::from_nanos(if nanos == 0 {
            0
        } else {
            random() % (nanos + 1)
        })
    }
}

/// A small xorshift generator for jitter, seeded from the clock: no dependency,
/// and jitter needs no cryptographic quality.
fn random() -> u64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut x = STATE.load(Ordering::Relaxed);
    if x == 0 {
        x = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9_7F4A_7C15)
            | 1;
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    STATE.store(x, Ordering::Relaxed);
    x
}

/// Runs `call` until it succeeds, fails with an error that is not retryable, or
/// `policy.max_attempts` attempts have failed; sleeps [`RetryPolicy::backoff`]
/// between attempts. Returns the value and the number of attempts made.
///
/// ```
/// use vhs_core::{retry, Error, RetryPolicy};
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let mut n = 0;
/// let (value, attempts) = retry(&RetryPolicy::attempts(5), || {
///     n += 1;
///     let ok = n >= 3;
///     async move {
///         if ok { Ok("done") } else { Err(Error::backend("s3", "PutObject", true, "503")) }
///     }
/// })
/// .await
/// .unwrap();
/// assert_eq!((value, attempts), ("done", 3));
/// # });
/// ```
pub async fn retry<T, F, Fut>(policy: &RetryPolicy, mut call: F) -> Result<(T, u32)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut attempt = 1;
    loop {
        match call().await {
            Ok(v) => return Ok((v, attempt)),
            Err(e) if policy.again(&e, attempt).await => attempt += 1,
            Err(e) => return Err(e),
        }
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
    start: u64,
    retry: RetryPolicy,
    multi: bool,
    _model: PhantomData<fn() -> M>,
}

impl<M> fmt::Debug for Core<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VersionedStore")
            .field("table", &self.table)
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

impl<M: Model> Core<M> {
    fn new(store: &Store, table: String, multi: bool) -> Result<Self> {
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
        if table.is_empty() {
            return Err(Error::invalid("table name is empty"));
        }
        Ok(Core {
            store: store.clone(),
            table,
            start: 0,
            retry: RetryPolicy::default(),
            multi,
            _model: PhantomData,
        })
    }

    fn target(&self, id: &str, version: u64) -> Result<Target> {
        if id.is_empty() {
            return Err(Error::invalid(
                "the id is empty; DynamoDB key strings must be non-empty",
            ));
        }
        let mut key = Item::new();
        key.insert(ID.to_owned(), AttributeValue::S(id.to_owned()));
        let (range, describe) = if self.multi {
            key.insert(VERSION.to_owned(), AttributeValue::N(version.to_string()));
            (
                Some(version.to_string()),
                format!("id={id:?}, version={version}"),
            )
        } else {
            (None, format!("id={id:?}"))
        };
        Ok(Target {
            table: self.table.clone(),
            key,
            hash: id.to_owned(),
            range,
            describe,
        })
    }

    async fn ensure_table(&self) -> Result<()> {
        let spec = TableSpec {
            name: self.table.clone(),
            hash_key: (ID.to_owned(), KeyKind::String),
            range_key: self.multi.then(|| (VERSION.to_owned(), KeyKind::Number)),
        };
        self.store.backend().create_table(&spec).await
    }

    fn table_ref(&self) -> TableRef {
        let multi = self.multi;
        TableRef {
            table: self.table.clone(),
            large: M::SCHEMA.large.iter().map(|a| a.name).collect(),
            key_of: Box::new(move |k| {
                let mut key = Item::new();
                key.insert(ID.to_owned(), AttributeValue::S(k.hash.clone()));
                match (multi, &k.range) {
                    (true, Some(v)) if v.parse::<u64>().is_ok() => {
                        key.insert(VERSION.to_owned(), AttributeValue::N(v.clone()));
                    }
                    (false, None) => {}
                    _ => return None,
                }
                Some(key)
            }),
            describe: Box::new(move |item| {
                let id = display(item.get(ID));
                if multi {
                    format!("id={id}, version={}", display(item.get(VERSION)))
                } else {
                    format!("id={id}")
                }
            }),
        }
    }

    fn describe(&self, id: &str) -> String {
        format!("id={id:?}")
    }

    /// The envelope item of `value` at `version`, without pointers.
    fn record(&self, target: &Target, version: u64, value: &M) -> Result<Item> {
        let mut record = target.key.clone();
        record.insert(VERSION.to_owned(), AttributeValue::N(version.to_string()));
        record.insert(VALUE.to_owned(), AttributeValue::M(value.to_item()?));
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
    async fn read(&self, item: Item) -> Result<Versioned<M>> {
        let (version, mut stored) = self.open(item)?;
        self.store.load_all(&mut stored).await?;
        Ok(Versioned {
            version,
            value: stored.model,
        })
    }

    /// The latest version with its large values. A newer version may replace the
    /// one read and delete its objects meanwhile: then the read starts over. A
    /// missing object of a version that is still the latest is a dangling pointer.
    async fn read_latest(&self, id: &str) -> Result<Option<Versioned<M>>> {
        let mut item = self.latest_item(id).await?;
        for _ in 0..READ_RACE_RETRIES {
            let Some(current) = item else {
                return Ok(None);
            };
            let version = number_attr(&current, VERSION);
            match self.read(current).await {
                Err(e @ Error::DanglingPointer { .. }) => {
                    item = self.latest_item(id).await?;
                    if item.as_ref().and_then(|i| number_attr(i, VERSION)) == version {
                        return Err(e);
                    }
                }
                other => return other.map(Some),
            }
        }
        match item {
            Some(current) => self.read(current).await.map(Some),
            None => Ok(None),
        }
    }

    /// The newest envelope of `id`, if any (consistent).
    async fn latest_item(&self, id: &str) -> Result<Option<Item>> {
        // Validates the id for both stores.
        let target = self.target(id, 0)?;
        if !self.multi {
            return self
                .store
                .backend()
                .get_item(&self.table, &target.key, true)
                .await;
        }
        let page = self
            .store
            .backend()
            .query(&Query {
                table: self.table.clone(),
                hash_key: (ID.to_owned(), AttributeValue::S(id.to_owned())),
                descending: true,
                limit: Some(1),
                start: None,
                consistent: true,
            })
            .await?;
        Ok(page.items.into_iter().next())
    }

    async fn get_latest(&self, id: &str) -> Result<Versioned<M>> {
        match self.read_latest(id).await? {
            Some(latest) => Ok(latest),
            None => Err(Error::NoVersionExists {
                table: self.table.clone(),
                key: self.describe(id),
            }),
        }
    }

    /// One put attempt of `value` at `version` under `expect`.
    async fn put_once(&self, id: &str, version: u64, value: &M, expect: Expect) -> Result<Written> {
        let target = self.target(id, version)?;
        let mut record = self.record(&target, version, value)?;
        let values = LargeValues::of(value)?;
        let staged = self
            .store
            .stage_record(&target, values, &mut record)
            .await?;
        let condition = match (self.multi, expect) {
            // Every version is its own item: never overwrite one.
            (true, _) => Condition::not_exists(ID),
            (false, Expect::Lower) => Condition::not_exists(ID).or(Condition::lt(VERSION, version)),
            (false, Expect::Exactly(None)) => Condition::not_exists(ID),
            (false, Expect::Exactly(Some(v))) => Condition::eq(VERSION, v),
        };
        let result = self
            .store
            .backend()
            .put_item(&self.table, record, Some(&condition))
            .await;
        let error = match result {
            Ok(Conditional::Applied(old)) => {
                let cleanup = match old {
                    Some(old) if self.store.options().clean_up_when_succeeded => {
                        self.store
                            .clean_up_after_update_succeeded(&staged, &old)
                            .await
                    }
                    _ => Cleanup::default(),
                };
                return Ok(Written {
                    version,
                    attempts: 1,
                    cleanup,
                });
            }
            Ok(Conditional::Failed(_)) => {
                let stored = self
                    .store
                    .backend()
                    .get_item(&self.table, &target.key, true)
                    .await;
                let stored = match stored {
                    Ok(s) => s,
                    Err(e) => {
                        self.clean_up_failed(&staged).await;
                        return Err(e);
                    }
                };
                let found = stored.as_ref().and_then(|i| number_attr(i, VERSION));
                // Rebuilt only here, on the failure path, rather than copied up front.
                let identical = match (&stored, expect) {
                    (Some(stored), Expect::Lower) => self
                        .record(&target, version, value)
                        .map(|mut ours| {
                            ours.extend(staged.to_put_attributes());
                            *stored == ours
                        })
                        .unwrap_or(false),
                    _ => false,
                };
                match expect {
                    Expect::Lower if identical => {
                        // The identical value at this version: idempotent success.
                        return Ok(Written {
                            version,
                            attempts: 1,
                            cleanup: Cleanup::default(),
                        });
                    }
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
                        found: if self.multi { Some(version) } else { found },
                    },
                }
            }
            Err(e) => e,
        };
        self.clean_up_failed(&staged).await;
        Err(error)
    }

    async fn clean_up_failed(&self, staged: &crate::store::Staged<M>) {
        if self.store.options().clean_up_when_failed {
            self.store.clean_up_after_create_failed(staged).await;
        }
    }

    /// One read-modify-write attempt: reads the latest, applies `f` (or `init` when
    /// there is none and `init` is given), writes latest + 1.
    async fn update_once<F, I>(&self, id: &str, f: &mut F, init: Option<&mut I>) -> Result<Written>
    where
        F: FnMut(M) -> M + Send,
        I: FnMut() -> M + Send,
    {
        let (expected, next, value) = match self.read_latest(id).await? {
            Some(current) => {
                let next = next_version(current.version)?;
                (Some(current.version), next, f(current.value))
            }
            None => match init {
                Some(init) => (None, self.start, f(init())),
                None => {
                    return Err(Error::NoVersionExists {
                        table: self.table.clone(),
                        key: self.describe(id),
                    })
                }
            },
        };
        self.put_once(id, next, &value, Expect::Exactly(expected))
            .await
    }

    async fn put_latest_once(&self, id: &str, value: &M) -> Result<Written> {
        let latest = self
            .latest_item(id)
            .await?
            .map(|i| version_of(&i))
            .transpose()?;
        let next = match latest {
            Some(v) => next_version(v)?,
            None => self.start,
        };
        self.put_once(id, next, value, Expect::Exactly(latest))
            .await
    }

    /// `update_once` until it succeeds, with the retry policy.
    async fn update<F, I>(&self, id: &str, f: &mut F, mut init: Option<&mut I>) -> Result<Written>
    where
        F: FnMut(M) -> M + Send,
        I: FnMut() -> M + Send,
    {
        let mut attempt = 1;
        loop {
            match self.update_once(id, f, init.as_deref_mut()).await {
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
        let (mut written, attempts) =
            retry(&self.retry, || self.put_latest_once(id, value)).await?;
        written.attempts = attempts;
        Ok(written)
    }

    async fn delete_version(&self, id: &str, version: u64) -> Result<Cleanup> {
        let target = self.target(id, version)?;
        let condition = Condition::eq(VERSION, version);
        match self
            .store
            .delete_record::<M>(&target, Some(&condition))
            .await
        {
            Ok((_, cleanup)) => Ok(cleanup),
            Err(Error::ConditionFailed { .. }) | Err(Error::NotFound { .. }) => {
                Err(Error::NotFound {
                    table: self.table.clone(),
                    key: format!("id={id:?}, version={version}"),
                })
            }
            Err(e) => Err(e),
        }
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
            self.core
                .store
                .gc_table(&self.core.table_ref(), options, &progress)
                .await
        }

        /// Checks the invariants for this table: see
        /// [`Store::verify`](crate::Store::verify).
        pub async fn verify(
            &self,
            options: &VerifyOptions,
            progress: impl Fn(Progress) + Send + Sync,
        ) -> Result<VerifyReport> {
            self.core
                .store
                .verify_table(&self.core.table_ref(), options, &progress)
                .await
        }

        /// Creates the table with the right key schema if it does not exist.
        pub async fn ensure_table(&self) -> Result<()> {
            self.core.ensure_table().await
        }

        /// The newest version of `id` ([`Error::NoVersionExists`] if there is none; a
        /// missing object is [`Error::DanglingPointer`]).
        pub async fn get_latest(&self, id: &str) -> Result<Versioned<M>> {
            self.core.get_latest(id).await
        }

        /// Writes `value` at the version after the stored latest (or at the start
        /// version), retrying with the retry policy if another writer takes that
        /// version first.
        pub async fn put_latest(&self, id: &str, value: &M) -> Result<Written> {
            self.core.put_latest(id, value).await
        }

        /// Reads the latest, applies `f`, writes latest + 1, and repeats the whole
        /// read-modify-write (with the retry policy) when another writer got there
        /// first: no update is ever lost. [`Error::NoVersionExists`] if there is none.
        pub async fn update<F>(&self, id: &str, mut f: F) -> Result<Written>
        where
            F: FnMut(M) -> M + Send,
        {
            self.core.update(id, &mut f, None::<&mut fn() -> M>).await
        }

        /// Like [`update`](Self::update), but starts from `init()` at the start
        /// version when `id` has no version yet.
        pub async fn upsert<I, F>(&self, id: &str, mut init: I, mut f: F) -> Result<Written>
        where
            I: FnMut() -> M + Send,
            F: FnMut(M) -> M + Send,
        {
            self.core.update(id, &mut f, Some(&mut init)).await
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
        self.core.put_once(id, version, value, Expect::Lower).await
    }

    /// Deletes the value if its stored version is `version` (DynamoDB first, then
    /// its objects, through the cleanup guard); [`Error::NotFound`] otherwise.
    pub async fn delete_version(&self, id: &str, version: u64) -> Result<Cleanup> {
        self.core.delete_version(id, version).await
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
        self.core.put_once(id, version, value, Expect::Lower).await
    }

    /// One version ([`Error::NotFound`] if it does not exist).
    pub async fn get(&self, id: &str, version: u64) -> Result<Versioned<M>> {
        let target = self.core.target(id, version)?;
        match self
            .core
            .store
            .backend()
            .get_item(&self.core.table, &target.key, true)
            .await?
        {
            Some(item) => self.core.read(item).await,
            None => Err(target.not_found()),
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
            let page = self
                .core
                .store
                .backend()
                .query(&Query {
                    table: self.core.table.clone(),
                    hash_key: (ID.to_owned(), AttributeValue::S(id.to_owned())),
                    descending: order == Order::NewestFirst,
                    limit: Some(500),
                    start,
                    consistent: true,
                })
                .await?;
            let versions: Vec<Result<u64>> = page.items.iter().map(version_of).collect();
            let next = page.last_key.map(Some);
            Ok::<_, Error>(Some((stream::iter(versions), next)))
        });
        futures_util::TryStreamExt::try_flatten(pages)
    }

    /// Deletes one version (DynamoDB first, then its objects, through the cleanup
    /// guard); [`Error::NotFound`] if it does not exist.
    pub async fn delete_version(&self, id: &str, version: u64) -> Result<Cleanup> {
        self.core.delete_version(id, version).await
    }

    /// Deletes every version but the newest `keep_last`, oldest objects included.
    pub async fn prune(&self, id: &str, keep_last: usize) -> Result<Pruned> {
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
