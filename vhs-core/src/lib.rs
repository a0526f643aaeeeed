//! Runtime of **vhs**, the Versioned Hybrid Store: DynamoDB items whose large
//! attributes live in S3.
//!
//! Most users depend on the `vhs` facade crate, which re-exports this crate and the
//! `#[derive(Model)]` macro.
#![warn(missing_docs)]

mod attr;
mod aws;
mod backend;
mod blob;
mod cache;
mod changes;
mod checksum;
mod compress;
mod condition;
mod error;
mod fault;
pub mod iam;
pub mod inspect;
mod layout;
pub mod maintenance;
mod memory;
pub mod metrics;
mod model;
pub mod protocol;
mod provision;
mod retry;
mod store;
pub mod stream;
mod ttl;
mod versioned;

pub use attr::Attr;
pub use aws::{AwsBackend, AwsOptions, Encryption};
pub use backend::{
    item_size, Attempts, Backend, BackendExt, BatchPage, BucketSpec, Call, CancelReason,
    CompletedPart, Conditional, IndexSpec, ItemCalls, MultipartInfo, MultipartStart, ObjectCalls,
    ObjectInfo, ObjectPage, ObjectRange, Op, PresignCalls, PresignUpload, PresignedUpload,
    ProvisionCalls, PutObject, PutOutcome, Query, QueryPage, RangeCondition, RecordsPage, Reply,
    Scan, Service, ShardInfo, ShardStart, Signal, StoredObject, StreamCalls, StreamDescription,
    TableSpec, TransactWrite, Transacted, Transition, Trigger, UploadMethod, MAX_BATCH_GET,
    MAX_DELETE_BATCH, MAX_ITEM_BYTES, MAX_KEY_BYTES, MAX_OBJECT_BYTES, MAX_PAGE_BYTES, MAX_PARTS,
    MAX_PUT_OBJECT_BYTES, MAX_TRANSACT_ITEMS, MIN_PART_BYTES,
};
pub use backend::{BucketVersioning, ObjectVersion, VersionCursor, VersionPage};
pub use backend::{QueryCalls, QueryRows, QueryStart, QueryState, QueryStatus};
pub use blob::Blob;
pub use cache::{CacheOptions, Clock, ManualClock, SystemClock};
pub use changes::{Changes, LargeValues};
pub use checksum::{Checksum, ChecksumAlgorithm, Hasher};
pub use condition::{
    Cmp, Condition, IntoAttributeValue, ItemUpdate, Placeholders, SetExpr, SizeOf, UpdateOp,
    ATTRIBUTE_TYPES, MAX_IN_VALUES,
};
pub use error::{BoxError, Error, Result, TicketProblem};
pub use fault::{Fault, FaultyBackend};
pub use inspect::{AnyTable, AttrStats, ClassStats, Stats};
pub use layout::{escape, unescape, Encoding, ObjectKey, Pointer};
pub use memory::MemoryBackend;
pub use model::{
    canonical_time, IndexDef, IndexKeyType, IndexKind, Item, Json, Key, KeyDef, KeyKind, KeyType,
    KeyValue, LargeAttr, LargeValue, Model, Projection, Schema, TimestampType, TtlType,
    VersionType,
};
pub use provision::ProvisionPlan;
pub use retry::{retry, RetryPolicy};
pub use store::{
    Background, Cleanup, Commit, Cursor, Deleted, ItemFailure, Options, Page, Precondition, Put,
    QueryBuilder, ScanBuilder, Staged, StagedAttr, StagedObject, Store, StoreBuilder, Stored,
    Transaction, UpdateFragment, Updated,
};
pub use store::{TagContext, ATTR_TAG, STORAGE_CLASSES, TABLE_TAG};
pub use store::{
    UploadSpec, UploadTicket, COMMIT_BY_METADATA, MAX_UPLOAD_EXPIRY, MIN_UPLOAD_SECRET_BYTES,
    UPLOAD_COMMIT_MARGIN,
};
pub use ttl::TTL_ATTRIBUTE;

pub use versioned::{
    Layout, MultiVersion, MultiVersionStore, Order, Pruned, SingleVersion, SingleVersionStore,
    Versioned, VersionedStore, Written,
};

/// Re-exports of the AWS SDK types that appear in vhs's API.
pub mod types {
    pub use aws_sdk_dynamodb::types::AttributeValue;
}

/// What `#[derive(Model)]` expands to refers to these paths only, so a user needs
/// no direct dependency on the AWS crates. Not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::attr::Attr;
    pub use crate::blob::Blob;
    pub use crate::changes::Changes;
    pub use crate::checksum::ChecksumAlgorithm;
    pub use crate::condition::Condition;
    pub use crate::error::{Error, Result};
    pub use crate::layout::Encoding;
    pub use crate::model::derive_support::*;
    pub use crate::model::{
        IndexDef, IndexKind, Item, Key, KeyDef, KeyKind, KeyValue, LargeAttr, Model, Schema,
    };
    pub use crate::store::{
        Deleted, Precondition, Put, Staged, Store, Updated, UploadSpec, UploadTicket,
    };
    pub use aws_sdk_dynamodb::types::AttributeValue;
    pub use bytes::Bytes;
    pub use core::convert::{From, Into};
    pub use core::default::Default;
    pub use core::iter::{IntoIterator, Iterator};
    pub use core::option::Option;
    pub use std::vec::Vec;
}
