//! Paging: the requests a query or scan sends, each page's items typed and loaded.

use std::any::TypeId;

use aws_sdk_dynamodb::types::AttributeValue;
use futures_util::stream::{self, BoxStream, Stream, StreamExt, TryStreamExt};
use tracing::field::Empty;
use tracing::Span;

use crate::backend::BackendExt as _;
use crate::backend::{Query, Scan};
use crate::error::{Error, Result};
use crate::model::{Item, Model};
use crate::protocol::item::PLACEHOLDER;
use crate::store::{traced, Store, Stored};

use super::{Cursor, Entry, ItemFailure, Page};

/// A request to list: what varies between a query and a scan.
#[derive(Clone)]
pub(super) enum Request {
    Query(Box<Query>),
    Scan(Box<Scan>),
}

/// A listing ready to run: the request, the key attributes a cursor holds, the
/// most items to return.
#[derive(Clone)]
pub(super) struct Listing {
    pub(super) store: Store,
    pub(super) request: Request,
    pub(super) keys: Vec<&'static str>,
    pub(super) limit: Option<usize>,
    pub(super) page_size: Option<usize>,
    /// The model returned, whose page TTL applies in the read cache.
    pub(super) model: TypeId,
    /// The index read holds only some attributes: each page's items are read
    /// from the table (BatchGetItem) by their keys, the first `table_keys`
    /// of `keys`.
    pub(super) full_items: bool,
    pub(super) table_keys: usize,
    /// The model's `#[vhs(ttl)]` attribute: items expired when a page
    /// arrives are left out (the filter judged them when the request was
    /// built).
    pub(super) ttl: Option<&'static str>,
}

impl Listing {
    /// The pages as stored items, placeholders left out, empty pages skipped.
    pub(super) fn raw_pages(self, start: Option<Item>) -> BoxStream<'static, Result<Page<Item>>> {
        let state = (self, start, false);
        stream::try_unfold(state, |(listing, mut start, done)| async move {
            if done || listing.limit == Some(0) {
                return Ok(None);
            }
            let mut listing = listing;
            loop {
                let span = listing.page_span();
                let mut page = traced(&span, async {
                    let mut page = listing.fetch(start.clone()).await?;
                    if listing.full_items {
                        page.items = listing.full(page.items).await?;
                    }
                    Ok::<_, Error>(page)
                })
                .await?;
                span.record("items", page.items.len());
                let expiring = listing.ttl.is_some();
                let absent = |i: &Item| {
                    i.contains_key(PLACEHOLDER) || (expiring && crate::ttl::is_expired(i))
                };
                page.items.retain(|i| !absent(i));
                let mut cursor = page.last_key.take().map(Cursor);
                let mut done = false;
                if let Some(limit) = listing.limit {
                    if page.items.len() > limit {
                        page.items.truncate(limit);
                        cursor = page.items.last().map(|i| listing.cursor_of(i));
                    }
                    let left = limit - page.items.len();
                    listing.limit = Some(left);
                    done = left == 0;
                }
                let next = cursor.as_ref().map(|c| c.0.clone());
                done |= next.is_none();
                if page.items.is_empty() && !done {
                    start = next;
                    continue;
                }
                let out = Page {
                    items: page.items,
                    failed: Vec::new(),
                    cursor,
                };
                return Ok(Some((out, (listing, next, done))));
            }
        })
        .boxed()
    }

    /// The span of one page fetch: `query` or `scan`, its table (and index or
    /// segment), the items read and the requests made.
    fn page_span(&self) -> Span {
        match &self.request {
            Request::Query(q) => tracing::info_span!(
                "query",
                table = %q.table,
                index = q.index.as_deref(),
                items = Empty,
                requests = Empty,
            ),
            Request::Scan(s) => tracing::info_span!(
                "scan",
                table = %s.table,
                segment = s.segment.map(|(segment, _)| segment),
                items = Empty,
                requests = Empty,
            ),
        }
    }

    /// The items of the table with the keys of `items` (as an index holding
    /// some attributes returned them), in the same order; an item deleted
    /// since is left out.
    async fn full(&self, items: Vec<Item>) -> Result<Vec<Item>> {
        let table = match &self.request {
            Request::Query(q) => &q.table,
            Request::Scan(s) => &s.table,
        };
        let key_of = |item: &Item| -> Vec<(String, String)> {
            self.keys[..self.table_keys]
                .iter()
                .map(|k| ((*k).to_owned(), format!("{:?}", item.get(*k))))
                .collect()
        };
        let keys: Vec<Item> = items
            .iter()
            .map(|i| {
                self.keys[..self.table_keys]
                    .iter()
                    .filter_map(|k| Some(((*k).to_owned(), i.get(*k)?.clone())))
                    .collect()
            })
            .collect();
        let reads: Vec<_> = keys
            .chunks(crate::backend::MAX_BATCH_GET)
            .map(|chunk| self.store.batch_get_all(table, chunk.to_vec(), false))
            .collect();
        let mut found = std::collections::HashMap::new();
        for chunk in futures_util::future::try_join_all(reads).await? {
            for item in chunk {
                found.insert(key_of(&item), item);
            }
        }
        Ok(items
            .iter()
            .filter_map(|i| found.remove(&key_of(i)))
            .collect())
    }

    fn cursor_of(&self, item: &Item) -> Cursor {
        Cursor(
            self.keys
                .iter()
                .filter_map(|k| Some(((*k).to_owned(), item.get(*k)?.clone())))
                .collect(),
        )
    }

    async fn fetch(&self, start: Option<Item>) -> Result<crate::backend::QueryPage> {
        let page = match (self.limit, self.page_size) {
            (Some(l), Some(p)) => Some(l.min(p)),
            (l, p) => l.or(p),
        };
        let (table, consistent) = match &self.request {
            Request::Query(q) => (&q.table, q.consistent),
            Request::Scan(s) => (&s.table, s.consistent),
        };
        let cache = self.store.cache().filter(|_| !consistent);
        // Taken before the read (see `ReadCache`).
        let cached = cache.map(|c| {
            let generation = c.generation(table);
            let request = self.canonical(start.as_ref(), page);
            (c, generation, request)
        });
        if let Some((c, generation, request)) = &cached {
            if let Some(hit) = c.page(table, *generation, request) {
                return Ok(hit);
            }
        }
        let fetched = match &self.request {
            Request::Query(q) => {
                let q = Query {
                    start,
                    limit: page,
                    ..Query::clone(q)
                };
                self.store.backend().query(&q).await?
            }
            Request::Scan(s) => {
                let s = Scan {
                    start,
                    limit: page,
                    ..Scan::clone(s)
                };
                self.store.backend().scan(&s).await?
            }
        };
        if let Some((c, generation, request)) = cached {
            c.put_page(self.model, table, generation, &request, fetched.clone());
        }
        Ok(fetched)
    }

    /// Every argument of one request, in a canonical form: the page cache key.
    fn canonical(&self, start: Option<&Item>, limit: Option<usize>) -> String {
        let mut start: Vec<(&String, &AttributeValue)> = start.into_iter().flatten().collect();
        start.sort_by(|a, b| a.0.cmp(b.0));
        let request = match &self.request {
            Request::Query(q) => format!(
                "query {:?} {:?} {:?} {:?} {:?} {}",
                q.index, q.hash_key, q.range, q.filter, q.projection, q.descending
            ),
            Request::Scan(s) => format!("scan {:?} {:?} {:?}", s.segment, s.filter, s.projection),
        };
        format!(
            "{request} limit {limit:?} start {start:?} model {:?}",
            self.model
        )
    }
}

/// Turns pages of stored items into pages of `T`, stored or loaded, each item
/// on its own: one that fails to decode or load is an [`ItemFailure`] in its
/// place, and the page goes on.
pub(super) fn typed<T: Model>(
    store: Store,
    pages: BoxStream<'static, Result<Page<Item>>>,
    load: bool,
) -> BoxStream<'static, Result<Page<Entry<T>>>> {
    pages
        .and_then(move |page| {
            let store = store.clone();
            async move {
                let entries: Vec<Entry<T>> = page
                    .items
                    .into_iter()
                    .map(|item| {
                        let key = describe_item::<T>(&item);
                        Stored::from_item(item)
                            .map_err(|error| Box::new(ItemFailure { key, error }))
                    })
                    .collect();
                let entries = if load {
                    store.load_many(entries).await
                } else {
                    entries
                };
                Ok(Page {
                    items: entries,
                    failed: Vec::new(),
                    cursor: page.cursor,
                })
            }
        })
        .boxed()
}

/// An item's key as errors write it, from the raw item (its key attributes).
fn describe_item<T: Model>(item: &Item) -> String {
    let part = |name: &str| match item.get(name) {
        Some(AttributeValue::S(s)) => format!("{name}={s:?}"),
        Some(AttributeValue::N(n)) => format!("{name}={n}"),
        Some(other) => format!("{name}={other:?}"),
        None => format!("{name}=?"),
    };
    let schema = T::SCHEMA;
    match schema.range_key {
        Some(range) => format!("{}, {}", part(schema.hash_key.name), part(range.name)),
        None => part(schema.hash_key.name),
    }
}

/// Splits a page of entries into its items and its failures.
pub(super) fn split<T>(page: Page<Entry<T>>) -> Page<Stored<T>> {
    let mut items = Vec::with_capacity(page.items.len());
    let mut failed = page.failed;
    for entry in page.items {
        match entry {
            Ok(stored) => items.push(stored),
            Err(failure) => failed.push(*failure),
        }
    }
    Page {
        items,
        failed,
        cursor: page.cursor,
    }
}

/// The items of pages of entries, in order: a failed item is its error, and
/// the stream goes on after it; a failed request ends it.
pub(super) fn entries<T: Send + 'static>(
    pages: impl Stream<Item = Result<Page<Entry<T>>>> + Send + 'static,
) -> impl Stream<Item = Result<Stored<T>>> + Send + 'static {
    pages
        .map_ok(|p| stream::iter(p.items.into_iter().map(|e| e.map_err(|f| f.error)).map(Ok)))
        .try_flatten()
        .map(|r| r.and_then(|r| r))
}

impl Store {
    /// Loads every large value of each item, [`Options::max_concurrency`]
    /// items at once, each as [`Store::get_large`] does (checksum checked, a read
    /// that loses a race to a replacing write reads the item again, and leaves
    /// it out if a delete won).
    ///
    /// [`Options::max_concurrency`]: crate::Options::max_concurrency
    async fn load_many<T: Model>(&self, entries: Vec<Entry<T>>) -> Vec<Entry<T>> {
        let span = tracing::info_span!(
            "load_many",
            table = self.table_name::<T>(),
            items = entries.len(),
            requests = Empty,
        );
        traced(&span, self.load_each(entries)).await
    }

    async fn load_each<T: Model>(&self, entries: Vec<Entry<T>>) -> Vec<Entry<T>> {
        let loads: Vec<_> = entries
            .into_iter()
            .map(|entry| async move {
                let s = entry?;
                let key = s.model.primary_key();
                let (pointers, inline) = (s.pointers.clone(), s.inline.clone());
                match self.load_read(&key, s).await {
                    Ok(model) => Ok(Some(Stored {
                        model,
                        pointers,
                        inline,
                    })),
                    // Deleted after the listing read it.
                    Err(Error::NotFound { .. }) => Ok(None),
                    Err(error) => Err(Box::new(ItemFailure {
                        key: key.to_string(),
                        error,
                    })),
                }
            })
            .collect();
        let loaded: Vec<std::result::Result<Option<Stored<T>>, Box<ItemFailure>>> =
            stream::iter(loads)
                .buffered(self.options().max_concurrency)
                .collect()
                .await;
        loaded.into_iter().filter_map(|e| e.transpose()).collect()
    }
}
