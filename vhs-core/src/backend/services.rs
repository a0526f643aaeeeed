//! The typed calls a backend implements, by service.
//!
//! A backend implements the services it supports and answers
//! [`Backend::send`](super::Backend::send) with [`Call::serve`](super::Call::serve).
//! [`ItemCalls`] and [`ObjectCalls`] are the store's data path and have no
//! defaults; [`PresignCalls`] and [`ProvisionCalls`] default to
//! [`Error::unsupported`] (a non-retryable backend error with the code
//! `Unsupported`), for a backend that cannot presign or create tables.
//!
//! Callers do not use these traits: they call the same methods through
//! [`BackendExt`](super::BackendExt), on any backend, wrapped or not.

use std::ops::Range;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::calls::{Call, Op, Reply};
#[allow(unused_imports)]
use super::limits::{MAX_BATCH_GET, MAX_DELETE_BATCH, MAX_PAGE_BYTES};
use super::queries::{QueryRows, QueryStart, QueryStatus};
use super::requests::*;
use super::streams::*;
use super::versions::{BucketVersioning, VersionCursor, VersionPage};
use crate::checksum::Checksum;
use crate::condition::{Condition, ItemUpdate};
use crate::error::{Error, Result};
use crate::model::Item;

/// DynamoDB item calls: reads, conditional writes, queries, scans and
/// transactions, each one request.
#[async_trait]
pub trait ItemCalls: Send + Sync {
    /// GetItem.
    async fn get_item(&self, table: &str, key: &Item, consistent: bool) -> Result<Option<Item>>;

    /// BatchGetItem of at most [`MAX_BATCH_GET`] distinct keys of one table.
    async fn batch_get_item(
        &self,
        table: &str,
        keys: &[Item],
        consistent: bool,
    ) -> Result<BatchPage>;

    /// PutItem with `ReturnValues=ALL_OLD`, optionally conditional. Returns the old
    /// image, `None` if there was no item.
    async fn put_item(
        &self,
        table: &str,
        item: Item,
        condition: Option<&Condition>,
    ) -> Result<Conditional<Option<Item>>>;

    /// UpdateItem with `ReturnValues=ALL_OLD`, optionally conditional. Returns the
    /// old image (empty if the item did not exist).
    async fn update_item(
        &self,
        table: &str,
        key: &Item,
        update: &ItemUpdate,
        condition: Option<&Condition>,
    ) -> Result<Conditional<Item>>;

    /// DeleteItem with `ReturnValues=ALL_OLD`, optionally conditional. Returns the old
    /// image, `None` if there was no item.
    async fn delete_item(
        &self,
        table: &str,
        key: &Item,
        condition: Option<&Condition>,
    ) -> Result<Conditional<Option<Item>>>;

    /// Query: one page (at most `limit` items and [`MAX_PAGE_BYTES`] read) of the
    /// items with one hash key value, in range key order.
    async fn query(&self, request: &Query) -> Result<QueryPage>;

    /// Scan: one page (as [`ItemCalls::query`]) of a table, or of one segment of a
    /// parallel scan.
    async fn scan(&self, request: &Scan) -> Result<QueryPage>;

    /// TransactWriteItems: every action applied, or none. `token` is the
    /// client request token: a call sent again with the same token and the
    /// same actions is not applied twice (within the service's window; some
    /// emulators ignore it, so callers also resolve a resend themselves).
    /// Each action's condition failure returns the stored item.
    async fn transact_write(&self, actions: &[TransactWrite], token: &str) -> Result<Transacted>;
}

/// S3 object calls, multipart uploads included, each one request.
#[async_trait]
pub trait ObjectCalls: Send + Sync {
    /// PutObject. The object must not come into existence before
    /// [`PutObject::complete_after`] fires (an answer of `AlreadyExisted` may come
    /// earlier).
    async fn put_object(&self, request: PutObject) -> Result<PutOutcome>;

    /// GetObject; `None` if there is no such object.
    async fn get_object(&self, bucket: &str, key: &str) -> Result<Option<StoredObject>>;

    /// GetObject of bytes `range.start..range.end` (`Range: bytes=`); `None` if there
    /// is no such object. A range past the end is cut short; one that starts at or
    /// after the end reads as empty, with the object's size.
    async fn get_object_range(
        &self,
        bucket: &str,
        key: &str,
        range: Range<u64>,
    ) -> Result<Option<ObjectRange>>;

    /// HeadObject; `None` if there is no such object.
    async fn head_object(&self, bucket: &str, key: &str) -> Result<Option<ObjectInfo>>;

    /// GetObjectTagging: the object's tags, in the order stored; `None` if
    /// there is no such object.
    async fn get_object_tagging(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<Vec<(String, String)>>>;

    /// DeleteObjects for at most [`MAX_DELETE_BATCH`] keys. Returns the keys that
    /// could not be deleted, each with the reason. Deleting a missing key succeeds.
    ///
    /// With [`Attempts::Once`] the request is sent at most once: no layer (SDK
    /// retries included) sends it again, so it can land at most once. The caller
    /// resolves a failed or unanswered attempt itself.
    async fn delete_objects(
        &self,
        bucket: &str,
        keys: &[String],
        attempts: Attempts,
    ) -> Result<Vec<(String, String)>>;

    /// ListObjectsV2, one page.
    async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        continuation: Option<String>,
    ) -> Result<ObjectPage>;

    /// CreateMultipartUpload; returns the upload id.
    async fn create_multipart_upload(&self, request: &MultipartStart) -> Result<String>;

    /// UploadPart, with the part's checksum in the upload's algorithm
    /// ([`MultipartStart::checksum`]) checked by the server (`Content-MD5`,
    /// `x-amz-checksum-sha256` or `x-amz-checksum-crc64nvme`); returns the
    /// part's ETag.
    async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: u32,
        body: Bytes,
        checksum: &Checksum,
    ) -> Result<String>;

    /// CompleteMultipartUpload: the object comes into existence now. With
    /// `if_none_match` (`If-None-Match: *`), an object already at the key is left
    /// as is and the answer is [`PutOutcome::AlreadyExisted`]; the upload then
    /// stays open, to be aborted. `checksum` is the whole object's, in the
    /// upload's algorithm: sent (and checked by the server) for a CRC-64/NVME
    /// upload, whose checksum type is full-object; MD5 and SHA-256 uploads
    /// send each part's instead (see [`MultipartStart::checksum`]).
    async fn complete_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
        checksum: &Checksum,
        if_none_match: bool,
    ) -> Result<PutOutcome>;

    /// AbortMultipartUpload: its parts are discarded. An upload that no longer
    /// exists (completed or aborted) succeeds.
    async fn abort_multipart_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<()>;

    /// ListMultipartUploads: every upload in progress under `prefix`, all pages.
    async fn list_multipart_uploads(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<MultipartInfo>>;

    /// ListObjectVersions, one page (at most 1000): the versions and delete
    /// markers of the keys under `prefix`, by key, each key's newest first.
    /// An unversioned bucket lists each object once, as its latest version
    /// with id `null`.
    async fn list_object_versions(
        &self,
        bucket: &str,
        prefix: &str,
        continuation: Option<VersionCursor>,
    ) -> Result<VersionPage>;

    /// GetObject of one version of `key`; `None` if there is no such
    /// version, or it is a delete marker.
    async fn get_object_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<Option<StoredObject>>;

    /// DeleteObject of one version of `key` (`versionId`): the version, or
    /// delete marker, is removed for good. Removing the delete marker that is
    /// a key's latest version makes the version under it the object a GET
    /// returns again. A version that does not exist succeeds.
    async fn delete_object_version(&self, bucket: &str, key: &str, version_id: &str) -> Result<()>;
}

/// What a default method of [`PresignCalls`], [`ProvisionCalls`] and
/// [`StreamCalls`] answers.
fn unsupported<T>(op: Op) -> Result<T> {
    Err(Error::unsupported(op.service().name(), op.name()))
}

/// Presigned URLs, computed locally.
#[async_trait]
pub trait PresignCalls: Send + Sync {
    /// A URL that lets its holder GET the object until `expires_in` passed
    /// (SigV4 presigned, at most 7 days). Computed locally: no request is sent.
    async fn presign_get(
        &self,
        _bucket: &str,
        _key: &str,
        _expires_in: Duration,
    ) -> Result<String> {
        unsupported(Op::PresignGet)
    }

    /// A presigned upload of one object (PUT, or a browser POST with a signed
    /// policy), valid for `request.expires_in`: the client must send the
    /// checksum, Content-Type, size and metadata the request names, and a PUT
    /// also `If-None-Match: *`. Computed locally: no request is sent.
    async fn presign_upload(&self, _request: &PresignUpload) -> Result<PresignedUpload> {
        unsupported(Op::PresignUpload)
    }
}

/// DynamoDB Streams: reading a table's change feed
/// ([`stream`](crate::stream)). Every method defaults to
/// [`Error::unsupported`], for a backend without streams.
#[async_trait]
pub trait StreamCalls: Send + Sync {
    /// The table's latest stream and its shards (DescribeTable for the
    /// stream's ARN, then DescribeStream, all pages); `None` if the table has
    /// no stream. [`Error::TableNotFound`] if there is no such table.
    async fn describe_stream(&self, _table: &str) -> Result<Option<StreamDescription>> {
        unsupported(Op::DescribeStream)
    }

    /// GetShardIterator: an iterator over one shard of `stream_arn`, from
    /// `start`. It expires after 15 minutes unused (on AWS).
    async fn get_shard_iterator(
        &self,
        _stream_arn: &str,
        _shard_id: &str,
        _start: &ShardStart,
    ) -> Result<String> {
        unsupported(Op::GetShardIterator)
    }

    /// GetRecords: the records of a shard from `iterator` (at most 1000), and
    /// the next iterator. `stream_arn` names the stream in errors only.
    async fn get_records(&self, _stream_arn: &str, _iterator: &str) -> Result<RecordsPage> {
        unsupported(Op::GetRecords)
    }
}

/// Amazon Athena: SQL over files in S3, for GC and verify's Athena engine
/// ([`Engine::Athena`](crate::maintenance::Engine::Athena)). Every method
/// defaults to [`Error::unsupported`], for a backend without a query service
/// ([`MemoryBackend`](crate::MemoryBackend) has none).
#[async_trait]
pub trait QueryCalls: Send + Sync {
    /// StartQueryExecution: starts `request`, returns its execution id.
    async fn start_query_execution(&self, _request: &QueryStart) -> Result<String> {
        unsupported(Op::StartQueryExecution)
    }

    /// GetQueryExecution: where the query `id` is.
    async fn get_query_execution(&self, _id: &str) -> Result<QueryStatus> {
        unsupported(Op::GetQueryExecution)
    }

    /// GetQueryResults: one page of a succeeded query's rows, from `next`
    /// (`None`: the first page).
    async fn get_query_results(&self, _id: &str, _next: Option<String>) -> Result<QueryRows> {
        unsupported(Op::GetQueryResults)
    }
}

/// Creating and describing tables and buckets: what `ensure_table` and the
/// CLI's `provision` need, not the data path.
#[async_trait]
pub trait ProvisionCalls: Send + Sync {
    /// Creates a table (pay-per-request) with its secondary indexes. If it
    /// already exists, creates the global indexes it lacks (an existing index
    /// of the same name is kept as it is); a missing local index is an error,
    /// since DynamoDB creates those only with the table.
    async fn create_table(&self, _spec: &TableSpec) -> Result<()> {
        unsupported(Op::CreateTable)
    }

    /// DescribeTable: the table's keys, indexes and stream; `None` if there is
    /// no such table. (`point_in_time_recovery` is reported as `false`: it takes
    /// another call to read.)
    async fn describe_table(&self, _table: &str) -> Result<Option<TableSpec>> {
        unsupported(Op::DescribeTable)
    }

    /// DeleteTable (provisioning, for tests and teardown): deletes the table
    /// and every item in it, and returns once it is gone. `false` if there was
    /// no such table. S3 objects the items referenced are not touched.
    async fn delete_table(&self, _table: &str) -> Result<bool> {
        unsupported(Op::DeleteTable)
    }

    /// UpdateTimeToLive: enables DynamoDB's time to live on `attr` (a Number
    /// of epoch seconds) of `table`. Callers ask
    /// [`ProvisionCalls::describe_time_to_live`] first: DynamoDB refuses to
    /// enable it again, and allows one attribute per table.
    async fn update_time_to_live(&self, _table: &str, _attr: &str) -> Result<()> {
        unsupported(Op::UpdateTimeToLive)
    }

    /// DescribeTimeToLive: the attribute time to live is enabled (or being
    /// enabled) on, `None` if it is off (or being disabled).
    async fn describe_time_to_live(&self, _table: &str) -> Result<Option<String>> {
        unsupported(Op::DescribeTimeToLive)
    }

    /// Creates a bucket. Succeeds if this account already owns it.
    async fn create_bucket(&self, _bucket: &str) -> Result<()> {
        unsupported(Op::CreateBucket)
    }

    /// HeadBucket: whether the bucket exists (and this account may list it).
    async fn bucket_exists(&self, _bucket: &str) -> Result<bool> {
        unsupported(Op::HeadBucket)
    }

    /// Applies a [`BucketSpec`] to an existing bucket: public access block,
    /// default encryption, lifecycle rule. Replaces the bucket's lifecycle
    /// configuration only when it has none or only vhs's rule; otherwise adds
    /// vhs's rule to it.
    async fn configure_bucket(&self, _spec: &BucketSpec) -> Result<()> {
        unsupported(Op::ConfigureBucket)
    }

    /// GetBucketVersioning: whether the bucket keeps replaced and deleted
    /// objects as noncurrent versions.
    async fn get_bucket_versioning(&self, _bucket: &str) -> Result<BucketVersioning> {
        unsupported(Op::GetBucketVersioning)
    }
}

impl Call<'_> {
    /// Answers the call with `backend`'s typed methods: the whole of
    /// [`Backend::send`](super::Backend::send) for a backend made of the service traits.
    pub async fn serve<B>(self, backend: &B) -> Result<Reply>
    where
        B: ItemCalls
            + ObjectCalls
            + PresignCalls
            + ProvisionCalls
            + StreamCalls
            + QueryCalls
            + ?Sized,
    {
        Ok(match self {
            Call::CreateTable { spec } => {
                ProvisionCalls::create_table(backend, spec).await?;
                Reply::Done
            }
            Call::DescribeTable { table } => {
                Reply::Table(ProvisionCalls::describe_table(backend, table).await?)
            }
            Call::DeleteTable { table } => {
                Reply::Bool(ProvisionCalls::delete_table(backend, table).await?)
            }
            Call::UpdateTimeToLive { table, attr } => {
                ProvisionCalls::update_time_to_live(backend, table, attr).await?;
                Reply::Done
            }
            Call::DescribeTimeToLive { table } => {
                Reply::TimeToLive(ProvisionCalls::describe_time_to_live(backend, table).await?)
            }
            Call::DescribeStream { table } => {
                Reply::Stream(StreamCalls::describe_stream(backend, table).await?)
            }
            Call::GetShardIterator {
                stream_arn,
                shard_id,
                start,
            } => Reply::Text(
                StreamCalls::get_shard_iterator(backend, stream_arn, shard_id, start).await?,
            ),
            Call::GetRecords {
                stream_arn,
                iterator,
            } => Reply::Records(StreamCalls::get_records(backend, stream_arn, iterator).await?),
            Call::StartQueryExecution(request) => {
                Reply::Text(QueryCalls::start_query_execution(backend, request).await?)
            }
            Call::GetQueryExecution { id } => {
                Reply::QueryStatus(QueryCalls::get_query_execution(backend, id).await?)
            }
            Call::GetQueryResults { id, next } => {
                Reply::QueryRows(QueryCalls::get_query_results(backend, id, next).await?)
            }
            Call::GetItem {
                table,
                key,
                consistent,
            } => Reply::Item(ItemCalls::get_item(backend, table, key, consistent).await?),
            Call::BatchGetItem {
                table,
                keys,
                consistent,
            } => Reply::Batch(ItemCalls::batch_get_item(backend, table, keys, consistent).await?),
            Call::PutItem {
                table,
                item,
                condition,
            } => Reply::Written(ItemCalls::put_item(backend, table, item, condition).await?),
            Call::UpdateItem {
                table,
                key,
                update,
                condition,
            } => Reply::Updated(
                ItemCalls::update_item(backend, table, key, update, condition).await?,
            ),
            Call::DeleteItem {
                table,
                key,
                condition,
            } => Reply::Written(ItemCalls::delete_item(backend, table, key, condition).await?),
            Call::Query(request) => Reply::Page(ItemCalls::query(backend, request).await?),
            Call::Scan(request) => Reply::Page(ItemCalls::scan(backend, request).await?),
            Call::TransactWrite { actions, token } => {
                Reply::Transacted(ItemCalls::transact_write(backend, actions, token).await?)
            }
            Call::CreateBucket { bucket } => {
                ProvisionCalls::create_bucket(backend, bucket).await?;
                Reply::Done
            }
            Call::BucketExists { bucket } => {
                Reply::Bool(ProvisionCalls::bucket_exists(backend, bucket).await?)
            }
            Call::ConfigureBucket { spec } => {
                ProvisionCalls::configure_bucket(backend, spec).await?;
                Reply::Done
            }
            Call::PutObject(request) => {
                Reply::Put(ObjectCalls::put_object(backend, request).await?)
            }
            Call::GetObject { bucket, key } => {
                Reply::Object(ObjectCalls::get_object(backend, bucket, key).await?)
            }
            Call::GetObjectRange { bucket, key, range } => {
                Reply::Range(ObjectCalls::get_object_range(backend, bucket, key, range).await?)
            }
            Call::HeadObject { bucket, key } => {
                Reply::Head(ObjectCalls::head_object(backend, bucket, key).await?)
            }
            Call::GetObjectTagging { bucket, key } => {
                Reply::Tags(ObjectCalls::get_object_tagging(backend, bucket, key).await?)
            }
            Call::PresignGet {
                bucket,
                key,
                expires_in,
            } => Reply::Text(PresignCalls::presign_get(backend, bucket, key, expires_in).await?),
            Call::PresignUpload(request) => {
                Reply::Presigned(PresignCalls::presign_upload(backend, request).await?)
            }
            Call::CreateMultipartUpload(request) => {
                Reply::Text(ObjectCalls::create_multipart_upload(backend, request).await?)
            }
            Call::UploadPart {
                bucket,
                key,
                upload_id,
                number,
                body,
                checksum,
            } => Reply::Text(
                ObjectCalls::upload_part(backend, bucket, key, upload_id, number, body, checksum)
                    .await?,
            ),
            Call::CompleteMultipartUpload {
                bucket,
                key,
                upload_id,
                parts,
                checksum,
                if_none_match,
            } => Reply::Put(
                ObjectCalls::complete_multipart_upload(
                    backend,
                    bucket,
                    key,
                    upload_id,
                    parts,
                    checksum,
                    if_none_match,
                )
                .await?,
            ),
            Call::AbortMultipartUpload {
                bucket,
                key,
                upload_id,
            } => {
                ObjectCalls::abort_multipart_upload(backend, bucket, key, upload_id).await?;
                Reply::Done
            }
            Call::ListMultipartUploads { bucket, prefix } => {
                Reply::Uploads(ObjectCalls::list_multipart_uploads(backend, bucket, prefix).await?)
            }
            Call::DeleteObjects {
                bucket,
                keys,
                attempts,
            } => Reply::KeyErrors(
                ObjectCalls::delete_objects(backend, bucket, keys, attempts).await?,
            ),
            Call::ListObjects {
                bucket,
                prefix,
                continuation,
            } => Reply::Listing(
                ObjectCalls::list_objects(backend, bucket, prefix, continuation).await?,
            ),
            Call::GetBucketVersioning { bucket } => {
                Reply::Versioning(ProvisionCalls::get_bucket_versioning(backend, bucket).await?)
            }
            Call::ListObjectVersions {
                bucket,
                prefix,
                continuation,
            } => Reply::Versions(
                ObjectCalls::list_object_versions(backend, bucket, prefix, continuation).await?,
            ),
            Call::GetObjectVersion {
                bucket,
                key,
                version_id,
            } => Reply::Object(
                ObjectCalls::get_object_version(backend, bucket, key, version_id).await?,
            ),
            Call::DeleteObjectVersion {
                bucket,
                key,
                version_id,
            } => {
                ObjectCalls::delete_object_version(backend, bucket, key, version_id).await?;
                Reply::Done
            }
        })
    }
}
