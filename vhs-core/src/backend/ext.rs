//! [`BackendExt`]: the typed calls of every backend, each a [`Call`] sent
//! through [`Backend::send`] and its [`Reply`] unpacked.

use std::ops::Range;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::calls::{Call, Reply};
use super::requests::*;
#[allow(unused_imports)] // rustdoc links
use super::services::{ItemCalls, ObjectCalls, PresignCalls, ProvisionCalls};
use super::Backend;
use crate::condition::{Condition, ItemUpdate};
use crate::error::{Error, Result};
use crate::model::Item;

/// The typed answer of `$call` sent to `$backend`, from its `Reply::$variant`.
macro_rules! typed {
    ($backend:expr, $call:expr, $variant:ident) => {{
        let call = $call;
        let op = call.op();
        match $backend.send(call).await? {
            Reply::$variant(answer) => Ok(answer),
            other => Err(Error::mismatched_reply(
                op.service().name(),
                op.name(),
                &other,
            )),
        }
    }};
    ($backend:expr, $call:expr) => {{
        let call = $call;
        let op = call.op();
        match $backend.send(call).await? {
            Reply::Done => Ok(()),
            other => Err(Error::mismatched_reply(
                op.service().name(),
                op.name(),
                &other,
            )),
        }
    }};
}

/// The typed calls of every [`Backend`]: each builds its [`Call`], sends it
/// and returns its answer. (The methods are those of [`ItemCalls`],
/// [`ObjectCalls`], [`PresignCalls`] and [`ProvisionCalls`], documented there.)
#[async_trait]
#[allow(missing_docs)]
pub trait BackendExt: Backend {
    async fn create_table(&self, spec: &TableSpec) -> Result<()> {
        typed!(self, Call::CreateTable { spec })
    }
    async fn describe_table(&self, table: &str) -> Result<Option<TableSpec>> {
        typed!(self, Call::DescribeTable { table }, Table)
    }
    async fn delete_table(&self, table: &str) -> Result<bool> {
        typed!(self, Call::DeleteTable { table }, Bool)
    }
    async fn get_item(&self, table: &str, key: &Item, consistent: bool) -> Result<Option<Item>> {
        typed!(
            self,
            Call::GetItem {
                table,
                key,
                consistent
            },
            Item
        )
    }
    async fn batch_get_item(
        &self,
        table: &str,
        keys: &[Item],
        consistent: bool,
    ) -> Result<BatchPage> {
        typed!(
            self,
            Call::BatchGetItem {
                table,
                keys,
                consistent
            },
            Batch
        )
    }
    async fn put_item(
        &self,
        table: &str,
        item: Item,
        condition: Option<&Condition>,
    ) -> Result<Conditional<Option<Item>>> {
        typed!(
            self,
            Call::PutItem {
                table,
                item,
                condition
            },
            Written
        )
    }
    async fn update_item(
        &self,
        table: &str,
        key: &Item,
        update: &ItemUpdate,
        condition: Option<&Condition>,
    ) -> Result<Conditional<Item>> {
        typed!(
            self,
            Call::UpdateItem {
                table,
                key,
                update,
                condition
            },
            Updated
        )
    }
    async fn delete_item(
        &self,
        table: &str,
        key: &Item,
        condition: Option<&Condition>,
    ) -> Result<Conditional<Option<Item>>> {
        typed!(
            self,
            Call::DeleteItem {
                table,
                key,
                condition
            },
            Written
        )
    }
    async fn query(&self, request: &Query) -> Result<QueryPage> {
        typed!(self, Call::Query(request), Page)
    }
    async fn scan(&self, request: &Scan) -> Result<QueryPage> {
        typed!(self, Call::Scan(request), Page)
    }
    async fn transact_write(&self, actions: &[TransactWrite], token: &str) -> Result<Transacted> {
        typed!(self, Call::TransactWrite { actions, token }, Transacted)
    }
    async fn create_bucket(&self, bucket: &str) -> Result<()> {
        typed!(self, Call::CreateBucket { bucket })
    }
    async fn bucket_exists(&self, bucket: &str) -> Result<bool> {
        typed!(self, Call::BucketExists { bucket }, Bool)
    }
    async fn configure_bucket(&self, spec: &BucketSpec) -> Result<()> {
        typed!(self, Call::ConfigureBucket { spec })
    }
    async fn put_object(&self, request: PutObject) -> Result<PutOutcome> {
        typed!(self, Call::PutObject(request), Put)
    }
    async fn get_object(&self, bucket: &str, key: &str) -> Result<Option<StoredObject>> {
        typed!(self, Call::GetObject { bucket, key }, Object)
    }
    async fn get_object_range(
        &self,
        bucket: &str,
        key: &str,
        range: Range<u64>,
    ) -> Result<Option<ObjectRange>> {
        typed!(self, Call::GetObjectRange { bucket, key, range }, Range)
    }
    async fn head_object(&self, bucket: &str, key: &str) -> Result<Option<ObjectInfo>> {
        typed!(self, Call::HeadObject { bucket, key }, Head)
    }
    async fn presign_get(&self, bucket: &str, key: &str, expires_in: Duration) -> Result<String> {
        typed!(
            self,
            Call::PresignGet {
                bucket,
                key,
                expires_in
            },
            Text
        )
    }
    async fn create_multipart_upload(&self, request: &MultipartStart) -> Result<String> {
        typed!(self, Call::CreateMultipartUpload(request), Text)
    }
    async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: u32,
        body: Bytes,
        content_md5: &str,
    ) -> Result<String> {
        typed!(
            self,
            Call::UploadPart {
                bucket,
                key,
                upload_id,
                number,
                body,
                content_md5
            },
            Text
        )
    }
    async fn complete_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
        if_none_match: bool,
    ) -> Result<PutOutcome> {
        typed!(
            self,
            Call::CompleteMultipartUpload {
                bucket,
                key,
                upload_id,
                parts,
                if_none_match
            },
            Put
        )
    }
    async fn abort_multipart_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<()> {
        typed!(
            self,
            Call::AbortMultipartUpload {
                bucket,
                key,
                upload_id
            }
        )
    }
    async fn list_multipart_uploads(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<MultipartInfo>> {
        typed!(self, Call::ListMultipartUploads { bucket, prefix }, Uploads)
    }
    async fn delete_objects(
        &self,
        bucket: &str,
        keys: &[String],
        attempts: Attempts,
    ) -> Result<Vec<(String, String)>> {
        typed!(
            self,
            Call::DeleteObjects {
                bucket,
                keys,
                attempts
            },
            KeyErrors
        )
    }
    async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        continuation: Option<String>,
    ) -> Result<ObjectPage> {
        typed!(
            self,
            Call::ListObjects {
                bucket,
                prefix,
                continuation
            },
            Listing
        )
    }
}

impl<B: Backend + ?Sized> BackendExt for B {}
