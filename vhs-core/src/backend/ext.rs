//! [`BackendExt`]: the typed calls of every backend, each a [`Call`] sent
//! through [`Backend::send`] and its [`Reply`] unpacked.

use std::ops::Range;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::calls::{Call, Reply};
use super::queries::{QueryRows, QueryStart, QueryStatus};
use super::requests::*;
#[allow(unused_imports)] // rustdoc links
use super::services::{
    ItemCalls, ObjectCalls, PresignCalls, ProvisionCalls, QueryCalls, StreamCalls,
};
use super::streams::{RecordsPage, ShardStart, StreamDescription};
use super::versions::{BucketVersioning, VersionCursor, VersionPage};
use super::Backend;
use crate::checksum::Checksum;
use crate::condition::{Condition, ItemUpdate};
use crate::error::{Error, Result};
use crate::model::Item;

/// An answer type, and the one [`Reply`] variant that carries it.
trait FromReply: Sized {
    /// The answer, or the reply back if it carries another type (boxed: a
    /// wrapper's bug, never the common path).
    fn from_reply(reply: Reply) -> std::result::Result<Self, Box<Reply>>;
}

impl FromReply for () {
    fn from_reply(reply: Reply) -> std::result::Result<Self, Box<Reply>> {
        match reply {
            Reply::Done => Ok(()),
            other => Err(Box::new(other)),
        }
    }
}

macro_rules! from_reply {
    ($($answer:ty => $variant:ident,)*) => {$(
        impl FromReply for $answer {
            fn from_reply(reply: Reply) -> std::result::Result<Self, Box<Reply>> {
                match reply {
                    Reply::$variant(answer) => Ok(answer),
                    other => Err(Box::new(other)),
                }
            }
        }
    )*};
}

from_reply! {
    bool => Bool,
    Option<TableSpec> => Table,
    Option<Item> => Item,
    BatchPage => Batch,
    Conditional<Option<Item>> => Written,
    Conditional<Item> => Updated,
    QueryPage => Page,
    Transacted => Transacted,
    PutOutcome => Put,
    Option<StoredObject> => Object,
    Option<ObjectRange> => Range,
    Option<ObjectInfo> => Head,
    Option<Vec<(String, String)>> => Tags,
    String => Text,
    Vec<MultipartInfo> => Uploads,
    PresignedUpload => Presigned,
    Vec<(String, String)> => KeyErrors,
    ObjectPage => Listing,
    Option<String> => TimeToLive,
    BucketVersioning => Versioning,
    VersionPage => Versions,
    Option<StreamDescription> => Stream,
    RecordsPage => Records,
    QueryStatus => QueryStatus,
    QueryRows => QueryRows,
}

/// Sends `call` to `backend` and unpacks its answer: a reply of another type
/// is a wrapper's bug, reported as a non-retryable error.
async fn typed<T: FromReply, B: Backend + ?Sized>(backend: &B, call: Call<'_>) -> Result<T> {
    let op = call.op();
    T::from_reply(backend.send(call).await?)
        .map_err(|other| Error::mismatched_reply(op.service().name(), op.name(), &other))
}

/// Declares [`BackendExt`] from one line per call: the service trait that
/// documents it, its name and arguments, its answer, and the [`Call`] it sends.
macro_rules! typed_calls {
    ($($service:ident::$name:ident($($arg:ident: $ty:ty),*) -> $answer:ty = $call:expr;)*) => {
        /// The typed calls of every [`Backend`]: each builds its [`Call`], sends
        /// it and returns its answer. The methods are those of [`ItemCalls`],
        /// [`ObjectCalls`], [`PresignCalls`] and [`ProvisionCalls`], documented
        /// there.
        #[async_trait]
        pub trait BackendExt: Backend {
            $(
                #[doc = concat!(
                    "[`", stringify!($service), "::", stringify!($name), "`], sent through [`Backend::send`]."
                )]
                async fn $name(&self, $($arg: $ty),*) -> Result<$answer> {
                    typed(self, $call).await
                }
            )*
        }
    };
}

typed_calls! {
    ProvisionCalls::create_table(spec: &TableSpec) -> () = Call::CreateTable { spec };
    ProvisionCalls::describe_table(table: &str) -> Option<TableSpec> = Call::DescribeTable { table };
    ProvisionCalls::delete_table(table: &str) -> bool = Call::DeleteTable { table };
    ProvisionCalls::create_bucket(bucket: &str) -> () = Call::CreateBucket { bucket };
    ProvisionCalls::bucket_exists(bucket: &str) -> bool = Call::BucketExists { bucket };
    ProvisionCalls::configure_bucket(spec: &BucketSpec) -> () = Call::ConfigureBucket { spec };
    ProvisionCalls::update_time_to_live(table: &str, attr: &str) -> () =
        Call::UpdateTimeToLive { table, attr };
    ProvisionCalls::describe_time_to_live(table: &str) -> Option<String> =
        Call::DescribeTimeToLive { table };
    StreamCalls::describe_stream(table: &str) -> Option<StreamDescription> =
        Call::DescribeStream { table };
    StreamCalls::get_shard_iterator(stream_arn: &str, shard_id: &str, start: &ShardStart)
        -> String = Call::GetShardIterator { stream_arn, shard_id, start };
    StreamCalls::get_records(stream_arn: &str, iterator: &str) -> RecordsPage =
        Call::GetRecords { stream_arn, iterator };
    QueryCalls::start_query_execution(request: &QueryStart) -> String =
        Call::StartQueryExecution(request);
    QueryCalls::get_query_execution(id: &str) -> QueryStatus = Call::GetQueryExecution { id };
    QueryCalls::get_query_results(id: &str, next: Option<String>) -> QueryRows =
        Call::GetQueryResults { id, next };
    ItemCalls::get_item(table: &str, key: &Item, consistent: bool) -> Option<Item> =
        Call::GetItem { table, key, consistent };
    ItemCalls::batch_get_item(table: &str, keys: &[Item], consistent: bool) -> BatchPage =
        Call::BatchGetItem { table, keys, consistent };
    ItemCalls::put_item(table: &str, item: Item, condition: Option<&Condition>)
        -> Conditional<Option<Item>> = Call::PutItem { table, item, condition };
    ItemCalls::update_item(
        table: &str,
        key: &Item,
        update: &ItemUpdate,
        condition: Option<&Condition>
    ) -> Conditional<Item> = Call::UpdateItem { table, key, update, condition };
    ItemCalls::delete_item(table: &str, key: &Item, condition: Option<&Condition>)
        -> Conditional<Option<Item>> = Call::DeleteItem { table, key, condition };
    ItemCalls::query(request: &Query) -> QueryPage = Call::Query(request);
    ItemCalls::scan(request: &Scan) -> QueryPage = Call::Scan(request);
    ItemCalls::transact_write(actions: &[TransactWrite], token: &str) -> Transacted =
        Call::TransactWrite { actions, token };
    ObjectCalls::put_object(request: PutObject) -> PutOutcome = Call::PutObject(request);
    ObjectCalls::get_object(bucket: &str, key: &str) -> Option<StoredObject> =
        Call::GetObject { bucket, key };
    ObjectCalls::get_object_range(bucket: &str, key: &str, range: Range<u64>)
        -> Option<ObjectRange> = Call::GetObjectRange { bucket, key, range };
    ObjectCalls::head_object(bucket: &str, key: &str) -> Option<ObjectInfo> =
        Call::HeadObject { bucket, key };
    ObjectCalls::get_object_tagging(bucket: &str, key: &str) -> Option<Vec<(String, String)>> =
        Call::GetObjectTagging { bucket, key };
    PresignCalls::presign_get(bucket: &str, key: &str, expires_in: Duration) -> String =
        Call::PresignGet { bucket, key, expires_in };
    PresignCalls::presign_upload(request: &PresignUpload) -> PresignedUpload =
        Call::PresignUpload(request);
    ObjectCalls::create_multipart_upload(request: &MultipartStart) -> String =
        Call::CreateMultipartUpload(request);
    ObjectCalls::upload_part(
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: u32,
        body: Bytes,
        checksum: &Checksum
    ) -> String = Call::UploadPart { bucket, key, upload_id, number, body, checksum };
    ObjectCalls::complete_multipart_upload(
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
        checksum: &Checksum,
        if_none_match: bool
    ) -> PutOutcome =
        Call::CompleteMultipartUpload { bucket, key, upload_id, parts, checksum, if_none_match };
    ObjectCalls::abort_multipart_upload(bucket: &str, key: &str, upload_id: &str) -> () =
        Call::AbortMultipartUpload { bucket, key, upload_id };
    ObjectCalls::list_multipart_uploads(bucket: &str, prefix: &str) -> Vec<MultipartInfo> =
        Call::ListMultipartUploads { bucket, prefix };
    ObjectCalls::delete_objects(bucket: &str, keys: &[String], attempts: Attempts)
        -> Vec<(String, String)> = Call::DeleteObjects { bucket, keys, attempts };
    ObjectCalls::list_objects(bucket: &str, prefix: &str, continuation: Option<String>)
        -> ObjectPage = Call::ListObjects { bucket, prefix, continuation };
    ProvisionCalls::get_bucket_versioning(bucket: &str) -> BucketVersioning =
        Call::GetBucketVersioning { bucket };
    ObjectCalls::list_object_versions(
        bucket: &str,
        prefix: &str,
        continuation: Option<VersionCursor>
    ) -> VersionPage = Call::ListObjectVersions { bucket, prefix, continuation };
    ObjectCalls::get_object_version(bucket: &str, key: &str, version_id: &str)
        -> Option<StoredObject> = Call::GetObjectVersion { bucket, key, version_id };
    ObjectCalls::delete_object_version(bucket: &str, key: &str, version_id: &str) -> () =
        Call::DeleteObjectVersion { bucket, key, version_id };
}

impl<B: Backend + ?Sized> BackendExt for B {}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wrapper with a bug: it answers every call as if it were CreateBucket.
    #[derive(Debug)]
    struct AlwaysDone;

    #[async_trait]
    impl Backend for AlwaysDone {
        async fn send(&self, _call: Call<'_>) -> Result<Reply> {
            Ok(Reply::Done)
        }
    }

    #[tokio::test]
    async fn a_reply_of_another_call_is_a_non_retryable_error_naming_the_call() {
        AlwaysDone.create_bucket("b").await.unwrap();
        let e = AlwaysDone.head_object("b", "k").await.unwrap_err();
        assert!(!e.is_retryable(), "{e}");
        assert!(
            e.to_string().starts_with(
                "S3 HeadObject: MismatchedReply: a backend wrapper answered with Done"
            ),
            "{e}"
        );
    }

    /// A backend that implements neither presigning nor provisioning.
    struct Bare;
    impl PresignCalls for Bare {}
    impl ProvisionCalls for Bare {}

    #[tokio::test]
    async fn calls_a_backend_does_not_implement_are_unsupported() {
        let e = Bare
            .presign_get("b", "k", Duration::from_secs(60))
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "local PresignGetObject: Unsupported: this backend does not implement the call"
        );
        let e = Bare.create_bucket("b").await.unwrap_err();
        assert!(!e.is_retryable());
        assert!(
            e.to_string().starts_with("S3 CreateBucket: Unsupported"),
            "{e}"
        );
    }
}
