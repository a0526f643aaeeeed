//! The arguments and answers of backend calls: table and bucket specs, queries,
//! scans, transaction actions, object uploads and what the services return.

use std::collections::HashMap;
use std::fmt;

use bytes::Bytes;
use futures_util::future::{BoxFuture, FutureExt, Shared};
use tokio::sync::oneshot;

use crate::condition::{Condition, ItemUpdate};
use crate::model::{IndexKind, Item, KeyKind, Projection};

/// How many times a request may be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempts {
    /// As the backend's retry policy says (a timeout or a 5xx is sent again).
    Retried,
    /// Exactly one attempt: once sent, it is never sent again, so it lands at most
    /// once. The deletion protocol relies on this for objects it reserved (see
    /// [`protocol`](crate::protocol)).
    Once,
}

/// Outcome of a conditional write.
#[derive(Debug, Clone, PartialEq)]
pub enum Conditional<T> {
    /// The condition held and the write was applied.
    Applied(T),
    /// The condition did not hold; nothing was written. Holds the item as stored
    /// when the condition was checked (`ReturnValuesOnConditionCheckFailure =
    /// ALL_OLD`), `None` if there was none: what the write lost to, at no extra read.
    Failed(Option<Item>),
}

/// A table's key schema and secondary indexes, for [`ProvisionCalls::create_table`](super::ProvisionCalls::create_table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    /// Table name.
    pub name: String,
    /// Hash key name and type.
    pub hash_key: (String, KeyKind),
    /// Range key name and type, if any.
    pub range_key: Option<(String, KeyKind)>,
    /// Secondary indexes.
    pub indexes: Vec<IndexSpec>,
    /// A DynamoDB stream of `NEW_AND_OLD_IMAGES` (enabled on an existing table
    /// that has none).
    pub streams: bool,
    /// Point-in-time recovery (continuous backups), enabled if asked for.
    pub point_in_time_recovery: bool,
    /// The attribute DynamoDB's time to live reads (a Number of epoch
    /// seconds), enabled on it if set: [`TTL_ATTRIBUTE`](crate::TTL_ATTRIBUTE)
    /// (`vhs:ttl`) for a model with a `#[vhs(ttl)]` field. DescribeTable
    /// reports `None`: it takes another call to read
    /// ([`ProvisionCalls::describe_time_to_live`](super::ProvisionCalls::describe_time_to_live)).
    pub time_to_live: Option<String>,
}

impl TableSpec {
    /// Point-in-time recovery on: the table half of backups that restore
    /// consistently (see [`BucketSpec::backup_consistent`]).
    pub fn backup_consistent(mut self) -> Self {
        self.point_in_time_recovery = true;
        self
    }

    /// A table with a hash key only, no index, no stream, no point-in-time
    /// recovery, no time to live.
    pub fn new(name: impl Into<String>, hash_key: (impl Into<String>, KeyKind)) -> Self {
        TableSpec {
            name: name.into(),
            hash_key: (hash_key.0.into(), hash_key.1),
            range_key: None,
            indexes: Vec::new(),
            streams: false,
            point_in_time_recovery: false,
            time_to_live: None,
        }
    }
}

/// How [`ProvisionCalls::configure_bucket`](super::ProvisionCalls::configure_bucket) sets up a bucket (see
/// [`Store::ensure_bucket_with`](crate::Store::ensure_bucket_with)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketSpec {
    /// Bucket name.
    pub name: String,
    /// The object prefix the lifecycle rule applies to (`""`: the whole bucket).
    pub prefix: String,
    /// Block every form of public access (all four settings of
    /// `PutPublicAccessBlock`).
    pub block_public_access: bool,
    /// Default encryption of new objects: SSE-S3 (`AES256`) with a bucket key.
    pub default_encryption: bool,
    /// A lifecycle rule aborting multipart uploads not completed this many days
    /// after they started (a crashed writer's parts otherwise cost storage
    /// forever).
    pub abort_incomplete_multipart_days: Option<u32>,
    /// In the same lifecycle rule: expire noncurrent object versions this many
    /// days after they became noncurrent. vhs needs versioning only for backups
    /// that restore consistently ([`BucketSpec::versioning`], which wants at
    /// least [`PITR_WINDOW_DAYS`](Self::PITR_WINDOW_DAYS) here); on a bucket
    /// where versioning is on, every object vhs deletes would otherwise stay as
    /// a noncurrent version, billed forever.
    pub noncurrent_version_expiry_days: Option<u32>,
    /// Turn bucket versioning on (PutBucketVersioning `Enabled`; never turned
    /// off by vhs): every object vhs replaces or deletes stays as a noncurrent
    /// version until [`noncurrent_version_expiry_days`](Self::noncurrent_version_expiry_days),
    /// so a table restored to an earlier time can get its objects back
    /// ([`Store::repair_from_versions`](crate::Store::repair_from_versions)).
    /// Set with [`BucketSpec::backup_consistent`]. Default `false`.
    pub versioning: bool,
    /// Lifecycle rules moving one attribute's objects to another storage
    /// class, one rule each (id [`Transition::rule_id`]). They filter by the
    /// object tags `vhs-table` and `vhs-attr`, so the store's writers must tag
    /// objects ([`StoreBuilder::tag_objects`](crate::StoreBuilder::tag_objects)):
    /// [`Store::ensure_bucket_with`](crate::Store::ensure_bucket_with) refuses
    /// them on a store that does not. Empty by default.
    pub transitions: Vec<Transition>,
}

/// A lifecycle rule of a [`BucketSpec`]: objects of one attribute of one table
/// move to `storage_class` `days` after they were written. Built by
/// [`Store::transition`](crate::Store::transition), which checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Transition {
    /// The table (its objects carry `vhs-table={table}`).
    pub table: String,
    /// The table's object prefix (normalized, no trailing `/`).
    pub prefix: String,
    /// The large attribute (its objects carry `vhs-attr={attr}`).
    pub attr: String,
    /// Days after an object was written.
    pub days: u32,
    /// The class it moves to: `STANDARD_IA`, `ONEZONE_IA`,
    /// `INTELLIGENT_TIERING`, `GLACIER_IR`, or `GLACIER` / `DEEP_ARCHIVE`, from
    /// which vhs cannot read the values back without a restore.
    pub storage_class: String,
}

impl Transition {
    /// The lifecycle rule's id: `vhs-transition-{table}-{attr}` (provisioning
    /// again replaces the rule of that id, and leaves others as they are).
    pub fn rule_id(&self) -> String {
        format!("{}{}-{}", Self::RULE_ID_PREFIX, self.table, self.attr)
    }

    /// The beginning of every transition rule's id.
    pub const RULE_ID_PREFIX: &'static str = "vhs-transition-";
}

impl BucketSpec {
    /// The settings `vhs provision` uses: public access blocked, default
    /// encryption, incomplete multipart uploads aborted after 7 days, noncurrent
    /// versions expired after 30 days.
    pub fn new(name: impl Into<String>, prefix: impl Into<String>) -> Self {
        BucketSpec {
            name: name.into(),
            prefix: prefix.into(),
            block_public_access: true,
            default_encryption: true,
            abort_incomplete_multipart_days: Some(7),
            noncurrent_version_expiry_days: Some(30),
            versioning: false,
            transitions: Vec::new(),
        }
    }

    /// Backups that restore consistently: versioning on, and noncurrent
    /// versions kept [`PITR_WINDOW_DAYS`](Self::PITR_WINDOW_DAYS) days (or
    /// longer, if the spec already keeps them longer or forever), as long as
    /// DynamoDB's point-in-time recovery reaches back (pair it with
    /// [`TableSpec::backup_consistent`]). Costs storage: every object replaced
    /// or deleted is kept that long.
    pub fn backup_consistent(mut self) -> Self {
        self.versioning = true;
        if let Some(days) = self.noncurrent_version_expiry_days {
            self.noncurrent_version_expiry_days = Some(days.max(Self::PITR_WINDOW_DAYS));
        }
        self
    }

    /// How far back DynamoDB's point-in-time recovery reaches: 35 days. A
    /// versioned spec ([`BucketSpec::versioning`]) must keep noncurrent
    /// versions at least this long ([`BucketSpec::check`]).
    pub const PITR_WINDOW_DAYS: u32 = 35;

    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for a versioned
    /// spec that expires noncurrent versions sooner than
    /// [`PITR_WINDOW_DAYS`](Self::PITR_WINDOW_DAYS): a restore to the
    /// window's start would find its objects' versions gone.
    pub fn check(&self) -> crate::error::Result<()> {
        match self.noncurrent_version_expiry_days {
            Some(days) if self.versioning && days < Self::PITR_WINDOW_DAYS => {
                Err(crate::error::Error::invalid(format!(
                    "bucket {}: noncurrent versions expire after {days} days, but backup-consistent versioning needs at least {} (DynamoDB's point-in-time recovery window); raise the noncurrent expiry",
                    self.name,
                    Self::PITR_WINDOW_DAYS
                )))
            }
            _ => Ok(()),
        }
    }

    /// The lifecycle rule's id.
    pub const LIFECYCLE_RULE_ID: &'static str = "vhs-abort-incomplete-multipart";
}

/// A secondary index of a [`TableSpec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpec {
    /// Index name (3 to 255 characters).
    pub name: String,
    /// Global (its own hash key) or local (the table's hash key).
    pub kind: IndexKind,
    /// Hash key name and type (for a local index, the table's).
    pub hash_key: (String, KeyKind),
    /// Range key name and type, if any.
    pub range_key: Option<(String, KeyKind)>,
    /// Which attributes the index holds.
    pub projection: Projection,
}

/// A key condition on the range key of a [`Query`]: `=`, `<`, `<=`, `>`, `>=`,
/// `BETWEEN` or `begins_with`, as a [`Condition`] on that attribute
/// ([`Condition::Compare`] without `<>`, [`Condition::Between`] or
/// [`Condition::BeginsWith`]).
pub type RangeCondition = Condition;

/// A Query: the items with one hash key value, of a table or of one of its
/// secondary indexes, in range key order.
#[derive(Debug, Clone)]
pub struct Query {
    /// Table.
    pub table: String,
    /// The secondary index to query, `None` for the table itself.
    pub index: Option<String>,
    /// Hash key attribute name and value (of the index, when one is queried).
    pub hash_key: (String, aws_sdk_dynamodb::types::AttributeValue),
    /// A condition on the range key (of the index, when one is queried).
    pub range: Option<RangeCondition>,
    /// Applied to each item read, after `limit`: items that fail it are not
    /// returned but count against `limit` and the 1 MB page size.
    pub filter: Option<Condition>,
    /// Only these attributes are returned (`None`: all).
    pub projection: Option<Vec<String>>,
    /// Highest range key first.
    pub descending: bool,
    /// At most this many items are read for the page (before `filter`).
    pub limit: Option<usize>,
    /// Continue after this key (the previous page's `last_key`).
    pub start: Option<Item>,
    /// Strongly consistent read (not available on global indexes).
    pub consistent: bool,
}

impl Query {
    /// A query of the items of `table` whose hash key `name` is `value`, with
    /// nothing else set.
    pub fn new(
        table: impl Into<String>,
        name: impl Into<String>,
        value: aws_sdk_dynamodb::types::AttributeValue,
    ) -> Query {
        Query {
            table: table.into(),
            index: None,
            hash_key: (name.into(), value),
            range: None,
            filter: None,
            projection: None,
            descending: false,
            limit: None,
            start: None,
            consistent: false,
        }
    }
}

/// A Scan of a whole table, or of segment `segment.0` of `segment.1`.
#[derive(Debug, Clone)]
pub struct Scan {
    /// Table.
    pub table: String,
    /// `(segment, total_segments)` for a parallel scan.
    pub segment: Option<(u32, u32)>,
    /// Applied to each item read, after `limit` (as [`Query::filter`]).
    pub filter: Option<Condition>,
    /// Only these attributes are returned (`None`: all).
    pub projection: Option<Vec<String>>,
    /// At most this many items are read for the page (before `filter`).
    pub limit: Option<usize>,
    /// Continue after this key (the previous page's `last_key`).
    pub start: Option<Item>,
    /// Strongly consistent read.
    pub consistent: bool,
}

impl Scan {
    /// A scan of all of `table`, with nothing else set.
    pub fn new(table: impl Into<String>) -> Scan {
        Scan {
            table: table.into(),
            segment: None,
            filter: None,
            projection: None,
            limit: None,
            start: None,
            consistent: false,
        }
    }
}

/// One page of a [`Query`] or a [`Scan`].
#[derive(Debug, Clone, Default)]
pub struct QueryPage {
    /// The items that passed the filter, in range key order.
    pub items: Vec<Item>,
    /// Where the next page starts; `None` if this is the last page.
    pub last_key: Option<Item>,
}

/// One action of a TransactWriteItems call. Each names a distinct item.
#[derive(Debug, Clone)]
pub enum TransactWrite {
    /// PutItem.
    Put {
        /// Table.
        table: String,
        /// The item.
        item: Item,
        /// Condition on the stored item.
        condition: Option<Condition>,
    },
    /// UpdateItem.
    Update {
        /// Table.
        table: String,
        /// The key.
        key: Item,
        /// The update.
        update: ItemUpdate,
        /// Condition on the stored item.
        condition: Option<Condition>,
    },
    /// DeleteItem.
    Delete {
        /// Table.
        table: String,
        /// The key.
        key: Item,
        /// Condition on the stored item.
        condition: Option<Condition>,
    },
    /// ConditionCheck: the condition must hold; nothing is written.
    Check {
        /// Table.
        table: String,
        /// The key.
        key: Item,
        /// The condition.
        condition: Condition,
    },
}

impl TransactWrite {
    /// The table the action writes.
    pub fn table(&self) -> &str {
        match self {
            TransactWrite::Put { table, .. }
            | TransactWrite::Update { table, .. }
            | TransactWrite::Delete { table, .. }
            | TransactWrite::Check { table, .. } => table,
        }
    }

    /// The condition of the action, if any.
    pub fn condition(&self) -> Option<&Condition> {
        match self {
            TransactWrite::Put { condition, .. }
            | TransactWrite::Update { condition, .. }
            | TransactWrite::Delete { condition, .. } => condition.as_ref(),
            TransactWrite::Check { condition, .. } => Some(condition),
        }
    }
}

/// What a TransactWriteItems call did.
#[derive(Debug, Clone, PartialEq)]
pub enum Transacted {
    /// Every action was applied, at once (or a call with the same client
    /// request token already was, within the service's idempotency window).
    Committed,
    /// Nothing was applied: one reason per action, in order.
    Canceled(Vec<CancelReason>),
}

/// Why one action of a canceled transaction was not applied.
#[derive(Debug, Clone, PartialEq)]
pub struct CancelReason {
    /// `None` for an action that was fine (another one canceled the
    /// transaction); else the service's code: `ConditionalCheckFailed`,
    /// `TransactionConflict`, `ThrottlingError`, ...
    pub code: Option<String>,
    /// The service's message.
    pub message: Option<String>,
    /// For `ConditionalCheckFailed`, the item as stored when the condition was
    /// checked (`ReturnValuesOnConditionCheckFailure = ALL_OLD`), `None` if there
    /// was none.
    pub item: Option<Item>,
}

impl CancelReason {
    /// The action's condition did not hold.
    pub fn condition_failed(&self) -> bool {
        self.code.as_deref() == Some("ConditionalCheckFailed")
    }
}

/// A PutObject request.
#[derive(Clone)]
pub struct PutObject {
    /// Bucket.
    pub bucket: String,
    /// Object key.
    pub key: String,
    /// The bytes.
    pub body: Bytes,
    /// The checksum of `body`, sent so that the server refuses other bytes
    /// (`BadDigest`): as `Content-MD5` for MD5, as `x-amz-checksum-sha256` /
    /// `x-amz-checksum-crc64nvme` (with `x-amz-sdk-checksum-algorithm`) for
    /// the others ([`ChecksumAlgorithm::header`](crate::ChecksumAlgorithm::header)).
    /// S3 then keeps a SHA-256 or CRC-64/NVME with the object
    /// ([`ObjectInfo::checksums`]).
    pub checksum: crate::checksum::Checksum,
    /// Content-Type.
    pub content_type: String,
    /// Content-Encoding (`zstd`, `gzip`) of a compressed value, so that an HTTP
    /// client given a presigned URL decodes it; `None` for a value stored as it is.
    pub content_encoding: Option<String>,
    /// User metadata (`x-amz-meta-*`).
    pub metadata: HashMap<String, String>,
    /// The storage class (`x-amz-storage-class`, e.g. `STANDARD_IA`); `None`:
    /// the bucket's default (STANDARD).
    pub storage_class: Option<String>,
    /// Object tags (`x-amz-tagging`); none sent when empty, so that no
    /// `s3:PutObjectTagging` permission is needed.
    pub tags: Vec<(String, String)>,
    /// Send `If-None-Match: *`: write only if no object has the key.
    pub if_none_match: bool,
    /// The object must not come into existence before this signal: a backend
    /// holds back (at least the last bytes of) the body until it fires. The store
    /// uses it to upload while it reads the item and still know that an object it
    /// created was created after that read. [`Signal::open`] (the default) for none.
    pub complete_after: Signal,
}

/// A one-time signal a [`PutObject`] waits for before its body is complete (see
/// [`PutObject::complete_after`]). Cloning shares it; it fires when its
/// [`Trigger`] is fired or dropped.
#[derive(Clone)]
pub struct Signal(pub(crate) Option<Shared<BoxFuture<'static, ()>>>);

/// Fires a [`Signal`]; dropping it fires it too, so a signal never waits forever.
#[derive(Debug)]
pub struct Trigger(Option<oneshot::Sender<()>>);

impl Signal {
    /// A signal that has already fired.
    pub fn open() -> Signal {
        Signal(None)
    }

    /// A signal and the trigger that fires it.
    pub fn new() -> (Trigger, Signal) {
        let (tx, rx) = oneshot::channel::<()>();
        let fired: BoxFuture<'static, ()> = Box::pin(async move {
            let _ = rx.await;
        });
        (Trigger(Some(tx)), Signal(Some(fired.shared())))
    }

    /// Whether it has fired.
    pub fn is_open(&self) -> bool {
        self.0.as_ref().is_none_or(|f| f.peek().is_some())
    }

    /// Waits until it fires.
    pub async fn wait(&self) {
        if let Some(f) = &self.0 {
            f.clone().await;
        }
    }
}

impl Default for Signal {
    fn default() -> Self {
        Signal::open()
    }
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Signal")
            .field(&if self.is_open() { "open" } else { "waiting" })
            .finish()
    }
}

impl Trigger {
    /// Fires the signal.
    pub fn fire(mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

impl fmt::Debug for PutObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the body.
        f.debug_struct("PutObject")
            .field("bucket", &self.bucket)
            .field("key", &self.key)
            .field("len", &self.body.len())
            .field("if_none_match", &self.if_none_match)
            .field("complete_after", &self.complete_after)
            .finish_non_exhaustive()
    }
}

/// What a PutObject did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PutOutcome {
    /// This call created the object.
    Created,
    /// An object with this key already existed (only with `if_none_match`); it was left as is.
    AlreadyExisted,
}

/// An object as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Object key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// When it was last written, if the server said.
    pub last_modified: Option<std::time::SystemTime>,
    /// Its storage class, if the server said (S3 leaves it out for STANDARD in
    /// some answers: `None` there means STANDARD).
    pub storage_class: Option<String>,
    /// HeadObject only: its ETag, quotes removed.
    pub etag: Option<String>,
    /// HeadObject only: the checksums the server stored with it, by lowercase
    /// algorithm name (`sha256`, `crc64nvme`, `crc32`, ...), base64 as S3 gives
    /// them (a composite checksum of a multipart upload ends in `-{parts}`).
    pub checksums: std::collections::BTreeMap<String, String>,
    /// HeadObject only: its user metadata (`x-amz-meta-*`, prefix removed).
    pub metadata: HashMap<String, String>,
}

impl ObjectInfo {
    /// An object of `size` bytes at `key`, nothing else known.
    pub fn new(key: impl Into<String>, size: u64) -> Self {
        ObjectInfo {
            key: key.into(),
            size,
            last_modified: None,
            storage_class: None,
            etag: None,
            checksums: Default::default(),
            metadata: HashMap::new(),
        }
    }
}

/// One page of a listing.
#[derive(Debug, Clone, Default)]
pub struct ObjectPage {
    /// Objects in key order.
    pub objects: Vec<ObjectInfo>,
    /// Token for the next page, if there is one.
    pub next: Option<String>,
}

/// A stored object read back.
#[derive(Clone)]
pub struct StoredObject {
    /// The bytes.
    pub body: Bytes,
    /// User metadata.
    pub metadata: HashMap<String, String>,
    /// Content-Type, if the server returned one.
    pub content_type: Option<String>,
    /// Content-Encoding, if the object has one.
    pub content_encoding: Option<String>,
}

impl fmt::Debug for StoredObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredObject")
            .field("len", &self.body.len())
            .field("metadata", &self.metadata)
            .field("content_type", &self.content_type)
            .field("content_encoding", &self.content_encoding)
            .finish()
    }
}

/// CreateMultipartUpload: an upload whose parts are sent one by one, and whose
/// object comes into existence only when it is completed.
#[derive(Debug, Clone)]
pub struct MultipartStart {
    /// Bucket.
    pub bucket: String,
    /// Object key.
    pub key: String,
    /// Content-Type.
    pub content_type: String,
    /// Content-Encoding, as for [`PutObject::content_encoding`].
    pub content_encoding: Option<String>,
    /// User metadata (`x-amz-meta-*`).
    pub metadata: HashMap<String, String>,
    /// The storage class, as for [`PutObject::storage_class`].
    pub storage_class: Option<String>,
    /// Object tags, as for [`PutObject::tags`].
    pub tags: Vec<(String, String)>,
    /// The algorithm of the parts' checksums, and how S3 combines them:
    /// - MD5: each part with `Content-MD5`, nothing at the completion (S3
    ///   keeps no MD5 of the whole object; its ETag is `<md5 of the part
    ///   MD5s>-N`).
    /// - SHA-256: `x-amz-checksum-algorithm: SHA256` here, each part with
    ///   `x-amz-checksum-sha256`, and each part's SHA-256 in the completion;
    ///   S3 keeps a *composite* checksum, the SHA-256 of the parts' digests,
    ///   reported as `<base64>-N` (never the SHA-256 of the whole object,
    ///   which only the caller, having hashed the bytes, knows).
    /// - CRC-64/NVME: `x-amz-checksum-algorithm: CRC64NVME` and
    ///   `x-amz-checksum-type: FULL_OBJECT` here, each part with
    ///   `x-amz-checksum-crc64nvme`, and the whole object's CRC in the
    ///   completion, which S3 checks (`BadDigest`) and keeps as the object's.
    pub checksum: crate::checksum::ChecksumAlgorithm,
}

/// A multipart upload in progress (ListMultipartUploads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipartInfo {
    /// Object key.
    pub key: String,
    /// The upload's id.
    pub upload_id: String,
    /// When it was started, if the server said.
    pub initiated: Option<std::time::SystemTime>,
}

/// A part sent by UploadPart: its number (1-based) and the ETag the server gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedPart {
    /// Part number, 1 to [`MAX_PARTS`](super::MAX_PARTS).
    pub number: u32,
    /// The ETag UploadPart returned.
    pub etag: String,
    /// The part's checksum in the upload's algorithm
    /// ([`MultipartStart::checksum`]), as sent with UploadPart; the completion
    /// repeats it for SHA-256 and CRC-64/NVME uploads.
    pub checksum: crate::checksum::Checksum,
}

/// One BatchGetItem answer.
#[derive(Debug, Clone, Default)]
pub struct BatchPage {
    /// The items found, in no particular order.
    pub items: Vec<Item>,
    /// Keys the service did not get to (its 16 MB response limit, throttling):
    /// ask again.
    pub unprocessed: Vec<Item>,
}

/// A byte range of an object read back.
#[derive(Clone)]
pub struct ObjectRange {
    /// The bytes of the range (shorter than asked where the object ends first;
    /// empty when the range starts at or after its end).
    pub body: Bytes,
    /// The size of the whole object.
    pub total: u64,
}

impl ObjectRange {
    /// `range` of a whole object's `body`, cut short at its end (empty when it
    /// starts at or after the end).
    pub fn cut(body: &Bytes, range: std::ops::Range<u64>) -> ObjectRange {
        let total = body.len() as u64;
        let start = range.start.min(total);
        let end = range.end.min(total).max(start);
        ObjectRange {
            body: body.slice(start as usize..end as usize),
            total,
        }
    }
}

impl fmt::Debug for ObjectRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectRange")
            .field("len", &self.body.len())
            .field("total", &self.total)
            .finish()
    }
}

/// How a client sends a presigned upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum UploadMethod {
    /// `PUT` to the URL with the body as it is, and exactly the headers given
    /// (they are signed).
    Put,
    /// A browser form: `POST` to the URL as `multipart/form-data`, with the
    /// fields given, then the file as the last field, named `file` (S3's
    /// POST policy).
    Post,
}

/// A presigned upload to compute ([`PresignCalls::presign_upload`](super::PresignCalls::presign_upload)):
/// one object, the bytes it must hold, and until when. Computed locally, no
/// request is sent.
#[derive(Debug, Clone)]
pub struct PresignUpload {
    /// PUT or browser POST.
    pub method: UploadMethod,
    /// Bucket.
    pub bucket: String,
    /// Object key.
    pub key: String,
    /// The checksum the body must have: sent by the client in the header its
    /// algorithm names (signed), so that S3 refuses other bytes.
    pub checksum: crate::checksum::Checksum,
    /// Content-Type the client must send.
    pub content_type: String,
    /// PUT: the exact `Content-Length`, signed. POST: the lower bound of
    /// `content-length-range` (0 if `None`).
    pub size: Option<u64>,
    /// POST: the upper bound of `content-length-range` (S3's 5 GiB if `None`).
    pub max_size: Option<u64>,
    /// User metadata (`x-amz-meta-*`) the client must send, signed.
    pub metadata: HashMap<String, String>,
    /// The storage class the client must send (`x-amz-storage-class`), signed.
    pub storage_class: Option<String>,
    /// The object tags the client must send (PUT: `x-amz-tagging`; POST: the
    /// `tagging` field), signed; none when empty.
    pub tags: Vec<(String, String)>,
    /// How long the URL is valid (at most 7 days).
    pub expires_in: std::time::Duration,
}

/// A presigned upload: what a client sends, and nothing it may change.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PresignedUpload {
    /// PUT or POST.
    pub method: UploadMethod,
    /// Where to send it.
    pub url: String,
    /// PUT: the headers to send, exactly (`host` excluded).
    pub headers: Vec<(String, String)>,
    /// POST: the form fields to send, in order, before the `file` field.
    pub fields: Vec<(String, String)>,
}
