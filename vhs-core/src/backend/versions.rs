//! The arguments and answers of the S3 versioning calls: a bucket's
//! versioning status, and the versions and delete markers of its keys
//! ([`ObjectCalls::list_object_versions`](super::ObjectCalls::list_object_versions)).

use std::time::SystemTime;

/// A bucket's versioning status, as GetBucketVersioning reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BucketVersioning {
    /// Versioning was never enabled: a deleted or replaced object is gone.
    Unversioned,
    /// Every write keeps the object it replaces as a noncurrent version, and a
    /// delete leaves a delete marker over it.
    Enabled,
    /// Versioning was enabled, then suspended: versions kept so far remain,
    /// new writes replace the `null` version.
    Suspended,
}

impl BucketVersioning {
    /// `unversioned`, `enabled` or `suspended`.
    pub fn as_str(self) -> &'static str {
        match self {
            BucketVersioning::Unversioned => "unversioned",
            BucketVersioning::Enabled => "enabled",
            BucketVersioning::Suspended => "suspended",
        }
    }
}

impl std::fmt::Display for BucketVersioning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One version of a key, or one delete marker, as ListObjectVersions lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObjectVersion {
    /// The object key.
    pub key: String,
    /// The version id (`null` for an object written before versioning was
    /// enabled, or while it was suspended).
    pub version_id: String,
    /// The key's latest version: the object a GET returns, or for a delete
    /// marker, the reason a GET finds nothing.
    pub is_latest: bool,
    /// A delete marker (no bytes), not an object.
    pub is_delete_marker: bool,
    /// Size in bytes (0 for a delete marker).
    pub size: u64,
    /// When this version was written (the delete, for a delete marker).
    pub last_modified: Option<SystemTime>,
}

impl ObjectVersion {
    /// A version of `key` with id `version_id`: an object of `size` bytes,
    /// not the latest, no time.
    pub fn new(key: impl Into<String>, version_id: impl Into<String>, size: u64) -> Self {
        ObjectVersion {
            key: key.into(),
            version_id: version_id.into(),
            is_latest: false,
            is_delete_marker: false,
            size,
            last_modified: None,
        }
    }
}

/// Where a [`VersionPage`] listing continues: after this key and version
/// (`KeyMarker` and `VersionIdMarker`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionCursor {
    /// The last key listed.
    pub key: String,
    /// The last version of that key listed (`None`: start after the key's
    /// every version).
    pub version_id: Option<String>,
}

/// One page of ListObjectVersions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionPage {
    /// Versions and delete markers, by key, each key's newest first.
    pub versions: Vec<ObjectVersion>,
    /// Where the next page starts, if there is one.
    pub next: Option<VersionCursor>,
}
