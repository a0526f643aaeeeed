//! Least-privilege IAM policies for the three access levels of a store.
//!
//! Every library operation reaches AWS through one [`Backend`](crate::Backend)
//! call or more; [`actions`] names the IAM actions each call needs, and
//! [`policy`] grants exactly the actions of one [`Access`] level on one table
//! and its object prefix. The contract suite (`tests/contract/iam.rs`) runs
//! every public operation of each level over a call-recording backend and
//! checks both directions: every action used is granted, and every action
//! granted is used.
//!
//! # Levels
//!
//! The levels are cumulative: [`Access::Write`] includes [`Access::Read`],
//! [`Access::Admin`] includes [`Access::Write`].
//!
//! | level | library operations |
//! |---|---|
//! | read | [`Store::get_large`](crate::Store::get_large), [`get_large_consistent`](crate::Store::get_large_consistent), [`get_stored`](crate::Store::get_stored), [`load`](crate::Store::load), [`batch_get_large`](crate::Store::batch_get_large), [`query`](crate::Store::query) (also on an index), [`scan`](crate::Store::scan) (also parallel), [`download_large`](crate::Store::download_large), [`download_large_to_file`](crate::Store::download_large_to_file), [`read_large_range`](crate::Store::read_large_range), [`presign_large`](crate::Store::presign_large), [`verify`](crate::Store::verify) (reads only: Scan, ListObjectsV2, HeadObject or GetObject); the versioned stores' `get_latest`, `get`, `versions` and `verify`; [`open_table`](crate::Store::open_table) (DescribeTable) and the [`AnyTable`](crate::AnyTable) reads (`list`, `get`, `object_info`, `download`, `verify`, and `stats`, which counts incomplete multipart uploads with ListMultipartUploads), i.e. the CLI's `ls`, `get`, `cat`, `verify` and `stats`; the change feed ([`changes`](crate::Store::changes), [`stream_records`](crate::Store::stream_records), the CLI's `watch`) |
//! | write | [`create_large`](crate::Store::create_large), [`update_large`](crate::Store::update_large), [`delete_large`](crate::Store::delete_large), [`delete_large_if`](crate::Store::delete_large_if), [`batch_create_large`](crate::Store::batch_create_large), [`batch_delete_large`](crate::Store::batch_delete_large), [`transaction`](crate::Store::transaction)s, the step-by-step API ([`put_s3`](crate::Store::put_s3) and the `clean_up_after_*` hooks), [`flush`](crate::Store::flush); the versioned stores' `put`, `put_latest`, `update`, `upsert`, `delete_version` and `prune` |
//! | admin | [`ensure_table`](crate::Store::ensure_table), [`ensure_table_spec`](crate::Store::ensure_table_spec), [`ensure_bucket`](crate::Store::ensure_bucket), [`ensure_bucket_with`](crate::Store::ensure_bucket_with), [`plan_provision`](crate::Store::plan_provision), [`provision`](crate::Store::provision), [`gc`](crate::Store::gc) (it aborts stale multipart uploads), [`repair_from_versions`](crate::Store::repair_from_versions); the versioned stores' `ensure_table` and `gc`; [`AnyTable::gc`](crate::AnyTable::gc) |
//!
//! # What the policies grant, and why
//!
//! * **DynamoDB** actions are granted on the table, and Query and Scan (the
//!   only actions that can target an index) also on its indexes
//!   (`table/{table}/index/*`). TransactWriteItems is not an IAM action: a
//!   transaction is authorized per contained action, so it needs PutItem,
//!   UpdateItem, DeleteItem and ConditionCheckItem.
//! * **Object** actions are granted under the table's object prefix
//!   (`{bucket}/{prefix}/*`). HeadObject needs `s3:GetObject`, and so does a
//!   presigned GET URL ([`Store::presign_large`](crate::Store::presign_large)):
//!   it is signed locally with the caller's credentials, and S3 authorizes the
//!   request made with it as a GetObject of the signer. Multipart uploads are
//!   `s3:PutObject` (create, parts, completion) and `s3:AbortMultipartUpload`
//!   (a writer aborts its own failed upload); DeleteObjects is
//!   `s3:DeleteObject` per key.
//! * **`s3:ListBucket`** is granted on the bucket for keys under the prefix
//!   only (`s3:prefix` like `{prefix}/*` or `{prefix}/`). Reads need it twice:
//!   verify lists the table's objects (ListObjectsV2 of `{prefix}/`), and a
//!   HeadObject or GetObject of a missing key answers 404 only to a caller
//!   allowed to list that key (S3 evaluates the `s3:prefix` condition with the
//!   key) — without it, a missing object is a 403 `AccessDenied`, and a write,
//!   which looks for its content-addressed object before uploading, would fail.
//! * **Admin** adds the bucket-level actions on the bucket: CreateBucket, the
//!   settings of [`ensure_bucket_with`](crate::Store::ensure_bucket_with)
//!   (PutPublicAccessBlock, PutBucketEncryption, Get/PutBucketLifecycleConfiguration),
//!   and an unconditioned `s3:ListBucket` (HeadBucket,
//!   [`Backend::bucket_exists`](crate::BackendExt::bucket_exists), sends no
//!   prefix); and on the table CreateTable, UpdateTable (missing global
//!   indexes, a stream), UpdateContinuousBackups (point-in-time recovery) and
//!   Describe/UpdateTimeToLive (time to live on `vhs:ttl`, for models with a
//!   `#[vhs(ttl)]` field).
//! * **Backups** (admin): `s3:PutBucketVersioning` for a spec with
//!   [`BucketSpec::versioning`](crate::BucketSpec::versioning), and for
//!   [`repair_from_versions`](crate::Store::repair_from_versions) (`vhs
//!   restore-check`) `s3:GetBucketVersioning` and `s3:ListBucketVersions` on
//!   the bucket, `s3:GetObjectVersion` and `s3:DeleteObjectVersion` (removing
//!   the delete marker over a version restores it) under the prefix.
//! * **Read** also has DescribeTable (opening a table by its key schema, and
//!   creation waiting for `ACTIVE`) and `s3:ListBucketMultipartUploads` on the
//!   bucket (IAM supports no `s3:prefix` condition for it; `stats` counts the
//!   incomplete uploads, and gc finds the stale ones with it).
//! * **Read** also reads the table's stream (the change feed): DescribeStream,
//!   GetShardIterator and GetRecords on `table/{table}/stream/*`.
//! * **Tags**: with [`PolicyScope::tagged_objects`] (a store that tags its
//!   objects, [`StoreBuilder::tag_objects`](crate::StoreBuilder::tag_objects)),
//!   write adds `s3:PutObjectTagging` (an object write sending `x-amz-tagging`
//!   needs it besides `s3:PutObject`) and read `s3:GetObjectTagging`
//!   ([`AnyTable::object_tags`](crate::AnyTable::object_tags)); without
//!   tagging no tag header is sent and neither is granted. A storage class
//!   needs no permission of its own. Lifecycle rules per attribute
//!   ([`BucketSpec::transitions`](crate::BucketSpec::transitions)) are
//!   admin's `s3:PutLifecycleConfiguration`.
//! * **KMS**: with [`PolicyScope::kms_key_arn`] set (objects encrypted with
//!   SSE-KMS under that key), reading needs `kms:Decrypt`, writing also
//!   `kms:GenerateDataKey` (a multipart upload needs both).
//!
//! One policy covers one table; a store with several tables (or versioned
//! stores, each in its own table) needs one per table, or their statements
//! merged. Calls made directly on [`Store::backend`](crate::Store::backend)
//! are the caller's to authorize.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde_json::{json, Value};

use crate::backend::{Call, Op};
use crate::error::{Error, Result};
use crate::layout::normalize_prefix;
use crate::store::Store;

/// An access level: what a principal may do with a store's table and objects.
///
/// Cumulative: [`Write`](Access::Write) includes [`Read`](Access::Read), and
/// [`Admin`](Access::Admin) includes [`Write`](Access::Write). Parsed from and
/// displayed as `read`, `write`, `admin`.
///
/// ```
/// use vhs_core::iam::Access;
/// let level: Access = "write".parse().unwrap();
/// assert!(level.includes(Access::Read));
/// assert!(!level.includes(Access::Admin));
/// assert_eq!(level.to_string(), "write");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Access {
    /// Reads of items and objects, queries, scans, presigned URLs, verify.
    Read,
    /// Read, plus every write: create, update, delete, batches, transactions,
    /// versioned stores.
    Write,
    /// Write, plus creating and configuring the table and the bucket, and GC.
    Admin,
}

impl Access {
    /// Every level, from the least to the most privileged.
    pub const ALL: [Access; 3] = [Access::Read, Access::Write, Access::Admin];

    /// The level's name: `read`, `write` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::Admin => "admin",
        }
    }

    /// Whether this level includes everything `other` may do.
    pub fn includes(self, other: Access) -> bool {
        self >= other
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Access {
    type Err = Error;

    /// `read`, `write` or `admin` (any case); anything else is
    /// [`Error::InvalidInput`].
    fn from_str(s: &str) -> Result<Self> {
        Access::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                Error::invalid(format!(
                    "unknown access level {s:?}: expected read, write or admin"
                ))
            })
    }
}

/// The IAM actions one backend call needs.
///
/// ```
/// use vhs_core::{iam, Op};
/// assert_eq!(iam::actions(Op::HeadObject), ["s3:GetObject"]);
/// // Authorized per contained action.
/// assert!(iam::actions(Op::TransactWriteItems).contains(&"dynamodb:ConditionCheckItem"));
/// ```
pub fn actions(op: Op) -> &'static [&'static str] {
    // No `_` arm: a new `Op` does not compile until it is mapped here.
    match op {
        Op::GetItem => &["dynamodb:GetItem"],
        Op::PutItem => &["dynamodb:PutItem"],
        Op::UpdateItem => &["dynamodb:UpdateItem"],
        Op::DeleteItem => &["dynamodb:DeleteItem"],
        Op::Query => &["dynamodb:Query"],
        Op::Scan => &["dynamodb:Scan"],
        Op::BatchGetItem => &["dynamodb:BatchGetItem"],
        // There is no `dynamodb:TransactWriteItems`: each contained action is
        // authorized as its single-item counterpart.
        Op::TransactWriteItems => &[
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
            "dynamodb:ConditionCheckItem",
        ],
        // Creates the table, waits for it (DescribeTable), adds the global
        // indexes or the stream an existing one lacks (UpdateTable), turns on
        // point-in-time recovery (UpdateContinuousBackups).
        Op::CreateTable => &[
            "dynamodb:CreateTable",
            "dynamodb:DescribeTable",
            "dynamodb:UpdateTable",
            "dynamodb:UpdateContinuousBackups",
        ],
        Op::DescribeTable => &["dynamodb:DescribeTable"],
        Op::DeleteTable => &["dynamodb:DeleteTable"],
        // Time to live on `vhs:ttl` (models with a `#[vhs(ttl)]` field):
        // `ensure_table` and `provision` read it, and enable it if it is off.
        Op::UpdateTimeToLive => &["dynamodb:UpdateTimeToLive"],
        Op::DescribeTimeToLive => &["dynamodb:DescribeTimeToLive"],
        // The change feed (`vhs::stream`): the table's stream ARN, then the
        // stream, on `table/{table}/stream/*`.
        Op::DescribeStream => &["dynamodb:DescribeTable", "dynamodb:DescribeStream"],
        Op::GetShardIterator => &["dynamodb:GetShardIterator"],
        Op::GetRecords => &["dynamodb:GetRecords"],
        // GC and verify's Athena engine. Not in the policies `policy` writes
        // (their resources are the workgroup and the Glue database, which
        // those policies do not name): see the README, "GC and verify on
        // Athena".
        Op::StartQueryExecution => &[
            "athena:StartQueryExecution",
            "glue:CreateTable",
            "glue:DeleteTable",
            "glue:GetDatabase",
            "glue:GetTable",
        ],
        Op::GetQueryExecution => &["athena:GetQueryExecution"],
        Op::GetQueryResults => &["athena:GetQueryResults"],
        // A presigned URL carries the signer's permission to GetObject.
        Op::HeadObject | Op::GetObject | Op::GetObjectRange | Op::PresignGet => &["s3:GetObject"],
        Op::GetObjectTagging => &["s3:GetObjectTagging"],
        // Restoring objects from their noncurrent versions
        // (`Store::repair_from_versions`).
        Op::GetBucketVersioning => &["s3:GetBucketVersioning"],
        Op::ListObjectVersions => &["s3:ListBucketVersions"],
        Op::GetObjectVersion => &["s3:GetObjectVersion"],
        Op::DeleteObjectVersion => &["s3:DeleteObjectVersion"],
        Op::PutObject
        | Op::CreateMultipartUpload
        | Op::UploadPart
        | Op::CompleteMultipartUpload
        // A presigned upload carries the signer's permission to PutObject.
        | Op::PresignUpload => &["s3:PutObject"],
        Op::AbortMultipartUpload => &["s3:AbortMultipartUpload"],
        Op::ListMultipartUploads => &["s3:ListBucketMultipartUploads"],
        Op::ListObjects => &["s3:ListBucket"],
        Op::DeleteObjects => &["s3:DeleteObject"],
        Op::CreateBucket => &["s3:CreateBucket"],
        Op::HeadBucket => &["s3:ListBucket"],
        // PutPublicAccessBlock, PutBucketEncryption,
        // GetBucketLifecycleConfiguration, PutBucketLifecycleConfiguration.
        Op::ConfigureBucket => &[
            "s3:PutBucketPublicAccessBlock",
            "s3:PutEncryptionConfiguration",
            "s3:GetLifecycleConfiguration",
            "s3:PutLifecycleConfiguration",
        ],
    }
}

/// The resources a [`policy`] is about: one table and its object prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PolicyScope {
    /// The DynamoDB table.
    pub table: String,
    /// The S3 bucket.
    pub bucket: String,
    /// The table's object prefix, normalized (no leading, trailing or doubled
    /// `/`), as [`Store::table_prefix`] gives it; `""` for the whole bucket.
    pub prefix: String,
    /// The table's region; `None`: any (`*`).
    pub region: Option<String>,
    /// The table's account id; `None`: any (`*`).
    pub account: Option<String>,
    /// The ARN partition: `aws` (the default), `aws-cn`, `aws-us-gov`...
    pub partition: String,
    /// The KMS key the objects are encrypted with (SSE-KMS), if any.
    pub kms_key_arn: Option<String>,
    /// The store tags its objects
    /// ([`StoreBuilder::tag_objects`](crate::StoreBuilder::tag_objects)):
    /// writing needs `s3:PutObjectTagging`, and reading the tags back
    /// ([`AnyTable::object_tags`](crate::AnyTable::object_tags))
    /// `s3:GetObjectTagging`. Default `false`.
    pub tagged_objects: bool,
}

impl PolicyScope {
    /// The scope of `table`, whose objects are in `bucket` under `prefix`
    /// (normalized here), in any region and account of the `aws` partition.
    pub fn new(
        table: impl Into<String>,
        bucket: impl Into<String>,
        prefix: impl AsRef<str>,
    ) -> Self {
        PolicyScope {
            table: table.into(),
            bucket: bucket.into(),
            prefix: normalize_prefix(prefix.as_ref()),
            region: None,
            account: None,
            partition: "aws".to_owned(),
            kms_key_arn: None,
            tagged_objects: false,
        }
    }

    /// The scope of `table` of `store`: its bucket, the table's object
    /// prefix ([`Store::table_prefix`]), and whether it tags objects.
    pub fn for_table(store: &Store, table: &str) -> Result<Self> {
        Ok(
            PolicyScope::new(table, store.bucket(), store.table_prefix(table)?)
                .tagged_objects(store.tags_objects()),
        )
    }

    /// Sets [`PolicyScope::tagged_objects`].
    pub fn tagged_objects(mut self, yes: bool) -> Self {
        self.tagged_objects = yes;
        self
    }

    /// Sets [`PolicyScope::region`].
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Sets [`PolicyScope::account`].
    pub fn account(mut self, account: impl Into<String>) -> Self {
        self.account = Some(account.into());
        self
    }

    /// Sets [`PolicyScope::partition`].
    pub fn partition(mut self, partition: impl Into<String>) -> Self {
        self.partition = partition.into();
        self
    }

    /// Sets [`PolicyScope::kms_key_arn`].
    pub fn kms_key_arn(mut self, arn: impl Into<String>) -> Self {
        self.kms_key_arn = Some(arn.into());
        self
    }

    /// `arn:{partition}:dynamodb:{region}:{account}:table/{table}`.
    pub fn table_arn(&self) -> String {
        format!(
            "arn:{}:dynamodb:{}:{}:table/{}",
            self.partition,
            self.region.as_deref().unwrap_or("*"),
            self.account.as_deref().unwrap_or("*"),
            self.table
        )
    }

    /// The ARN of every stream of the table: `{table ARN}/stream/*`.
    pub fn stream_arn(&self) -> String {
        format!("{}/stream/*", self.table_arn())
    }

    /// The ARN of every index of the table: `{table ARN}/index/*`.
    pub fn indexes_arn(&self) -> String {
        format!("{}/index/*", self.table_arn())
    }

    /// `arn:{partition}:s3:::{bucket}`.
    pub fn bucket_arn(&self) -> String {
        format!("arn:{}:s3:::{}", self.partition, self.bucket)
    }

    /// The ARN of every object under the prefix: `{bucket ARN}/{prefix}/*`
    /// (`{bucket ARN}/*` for an empty prefix).
    pub fn objects_arn(&self) -> String {
        match self.prefix.as_str() {
            "" => format!("{}/*", self.bucket_arn()),
            p => format!("{}/{p}/*", self.bucket_arn()),
        }
    }
}

/// What a statement applies to.
#[derive(Clone, Copy)]
enum On {
    Table,
    /// The table's streams.
    Stream,
    TableAndIndexes,
    Objects,
    /// The bucket, for keys under the prefix only.
    BucketUnderPrefix,
    Bucket,
}

/// One statement of a level: a stable id, its actions (sorted), its resources.
struct Grant {
    level: Access,
    /// Only for a store that tags its objects ([`PolicyScope::tagged_objects`]).
    tagged: bool,
    sid: &'static str,
    actions: &'static [&'static str],
    on: On,
}

/// Every statement, each with the least level it belongs to. Actions sorted.
const GRANTS: &[Grant] = &[
    Grant {
        tagged: false,
        level: Access::Read,
        sid: "VhsReadItems",
        actions: &["dynamodb:BatchGetItem", "dynamodb:GetItem"],
        on: On::Table,
    },
    Grant {
        tagged: false,
        level: Access::Read,
        sid: "VhsQueryTableAndIndexes",
        actions: &["dynamodb:Query", "dynamodb:Scan"],
        on: On::TableAndIndexes,
    },
    Grant {
        tagged: false,
        level: Access::Read,
        sid: "VhsReadObjects",
        actions: &["s3:GetObject"],
        on: On::Objects,
    },
    Grant {
        tagged: false,
        level: Access::Read,
        sid: "VhsListObjectsUnderPrefix",
        actions: &["s3:ListBucket"],
        on: On::BucketUnderPrefix,
    },
    Grant {
        tagged: false,
        level: Access::Read,
        sid: "VhsDescribeTable",
        actions: &["dynamodb:DescribeTable"],
        on: On::Table,
    },
    Grant {
        tagged: false,
        level: Access::Read,
        sid: "VhsReadStream",
        actions: &[
            "dynamodb:DescribeStream",
            "dynamodb:GetRecords",
            "dynamodb:GetShardIterator",
        ],
        on: On::Stream,
    },
    Grant {
        tagged: false,
        level: Access::Read,
        sid: "VhsListUploads",
        actions: &["s3:ListBucketMultipartUploads"],
        on: On::Bucket,
    },
    Grant {
        tagged: true,
        level: Access::Read,
        sid: "VhsReadObjectTags",
        actions: &["s3:GetObjectTagging"],
        on: On::Objects,
    },
    Grant {
        tagged: false,
        level: Access::Write,
        sid: "VhsWriteItems",
        actions: &[
            "dynamodb:ConditionCheckItem",
            "dynamodb:DeleteItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
        ],
        on: On::Table,
    },
    Grant {
        tagged: false,
        level: Access::Write,
        sid: "VhsWriteObjects",
        actions: &["s3:AbortMultipartUpload", "s3:DeleteObject", "s3:PutObject"],
        on: On::Objects,
    },
    Grant {
        tagged: true,
        level: Access::Write,
        sid: "VhsTagObjects",
        actions: &["s3:PutObjectTagging"],
        on: On::Objects,
    },
    Grant {
        tagged: false,
        level: Access::Admin,
        sid: "VhsManageTable",
        actions: &[
            "dynamodb:CreateTable",
            "dynamodb:DescribeTimeToLive",
            "dynamodb:UpdateContinuousBackups",
            "dynamodb:UpdateTable",
            "dynamodb:UpdateTimeToLive",
        ],
        on: On::Table,
    },
    Grant {
        tagged: false,
        level: Access::Admin,
        sid: "VhsManageBucket",
        actions: &[
            "s3:CreateBucket",
            "s3:GetBucketVersioning",
            "s3:GetLifecycleConfiguration",
            "s3:ListBucket",
            "s3:ListBucketVersions",
            "s3:PutBucketPublicAccessBlock",
            "s3:PutBucketVersioning",
            "s3:PutEncryptionConfiguration",
            "s3:PutLifecycleConfiguration",
        ],
        on: On::Bucket,
    },
    Grant {
        tagged: false,
        level: Access::Admin,
        sid: "VhsRestoreObjectVersions",
        actions: &["s3:DeleteObjectVersion", "s3:GetObjectVersion"],
        on: On::Objects,
    },
];

/// The statements of `access`, for a store that tags its objects or not.
fn grants(access: Access, tagged_objects: bool) -> impl Iterator<Item = &'static Grant> {
    GRANTS
        .iter()
        .filter(move |g| access.includes(g.level) && (tagged_objects || !g.tagged))
}

/// The KMS actions of `access` on the objects' key (sorted).
fn kms_actions(access: Access) -> &'static [&'static str] {
    match access {
        Access::Read => &["kms:Decrypt"],
        Access::Write | Access::Admin => &["kms:Decrypt", "kms:GenerateDataKey"],
    }
}

/// Every action the [`policy`] of `access` grants, KMS actions aside (those
/// depend on [`PolicyScope::kms_key_arn`]: `kms:Decrypt` for every level,
/// `kms:GenerateDataKey` from [`Access::Write`] on).
///
/// ```
/// use vhs_core::iam::{level_actions, Access};
/// let read = level_actions(Access::Read);
/// assert!(read.contains("dynamodb:Query") && read.contains("s3:GetObject"));
/// assert!(!read.contains("s3:PutObject"));
/// assert!(level_actions(Access::Write).is_superset(&read));
/// ```
pub fn level_actions(access: Access) -> BTreeSet<&'static str> {
    tagged_level_actions(access, false)
}

/// [`level_actions`] for a store that tags its objects (`tagged_objects`,
/// see [`PolicyScope::tagged_objects`]) or not: tagging adds
/// `s3:GetObjectTagging` to read and `s3:PutObjectTagging` to write.
///
/// ```
/// use vhs_core::iam::{tagged_level_actions, Access};
/// assert!(tagged_level_actions(Access::Write, true).contains("s3:PutObjectTagging"));
/// assert!(!tagged_level_actions(Access::Write, false).contains("s3:PutObjectTagging"));
/// ```
pub fn tagged_level_actions(access: Access, tagged_objects: bool) -> BTreeSet<&'static str> {
    grants(access, tagged_objects)
        .flat_map(|g| g.actions.iter().copied())
        .collect()
}

/// The IAM actions one call needs: [`actions`] of its [`Op`], plus
/// `s3:PutObjectTagging` for an object write that sends tags (PutObject and
/// CreateMultipartUpload with `x-amz-tagging`).
///
/// ```
/// use vhs_core::{iam, Call, MultipartStart};
/// let start = MultipartStart {
///     bucket: "b".into(),
///     key: "k".into(),
///     content_type: "text/plain".into(),
///     content_encoding: None,
///     metadata: Default::default(),
///     checksum: vhs_core::ChecksumAlgorithm::Md5,
///     storage_class: None,
///     tags: vec![("vhs-table".into(), "docs".into())],
/// };
/// assert_eq!(
///     iam::call_actions(&Call::CreateMultipartUpload(&start)),
///     ["s3:PutObject", "s3:PutObjectTagging"]
/// );
/// ```
pub fn call_actions(call: &Call<'_>) -> Vec<&'static str> {
    let mut needed = actions(call.op()).to_vec();
    let tagged = match call {
        Call::PutObject(put) => !put.tags.is_empty(),
        Call::CreateMultipartUpload(start) => !start.tags.is_empty(),
        Call::PresignUpload(upload) => !upload.tags.is_empty(),
        _ => false,
    };
    if tagged {
        needed.push("s3:PutObjectTagging");
    }
    if let Call::ConfigureBucket { spec } = call {
        if spec.versioning {
            needed.push("s3:PutBucketVersioning");
        }
    }
    needed
}

/// The IAM policy document granting `access` to `scope`'s table and objects,
/// and nothing else. Statements have stable `Sid`s and come in a fixed order;
/// actions are sorted. See the [module docs](self) for what each grant is for.
///
/// ```
/// use vhs_core::iam::{policy, Access, PolicyScope};
/// let scope = PolicyScope::new("documents", "my-bucket", "app/documents")
///     .region("eu-west-1")
///     .account("123456789012");
/// let doc = policy(Access::Read, &scope);
/// assert_eq!(doc["Version"], "2012-10-17");
/// let objects = doc["Statement"]
///     .as_array()
///     .unwrap()
///     .iter()
///     .find(|s| s["Sid"] == "VhsReadObjects")
///     .unwrap();
/// assert_eq!(objects["Action"][0], "s3:GetObject");
/// assert_eq!(objects["Resource"][0], "arn:aws:s3:::my-bucket/app/documents/*");
/// ```
pub fn policy(access: Access, scope: &PolicyScope) -> Value {
    let mut statements: Vec<Value> = grants(access, scope.tagged_objects)
        .map(|g| {
            let resources = match g.on {
                On::Table => vec![scope.table_arn()],
                On::Stream => vec![scope.stream_arn()],
                On::TableAndIndexes => vec![scope.table_arn(), scope.indexes_arn()],
                On::Objects => vec![scope.objects_arn()],
                On::BucketUnderPrefix | On::Bucket => vec![scope.bucket_arn()],
            };
            let mut statement = json!({
                "Sid": g.sid,
                "Effect": "Allow",
                "Action": g.actions,
                "Resource": resources,
            });
            if matches!(g.on, On::BucketUnderPrefix) && !scope.prefix.is_empty() {
                // ListObjectsV2 of the store sends `{prefix}/`; a HeadObject or
                // GetObject of a missing key is checked with the key.
                let under = [format!("{}/*", scope.prefix), format!("{}/", scope.prefix)];
                statement["Condition"] = json!({ "StringLike": { "s3:prefix": under } });
            }
            statement
        })
        .collect();
    if let Some(key) = &scope.kms_key_arn {
        statements.push(json!({
            "Sid": "VhsUseKmsKey",
            "Effect": "Allow",
            "Action": kms_actions(access),
            "Resource": [key],
        }));
    }
    json!({
        "Version": "2012-10-17",
        "Statement": statements,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_display_and_nest() {
        for a in Access::ALL {
            assert_eq!(a.to_string().parse::<Access>().unwrap(), a);
        }
        assert_eq!("ADMIN".parse::<Access>().unwrap(), Access::Admin);
        assert!("owner".parse::<Access>().is_err());
        assert!(level_actions(Access::Admin).is_superset(&level_actions(Access::Write)));
        assert!(level_actions(Access::Write).is_superset(&level_actions(Access::Read)));
    }

    #[test]
    fn statement_actions_are_sorted_and_sids_unique() {
        let mut sids = BTreeSet::new();
        for g in GRANTS {
            assert!(g.actions.windows(2).all(|w| w[0] < w[1]), "{}", g.sid);
            assert!(sids.insert(g.sid), "{}", g.sid);
        }
    }

    #[test]
    fn empty_prefix_is_the_whole_bucket_without_condition() {
        let scope = PolicyScope::new("t", "b", "/");
        assert_eq!(scope.objects_arn(), "arn:aws:s3:::b/*");
        let doc = policy(Access::Read, &scope);
        let list = doc["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Sid"] == "VhsListObjectsUnderPrefix")
            .unwrap();
        assert!(list.get("Condition").is_none(), "{list}");
    }
}
