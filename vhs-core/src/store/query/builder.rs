//! Building queries and scans: the builders, their checks, and counting.

use std::any::TypeId;
use std::fmt;
use std::marker::PhantomData;

use aws_sdk_dynamodb::types::AttributeValue;
use futures_util::stream::{self, BoxStream, Stream, StreamExt, TryStreamExt};

use crate::backend::{Query, Scan};
use crate::condition::{Cmp, Condition};
use crate::error::{Error, Result};
use crate::model::{IndexKind, Item, KeyDef, KeyKind, Model, Schema};
use crate::protocol::item::PLACEHOLDER;
use crate::store::{Store, Stored};

use super::listing::{entries, split, typed, Listing, Request};
use super::{Cursor, Entry, Page};

impl Store {
    /// Starts a query of `M`'s table, or of one of its secondary indexes, for
    /// the items whose hash key is equal to a value: `hash` is
    /// `Model::ATTR.eq(value)` on the hash key of the table or of an index.
    ///
    /// The table or index is the one whose keys are the attributes named by
    /// `hash` and [`QueryBuilder::range`] (the table first); name one with
    /// [`QueryBuilder::index`] when several fit.
    ///
    /// ```no_run
    /// use futures_util::TryStreamExt;
    /// use vhs_core::{Attr, Model, Result, Store};
    ///
    /// /// The items whose hash key `hash` is `value` and whose range key
    /// /// `seats` is at least `min`, largest first, every large value loaded.
    /// async fn at_least<M: Model>(
    ///     store: &Store,
    ///     hash: Attr<M, str>,
    ///     value: &str,
    ///     seats: Attr<M, u32>,
    ///     min: u32,
    /// ) -> Result<Vec<M>> {
    ///     store
    ///         .query::<M>(hash.eq(value))
    ///         .range(seats.ge(&min))
    ///         .descending()
    ///         .items()
    ///         .try_collect()
    ///         .await
    /// }
    /// ```
    pub fn query<M: Model>(&self, hash: Condition) -> QueryBuilder<M> {
        QueryBuilder {
            store: self.clone(),
            schema: M::SCHEMA,
            table: self.table_name::<M>().to_owned(),
            hash,
            range: None,
            index: None,
            filter: None,
            projection: None,
            descending: false,
            limit: None,
            page_size: None,
            start: None,
            consistent: false,
            _out: PhantomData,
        }
    }

    /// Starts a scan of `M`'s table: every item, in no particular order. In a
    /// table several models share, filter on what tells them apart.
    pub fn scan<M: Model>(&self) -> ScanBuilder<M> {
        ScanBuilder {
            store: self.clone(),
            schema: M::SCHEMA,
            table: self.table_name::<M>().to_owned(),
            filter: None,
            projection: None,
            segments: 1,
            page_size: None,
            start: None,
            consistent: false,
            _out: PhantomData,
        }
    }
}

/// The methods queries and scans share: filter, paging, consistency, and the
/// four ways to run them. (A scan's cursor resumes one segment.)
macro_rules! listing_methods {
    () => {
        /// Returns only the items for which `condition` holds (several filters
        /// are combined with AND). The service applies it after reading: items
        /// left out still cost their read, and a page may come back short.
        pub fn filter(mut self, condition: Condition) -> Self {
            self.filter = Some(match self.filter.take() {
                Some(f) => f.and(condition),
                None => condition,
            });
            self
        }

        /// At most `n` items read per request (DynamoDB's `Limit`); a page
        /// also ends at 1 MB read.
        pub fn page_size(mut self, n: usize) -> Self {
            self.page_size = Some(n.max(1));
            self
        }

        /// Resumes after the item a [`Page::cursor`] names.
        pub fn start_after(mut self, cursor: Cursor) -> Self {
            self.start = Some(cursor);
            self
        }

        /// Strongly consistent reads (not available on global indexes).
        pub fn consistent(mut self) -> Self {
            self.consistent = true;
            self
        }

        /// The pages, every large value loaded. An item that cannot be
        /// loaded (a dangling pointer, an integrity mismatch…) is in its
        /// page's [`Page::failed`], and the page's other items are served.
        pub fn pages(self) -> impl Stream<Item = Result<Page<T>>> + Send + 'static {
            self.run(true).map_ok(|p| {
                let p = split(p);
                Page {
                    items: p.items.into_iter().map(|s| s.model).collect(),
                    failed: p.failed,
                    cursor: p.cursor,
                }
            })
        }

        /// The items, every large value loaded, each on its own: an item that
        /// cannot be loaded (a dangling pointer, an integrity mismatch…) is
        /// yielded as its error and the stream **goes on** with the next
        /// item; a request that fails (the query or scan itself) is yielded
        /// as its error and ends the stream. So `try_collect` stops at the
        /// first bad item, while a loop that logs and continues reads every
        /// good one.
        pub fn items(self) -> impl Stream<Item = Result<T>> + Send + 'static {
            entries(self.run(true)).map_ok(|s| s.model)
        }

        /// The pages, large values not loaded: each item keeps its pointers,
        /// for [`Store::load`] to load what is needed. An item whose ordinary
        /// attributes do not decode is in [`Page::failed`].
        pub fn stored_pages(self) -> impl Stream<Item = Result<Page<Stored<T>>>> + Send + 'static {
            self.run(false).map_ok(split)
        }

        /// The items, large values not loaded (see `stored_pages`), each on its
        /// own like [`items`](Self::items).
        pub fn stored(self) -> impl Stream<Item = Result<Stored<T>>> + Send + 'static {
            entries(self.run(false))
        }
    };
}

/// A query being built; see [`Store::query`]. Run it with
/// [`items`](QueryBuilder::items), [`pages`](QueryBuilder::pages),
/// [`stored`](QueryBuilder::stored) or [`stored_pages`](QueryBuilder::stored_pages).
#[must_use = "a query does nothing until its stream is polled"]
pub struct QueryBuilder<T> {
    store: Store,
    /// The schema of the model the conditions name.
    schema: Schema,
    table: String,
    hash: Condition,
    range: Option<Condition>,
    index: Option<String>,
    filter: Option<Condition>,
    projection: Option<Vec<String>>,
    descending: bool,
    limit: Option<usize>,
    page_size: Option<usize>,
    start: Option<Cursor>,
    consistent: bool,
    _out: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for QueryBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueryBuilder")
            .field("table", &self.table)
            .field("index", &self.index)
            .field("hash", &self.hash)
            .field("range", &self.range)
            .field("filter", &self.filter)
            .field("descending", &self.descending)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

/// The attributes a projection onto `V` reads: its keys, its attributes, its
/// large attributes, the placeholder mark and the expiry (so placeholders and
/// expired items stay out).
fn projection_of(schema: &Schema) -> Vec<String> {
    let mut names: Vec<String> = std::iter::once(schema.hash_key.name)
        .chain(schema.range_key.map(|r| r.name))
        .chain(schema.attributes.iter().copied())
        .chain(schema.large.iter().map(|a| a.name))
        .chain([PLACEHOLDER, crate::protocol::item::EXPIRES])
        .map(str::to_owned)
        .collect();
    names.dedup();
    names
}

/// Only `ops` on a key, with a value of its type.
fn check_key_condition(c: &Condition, key: KeyDef, what: &str) -> Result<()> {
    let of_kind = |v: &AttributeValue| {
        matches!(
            (key.kind, v),
            (KeyKind::String, AttributeValue::S(_)) | (KeyKind::Number, AttributeValue::N(_))
        )
    };
    let ok = match c {
        Condition::Compare(_, Cmp::Ne, _) => false,
        Condition::Compare(_, _, v) => of_kind(v),
        Condition::Between(_, low, high) => {
            of_kind(low)
                && of_kind(high)
                && crate::condition::compare(low, high) != Some(std::cmp::Ordering::Greater)
        }
        Condition::BeginsWith(..) => key.kind == KeyKind::String,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "{what} on `{}` must be =, <, <=, >, >=, between (low <= high) or begins_with (strings), with a value of the key's type; got {c:?}",
            key.name
        )))
    }
}

/// The attribute a key condition names.
fn key_condition_name(c: &Condition) -> Option<&str> {
    match c {
        Condition::Compare(n, _, _) | Condition::Between(n, _, _) | Condition::BeginsWith(n, _) => {
            Some(n)
        }
        _ => None,
    }
}

impl<T: Model> QueryBuilder<T> {
    /// A condition on the range key (of the table or of the index):
    /// `Model::ATTR.lt(..)`, `le`, `gt`, `ge`, `eq`, `between` or `begins_with`.
    pub fn range(mut self, condition: Condition) -> Self {
        self.range = Some(condition);
        self
    }

    /// Queries the secondary index `name` (by default, the table or index
    /// whose keys the conditions name).
    pub fn index(mut self, name: impl Into<String>) -> Self {
        self.index = Some(name.into());
        self
    }

    /// Highest range key first.
    pub fn descending(mut self) -> Self {
        self.descending = true;
        self
    }

    /// At most `n` items in all.
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }

    /// Returns `V`s instead: a model of the same table with some of the
    /// attributes (and the same keys), so that only those are read.
    pub fn select<V: Model>(self) -> QueryBuilder<V> {
        QueryBuilder {
            store: self.store,
            schema: self.schema,
            table: self.table,
            hash: self.hash,
            range: self.range,
            index: self.index,
            filter: self.filter,
            projection: Some(projection_of(&V::SCHEMA)),
            descending: self.descending,
            limit: self.limit,
            page_size: self.page_size,
            start: self.start,
            consistent: self.consistent,
            _out: PhantomData,
        }
    }

    /// Checks the query and picks the table or index it reads.
    fn listing(self) -> Result<(Listing, Option<Item>)> {
        let schema = self.schema;
        check_output::<T>(&schema, &self.store, &self.table)?;
        for c in [Some(&self.hash), self.range.as_ref(), self.filter.as_ref()]
            .into_iter()
            .flatten()
        {
            c.check()?;
        }
        let (hash_name, hash_value) = match &self.hash {
            Condition::Compare(n, Cmp::Eq, v) => (n.clone(), v.clone()),
            other => {
                return Err(Error::invalid(format!(
                    "the hash key condition of a query is an equality (`Model::ATTR.eq(value)`); got {other:?}"
                )))
            }
        };
        let range_name = match &self.range {
            Some(c) => Some(key_condition_name(c).ok_or_else(|| {
                Error::invalid(format!(
                    "the range key condition of a query is one comparison, between or begins_with; got {c:?}"
                ))
            })?),
            None => None,
        };
        let fits = |hash: KeyDef, range: Option<KeyDef>| {
            hash.name == hash_name && range_name.is_none_or(|r| range.is_some_and(|k| k.name == r))
        };
        // (index name, hash key, range key, global)
        let mut candidates: Vec<(Option<&str>, KeyDef, Option<KeyDef>, bool)> = Vec::new();
        if self.index.is_none() && fits(schema.hash_key, schema.range_key) {
            candidates.push((None, schema.hash_key, schema.range_key, false));
        }
        for i in schema.indexes {
            if self.index.as_deref().is_none_or(|n| n == i.name) && fits(i.hash_key, i.range_key) {
                candidates.push((
                    Some(i.name),
                    i.hash_key,
                    i.range_key,
                    i.kind == IndexKind::Global,
                ));
            }
        }
        let describe = || match range_name {
            Some(r) => format!("hash key `{hash_name}` and range key `{r}`"),
            None => format!("hash key `{hash_name}`"),
        };
        let (index, hash_key, range_key, global) = match candidates.as_slice() {
            [] => {
                return Err(Error::invalid(match &self.index {
                    Some(name) if schema.index(name).is_none() => format!(
                        "table `{}` has no index `{name}` declared on its model",
                        self.table
                    ),
                    Some(name) => format!("index `{name}` does not have {}", describe()),
                    None => format!(
                        "neither table `{}` nor any of its indexes has {}; declare an index with `gsi_hash`/`gsi_range` or `lsi`",
                        self.table,
                        describe()
                    ),
                }))
            }
            [(_, _, _, _)] | [(None, _, _, _), ..] => candidates[0],
            many => {
                let names: Vec<&str> = many.iter().filter_map(|c| c.0).collect();
                return Err(Error::invalid(format!(
                    "indexes {names:?} all have {}: name one with `.index(...)`",
                    describe()
                )));
            }
        };
        check_key_condition(&self.hash, hash_key, "the hash key condition")?;
        if let (Some(c), Some(k)) = (&self.range, range_key) {
            check_key_condition(c, k, "the range key condition")?;
        }
        if self.consistent && global {
            return Err(Error::invalid(format!(
                "index `{}` is global: its reads are eventually consistent only",
                index.unwrap_or_default()
            )));
        }
        let mut keys = vec![schema.hash_key.name];
        keys.extend(schema.range_key.map(|r| r.name));
        let table_keys = keys.len();
        for k in std::iter::once(hash_key.name).chain(range_key.map(|r| r.name)) {
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        // An index that holds some attributes only: the items are read from
        // the table by their keys (a projection then applies to nothing: the
        // index cannot serve attributes it does not hold).
        let full_items = index
            .and_then(|i| schema.index(i))
            .is_some_and(|i| i.projection() != crate::model::Projection::All);
        let query = Query {
            index: index.map(str::to_owned),
            range: self.range,
            filter: Some(live_only(self.filter, schema.ttl)),
            projection: if full_items { None } else { self.projection },
            descending: self.descending,
            consistent: self.consistent,
            ..Query::new(self.table, hash_name, hash_value)
        };
        let start = self.start.map(|c| c.0);
        Ok((
            Listing {
                store: self.store,
                request: Request::Query(Box::new(query)),
                keys,
                limit: self.limit,
                page_size: self.page_size,
                model: TypeId::of::<T>(),
                full_items,
                table_keys,
                ttl: schema.ttl,
            },
            start,
        ))
    }

    fn run(self, load: bool) -> BoxStream<'static, Result<Page<Entry<T>>>> {
        let store = self.store.clone();
        match self.listing() {
            Ok((listing, start)) => typed(store, listing.raw_pages(start), load),
            Err(e) => stream::once(async move { Err(e) }).boxed(),
        }
    }

    listing_methods!();
}

/// The filter with placeholders (items being deleted) and expired items
/// (`#[vhs(ttl)]`) left out.
fn live_only(filter: Option<Condition>, ttl: Option<&str>) -> Condition {
    let mut live = Condition::not_exists(PLACEHOLDER);
    if ttl.is_some() {
        live = live.and(crate::ttl::unexpired_condition(crate::ttl::now_secs()));
    }
    match filter {
        Some(f) => live.and(f),
        None => live,
    }
}

/// The output model must read the same table, with the same keys.
fn check_output<T: Model>(schema: &Schema, store: &Store, table: &str) -> Result<()> {
    let out = T::SCHEMA;
    let same_keys = out.hash_key.name == schema.hash_key.name
        && out.range_key.map(|r| r.name) == schema.range_key.map(|r| r.name);
    if store.table_name::<T>() != table || !same_keys {
        return Err(Error::invalid(format!(
            "`select` needs a model of the same table (`{table}`) with the same keys; `{}` has table `{}`",
            std::any::type_name::<T>(),
            store.table_name::<T>()
        )));
    }
    Ok(())
}

/// A scan being built; see [`Store::scan`]. Run it like a [`QueryBuilder`].
#[must_use = "a scan does nothing until its stream is polled"]
pub struct ScanBuilder<T> {
    store: Store,
    schema: Schema,
    table: String,
    filter: Option<Condition>,
    projection: Option<Vec<String>>,
    segments: u32,
    page_size: Option<usize>,
    start: Option<Cursor>,
    consistent: bool,
    _out: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for ScanBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScanBuilder")
            .field("table", &self.table)
            .field("filter", &self.filter)
            .field("segments", &self.segments)
            .finish_non_exhaustive()
    }
}

impl<T: Model> ScanBuilder<T> {
    /// Reads the table as `n` segments at once (DynamoDB's parallel scan),
    /// their pages merged as they come. Page cursors then resume their own
    /// segment only, so [`ScanBuilder::start_after`] needs one segment.
    pub fn segments(mut self, n: u32) -> Self {
        self.segments = n.max(1);
        self
    }

    /// Returns `V`s instead (see [`QueryBuilder::select`]).
    pub fn select<V: Model>(self) -> ScanBuilder<V> {
        ScanBuilder {
            store: self.store,
            schema: self.schema,
            table: self.table,
            filter: self.filter,
            projection: Some(projection_of(&V::SCHEMA)),
            segments: self.segments,
            page_size: self.page_size,
            start: self.start,
            consistent: self.consistent,
            _out: PhantomData,
        }
    }

    fn run(self, load: bool) -> BoxStream<'static, Result<Page<Entry<T>>>> {
        let store = self.store.clone();
        let listings = check_output::<T>(&self.schema, &self.store, &self.table)
            .and_then(|()| self.segment_listings());
        match listings {
            Ok((listings, start)) => {
                let streams: Vec<_> = listings
                    .into_iter()
                    .map(|l| typed(store.clone(), l.raw_pages(start.clone()), load))
                    .collect();
                stream::select_all(streams).boxed()
            }
            Err(e) => stream::once(async move { Err(e) }).boxed(),
        }
    }

    /// One listing per segment, and the key to start after: the filter
    /// checked, placeholders filtered out, the scan's projection kept.
    fn segment_listings(self) -> Result<(Vec<Listing>, Option<Item>)> {
        if let Some(f) = &self.filter {
            f.check()?;
        }
        if self.start.is_some() && self.segments > 1 {
            return Err(Error::invalid(
                "`start_after` resumes one segment: scan with one segment",
            ));
        }
        let mut keys = vec![self.schema.hash_key.name];
        keys.extend(self.schema.range_key.map(|r| r.name));
        let filter = live_only(self.filter, self.schema.ttl);
        let total = self.segments;
        let listings = (0..total)
            .map(|segment| Listing {
                store: self.store.clone(),
                request: Request::Scan(Box::new(Scan {
                    segment: (total > 1).then_some((segment, total)),
                    filter: Some(filter.clone()),
                    projection: self.projection.clone(),
                    consistent: self.consistent,
                    ..Scan::new(&self.table)
                })),
                keys: keys.clone(),
                limit: None,
                page_size: self.page_size,
                model: TypeId::of::<T>(),
                full_items: false,
                table_keys: keys.len(),
                ttl: self.schema.ttl,
            })
            .collect();
        Ok((listings, self.start.map(|c| c.0)))
    }

    listing_methods!();
}

// `count()`: the calls engineer's block.
impl<T: Model> QueryBuilder<T> {
    /// The number of items the query returns (with its filter, range
    /// condition and `limit`), reading every page: the items are read with a
    /// projection of their keys only (no other attribute, no large value), and
    /// items being deleted (placeholders) are left out as [`items`](Self::items)
    /// leaves them out.
    pub async fn count(mut self) -> Result<usize> {
        self.projection = Some(count_projection(&self.schema));
        let (listing, start) = self.listing()?;
        count_pages(listing.raw_pages(start)).await
    }
}

impl<T: Model> ScanBuilder<T> {
    /// The number of items the scan returns (with its filter), reading every
    /// page of every segment, keys only; placeholders left out as
    /// [`items`](Self::items) leaves them out.
    pub async fn count(mut self) -> Result<usize> {
        self.projection = Some(count_projection(&self.schema));
        let (listings, start) = self.segment_listings()?;
        let counts = listings
            .into_iter()
            .map(|l| count_pages(l.raw_pages(start.clone())));
        Ok(futures_util::future::try_join_all(counts)
            .await?
            .into_iter()
            .sum())
    }
}

/// What a count reads of each item: its keys, the placeholder mark and the
/// expiry (so placeholders and expired items are left out however the filter
/// ran).
fn count_projection(schema: &Schema) -> Vec<String> {
    std::iter::once(schema.hash_key.name)
        .chain(schema.range_key.map(|r| r.name))
        .chain([PLACEHOLDER, crate::protocol::item::EXPIRES])
        .map(str::to_owned)
        .collect()
}

async fn count_pages(pages: BoxStream<'static, Result<Page<Item>>>) -> Result<usize> {
    pages
        .try_fold(0, |n, p| async move { Ok(n + p.items.len()) })
        .await
}
