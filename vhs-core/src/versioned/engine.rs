//! The versioned stores' reads and writes, for both layouts: what the public
//! methods in the parent module run inside their spans.

use aws_sdk_dynamodb::types::AttributeValue;
use tracing::Span;

use super::layout::{self, Layout};
use super::{version_of, Versioned, VersionedStore, Written, ID, VALUE, VERSION};
use crate::backend::{BackendExt as _, Query};
use crate::changes::LargeValues;
use crate::condition::ItemUpdate;
use crate::error::{Error, Result};
use crate::maintenance::{display, TableRef};
use crate::model::{Item, Model};
use crate::protocol::decide::Plan;
use crate::protocol::item::{State, Target, PLACEHOLDER};
use crate::store::{
    new_token, next_version, number_attr, record_values, Bodies, Cleanup, Stored, UploadOrder,
    READ_RACE_LOST, READ_RACE_RETRIES,
};

/// How a put treats what is stored.
#[derive(Clone, Copy)]
pub(super) enum Expect {
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

impl<M: Model, L: Layout> VersionedStore<M, L> {
    /// The target of `id` at `version` ([`Error::InvalidInput`] for an empty id).
    pub(super) fn target(&self, id: &str, version: u64) -> Result<Target> {
        if id.is_empty() {
            return Err(Error::invalid(
                "the id is empty; DynamoDB key strings must be non-empty",
            ));
        }
        Ok(layout::target_of::<L>(
            &self.table,
            self.store.bucket(),
            &self.prefix,
            M::SCHEMA.large.iter().map(|a| a.name).collect(),
            id,
            version,
        ))
    }

    /// This table for [`Store::gc`](crate::Store::gc) and
    /// [`Store::verify`](crate::Store::verify).
    pub(super) fn table_ref(&self) -> TableRef {
        let (table, prefix) = (self.table.clone(), self.prefix.clone());
        let bucket = self.store.bucket().to_owned();
        let large: Vec<&'static str> = M::SCHEMA.large.iter().map(|a| a.name).collect();
        TableRef {
            table: self.table.clone(),
            prefix: self.prefix.clone(),
            large: large.clone(),
            keys: (ID, layout::range_attr::<L>()),
            target_of: Box::new(move |k| {
                let version = match (L::MULTI, &k.range) {
                    (true, Some(v)) => v.parse::<u64>().ok()?,
                    (false, None) => 0,
                    _ => return None,
                };
                Some(layout::target_of::<L>(
                    &table,
                    &bucket,
                    &prefix,
                    large.clone(),
                    &k.hash,
                    version,
                ))
            }),
            describe: Box::new(move |item| {
                let id = display(item.get(ID));
                if L::MULTI {
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
    pub(super) async fn read(&self, item: Item, bodies: Option<&Bodies>) -> Result<Versioned<M>> {
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
        if !L::MULTI {
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

    /// The newest version ([`Error::NoVersionExists`] if there is none).
    pub(super) async fn latest(&self, id: &str) -> Result<Versioned<M>> {
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
            .get_item(&self.table, &layout::key::<L>(id, version), true)
            .await?;
        Ok(State::of(item).wrote(token))
    }

    /// One put attempt of `value` at `version` under `expect`, with `token`;
    /// `known`: the envelope the caller just read (single-version), if it did.
    pub(super) async fn put_once(
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
            _ if L::MULTI => UploadOrder::Unread,
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
                            Expect::Exactly(Some(_)) if !L::MULTI => Plan::Fail(conflict(None)),
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
                        _ if L::MULTI => false,
                        Expect::Lower => found.is_some_and(|f| f < version),
                        Expect::Exactly(expected) => expected.is_some() && found == expected,
                    };
                    if !replace {
                        return Plan::Fail(conflict(if L::MULTI { Some(version) } else { found }));
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
    pub(super) async fn update_retrying<F, I>(
        &self,
        id: &str,
        f: &mut F,
        mut init: Option<&mut I>,
    ) -> Result<Written>
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

    /// `put_latest_once` until it succeeds, with the retry policy.
    pub(super) async fn put_latest_retrying(&self, id: &str, value: &M) -> Result<Written> {
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

    /// Deletes `version` of `id` if it is stored; [`Error::NotFound`] otherwise.
    pub(super) async fn delete_one(&self, id: &str, version: u64) -> Result<Cleanup> {
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
