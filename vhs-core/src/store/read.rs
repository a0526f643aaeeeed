//! Reads: the item, then its objects.

use aws_sdk_dynamodb::types::AttributeValue;
use bytes::Bytes;
use futures_util::stream::{self, StreamExt};

use std::collections::HashMap;

use tracing::field::Empty;

use super::{encoding_in_key, traced, Store, READ_RACE_LOST, READ_RACE_RETRIES};
use crate::backend::BackendExt as _;
use crate::backend::MAX_BATCH_GET;
use crate::error::{Error, Result};
use crate::model::{Item, Key, Model};
use crate::protocol::item::{State, Target};
use crate::retry::RetryPolicy;

/// An item as stored: its ordinary fields loaded, its large fields `None`, and
/// what its large attributes hold: pointers to objects, or values kept in the
/// item (`#[large(inline_below = N)]`). Load chosen values with [`Store::load`].
#[derive(Debug, Clone)]
pub struct Stored<M> {
    /// The model with every large field `None`.
    pub model: M,
    /// Large attribute name → the `s3://` URI it holds, for attributes that
    /// point to an object.
    pub pointers: Vec<(&'static str, String)>,
    /// Large attribute name → its value, for attributes whose value is kept in
    /// the item (a binary attribute).
    pub inline: Vec<(&'static str, Bytes)>,
}

impl<M: Model> Stored<M> {
    /// Splits a raw item into its model, its pointers and its inline values.
    pub fn from_item(item: Item) -> Result<Self> {
        let mut pointers = Vec::new();
        let mut inline = Vec::new();
        for a in M::SCHEMA.large {
            match item.get(a.name) {
                None => {}
                Some(AttributeValue::B(blob)) => {
                    inline.push((a.name, Bytes::copy_from_slice(blob.as_ref())));
                }
                Some(AttributeValue::S(uri)) => pointers.push((a.name, uri.clone())),
                // Not a pointer: reported as a bad one when it is loaded.
                Some(other) => pointers.push((a.name, format!("{other:?}"))),
            }
        }
        Ok(Stored {
            model: M::from_item(item)?,
            pointers,
            inline,
        })
    }

    /// The value a large attribute holds in the item, if it is kept there.
    pub fn inline_value(&self, attr: &str) -> Option<&Bytes> {
        self.inline
            .iter()
            .find(|(a, _)| *a == attr)
            .map(|(_, bytes)| bytes)
    }

    /// The URI a large attribute holds, if present.
    pub fn pointer(&self, attr: &str) -> Option<&str> {
        self.pointers
            .iter()
            .find(|(a, _)| *a == attr)
            .map(|(_, uri)| uri.as_str())
    }
}

/// Object bodies already fetched and checked, by key. A key names its content
/// (its checksum is in it), so a body found here is the object's for as long as
/// the object exists: a read-modify-write that starts over after a conflict
/// downloads only the values that changed.
pub(crate) type Bodies = std::sync::Mutex<HashMap<String, Bytes>>;

impl Store {
    /// Reads an item and every large value (eventually consistent read).
    ///
    /// Each body's checksum (in its key's algorithm) is checked against its key ([`Error::Integrity`]); a missing
    /// object is [`Error::DanglingPointer`], distinct from [`Error::NotFound`]. A
    /// placeholder left by a delete, and an item whose `#[vhs(ttl)]` has passed
    /// (not yet removed by DynamoDB), are [`Error::NotFound`].
    pub async fn get_large<M: Model>(&self, key: &Key<M>) -> Result<M> {
        let span = tracing::info_span!(
            "get_large",
            table = self.table_name::<M>(),
            key = %key,
            consistent = false,
            requests = Empty,
        );
        traced(&span, self.read(key, false)).await
    }

    /// [`Store::get_large`] with a strongly consistent read of the item.
    pub async fn get_large_consistent<M: Model>(&self, key: &Key<M>) -> Result<M> {
        let span = tracing::info_span!(
            "get_large",
            table = self.table_name::<M>(),
            key = %key,
            consistent = true,
            requests = Empty,
        );
        traced(&span, self.read(key, true)).await
    }

    async fn read<M: Model>(&self, key: &Key<M>, consistent: bool) -> Result<M> {
        let stored = match self.cache() {
            None => self.read_stored(key, consistent).await?,
            Some(cache) => {
                let target = self.target(key)?;
                // Taken before the read: a write that returns meanwhile moves
                // it on, and what this read stores is never served.
                let generation = cache.generation(&target.table);
                let cached = (!consistent)
                    .then(|| cache.item(&target.table, generation, &target.describe))
                    .flatten();
                let item = match cached {
                    Some(item) => item,
                    None => match State::of(
                        self.backend()
                            .get_item(&target.table, &target.key, consistent)
                            .await?,
                    ) {
                        State::Live(item) => {
                            cache.put_item::<M>(
                                &target.table,
                                generation,
                                &target.describe,
                                item.clone(),
                            );
                            item
                        }
                        _ => return Err(target.not_found()),
                    },
                };
                // An expired item is absent, also when it was cached before
                // it expired.
                if crate::ttl::is_expired(&item) {
                    return Err(target.not_found());
                }
                Stored::from_item(item)?
            }
        };
        self.load_read(key, stored).await
    }

    /// Loads every large value of an item read for `key`.
    pub(crate) async fn load_read<M: Model>(
        &self,
        key: &Key<M>,
        mut stored: Stored<M>,
    ) -> Result<M> {
        let target = self.target(key)?;
        // A concurrent update may replace the item and delete the objects we were
        // about to read: a pointer that changed meanwhile is a race to read again,
        // one that did not is a dangling pointer. Losing every race is `Busy`.
        for _ in 0..=READ_RACE_RETRIES {
            match self.load_all(&target, &mut stored).await {
                Err(Error::DanglingPointer { attr, uri }) => {
                    let now = self.read_stored(key, true).await?;
                    if now.pointer(&attr) == Some(uri.as_str()) {
                        return Err(Error::DanglingPointer { attr, uri });
                    }
                    stored = now;
                }
                other => return other.map(|()| stored.model),
            }
        }
        Err(self.target(key)?.busy(READ_RACE_LOST))
    }

    /// Reads many items and every large value of each, in the order of `keys`
    /// (`None` for an item that does not exist): BatchGetItem in chunks of 100
    /// (chunks concurrent, keys the service left unprocessed asked again with
    /// backoff), then the objects, [`Options::max_concurrency`](crate::Options::max_concurrency)
    /// items at once, each checked as [`Store::get_large`] checks it. Eventually
    /// consistent, like `get_large`. A key given twice is batched once, and its
    /// later copies are read again with `get_large` (`M` need not be `Clone`).
    pub async fn batch_get_large<M: Model>(&self, keys: &[Key<M>]) -> Result<Vec<Option<M>>> {
        let span = tracing::info_span!(
            "batch_get_large",
            table = self.table_name::<M>(),
            items = keys.len(),
            requests = Empty,
        );
        traced(&span, self.batch_get(keys)).await
    }

    async fn batch_get<M: Model>(&self, keys: &[Key<M>]) -> Result<Vec<Option<M>>> {
        let table = self.table_name::<M>().to_owned();
        let mut targets = Vec::with_capacity(keys.len());
        for key in keys {
            key.validate()?;
            targets.push(self.target(key)?);
        }
        // Distinct keys, in first-seen order.
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut distinct = Vec::new();
        let slots: Vec<usize> = targets
            .iter()
            .enumerate()
            .map(|(i, t)| {
                *index.entry(t.describe.clone()).or_insert_with(|| {
                    distinct.push(i);
                    distinct.len() - 1
                })
            })
            .collect();
        let chunks: Vec<Vec<Item>> = distinct
            .chunks(MAX_BATCH_GET)
            .map(|c| c.iter().map(|&i| targets[i].key.clone()).collect())
            .collect();
        let fetches: Vec<_> = chunks
            .into_iter()
            .map(|keys| self.batch_get_all(&table, keys, false))
            .collect();
        let pages: Vec<Result<Vec<Item>>> = stream::iter(fetches)
            .buffer_unordered(self.options().max_concurrency)
            .collect()
            .await;
        // Found items by key.
        let mut found: HashMap<String, Item> = HashMap::new();
        for page in pages {
            for item in page? {
                if let State::Live(item) = State::of(Some(item)) {
                    if crate::ttl::is_expired(&item) {
                        continue;
                    }
                    let stored = Stored::<M>::from_item(item.clone())?;
                    let target = self.target(&stored.model.primary_key())?;
                    found.insert(target.describe, item);
                }
            }
        }
        let loads: Vec<_> = distinct
            .iter()
            .map(|&i| {
                let item = found.remove(&targets[i].describe);
                let key = &keys[i];
                async move {
                    match item {
                        None => Ok(None),
                        Some(item) => self
                            .load_read(key, Stored::from_item(item)?)
                            .await
                            .map(Some),
                    }
                }
            })
            .collect();
        let mut loaded: Vec<Option<M>> = stream::iter(loads)
            .buffered(self.options().max_concurrency)
            .collect::<Vec<Result<Option<M>>>>()
            .await
            .into_iter()
            .collect::<Result<_>>()?;
        // Each distinct item once; a key given twice gets the first one's value
        // and later ones a fresh read of their own.
        let mut out: Vec<Option<M>> = Vec::with_capacity(keys.len());
        let mut used = vec![false; loaded.len()];
        for (i, slot) in slots.into_iter().enumerate() {
            if !used[slot] {
                used[slot] = true;
                out.push(loaded[slot].take());
            } else {
                out.push(match self.get_large(&keys[i]).await {
                    Ok(m) => Some(m),
                    Err(Error::NotFound { .. }) => None,
                    Err(e) => return Err(e),
                });
            }
        }
        Ok(out)
    }

    /// One BatchGetItem chunk (`consistent`: strongly consistent reads), its
    /// unprocessed keys asked again with backoff until none is left.
    pub(crate) async fn batch_get_all(
        &self,
        table: &str,
        mut keys: Vec<Item>,
        consistent: bool,
    ) -> Result<Vec<Item>> {
        let policy = RetryPolicy::attempts(20).delays(
            std::time::Duration::from_millis(20),
            std::time::Duration::from_secs(2),
        );
        let mut items = Vec::new();
        let mut attempt = 1;
        loop {
            let page = self
                .backend()
                .batch_get_item(table, &keys, consistent)
                .await?;
            items.extend(page.items);
            if page.unprocessed.is_empty() {
                return Ok(items);
            }
            // Progress resets the backoff; only a run of empty answers gives up.
            if page.unprocessed.len() < keys.len() {
                attempt = 1;
            }
            keys = page.unprocessed;
            if !policy.pause(attempt).await {
                return Err(Error::backend(
                    "dynamodb",
                    "BatchGetItem",
                    true,
                    format!(
                        "{} keys still unprocessed after {attempt} attempts",
                        keys.len()
                    ),
                ));
            }
            attempt += 1;
        }
    }

    /// Loads every large attribute the item of `target` holds.
    pub(crate) async fn load_all<M: Model>(
        &self,
        target: &Target,
        stored: &mut Stored<M>,
    ) -> Result<()> {
        self.load_all_with(target, stored, None).await
    }

    /// [`Store::load_all`], taking the bodies of objects already fetched from
    /// `bodies` and keeping those it fetches there.
    pub(crate) async fn load_all_with<M: Model>(
        &self,
        target: &Target,
        stored: &mut Stored<M>,
        bodies: Option<&Bodies>,
    ) -> Result<()> {
        let all: Vec<&str> = (stored.pointers.iter().map(|(a, _)| *a))
            .chain(stored.inline.iter().map(|(a, _)| *a))
            .collect();
        self.load_from(target, stored, &all, bodies).await
    }

    /// Reads only the item: ordinary fields and pointers, no object fetched.
    pub async fn get_stored<M: Model>(&self, key: &Key<M>, consistent: bool) -> Result<Stored<M>> {
        let span = tracing::info_span!(
            "get_stored",
            table = self.table_name::<M>(),
            key = %key,
            consistent,
            requests = Empty,
        );
        traced(&span, self.read_stored(key, consistent)).await
    }

    /// [`Store::get_stored`], for the store's own reads (no span of its own).
    pub(crate) async fn read_stored<M: Model>(
        &self,
        key: &Key<M>,
        consistent: bool,
    ) -> Result<Stored<M>> {
        let target = self.target(key)?;
        match State::of(
            self.backend()
                .get_item(&target.table, &target.key, consistent)
                .await?,
        ) {
            State::Live(item) if !crate::ttl::is_expired(&item) => Stored::from_item(item),
            _ => Err(target.not_found()),
        }
    }

    /// Fetches the named large attributes of a stored item into its model,
    /// concurrently, each checked like [`Store::get_large`] does; values kept in
    /// the item are decoded without a request. Attributes the item does not hold
    /// stay `None`.
    pub async fn load<M: Model>(&self, stored: &mut Stored<M>, attrs: &[&str]) -> Result<()> {
        let span = tracing::info_span!(
            "load",
            table = self.table_name::<M>(),
            attrs = attrs.len(),
            requests = Empty,
        );
        traced(&span, async {
            let target = self.target(&stored.model.primary_key())?;
            self.load_from(&target, stored, attrs, None).await
        })
        .await
    }

    /// [`Store::load`] for the objects of `target`'s item, with the bodies
    /// cache of [`Store::load_all_with`]. A pointer that does not name this
    /// item and its attribute is [`Error::BadPointer`].
    pub(crate) async fn load_from<M: Model>(
        &self,
        target: &Target,
        stored: &mut Stored<M>,
        attrs: &[&str],
        bodies: Option<&Bodies>,
    ) -> Result<()> {
        let mut wanted = Vec::new();
        let mut inline = Vec::new();
        for attr in attrs {
            let index = M::SCHEMA.require_large(attr)?;
            if let Some(uri) = stored.pointer(attr) {
                let attr = M::SCHEMA.large[index].name;
                wanted.push((index, attr, self.check_pointer(target, attr, uri)?));
            } else if let Some(bytes) = stored.inline_value(attr) {
                inline.push((index, bytes.clone()));
            }
        }
        for (index, bytes) in inline {
            stored.model.decode_large(index, bytes)?;
        }
        // Futures built up front (not in a stream combinator's closure), so the
        // caller's future stays provably `Send`.
        let fetches: Vec<_> = wanted
            .into_iter()
            .map(|(index, attr, pointer)| async move {
                // A `Blob` field larger than one download range goes to a
                // temporary file, range by range, never whole in memory.
                if M::SCHEMA.large[index].spool {
                    return Ok((
                        index,
                        Loaded::Blob(self.fetch_to_blob(attr, &pointer).await?),
                    ));
                }
                let key = &pointer.0.key;
                let cached = bodies
                    .and_then(|b| b.lock().ok()?.get(key).cloned())
                    .or_else(|| self.cache()?.body(key));
                let stored = match cached {
                    Some(body) => body,
                    None => {
                        // Checked against the checksum in its key.
                        let body = self.fetch(attr, &pointer).await?;
                        if let Some(mut b) = bodies.and_then(|b| b.lock().ok()) {
                            b.insert(key.clone(), body.clone());
                        }
                        if let Some(cache) = self.cache() {
                            cache.put_body(key, body.clone());
                        }
                        body
                    }
                };
                let value = match encoding_in_key(&pointer.0.key) {
                    Some(encoding) => crate::compress::decompress(stored, encoding).await?,
                    None => stored,
                };
                Ok((index, Loaded::Bytes(value)))
            })
            .collect();
        let fetched: Vec<Result<(usize, Loaded)>> = stream::iter(fetches)
            .buffer_unordered(self.options().max_concurrency)
            .collect()
            .await;
        for f in fetched {
            match f? {
                (index, Loaded::Bytes(bytes)) => stored.model.decode_large(index, bytes)?,
                (index, Loaded::Blob(blob)) => stored.model.decode_large_blob(index, blob)?,
            }
        }
        Ok(())
    }
}

/// A large value fetched: in memory, or a [`Blob`](crate::Blob) that may be
/// held in a temporary file.
enum Loaded {
    Bytes(Bytes),
    Blob(crate::Blob),
}
