//! Bucket versioning in memory, as S3 does it: with versioning enabled
//! (by [`BucketSpec::versioning`](crate::BucketSpec::versioning)), every write
//! keeps the object it replaces as a noncurrent version and every delete
//! leaves a delete marker (also over a missing key); removing the delete
//! marker that is a key's latest version brings the version under it back.
//! An object written before versioning was enabled is the version `null`.

use std::collections::BTreeMap;
use std::time::SystemTime;

use async_trait::async_trait;
use tokio::task::yield_now;

use super::{MemObject, MemoryBackend, State};
use crate::backend::{
    BucketVersioning, ObjectVersion, Op, StoredObject, VersionCursor, VersionPage,
};
use crate::error::Result;

/// One version of a key: an object, or a delete marker (`object: None`).
#[derive(Debug, Clone)]
pub(super) struct MemVersion {
    id: String,
    at: SystemTime,
    object: Option<MemObject>,
}

/// A bucket's versioning status and its keys' versions, oldest first. A key
/// with no entry here has at most its current object, the version `null`.
#[derive(Debug)]
pub(super) struct BucketVersions {
    status: BucketVersioning,
    keys: BTreeMap<String, Vec<MemVersion>>,
}

impl Default for BucketVersions {
    fn default() -> Self {
        BucketVersions {
            status: BucketVersioning::Unversioned,
            keys: BTreeMap::new(),
        }
    }
}

/// At most this many versions per ListObjectVersions page, as S3.
const PAGE: usize = 1000;

impl State {
    fn versioning_of(&self, bucket: &str) -> BucketVersioning {
        self.versions
            .get(bucket)
            .map_or(BucketVersioning::Unversioned, |v| v.status)
    }

    fn next_version_id(&mut self) -> String {
        self.next_version += 1;
        format!("{:020}", self.next_version)
    }

    /// The versions of `key` in a versioned bucket, oldest first, with the
    /// object written before versioning (if any) as the version `null`.
    fn history(&mut self, bucket: &str, key: &str) -> &mut Vec<MemVersion> {
        let current = self
            .buckets
            .get(bucket)
            .and_then(|objects| objects.get(key))
            .cloned();
        let versions = self.versions.entry(bucket.to_owned()).or_default();
        let list = versions.keys.entry(key.to_owned()).or_default();
        if list.is_empty() {
            if let Some(o) = current {
                list.push(MemVersion {
                    id: "null".to_owned(),
                    at: o.last_modified,
                    object: Some(o),
                });
            }
        }
        list
    }

    /// Writes `object` at `key` of `bucket` (which exists), keeping the
    /// object it replaces as a noncurrent version when versioning is on.
    pub(super) fn put_current(&mut self, bucket: &str, key: String, object: MemObject) {
        if self.versioning_of(bucket) == BucketVersioning::Enabled {
            let id = self.next_version_id();
            let version = MemVersion {
                id,
                at: object.last_modified,
                object: Some(object.clone()),
            };
            self.history(bucket, &key).push(version);
        }
        if let Some(objects) = self.buckets.get_mut(bucket) {
            objects.insert(key, object);
        }
    }

    /// Deletes `key` of `bucket` (which exists): with versioning on, a
    /// delete marker goes over it (also when there is no object).
    pub(super) fn delete_current(&mut self, bucket: &str, key: &str) {
        if self.versioning_of(bucket) == BucketVersioning::Enabled {
            let id = self.next_version_id();
            self.history(bucket, key).push(MemVersion {
                id,
                at: SystemTime::now(),
                object: None,
            });
        }
        if let Some(objects) = self.buckets.get_mut(bucket) {
            objects.remove(key);
        }
    }

    /// Turns versioning on for `bucket`.
    pub(super) fn enable_versioning(&mut self, bucket: &str) {
        self.versions.entry(bucket.to_owned()).or_default().status = BucketVersioning::Enabled;
    }

    /// Every version under `prefix` at or after `from`: by key, each key's
    /// newest first.
    fn versions_from(&self, bucket: &str, prefix: &str, from: &str) -> Vec<ObjectVersion> {
        let empty = BTreeMap::new();
        let objects = self.buckets.get(bucket).unwrap_or(&empty);
        let kept = self.versions.get(bucket).map(|v| &v.keys);
        let mut keys: Vec<&String> = objects
            .keys()
            .chain(kept.into_iter().flat_map(|k| k.keys()))
            .filter(|k| k.starts_with(prefix) && k.as_str() >= from)
            .collect();
        keys.sort();
        keys.dedup();
        let mut out = Vec::new();
        for key in keys {
            match kept.and_then(|k| k.get(key)).filter(|l| !l.is_empty()) {
                Some(list) => {
                    let last = list.len() - 1;
                    for (i, v) in list.iter().enumerate().rev() {
                        out.push(ObjectVersion {
                            is_latest: i == last,
                            is_delete_marker: v.object.is_none(),
                            last_modified: Some(v.at),
                            ..ObjectVersion::new(
                                key.clone(),
                                v.id.clone(),
                                v.object.as_ref().map_or(0, |o| o.object.body.len() as u64),
                            )
                        });
                    }
                }
                None => {
                    if let Some(o) = objects.get(key) {
                        out.push(ObjectVersion {
                            is_latest: true,
                            last_modified: Some(o.last_modified),
                            ..ObjectVersion::new(key.clone(), "null", o.object.body.len() as u64)
                        });
                    }
                }
            }
        }
        out
    }
}

/// The versioning calls of [`MemoryBackend`], called from its
/// `ObjectCalls` and `ProvisionCalls` impls.
#[async_trait]
pub(super) trait MemVersioning {
    async fn bucket_versioning(&self, bucket: &str) -> Result<BucketVersioning>;
    async fn object_versions(
        &self,
        bucket: &str,
        prefix: &str,
        continuation: Option<VersionCursor>,
    ) -> Result<VersionPage>;
    async fn object_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<Option<StoredObject>>;
    async fn delete_version(&self, bucket: &str, key: &str, version_id: &str) -> Result<()>;
}

#[async_trait]
impl MemVersioning for MemoryBackend {
    async fn bucket_versioning(&self, bucket: &str) -> Result<BucketVersioning> {
        yield_now().await;
        let mut state = self.lock();
        state.bucket(bucket, Op::GetBucketVersioning.name())?;
        Ok(state.versioning_of(bucket))
    }

    async fn object_versions(
        &self,
        bucket: &str,
        prefix: &str,
        continuation: Option<VersionCursor>,
    ) -> Result<VersionPage> {
        yield_now().await;
        let mut state = self.lock();
        state.bucket(bucket, Op::ListObjectVersions.name())?;
        let from = continuation.as_ref().map_or("", |c| c.key.as_str());
        let mut all = state.versions_from(bucket, prefix, from);
        if let Some(c) = &continuation {
            // Skip the cursor's key up to and including its version (all of
            // it without a version).
            let skip = match &c.version_id {
                Some(id) => all
                    .iter()
                    .position(|v| v.key == c.key && &v.version_id == id)
                    .map_or(0, |i| i + 1),
                None => all.iter().take_while(|v| v.key == c.key).count(),
            };
            all.drain(..skip);
        }
        let next = (all.len() > PAGE).then(|| {
            let last = &all[PAGE - 1];
            VersionCursor {
                key: last.key.clone(),
                version_id: Some(last.version_id.clone()),
            }
        });
        all.truncate(PAGE);
        Ok(VersionPage {
            versions: all,
            next,
        })
    }

    async fn object_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<Option<StoredObject>> {
        yield_now().await;
        let mut state = self.lock();
        state.bucket(bucket, Op::GetObjectVersion.name())?;
        let listed = state
            .versions
            .get(bucket)
            .and_then(|v| v.keys.get(key))
            .filter(|l| !l.is_empty());
        Ok(match listed {
            Some(list) => list
                .iter()
                .find(|v| v.id == version_id)
                .and_then(|v| v.object.as_ref())
                .map(|o| o.object.clone()),
            None if version_id == "null" => state
                .buckets
                .get(bucket)
                .and_then(|o| o.get(key))
                .map(|o| o.object.clone()),
            None => None,
        })
    }

    async fn delete_version(&self, bucket: &str, key: &str, version_id: &str) -> Result<()> {
        yield_now().await;
        let mut state = self.lock();
        state.bucket(bucket, Op::DeleteObjectVersion.name())?;
        let listed = state
            .versions
            .get_mut(bucket)
            .and_then(|v| v.keys.get_mut(key))
            .filter(|l| !l.is_empty());
        let latest = match listed {
            Some(list) => {
                let Some(i) = list.iter().position(|v| v.id == version_id) else {
                    return Ok(());
                };
                if i + 1 != list.len() {
                    list.remove(i);
                    return Ok(());
                }
                list.remove(i);
                list.last().and_then(|v| v.object.clone())
            }
            None if version_id == "null" => None,
            None => return Ok(()),
        };
        // The latest version went: the one under it (if an object) is what a
        // GET returns now.
        if let Some(objects) = state.buckets.get_mut(bucket) {
            match latest {
                Some(o) => {
                    objects.insert(key.to_owned(), o);
                }
                None => {
                    objects.remove(key);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::backend::{BackendExt as _, BucketSpec, PutObject, Signal};
    use crate::checksum::ChecksumAlgorithm;
    use crate::MemoryBackend;

    async fn put(backend: &MemoryBackend, key: &str, body: &[u8]) {
        backend
            .put_object(PutObject {
                bucket: "b".into(),
                key: key.into(),
                body: bytes::Bytes::copy_from_slice(body),
                checksum: ChecksumAlgorithm::Md5.digest(body),
                content_type: "application/octet-stream".into(),
                content_encoding: None,
                metadata: Default::default(),
                storage_class: None,
                tags: Vec::new(),
                if_none_match: false,
                complete_after: Signal::open(),
            })
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn versions_page_by_a_thousand_and_an_older_version_goes_alone() {
        let backend = MemoryBackend::new();
        backend.create_bucket("b").await.unwrap();
        backend
            .configure_bucket(&BucketSpec::new("b", "").backup_consistent())
            .await
            .unwrap();
        for i in 0..1001u32 {
            put(&backend, "k", &i.to_be_bytes()).await;
        }
        put(&backend, "l", b"other key").await;
        let first = backend.list_object_versions("b", "k", None).await.unwrap();
        assert_eq!(first.versions.len(), 1000);
        assert!(first.versions[0].is_latest);
        assert!(first.versions[1..].iter().all(|v| !v.is_latest));
        let cursor = first.next.clone().expect("a second page");
        let second = backend
            .list_object_versions("b", "k", Some(cursor))
            .await
            .unwrap();
        assert_eq!(second.versions.len(), 1);
        assert!(second.next.is_none());
        let oldest = &second.versions[0];
        let body = backend
            .get_object_version("b", "k", &oldest.version_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&body.body[..], &0u32.to_be_bytes());
        // Removing a noncurrent version leaves the current object as it is.
        backend
            .delete_object_version("b", "k", &oldest.version_id)
            .await
            .unwrap();
        let current = backend.get_object("b", "k").await.unwrap().unwrap();
        assert_eq!(&current.body[..], &1000u32.to_be_bytes());
        // Removing the latest version makes the one under it current.
        let latest = first.versions[0].version_id.clone();
        backend
            .delete_object_version("b", "k", &latest)
            .await
            .unwrap();
        let current = backend.get_object("b", "k").await.unwrap().unwrap();
        assert_eq!(&current.body[..], &999u32.to_be_bytes());
        // A delete over a missing key still leaves a marker, as on S3.
        backend
            .delete_objects("b", &["gone".to_owned()], crate::Attempts::Retried)
            .await
            .unwrap();
        let gone = backend
            .list_object_versions("b", "gone", None)
            .await
            .unwrap();
        assert_eq!(gone.versions.len(), 1);
        assert!(gone.versions[0].is_delete_marker && gone.versions[0].is_latest);
    }
}
