//! The [`Store`]: transactional and step-by-step operations over a backend.
//!
//! Each operation reads in one file, with the types it returns beside it:
//! `create`, `read`, `update`, `delete`, and `staged` (the step-by-step API). The
//! rules they follow to never delete a referenced object are in
//! [`protocol`](crate::protocol). The store is built in `builder`; `upload`
//! plans how a write's large values are stored and drives the write;
//! `pointer` checks a pointer before it is followed.

mod batch;
mod bookkeeping;
mod builder;
mod calls;
mod create;
mod delete;
mod janitor;
mod limit;
pub(crate) mod metered;
mod pointer;
mod presigned;
mod query;
mod read;
mod staged;
mod tags;
#[cfg(test)]
mod testing;
mod trace;
mod transact;
mod transfer;
mod update;
mod upload;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use tracing::field::Empty;

use bookkeeping::check_item_size;
pub(crate) use bookkeeping::{
    new_token, next_version, number_attr, record_values, version_read, warn_leftovers,
    READ_RACE_LOST, READ_RACE_RETRIES,
};
pub use builder::{Options, StoreBuilder};
pub use calls::Put;
pub use delete::{Deleted, Precondition};
pub(crate) use pointer::{checked, dangling, encoding_in_key};
pub use presigned::{
    UploadSpec, UploadTicket, COMMIT_BY_METADATA, MAX_UPLOAD_EXPIRY, MIN_UPLOAD_SECRET_BYTES,
    UPLOAD_COMMIT_MARGIN,
};
pub use query::{Cursor, ItemFailure, Page, QueryBuilder, ScanBuilder};
pub(crate) use read::Bodies;
pub use read::Stored;
pub use staged::{Staged, StagedAttr, StagedObject, UpdateFragment};
pub use tags::{TagContext, ATTR_TAG, STORAGE_CLASSES, TABLE_TAG};
pub use transact::{Commit, Transaction};
pub(crate) use transfer::ObjectPut;
pub use update::Updated;
pub(crate) use upload::{Puts, Upload};

use crate::backend::{Backend, BackendExt as _, TableSpec};
use crate::cache::ReadCache;
use crate::checksum::Checksum;
use crate::error::{Error, Result};
use crate::layout::{normalize_prefix, object_id, Pointer};
use crate::model::{Key, Model};
use crate::protocol::clock::Settings;
use crate::protocol::engine::Env;
use crate::protocol::item::Target;
pub(crate) use crate::protocol::machine::UploadOrder;
pub use crate::protocol::Cleanup;
pub(crate) use crate::protocol::Tally;
use crate::retry::RetryPolicy;
pub use janitor::Background;
use janitor::Janitor;
pub(crate) use trace::traced;

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
    /// Object tagging ([`StoreBuilder::tag_objects`]); `None`: no tags.
    tagging: Option<tags::TagFn>,
    /// The key presigned uploads' tickets are signed with
    /// ([`StoreBuilder::upload_secret`]).
    upload_secret: Option<Vec<u8>>,
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

/// Whether two prefixes overlap: equal, or one a path prefix of the other.
fn nested(a: &str, b: &str) -> bool {
    let inside = |outer: &str, inner: &str| {
        outer.is_empty() || inner == outer || inner.starts_with(&format!("{outer}/"))
    };
    inside(a, b) || inside(b, a)
}

impl Store {
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
    /// error: DynamoDB creates those with the table only. A model with a
    /// `#[vhs(ttl)]` attribute gets DynamoDB's time to live enabled on it.
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
            // DynamoDB's reaper reads `vhs:ttl`, which commits set after the
            // expiry (`vhs:exp`), once nothing deleting can be in flight.
            time_to_live: schema.ttl.map(|_| crate::TTL_ATTRIBUTE.to_owned()),
        };
        self.ensure_table_spec(&spec).await
    }

    /// Creates a table from its [`TableSpec`] (keys, indexes, stream,
    /// point-in-time recovery, time to live), or brings an existing one up to
    /// it: adds the global indexes, the stream, the point-in-time recovery and
    /// the time to live it lacks (an attribute that already has it is left as
    /// it is), and
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
            if let Some(attr) = &spec.time_to_live {
                self.enable_time_to_live(&spec.name, attr).await?;
            }
            let prefix = self.table_prefix(&spec.name)?;
            self.settings_of_prefix(&prefix).await?;
            Ok(())
        })
        .await
    }

    /// Enables DynamoDB's time to live on `attr` of `table`, unless it is
    /// already (DynamoDB refuses to enable it twice). [`Error::InvalidInput`]
    /// if it is enabled on another attribute: a table has one, and changing it
    /// takes disabling it first (which DynamoDB then refuses for an hour).
    async fn enable_time_to_live(&self, table: &str, attr: &str) -> Result<()> {
        match self.inner.backend.describe_time_to_live(table).await? {
            Some(found) if found == attr => Ok(()),
            Some(found) => Err(Error::invalid(format!(
                "table {table} has time to live on attribute `{found}`, not `{attr}`: disable it first (aws dynamodb update-time-to-live)"
            ))),
            None => self.inner.backend.update_time_to_live(table, attr).await,
        }
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
    /// multipart uploads (and expiring noncurrent versions) under the prefix,
    /// and the storage class transitions of [`BucketSpec::transitions`](crate::BucketSpec::transitions).
    /// Idempotent. `spec.name` must be this store's bucket; transitions need a
    /// store that tags objects ([`StoreBuilder::tag_objects`]), and
    /// versioning a noncurrent expiry of at least
    /// [`BucketSpec::PITR_WINDOW_DAYS`](crate::BucketSpec::PITR_WINDOW_DAYS)
    /// ([`BucketSpec::check`](crate::BucketSpec::check)), else
    /// [`Error::InvalidInput`] before anything is sent.
    pub async fn ensure_bucket_with(&self, spec: &crate::backend::BucketSpec) -> Result<()> {
        if spec.name != self.inner.bucket {
            return Err(Error::invalid(format!(
                "bucket spec names {:?}, but this store's bucket is {:?}",
                spec.name, self.inner.bucket
            )));
        }
        self.check_transitions(spec)?;
        spec.check()?;
        let span = tracing::info_span!("ensure_bucket_with", bucket = %spec.name, requests = Empty);
        traced(&span, async {
            self.ensure_bucket().await?;
            self.inner.backend.configure_bucket(spec).await
        })
        .await
    }

    /// The S3 key of a large value of the item with `key` whose stored bytes
    /// (compressed, for an attribute with `compress`) have the checksum
    /// `checksum` (in the attribute's algorithm, `#[large(checksum = "...")]`;
    /// [`Error::InvalidInput`] for another).
    pub fn object_key<M: Model>(
        &self,
        key: &Key<M>,
        attr: &str,
        checksum: &Checksum,
    ) -> Result<String> {
        let index = M::SCHEMA.require_large(attr)?;
        let algorithm = M::SCHEMA.large[index].checksum;
        if checksum.algorithm() != algorithm {
            return Err(Error::invalid(format!(
                "attribute `{attr}` names its objects by {algorithm}, not {}",
                checksum.algorithm()
            )));
        }
        let id = object_id(M::SCHEMA.large[index].compress, checksum);
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
            ttl: M::SCHEMA.ttl,
            describe: key.to_string(),
        })
    }

    fn pointer_to(&self, key: String) -> Pointer {
        Pointer {
            bucket: self.inner.bucket.clone(),
            key,
        }
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
}
