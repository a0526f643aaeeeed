//! The read cache, off by default ([`StoreBuilder::cache`](crate::StoreBuilder::cache)).
//!
//! Three bounded caches (the `quick_cache` crate: sharded, CLOCK-Pro eviction):
//! - **items** read by [`Store::get_large`](crate::Store::get_large), as stored,
//!   for a TTL per model type;
//! - **query and scan pages**, keyed by every argument of the request, for a
//!   TTL per model type;
//! - **object bodies**, by object key, bounded by bytes. A key names its
//!   content (its checksum is in it), so a body never goes stale and has no TTL.
//!
//! Every write the store sends to a table (create, update, delete, a
//! transaction, a versioned store's write, the protocol's own bookkeeping)
//! invalidates every item and page cached for that table: entries are keyed
//! by the table's *generation*, which each write bumps when it returns, so a
//! read that raced the write can only store its result under the old
//! generation, where nobody looks.
//!
//! The cache does not see writes made by other processes or other stores: an
//! entry is served until its TTL passes, however the table changed. Choose
//! TTLs for what your readers can tolerate, and read with
//! [`Store::get_large_consistent`](crate::Store::get_large_consistent) (which
//! bypasses the cache) where they cannot.

use std::any::TypeId;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use quick_cache::sync::Cache;
use quick_cache::Weighter;

use crate::backend::{Backend, Call, QueryPage, Reply};
use crate::model::{Item, Model};

/// Where the cache reads the time, for TTLs. [`SystemClock`] by default;
/// [`ManualClock`] in tests.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Now.
    fn now(&self) -> Instant;
}

/// The monotonic system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told to: TTLs tested without sleeping.
/// Clones share the time.
///
/// ```
/// use std::time::Duration;
/// use vhs_core::{Clock, ManualClock};
/// let clock = ManualClock::new();
/// let t0 = clock.now();
/// clock.advance(Duration::from_secs(60));
/// assert_eq!(clock.now() - t0, Duration::from_secs(60));
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    start: Instant,
    passed: Arc<Mutex<Duration>>,
}

impl ManualClock {
    /// A clock standing at the moment it was made.
    pub fn new() -> Self {
        ManualClock {
            start: Instant::now(),
            passed: Arc::new(Mutex::new(Duration::ZERO)),
        }
    }

    /// Moves the time forward by `by`.
    pub fn advance(&self, by: Duration) {
        *self.passed.lock().unwrap_or_else(|e| e.into_inner()) += by;
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start + *self.passed.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the read cache holds and for how long; see [`StoreBuilder::cache`](crate::StoreBuilder::cache).
///
/// ```
/// use std::time::Duration;
/// use vhs_core::CacheOptions;
/// # #[derive(Debug)] struct Program;
/// let options = CacheOptions::new()
///     .max_items(10_000)
///     .max_body_bytes(256 << 20)
///     .ttl(Duration::from_secs(60))          // items of every model
///     .query_ttl(Duration::from_secs(300));  // pages of every model
/// # let _ = options;
/// ```
#[derive(Debug, Clone)]
pub struct CacheOptions {
    max_items: usize,
    max_pages: usize,
    max_body_bytes: u64,
    ttl: Duration,
    query_ttl: Duration,
    ttls: HashMap<TypeId, Duration>,
    query_ttls: HashMap<TypeId, Duration>,
    clock: Arc<dyn Clock>,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions::new()
    }
}

impl CacheOptions {
    /// 10,000 items, 1,000 pages, 64 MiB of bodies, TTLs of 60 s, the
    /// system clock.
    pub fn new() -> Self {
        CacheOptions {
            max_items: 10_000,
            max_pages: 1_000,
            max_body_bytes: 64 << 20,
            ttl: Duration::from_secs(60),
            query_ttl: Duration::from_secs(60),
            ttls: HashMap::new(),
            query_ttls: HashMap::new(),
            clock: Arc::new(SystemClock),
        }
    }

    /// At most this many items.
    pub fn max_items(mut self, n: usize) -> Self {
        self.max_items = n.max(1);
        self
    }

    /// At most this many query or scan pages.
    pub fn max_pages(mut self, n: usize) -> Self {
        self.max_pages = n.max(1);
        self
    }

    /// At most this many bytes of object bodies (a body larger than the
    /// whole bound is not cached).
    pub fn max_body_bytes(mut self, bytes: u64) -> Self {
        self.max_body_bytes = bytes.max(1);
        self
    }

    /// How long an item is served from the cache, for models without their
    /// own TTL ([`CacheOptions::ttl_for`]).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How long a page is served from the cache, for models without their
    /// own ([`CacheOptions::query_ttl_for`]).
    pub fn query_ttl(mut self, ttl: Duration) -> Self {
        self.query_ttl = ttl;
        self
    }

    /// The item TTL of model `M` (zero: its items are not cached).
    pub fn ttl_for<M: Model>(mut self, ttl: Duration) -> Self {
        self.ttls.insert(TypeId::of::<M>(), ttl);
        self
    }

    /// The page TTL of queries and scans returning `M` (zero: not cached).
    pub fn query_ttl_for<M: Model>(mut self, ttl: Duration) -> Self {
        self.query_ttls.insert(TypeId::of::<M>(), ttl);
        self
    }

    /// The clock TTLs are measured with.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }
}

#[derive(Clone)]
struct Entry<T> {
    value: T,
    expires: Instant,
}

#[derive(Clone)]
struct BodyWeight;

impl Weighter<String, Bytes> for BodyWeight {
    fn weight(&self, key: &String, body: &Bytes) -> u64 {
        (key.len() + body.len()) as u64
    }
}

/// (table, generation, the item's key or the request).
type EntryKey = (String, u64, String);
type Entries<T> = Cache<EntryKey, Entry<T>>;

/// The caches of one store and its clones.
pub(crate) struct ReadCache {
    options: CacheOptions,
    items: Entries<Item>,
    pages: Entries<QueryPage>,
    bodies: Cache<String, Bytes, BodyWeight>,
    generations: Mutex<HashMap<String, u64>>,
}

impl fmt::Debug for ReadCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadCache")
            .field("options", &self.options)
            .field("items", &self.items.len())
            .field("pages", &self.pages.len())
            .field("body_bytes", &self.bodies.weight())
            .finish()
    }
}

impl ReadCache {
    pub(crate) fn new(options: CacheOptions) -> Self {
        // A body is about a part of a large value; the count only sizes the
        // shards.
        let body_estimate = (options.max_body_bytes / (64 << 10)).clamp(16, 1 << 16) as usize;
        ReadCache {
            items: Cache::new(options.max_items),
            pages: Cache::new(options.max_pages),
            bodies: Cache::with_weighter(body_estimate, options.max_body_bytes, BodyWeight),
            generations: Mutex::new(HashMap::new()),
            options,
        }
    }

    /// The table's generation: every write to it moves it on.
    pub(crate) fn generation(&self, table: &str) -> u64 {
        let generations = self.generations.lock().unwrap_or_else(|e| e.into_inner());
        generations.get(table).copied().unwrap_or(0)
    }

    /// A write to `table` returned (applied or not, or with an unknown
    /// outcome): nothing cached for it before may be served.
    pub(crate) fn invalidate(&self, table: &str) {
        let mut generations = self.generations.lock().unwrap_or_else(|e| e.into_inner());
        *generations.entry(table.to_owned()).or_insert(0) += 1;
    }

    /// The TTL of items (or, with `query`, of pages) of the model `type_id`.
    fn ttl_of(&self, type_id: TypeId, query: bool) -> Duration {
        let (ttls, default) = if query {
            (&self.options.query_ttls, self.options.query_ttl)
        } else {
            (&self.options.ttls, self.options.ttl)
        };
        ttls.get(&type_id).copied().unwrap_or(default)
    }

    /// The unexpired entry at `key` of `cache` (an expired one is dropped).
    fn get<T: Clone>(&self, cache: &Entries<T>, key: &EntryKey) -> Option<T> {
        let entry = cache.get(key)?;
        if self.options.clock.now() < entry.expires {
            return Some(entry.value);
        }
        cache.remove(key);
        None
    }

    /// Keeps `value` at `key` of `cache` for `ttl` (not at all for zero).
    fn put<T: Clone>(&self, cache: &Entries<T>, key: EntryKey, value: T, ttl: Duration) {
        if !ttl.is_zero() {
            let expires = self.options.clock.now() + ttl;
            cache.insert(key, Entry { value, expires });
        }
    }

    /// The item `key` of `table` cached at generation `generation`, unexpired.
    pub(crate) fn item(&self, table: &str, generation: u64, key: &str) -> Option<Item> {
        self.get(&self.items, &(table.to_owned(), generation, key.to_owned()))
    }

    /// Caches an item of `M` read at `generation` (taken before the read).
    pub(crate) fn put_item<M: Model>(&self, table: &str, generation: u64, key: &str, item: Item) {
        let ttl = self.ttl_of(TypeId::of::<M>(), false);
        let key = (table.to_owned(), generation, key.to_owned());
        self.put(&self.items, key, item, ttl);
    }

    /// The page cached for `request` (every argument, in a canonical form).
    pub(crate) fn page(&self, table: &str, generation: u64, request: &str) -> Option<QueryPage> {
        self.get(
            &self.pages,
            &(table.to_owned(), generation, request.to_owned()),
        )
    }

    /// Caches a page of the model `type_id` read at `generation`.
    pub(crate) fn put_page(
        &self,
        type_id: TypeId,
        table: &str,
        generation: u64,
        request: &str,
        page: QueryPage,
    ) {
        let ttl = self.ttl_of(type_id, true);
        let key = (table.to_owned(), generation, request.to_owned());
        self.put(&self.pages, key, page, ttl);
    }

    /// A body by object key.
    pub(crate) fn body(&self, key: &str) -> Option<Bytes> {
        self.bodies.get(key)
    }

    /// Caches a body checked against its key's checksum.
    pub(crate) fn put_body(&self, key: &str, body: Bytes) {
        if (body.len() as u64) < self.options.max_body_bytes {
            self.bodies.insert(key.to_owned(), body);
        }
    }
}

/// A backend layer that tells a [`ReadCache`] of every write to a table: once
/// a PutItem, UpdateItem, DeleteItem or TransactWriteItems returned, whatever
/// its outcome (a lost answer may have landed), the cache forgets the tables it
/// wrote.
#[derive(Debug)]
pub(crate) struct Invalidating<B> {
    pub(crate) inner: B,
    pub(crate) cache: Arc<ReadCache>,
}

#[async_trait::async_trait]
impl<B: Backend> Backend for Invalidating<B> {
    async fn send(&self, call: Call<'_>) -> crate::error::Result<Reply> {
        let written: Vec<String> = call
            .tables_written()
            .into_iter()
            .map(str::to_owned)
            .collect();
        let out = self.inner.send(call).await;
        for table in &written {
            self.cache.invalidate(table);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::AttributeValue;

    use super::*;
    use crate::backend::{BackendExt, TableSpec, TransactWrite};
    use crate::condition::Condition;
    use crate::memory::MemoryBackend;
    use crate::model::KeyKind;

    #[tokio::test]
    async fn every_write_to_a_table_moves_its_generation_on_reads_do_not() {
        let memory = MemoryBackend::new();
        for table in ["t", "u"] {
            memory
                .create_table(&TableSpec::new(table, ("id", KeyKind::String)))
                .await
                .unwrap();
        }
        let cache = Arc::new(ReadCache::new(CacheOptions::default()));
        let backend = Invalidating {
            inner: memory,
            cache: cache.clone(),
        };
        let item: Item = [("id".to_owned(), AttributeValue::S("a".into()))].into();
        let at = |table| cache.generation(table);

        backend.put_item("t", item.clone(), None).await.unwrap();
        assert_eq!((at("t"), at("u")), (1, 0));
        backend.get_item("t", &item, false).await.unwrap();
        assert_eq!(at("t"), 1, "a read invalidates nothing");
        // A refused write may still have raced with the cached read.
        let refused = Condition::not_exists("id");
        backend
            .delete_item("t", &item, Some(&refused))
            .await
            .unwrap();
        assert_eq!(at("t"), 2);
        backend
            .transact_write(
                &[TransactWrite::Put {
                    table: "u".into(),
                    item: item.clone(),
                    condition: None,
                }],
                "token",
            )
            .await
            .unwrap();
        assert_eq!((at("t"), at("u")), (2, 1));
    }
}
