//! An in-process backend with the semantics vhs relies on from DynamoDB and S3.

mod items;
mod objects;
mod presign;
mod queries;
mod streams;
mod ttl;
mod versions;

use items::{check_indexes, Table, TableKey};

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use async_trait::async_trait;
use tokio::task::yield_now;

use crate::backend::{
    item_size, Attempts, Backend, BatchPage, Call, CompletedPart, Conditional, ItemCalls,
    MultipartInfo, MultipartStart, ObjectCalls, ObjectInfo, ObjectPage, ObjectRange, Op,
    ProvisionCalls, PutObject, PutOutcome, Query, QueryPage, Reply, Scan, StoredObject, TableSpec,
    TransactWrite, Transacted, MAX_BATCH_GET, MAX_ITEM_BYTES, MAX_KEY_BYTES, MAX_PAGE_BYTES,
    MAX_PARTS, MAX_TRANSACT_ITEMS, MIN_PART_BYTES,
};
use crate::backend::{BucketSpec, CancelReason};
use crate::checksum::ChecksumAlgorithm;
use crate::condition::{compare, Cmp, Condition, ItemUpdate};
use crate::error::{Error, Result};
use crate::model::{IndexKind, Item, KeyKind, KeyValue, Projection};
use aws_sdk_dynamodb::types::AttributeValue;

/// An in-memory DynamoDB + S3, for examples and for unit tests of code that uses vhs.
///
/// It behaves like the services where vhs depends on them: conditional writes,
/// `ALL_OLD` return values, the 400 KB item limit, the 1024-byte key limit,
/// `Content-MD5` checking, `If-None-Match: *`, and per-key DeleteObjects results.
/// Tables and buckets must be created before use, as on AWS. Clones share state.
/// Every call yields to the scheduler once, as a network call would, so that
/// concurrent callers interleave as they do against a server.
///
/// ```
/// use vhs_core::{BackendExt, MemoryBackend};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let backend = MemoryBackend::new();
/// backend.create_bucket("b").await.unwrap();
/// assert!(backend.get_object("b", "missing").await.unwrap().is_none());
/// # });
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryBackend {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    tables: HashMap<String, Table>,
    /// Client request tokens of applied transactions, with what they named.
    transactions: HashMap<String, Vec<(String, TableKey)>>,
    buckets: HashMap<String, BTreeMap<String, MemObject>>,
    uploads: BTreeMap<String, MemUpload>,
    next_upload: u64,
    /// Presigned uploads issued, by URL ([`MemoryBackend::send_presigned`]).
    presigned: HashMap<String, crate::backend::PresignUpload>,
    /// Versioning status and kept versions, by bucket (see `versions.rs`).
    versions: HashMap<String, versions::BucketVersions>,
    /// The last version id given out.
    next_version: u64,
}

#[derive(Debug)]
struct MemUpload {
    bucket: String,
    key: String,
    content_type: String,
    content_encoding: Option<String>,
    metadata: HashMap<String, String>,
    storage_class: Option<String>,
    tags: Vec<(String, String)>,
    parts: BTreeMap<u32, (String, bytes::Bytes)>,
    initiated: SystemTime,
    /// The parts' checksum algorithm ([`crate::backend::MultipartStart::checksum`]),
    /// and each part's checksum in it.
    checksum: ChecksumAlgorithm,
    part_checksums: BTreeMap<u32, crate::checksum::Checksum>,
}

fn s3_error(operation: &'static str, code: &str, message: impl Into<String>) -> Error {
    Error::Backend {
        service: "memory",
        operation,
        code: Some(code.into()),
        retryable: false,
        message: message.into(),
        source: None,
    }
}

#[derive(Debug, Clone)]
struct MemObject {
    object: StoredObject,
    last_modified: SystemTime,
    /// As written; `None`: STANDARD.
    storage_class: Option<String>,
    tags: Vec<(String, String)>,
    /// As S3 computes it: the MD5 of the bytes (hex), or for a multipart
    /// upload the MD5 of the parts' MD5s followed by `-{parts}`.
    etag: String,
    /// The checksums kept with it, as HeadObject reports them (see
    /// [`ObjectInfo::checksums`]): the one it was written with, if not MD5.
    checksums: BTreeMap<String, String>,
}

impl MemObject {
    /// As ListObjectsV2 lists it: with its storage class, STANDARD too (HeadObject
    /// leaves STANDARD out).
    fn info(&self, key: &str) -> ObjectInfo {
        ObjectInfo {
            last_modified: Some(self.last_modified),
            storage_class: Some(
                self.storage_class
                    .clone()
                    .unwrap_or_else(|| "STANDARD".to_owned()),
            ),
            ..ObjectInfo::new(key, self.object.body.len() as u64)
        }
    }
}

fn validation(operation: &'static str, message: impl Into<String>) -> Error {
    Error::Backend {
        service: "memory",
        operation,
        code: Some("ValidationException".into()),
        retryable: false,
        message: message.into(),
        source: None,
    }
}

fn not_found(operation: &'static str, code: &str, what: &str) -> Error {
    Error::Backend {
        service: "memory",
        operation,
        code: Some(code.into()),
        retryable: false,
        message: format!("{what} does not exist"),
        source: None,
    }
}

impl MemoryBackend {
    /// An empty backend.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in a
        // way that matters for tests; keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    /// The table `name`; [`Error::TableNotFound`] as the AWS backend reports
    /// DynamoDB's `ResourceNotFoundException`, whatever the operation.
    fn table(&mut self, name: &str, _operation: &'static str) -> Result<&mut Table> {
        self.tables
            .get_mut(name)
            .ok_or_else(|| Error::TableNotFound {
                table: name.to_owned(),
            })
    }

    fn bucket(
        &mut self,
        name: &str,
        operation: &'static str,
    ) -> Result<&mut BTreeMap<String, MemObject>> {
        self.buckets
            .get_mut(name)
            .ok_or_else(|| not_found(operation, "NoSuchBucket", &format!("bucket {name}")))
    }
}

fn check_size(item: &Item, operation: &'static str) -> Result<()> {
    let size = item_size(item);
    if size > MAX_ITEM_BYTES {
        return Err(validation(
            operation,
            format!("Item size of {size} bytes has exceeded the maximum allowed size"),
        ));
    }
    Ok(())
}

#[async_trait]
impl ProvisionCalls for MemoryBackend {
    async fn create_table(&self, spec: &TableSpec) -> Result<()> {
        yield_now().await;
        check_indexes(spec)?;
        let mut state = self.lock();
        let Some(table) = state.tables.get_mut(&spec.name) else {
            state.tables.insert(
                spec.name.clone(),
                Table {
                    // Time to live takes UpdateTimeToLive, as on AWS.
                    spec: TableSpec {
                        time_to_live: None,
                        ..spec.clone()
                    },
                    items: BTreeMap::new(),
                    stream: None,
                },
            );
            return Ok(());
        };
        for index in &spec.indexes {
            if table.spec.indexes.iter().any(|i| i.name == index.name) {
                continue;
            }
            if index.kind == IndexKind::Local {
                return Err(validation(
                    "UpdateTable",
                    format!(
                        "table {} exists without local index {}: local indexes are created with the table only",
                        spec.name, index.name
                    ),
                ));
            }
            table.spec.indexes.push(index.clone());
        }
        table.spec.streams |= spec.streams;
        table.spec.point_in_time_recovery |= spec.point_in_time_recovery;
        Ok(())
    }

    async fn describe_table(&self, table: &str) -> Result<Option<TableSpec>> {
        yield_now().await;
        Ok(self.lock().tables.get(table).map(|t| TableSpec {
            point_in_time_recovery: false,
            time_to_live: None,
            ..t.spec.clone()
        }))
    }

    async fn update_time_to_live(&self, table: &str, attr: &str) -> Result<()> {
        yield_now().await;
        ttl::enable(&mut self.lock(), table, attr)
    }

    async fn describe_time_to_live(&self, table: &str) -> Result<Option<String>> {
        yield_now().await;
        let mut state = self.lock();
        let t = state.table(table, Op::DescribeTimeToLive.name())?;
        Ok(t.spec.time_to_live.clone())
    }

    async fn delete_table(&self, table: &str) -> Result<bool> {
        yield_now().await;
        Ok(self.lock().tables.remove(table).is_some())
    }

    async fn create_bucket(&self, bucket: &str) -> Result<()> {
        yield_now().await;
        self.lock().buckets.entry(bucket.to_owned()).or_default();
        Ok(())
    }

    async fn bucket_exists(&self, bucket: &str) -> Result<bool> {
        yield_now().await;
        Ok(self.lock().buckets.contains_key(bucket))
    }

    async fn configure_bucket(&self, spec: &BucketSpec) -> Result<()> {
        yield_now().await;
        const OP: &str = Op::ConfigureBucket.name();
        if [
            spec.abort_incomplete_multipart_days,
            spec.noncurrent_version_expiry_days,
        ]
        .contains(&Some(0))
            || spec.transitions.iter().any(|t| t.days == 0)
        {
            return Err(Error::Backend {
                service: "memory",
                operation: OP,
                code: Some("InvalidArgument".into()),
                retryable: false,
                message: "'Days' in a lifecycle rule must be a positive integer".into(),
                source: None,
            });
        }
        if !self.lock().buckets.contains_key(&spec.name) {
            return Err(Error::Backend {
                service: "memory",
                operation: "PutPublicAccessBlock",
                code: Some("NoSuchBucket".into()),
                retryable: false,
                message: "The specified bucket does not exist".into(),
                source: None,
            });
        }
        if spec.versioning {
            self.lock().enable_versioning(&spec.name);
        }
        // Objects in memory are never public nor stored anywhere: the settings
        // hold by construction, and noncurrent versions are kept until deleted
        // (no lifecycle runs in memory).
        Ok(())
    }

    async fn get_bucket_versioning(
        &self,
        bucket: &str,
    ) -> Result<crate::backend::BucketVersioning> {
        versions::MemVersioning::bucket_versioning(self, bucket).await
    }
}

#[async_trait]
impl Backend for MemoryBackend {
    async fn send(&self, call: Call<'_>) -> Result<Reply> {
        call.serve(self).await
    }
}
