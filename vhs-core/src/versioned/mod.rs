//! Versioned stores: every write carries a version, and two writers can never
//! reorder or lose each other's updates.
//!
//! One generic store, [`VersionedStore`], in two layouts ([`Layout`]): the
//! single-version store ([`SingleVersionStore`]) keeps the newest version of
//! each id, the multi-version one ([`MultiVersionStore`]) every version. Both
//! keep any [`Model`] as the value of an envelope item:
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

mod engine;
mod layout;

use std::fmt;
use std::marker::PhantomData;

use aws_sdk_dynamodb::types::AttributeValue;
use futures_util::stream::{self, Stream};
use tracing::field::Empty;
use tracing::Span;

use crate::backend::{BackendExt as _, Query};
use crate::error::{Error, Result};
use crate::maintenance::{GcOptions, GcReport, Progress, VerifyOptions, VerifyReport};
use crate::model::{Item, Model};
use crate::protocol::item::PLACEHOLDER;
use crate::retry::RetryPolicy;
use crate::store::{new_token, number_attr, traced, Cleanup, Store};

use engine::Expect;
pub use layout::{Layout, MultiVersion, SingleVersion};

const ID: &str = "id";
const VERSION: &str = "version";
const VALUE: &str = "value";

/// The span of the versioned store operation `$name` on the value `$id` of
/// `$versioned`'s table. `version`, `attrs`, `bytes`, `attempts`, `requests` and
/// `cleanup` are recorded as they become known.
macro_rules! span {
    ($name:literal, $versioned:expr, $id:expr) => {
        tracing::info_span!(
            $name,
            store = $versioned.layout_name(),
            table = %$versioned.table,
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

/// What [`MultiVersionStore::prune`](VersionedStore::prune) did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    /// The versions deleted, newest first.
    pub versions: Vec<u64>,
    /// Their objects deleted, and the ones left for collection.
    pub cleanup: Cleanup,
}

/// A table of versioned `M` values keyed by `id`, laid out as `L`: one item per
/// id holding its newest version ([`SingleVersion`], alias
/// [`SingleVersionStore`]) or one item per id and version ([`MultiVersion`],
/// alias [`MultiVersionStore`]). Methods of one layout only are on that alias.
pub struct VersionedStore<M, L> {
    store: Store,
    table: String,
    prefix: String,
    start: u64,
    retry: RetryPolicy,
    _model: PhantomData<fn() -> (M, L)>,
}

/// A table keyed by `id` that keeps only the newest version of each value.
pub type SingleVersionStore<M> = VersionedStore<M, SingleVersion>;

/// A table keyed by `id` and `version` that keeps every version of each value.
pub type MultiVersionStore<M> = VersionedStore<M, MultiVersion>;

impl<M, L> fmt::Debug for VersionedStore<M, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VersionedStore")
            .field("table", &self.table)
            .field("prefix", &self.prefix)
            .field("start", &self.start)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl<M: Model, L: Layout> VersionedStore<M, L> {
    /// A versioned store in `table` (hash key `id` (S), and range key `version`
    /// (N) in the multi-version layout), with `store`'s backend, bucket, prefix
    /// and options. [`Error::InvalidInput`] for a model with a secondary index
    /// or a large attribute named `id`, `version` or `value`.
    pub fn new(store: &Store, table: impl Into<String>) -> Result<Self> {
        let table = table.into();
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
        Ok(VersionedStore {
            store: store.clone(),
            table,
            prefix,
            start: 0,
            retry: RetryPolicy::default(),
            _model: PhantomData,
        })
    }

    /// The `store` field of the spans: `"single"` or `"multi"`.
    fn layout_name(&self) -> &'static str {
        L::NAME
    }

    /// Versions start here (default 0).
    pub fn start_version(mut self, version: u64) -> Self {
        self.start = version;
        self
    }

    /// The retry policy of `update`, `upsert` and `put_latest`.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Deletes orphaned objects of this table's items: see
    /// [`Store::gc`](crate::Store::gc).
    pub async fn gc(
        &self,
        options: &GcOptions,
        progress: impl Fn(Progress) + Send + Sync,
    ) -> Result<GcReport> {
        let span = tracing::info_span!("versioned_gc", table = %self.table, requests = Empty);
        let table = self.table_ref();
        let gc = self.store.gc_table(&table, options, &progress);
        traced(&span, gc).await
    }

    /// Checks the invariants for this table: see
    /// [`Store::verify`](crate::Store::verify).
    pub async fn verify(
        &self,
        options: &VerifyOptions,
        progress: impl Fn(Progress) + Send + Sync,
    ) -> Result<VerifyReport> {
        let span = tracing::info_span!("versioned_verify", table = %self.table, requests = Empty);
        let table = self.table_ref();
        let verify = self.store.verify_table(&table, options, &progress);
        traced(&span, verify).await
    }

    /// Creates the table with the right key schema if it does not exist.
    pub async fn ensure_table(&self) -> Result<()> {
        let span = tracing::info_span!(
            "versioned_ensure_table",
            table = %self.table,
            requests = Empty,
        );
        let spec = layout::table_spec::<L>(&self.table);
        traced(&span, self.store.backend().create_table(&spec)).await
    }

    /// The newest version of `id` ([`Error::NoVersionExists`] if there is none; a
    /// missing object is [`Error::DanglingPointer`]).
    pub async fn get_latest(&self, id: &str) -> Result<Versioned<M>> {
        let span = span!("versioned_get_latest", self, id);
        let read = traced(&span, self.latest(id)).await;
        record_read(&span, &read);
        read
    }

    /// Writes `value` at the version after the stored latest (or at the start
    /// version), retrying with the retry policy if another writer takes that
    /// version first.
    pub async fn put_latest(&self, id: &str, value: &M) -> Result<Written> {
        let span = span!("versioned_put_latest", self, id);
        let written = traced(&span, self.put_latest_retrying(id, value)).await;
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
        let span = span!("versioned_update", self, id);
        let update = self.update_retrying(id, &mut f, None::<&mut fn() -> M>);
        let written = traced(&span, update).await;
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
        let span = span!("versioned_upsert", self, id);
        let written = traced(&span, self.update_retrying(id, &mut f, Some(&mut init))).await;
        record_written(&span, &written);
        written
    }

    /// Writes `value` at `version`. Single-version: if no version is stored or
    /// the stored one is lower; [`Error::HigherVersionExists`] or
    /// [`Error::VersionAlreadyExists`] otherwise. Multi-version: never
    /// overwrites a version ([`Error::VersionAlreadyExists`]). Re-putting the
    /// identical value at the same version succeeds in both.
    pub async fn put(&self, id: &str, version: u64, value: &M) -> Result<Written> {
        let span = span!("versioned_put", self, id);
        span.record("version", version);
        let token = new_token();
        let written = self.put_once(id, version, value, Expect::Lower, &token, None);
        let written = traced(&span, written).await;
        record_written(&span, &written);
        written
    }

    /// Deletes `version` of `id` (DynamoDB first, then its objects, through the
    /// cleanup guard): in the single-version layout the value, if its stored
    /// version is `version`. [`Error::NotFound`] if there is no such version.
    pub async fn delete_version(&self, id: &str, version: u64) -> Result<Cleanup> {
        let span = span!("versioned_delete_version", self, id);
        span.record("version", version);
        let cleanup = traced(&span, self.delete_one(id, version)).await;
        if let Ok(cleanup) = &cleanup {
            cleanup.record_in(&span);
        }
        cleanup
    }
}

/// What only the multi-version layout can do: read one version, list and prune
/// versions.
impl<M: Model> VersionedStore<M, MultiVersion> {
    /// One version ([`Error::NotFound`] if it does not exist).
    pub async fn get(&self, id: &str, version: u64) -> Result<Versioned<M>> {
        let span = span!("versioned_get", self, id);
        span.record("version", version);
        traced(&span, self.get_version(id, version)).await
    }

    async fn get_version(&self, id: &str, version: u64) -> Result<Versioned<M>> {
        let target = self.target(id, version)?;
        match self
            .store
            .backend()
            .get_item(&self.table, &target.key, true)
            .await?
        {
            Some(item) if !item.contains_key(PLACEHOLDER) => self.read(item, None).await,
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
            let span = span!("versioned_versions", self, id);
            let query = Query {
                descending: order == Order::NewestFirst,
                limit: Some(500),
                start,
                consistent: true,
                ..Query::new(&self.table, ID, AttributeValue::S(id.to_owned()))
            };
            let page = traced(&span, self.store.backend().query(&query)).await?;
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

    /// Deletes every version but the newest `keep_last`, oldest objects included.
    pub async fn prune(&self, id: &str, keep_last: usize) -> Result<Pruned> {
        let span = span!("versioned_prune", self, id);
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
            match self.delete_one(id, version).await {
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
