//! S3 versioning: a bucket's versioning status, the versions of its keys,
//! reading and deleting one version (what restoring objects from noncurrent
//! versions needs, see [`Store::repair_from_versions`](crate::Store::repair_from_versions)).

use super::*;
use crate::backend::{BucketVersioning, ObjectVersion, VersionCursor, VersionPage};

impl AwsBackend {
    /// GetBucketVersioning.
    pub(super) async fn bucket_versioning(&self, bucket: &str) -> Result<BucketVersioning> {
        let status = match self
            .s3
            .get_bucket_versioning()
            .bucket(bucket)
            .set_expected_bucket_owner(self.expected_bucket_owner.clone())
            .send()
            .await
        {
            Ok(out) => out.status().map(|s| s.as_str().to_owned()),
            // moto 5.2.5 names the document's root `GetBucketVersioningResponse`
            // instead of `VersioningConfiguration`, which the SDK refuses to
            // decode: a 200 answer is read for its `<Status>` all the same.
            Err(e) => match e
                .raw_response()
                .filter(|r| r.status().as_u16() == 200)
                .and_then(|r| r.body().bytes())
                .map(|b| String::from_utf8_lossy(b).into_owned())
            {
                Some(body) => body
                    .split_once("<Status>")
                    .and_then(|(_, rest)| rest.split_once("</Status>"))
                    .map(|(status, _)| status.trim().to_owned()),
                None => return Err(self.s3_error(Op::GetBucketVersioning.name(), bucket, e)),
            },
        };
        Ok(match status.as_deref() {
            Some("Enabled") => BucketVersioning::Enabled,
            Some("Suspended") => BucketVersioning::Suspended,
            _ => BucketVersioning::Unversioned,
        })
    }

    /// PutBucketVersioning `Enabled`.
    pub(super) async fn enable_versioning(&self, bucket: &str) -> Result<()> {
        self.s3
            .put_bucket_versioning()
            .bucket(bucket)
            .versioning_configuration(
                s3::types::VersioningConfiguration::builder()
                    .status(s3::types::BucketVersioningStatus::Enabled)
                    .build(),
            )
            .set_expected_bucket_owner(self.expected_bucket_owner.clone())
            .send()
            .await
            .map_err(|e| self.s3_error("PutBucketVersioning", bucket, e))?;
        Ok(())
    }

    /// ListObjectVersions, one page.
    pub(super) async fn object_versions(
        &self,
        bucket: &str,
        prefix: &str,
        continuation: Option<VersionCursor>,
    ) -> Result<VersionPage> {
        let (key_marker, version_marker) = match continuation {
            Some(c) => (Some(c.key), c.version_id),
            None => (None, None),
        };
        let out = self
            .s3
            .list_object_versions()
            .bucket(bucket)
            .prefix(prefix)
            .set_key_marker(key_marker)
            .set_version_id_marker(version_marker)
            .set_expected_bucket_owner(self.expected_bucket_owner.clone())
            .send()
            .await
            .map_err(|e| self.s3_error(Op::ListObjectVersions.name(), bucket, e))?;
        let time =
            |t: Option<&s3::primitives::DateTime>| t.and_then(|t| SystemTime::try_from(*t).ok());
        let mut versions: Vec<ObjectVersion> = out
            .versions()
            .iter()
            .map(|v| ObjectVersion {
                is_latest: v.is_latest() == Some(true),
                last_modified: time(v.last_modified()),
                ..ObjectVersion::new(
                    v.key().unwrap_or_default(),
                    v.version_id().unwrap_or("null"),
                    v.size().unwrap_or_default().max(0) as u64,
                )
            })
            .chain(out.delete_markers().iter().map(|m| ObjectVersion {
                is_latest: m.is_latest() == Some(true),
                is_delete_marker: true,
                last_modified: time(m.last_modified()),
                ..ObjectVersion::new(
                    m.key().unwrap_or_default(),
                    m.version_id().unwrap_or("null"),
                    0,
                )
            }))
            .collect();
        // S3 lists versions and delete markers in two lists: merge them by
        // key, each key's newest first (the latest one leading).
        versions.sort_by(|a, b| {
            a.key
                .cmp(&b.key)
                .then(b.is_latest.cmp(&a.is_latest))
                .then(b.last_modified.cmp(&a.last_modified))
        });
        let next = (out.is_truncated() == Some(true))
            .then(|| {
                out.next_key_marker().map(|k| VersionCursor {
                    key: k.to_owned(),
                    version_id: out.next_version_id_marker().map(str::to_owned),
                })
            })
            .flatten();
        Ok(VersionPage { versions, next })
    }

    /// GetObject of one version, read whole.
    pub(super) async fn object_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<Option<StoredObject>> {
        const OP: &str = Op::GetObjectVersion.name();
        let out = match self
            .s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .version_id(version_id)
            .set_expected_bucket_owner(self.expected_bucket_owner.clone())
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => return Ok(None),
            // A delete marker (405 MethodNotAllowed), or a version that does
            // not exist (404 NoSuchVersion, or 400 on some servers for an id
            // they cannot parse).
            Err(e)
                if matches!(e.code(), Some("NoSuchVersion" | "MethodNotAllowed"))
                    || e.raw_response()
                        .is_some_and(|r| matches!(r.status().as_u16(), 404 | 405)) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(self.s3_error(OP, bucket, e)),
        };
        let metadata = out.metadata.clone().unwrap_or_default();
        let content_type = out.content_type.clone();
        let content_encoding = out.content_encoding.clone();
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| {
                Error::backend(
                    "s3",
                    OP,
                    true,
                    format!("reading version {version_id} of {key} in bucket {bucket}: {e}"),
                )
            })?
            .into_bytes();
        Ok(Some(StoredObject {
            body,
            metadata,
            content_type,
            content_encoding,
        }))
    }

    /// DeleteObject of one version or delete marker.
    pub(super) async fn delete_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<()> {
        self.s3
            .delete_object()
            .bucket(bucket)
            .key(key)
            .version_id(version_id)
            .set_expected_bucket_owner(self.expected_bucket_owner.clone())
            .send()
            .await
            .map_err(|e| self.s3_error(Op::DeleteObjectVersion.name(), bucket, e))?;
        Ok(())
    }
}
