//! A backend call as a value: its kind ([`Op`]), its arguments ([`Call`]) and
//! its answer ([`Reply`]); the typed methods callers use ([`BackendExt`](super::BackendExt)); and
//! how a backend made of service traits answers a call ([`Call::serve`]).

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use bytes::Bytes;

use super::queries::{QueryRows, QueryStart, QueryStatus};
use super::requests::*;
use super::streams::{RecordsPage, ShardStart, StreamDescription};
use super::versions::{BucketVersioning, VersionCursor, VersionPage};
use crate::checksum::Checksum;
use crate::condition::{Condition, ItemUpdate};
use crate::model::Item;

/// The service a call goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Service {
    /// Amazon DynamoDB.
    DynamoDb,
    /// Amazon S3.
    S3,
    /// Amazon Athena (SQL over files in S3: GC and verify's Athena engine).
    Athena,
    /// No service: computed locally (presigning).
    Local,
}

impl Service {
    /// `dynamodb`, `s3`, `athena` or `local`.
    pub const fn name(self) -> &'static str {
        match self {
            Service::DynamoDb => "dynamodb",
            Service::S3 => "s3",
            Service::Athena => "athena",
            Service::Local => "local",
        }
    }
}

/// The kind of a backend call: the one place its API operation's name is
/// written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Op {
    /// CreateTable.
    CreateTable,
    /// GetItem.
    GetItem,
    /// PutItem.
    PutItem,
    /// UpdateItem.
    UpdateItem,
    /// DeleteItem.
    DeleteItem,
    /// Query.
    Query,
    /// Scan.
    Scan,
    /// HeadObject.
    HeadObject,
    /// CreateBucket.
    CreateBucket,
    /// PutObject.
    PutObject,
    /// GetObject.
    GetObject,
    /// DeleteObjects.
    DeleteObjects,
    /// ListObjectsV2.
    ListObjects,
    /// GetObject of a byte range.
    GetObjectRange,
    /// CreateMultipartUpload.
    CreateMultipartUpload,
    /// UploadPart.
    UploadPart,
    /// CompleteMultipartUpload.
    CompleteMultipartUpload,
    /// AbortMultipartUpload.
    AbortMultipartUpload,
    /// ListMultipartUploads.
    ListMultipartUploads,
    /// BatchGetItem.
    BatchGetItem,
    /// TransactWriteItems.
    TransactWriteItems,
    /// DescribeTable.
    DescribeTable,
    /// DeleteTable.
    DeleteTable,
    /// HeadBucket.
    HeadBucket,
    /// The bucket configuration calls of
    /// [`ProvisionCalls::configure_bucket`](super::ProvisionCalls::configure_bucket) (PutPublicAccessBlock,
    /// PutBucketEncryption, GetBucketLifecycleConfiguration,
    /// PutBucketLifecycleConfiguration).
    ConfigureBucket,
    /// A presigned GetObject URL (computed locally, no request).
    PresignGet,
    /// A presigned PutObject, by PUT or browser POST (computed locally, no
    /// request).
    PresignUpload,
    /// GetObjectTagging.
    GetObjectTagging,
    /// UpdateTimeToLive (enabling time to live on an attribute).
    UpdateTimeToLive,
    /// DescribeTimeToLive.
    DescribeTimeToLive,
    /// GetBucketVersioning.
    GetBucketVersioning,
    /// ListObjectVersions.
    ListObjectVersions,
    /// GetObject of one version (`versionId`).
    GetObjectVersion,
    /// DeleteObject of one version or delete marker (`versionId`).
    DeleteObjectVersion,
    /// DescribeStream of a table's latest stream (after a DescribeTable for its
    /// ARN).
    DescribeStream,
    /// GetShardIterator (DynamoDB Streams).
    GetShardIterator,
    /// GetRecords (DynamoDB Streams).
    GetRecords,
    /// StartQueryExecution (Athena).
    StartQueryExecution,
    /// GetQueryExecution (Athena).
    GetQueryExecution,
    /// GetQueryResults (Athena).
    GetQueryResults,
}

impl Op {
    /// The name of the API operation (for [`Op::ConfigureBucket`], its last call).
    pub const fn name(self) -> &'static str {
        match self {
            Op::CreateTable => "CreateTable",
            Op::GetItem => "GetItem",
            Op::PutItem => "PutItem",
            Op::UpdateItem => "UpdateItem",
            Op::DeleteItem => "DeleteItem",
            Op::Query => "Query",
            Op::Scan => "Scan",
            Op::HeadObject => "HeadObject",
            Op::CreateBucket => "CreateBucket",
            Op::PutObject => "PutObject",
            Op::GetObject => "GetObject",
            Op::DeleteObjects => "DeleteObjects",
            Op::ListObjects => "ListObjectsV2",
            Op::GetObjectRange => "GetObject",
            Op::CreateMultipartUpload => "CreateMultipartUpload",
            Op::UploadPart => "UploadPart",
            Op::CompleteMultipartUpload => "CompleteMultipartUpload",
            Op::AbortMultipartUpload => "AbortMultipartUpload",
            Op::ListMultipartUploads => "ListMultipartUploads",
            Op::BatchGetItem => "BatchGetItem",
            Op::TransactWriteItems => "TransactWriteItems",
            Op::DescribeTable => "DescribeTable",
            Op::DeleteTable => "DeleteTable",
            Op::HeadBucket => "HeadBucket",
            Op::ConfigureBucket => "PutBucketLifecycleConfiguration",
            Op::PresignGet => "PresignGetObject",
            Op::PresignUpload => "PresignPutObject",
            Op::GetObjectTagging => "GetObjectTagging",
            Op::UpdateTimeToLive => "UpdateTimeToLive",
            Op::DescribeTimeToLive => "DescribeTimeToLive",
            Op::GetBucketVersioning => "GetBucketVersioning",
            Op::ListObjectVersions => "ListObjectVersions",
            Op::GetObjectVersion => "GetObject",
            Op::DeleteObjectVersion => "DeleteObject",
            Op::DescribeStream => "DescribeStream",
            Op::GetShardIterator => "GetShardIterator",
            Op::GetRecords => "GetRecords",
            Op::StartQueryExecution => "StartQueryExecution",
            Op::GetQueryExecution => "GetQueryExecution",
            Op::GetQueryResults => "GetQueryResults",
        }
    }

    /// The service the call goes to.
    pub fn service(self) -> Service {
        match self {
            Op::CreateTable
            | Op::GetItem
            | Op::PutItem
            | Op::UpdateItem
            | Op::DeleteItem
            | Op::Query
            | Op::Scan
            | Op::BatchGetItem
            | Op::TransactWriteItems
            | Op::DescribeTable
            | Op::DeleteTable
            | Op::UpdateTimeToLive
            | Op::DescribeTimeToLive
            | Op::DescribeStream
            | Op::GetShardIterator
            | Op::GetRecords => Service::DynamoDb,
            Op::StartQueryExecution | Op::GetQueryExecution | Op::GetQueryResults => {
                Service::Athena
            }
            Op::PresignGet | Op::PresignUpload => Service::Local,
            _ => Service::S3,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One backend call with its arguments, as [`Backend::send`](super::Backend::send) takes it.
///
/// Arguments are borrowed from the caller, except the bodies (a [`PutObject`]
/// and an upload part's bytes), which the call owns.
#[non_exhaustive]
#[allow(missing_docs)] // the arguments of each call are documented on its typed method
pub enum Call<'a> {
    /// [`ProvisionCalls::create_table`](super::ProvisionCalls::create_table).
    CreateTable { spec: &'a TableSpec },
    /// [`ProvisionCalls::describe_table`](super::ProvisionCalls::describe_table).
    DescribeTable { table: &'a str },
    /// [`ProvisionCalls::delete_table`](super::ProvisionCalls::delete_table).
    DeleteTable { table: &'a str },
    /// [`ProvisionCalls::update_time_to_live`](super::ProvisionCalls::update_time_to_live).
    UpdateTimeToLive { table: &'a str, attr: &'a str },
    /// [`ProvisionCalls::describe_time_to_live`](super::ProvisionCalls::describe_time_to_live).
    DescribeTimeToLive { table: &'a str },
    /// [`StreamCalls::describe_stream`](super::StreamCalls::describe_stream).
    DescribeStream { table: &'a str },
    /// [`StreamCalls::get_shard_iterator`](super::StreamCalls::get_shard_iterator).
    GetShardIterator {
        stream_arn: &'a str,
        shard_id: &'a str,
        start: &'a ShardStart,
    },
    /// [`StreamCalls::get_records`](super::StreamCalls::get_records).
    GetRecords {
        stream_arn: &'a str,
        iterator: &'a str,
    },
    /// [`QueryCalls::start_query_execution`](super::QueryCalls::start_query_execution).
    StartQueryExecution(&'a QueryStart),
    /// [`QueryCalls::get_query_execution`](super::QueryCalls::get_query_execution).
    GetQueryExecution { id: &'a str },
    /// [`QueryCalls::get_query_results`](super::QueryCalls::get_query_results).
    GetQueryResults { id: &'a str, next: Option<String> },
    /// [`ItemCalls::get_item`](super::ItemCalls::get_item).
    GetItem {
        table: &'a str,
        key: &'a Item,
        consistent: bool,
    },
    /// [`ItemCalls::batch_get_item`](super::ItemCalls::batch_get_item).
    BatchGetItem {
        table: &'a str,
        keys: &'a [Item],
        consistent: bool,
    },
    /// [`ItemCalls::put_item`](super::ItemCalls::put_item).
    PutItem {
        table: &'a str,
        item: Item,
        condition: Option<&'a Condition>,
    },
    /// [`ItemCalls::update_item`](super::ItemCalls::update_item).
    UpdateItem {
        table: &'a str,
        key: &'a Item,
        update: &'a ItemUpdate,
        condition: Option<&'a Condition>,
    },
    /// [`ItemCalls::delete_item`](super::ItemCalls::delete_item).
    DeleteItem {
        table: &'a str,
        key: &'a Item,
        condition: Option<&'a Condition>,
    },
    /// [`ItemCalls::query`](super::ItemCalls::query).
    Query(&'a Query),
    /// [`ItemCalls::scan`](super::ItemCalls::scan).
    Scan(&'a Scan),
    /// [`ItemCalls::transact_write`](super::ItemCalls::transact_write).
    TransactWrite {
        actions: &'a [TransactWrite],
        token: &'a str,
    },
    /// [`ProvisionCalls::create_bucket`](super::ProvisionCalls::create_bucket).
    CreateBucket { bucket: &'a str },
    /// [`ProvisionCalls::bucket_exists`](super::ProvisionCalls::bucket_exists).
    BucketExists { bucket: &'a str },
    /// [`ProvisionCalls::configure_bucket`](super::ProvisionCalls::configure_bucket).
    ConfigureBucket { spec: &'a BucketSpec },
    /// [`ObjectCalls::put_object`](super::ObjectCalls::put_object).
    PutObject(PutObject),
    /// [`ObjectCalls::get_object`](super::ObjectCalls::get_object).
    GetObject { bucket: &'a str, key: &'a str },
    /// [`ObjectCalls::get_object_range`](super::ObjectCalls::get_object_range).
    GetObjectRange {
        bucket: &'a str,
        key: &'a str,
        range: Range<u64>,
    },
    /// [`ObjectCalls::head_object`](super::ObjectCalls::head_object).
    HeadObject { bucket: &'a str, key: &'a str },
    /// [`ObjectCalls::get_object_tagging`](super::ObjectCalls::get_object_tagging).
    GetObjectTagging { bucket: &'a str, key: &'a str },
    /// [`PresignCalls::presign_get`](super::PresignCalls::presign_get).
    PresignGet {
        bucket: &'a str,
        key: &'a str,
        expires_in: Duration,
    },
    /// [`PresignCalls::presign_upload`](super::PresignCalls::presign_upload).
    PresignUpload(&'a PresignUpload),
    /// [`ObjectCalls::create_multipart_upload`](super::ObjectCalls::create_multipart_upload).
    CreateMultipartUpload(&'a MultipartStart),
    /// [`ObjectCalls::upload_part`](super::ObjectCalls::upload_part).
    UploadPart {
        bucket: &'a str,
        key: &'a str,
        upload_id: &'a str,
        number: u32,
        body: Bytes,
        checksum: &'a Checksum,
    },
    /// [`ObjectCalls::complete_multipart_upload`](super::ObjectCalls::complete_multipart_upload).
    CompleteMultipartUpload {
        bucket: &'a str,
        key: &'a str,
        upload_id: &'a str,
        parts: &'a [CompletedPart],
        checksum: &'a Checksum,
        if_none_match: bool,
    },
    /// [`ObjectCalls::abort_multipart_upload`](super::ObjectCalls::abort_multipart_upload).
    AbortMultipartUpload {
        bucket: &'a str,
        key: &'a str,
        upload_id: &'a str,
    },
    /// [`ObjectCalls::list_multipart_uploads`](super::ObjectCalls::list_multipart_uploads).
    ListMultipartUploads { bucket: &'a str, prefix: &'a str },
    /// [`ObjectCalls::delete_objects`](super::ObjectCalls::delete_objects).
    DeleteObjects {
        bucket: &'a str,
        keys: &'a [String],
        attempts: Attempts,
    },
    /// [`ObjectCalls::list_objects`](super::ObjectCalls::list_objects).
    ListObjects {
        bucket: &'a str,
        prefix: &'a str,
        continuation: Option<String>,
    },
    /// [`ProvisionCalls::get_bucket_versioning`](super::ProvisionCalls::get_bucket_versioning).
    GetBucketVersioning { bucket: &'a str },
    /// [`ObjectCalls::list_object_versions`](super::ObjectCalls::list_object_versions).
    ListObjectVersions {
        bucket: &'a str,
        prefix: &'a str,
        continuation: Option<VersionCursor>,
    },
    /// [`ObjectCalls::get_object_version`](super::ObjectCalls::get_object_version).
    GetObjectVersion {
        bucket: &'a str,
        key: &'a str,
        version_id: &'a str,
    },
    /// [`ObjectCalls::delete_object_version`](super::ObjectCalls::delete_object_version).
    DeleteObjectVersion {
        bucket: &'a str,
        key: &'a str,
        version_id: &'a str,
    },
}

impl Call<'_> {
    /// The call's kind.
    pub fn op(&self) -> Op {
        match self {
            Call::CreateTable { .. } => Op::CreateTable,
            Call::DescribeTable { .. } => Op::DescribeTable,
            Call::DeleteTable { .. } => Op::DeleteTable,
            Call::UpdateTimeToLive { .. } => Op::UpdateTimeToLive,
            Call::DescribeTimeToLive { .. } => Op::DescribeTimeToLive,
            Call::DescribeStream { .. } => Op::DescribeStream,
            Call::GetShardIterator { .. } => Op::GetShardIterator,
            Call::GetRecords { .. } => Op::GetRecords,
            Call::StartQueryExecution(_) => Op::StartQueryExecution,
            Call::GetQueryExecution { .. } => Op::GetQueryExecution,
            Call::GetQueryResults { .. } => Op::GetQueryResults,
            Call::GetItem { .. } => Op::GetItem,
            Call::BatchGetItem { .. } => Op::BatchGetItem,
            Call::PutItem { .. } => Op::PutItem,
            Call::UpdateItem { .. } => Op::UpdateItem,
            Call::DeleteItem { .. } => Op::DeleteItem,
            Call::Query(_) => Op::Query,
            Call::Scan(_) => Op::Scan,
            Call::TransactWrite { .. } => Op::TransactWriteItems,
            Call::CreateBucket { .. } => Op::CreateBucket,
            Call::BucketExists { .. } => Op::HeadBucket,
            Call::ConfigureBucket { .. } => Op::ConfigureBucket,
            Call::PutObject(_) => Op::PutObject,
            Call::GetObject { .. } => Op::GetObject,
            Call::GetObjectRange { .. } => Op::GetObjectRange,
            Call::HeadObject { .. } => Op::HeadObject,
            Call::GetObjectTagging { .. } => Op::GetObjectTagging,
            Call::PresignGet { .. } => Op::PresignGet,
            Call::PresignUpload(_) => Op::PresignUpload,
            Call::CreateMultipartUpload(_) => Op::CreateMultipartUpload,
            Call::UploadPart { .. } => Op::UploadPart,
            Call::CompleteMultipartUpload { .. } => Op::CompleteMultipartUpload,
            Call::AbortMultipartUpload { .. } => Op::AbortMultipartUpload,
            Call::ListMultipartUploads { .. } => Op::ListMultipartUploads,
            Call::DeleteObjects { .. } => Op::DeleteObjects,
            Call::ListObjects { .. } => Op::ListObjects,
            Call::GetBucketVersioning { .. } => Op::GetBucketVersioning,
            Call::ListObjectVersions { .. } => Op::ListObjectVersions,
            Call::GetObjectVersion { .. } => Op::GetObjectVersion,
            Call::DeleteObjectVersion { .. } => Op::DeleteObjectVersion,
        }
    }

    /// The table a DynamoDB call names (the first action's, for a
    /// transaction), or the bucket an S3 call names.
    pub fn resource(&self) -> &str {
        match self {
            Call::CreateTable { spec } => &spec.name,
            Call::DescribeTable { table }
            | Call::DescribeStream { table }
            | Call::DeleteTable { table }
            | Call::UpdateTimeToLive { table, .. }
            | Call::DescribeTimeToLive { table }
            | Call::GetItem { table, .. }
            | Call::BatchGetItem { table, .. }
            | Call::PutItem { table, .. }
            | Call::UpdateItem { table, .. }
            | Call::DeleteItem { table, .. } => table,
            Call::Query(q) => &q.table,
            Call::Scan(s) => &s.table,
            Call::TransactWrite { actions, .. } => actions.first().map_or("", |a| a.table()),
            Call::ConfigureBucket { spec } => &spec.name,
            Call::GetShardIterator { stream_arn, .. } | Call::GetRecords { stream_arn, .. } => {
                stream_arn
            }
            Call::StartQueryExecution(q) => &q.database,
            Call::GetQueryExecution { id } | Call::GetQueryResults { id, .. } => id,
            Call::PutObject(p) => &p.bucket,
            Call::CreateMultipartUpload(m) => &m.bucket,
            Call::PresignUpload(p) => &p.bucket,
            Call::CreateBucket { bucket }
            | Call::BucketExists { bucket }
            | Call::GetObject { bucket, .. }
            | Call::GetObjectRange { bucket, .. }
            | Call::HeadObject { bucket, .. }
            | Call::GetObjectTagging { bucket, .. }
            | Call::PresignGet { bucket, .. }
            | Call::UploadPart { bucket, .. }
            | Call::CompleteMultipartUpload { bucket, .. }
            | Call::AbortMultipartUpload { bucket, .. }
            | Call::ListMultipartUploads { bucket, .. }
            | Call::DeleteObjects { bucket, .. }
            | Call::ListObjects { bucket, .. }
            | Call::GetBucketVersioning { bucket }
            | Call::ListObjectVersions { bucket, .. }
            | Call::GetObjectVersion { bucket, .. }
            | Call::DeleteObjectVersion { bucket, .. } => bucket,
        }
    }

    /// The tables whose items this call writes: its table for PutItem,
    /// UpdateItem and DeleteItem, every action's table for a transaction,
    /// none for any other call.
    pub fn tables_written(&self) -> Vec<&str> {
        match self {
            Call::PutItem { table, .. }
            | Call::UpdateItem { table, .. }
            | Call::DeleteItem { table, .. } => vec![table],
            Call::TransactWrite { actions, .. } => {
                actions.iter().map(TransactWrite::table).collect()
            }
            _ => Vec::new(),
        }
    }
}

impl fmt::Debug for Call<'_> {
    /// The operation and its table or bucket: arguments can be megabytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.op(), self.resource())
    }
}

/// The answer to a [`Call`]: one variant per answer type.
#[derive(Debug)]
#[non_exhaustive]
pub enum Reply {
    /// CreateTable, CreateBucket, ConfigureBucket, AbortMultipartUpload,
    /// DeleteObjectVersion.
    Done,
    /// DeleteTable (whether there was a table), HeadBucket (whether it exists).
    Bool(bool),
    /// DescribeTable.
    Table(Option<TableSpec>),
    /// GetItem.
    Item(Option<Item>),
    /// BatchGetItem.
    Batch(BatchPage),
    /// PutItem and DeleteItem: the old image.
    Written(Conditional<Option<Item>>),
    /// UpdateItem: the old image.
    Updated(Conditional<Item>),
    /// Query and Scan.
    Page(QueryPage),
    /// TransactWriteItems.
    Transacted(Transacted),
    /// PutObject and CompleteMultipartUpload.
    Put(PutOutcome),
    /// GetObject, also of one version.
    Object(Option<StoredObject>),
    /// GetObject of a range.
    Range(Option<ObjectRange>),
    /// HeadObject.
    Head(Option<ObjectInfo>),
    /// GetObjectTagging: the tags, `None` for no such object.
    Tags(Option<Vec<(String, String)>>),
    /// A presigned URL, an upload id (CreateMultipartUpload) or a part's ETag
    /// (UploadPart).
    Text(String),
    /// ListMultipartUploads.
    Uploads(Vec<MultipartInfo>),
    /// A presigned upload.
    Presigned(PresignedUpload),
    /// DeleteObjects: the keys not deleted, each with its reason.
    KeyErrors(Vec<(String, String)>),
    /// ListObjectsV2.
    Listing(ObjectPage),
    /// DescribeTimeToLive: the attribute time to live is enabled (or being
    /// enabled) on, `None` if it is off.
    TimeToLive(Option<String>),
    /// GetBucketVersioning.
    Versioning(BucketVersioning),
    /// ListObjectVersions.
    Versions(VersionPage),
    /// DescribeStream: the table's latest stream, `None` if it has none.
    Stream(Option<StreamDescription>),
    /// GetRecords.
    Records(RecordsPage),
    /// GetQueryExecution.
    QueryStatus(QueryStatus),
    /// GetQueryResults.
    QueryRows(QueryRows),
}
