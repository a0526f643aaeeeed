//! Buckets in memory: objects, multipart uploads, presigned URLs.

use super::*;
use crate::checksum::Checksum;

/// S3's checks of a write's storage class and tags: a class it knows, at most
/// 10 tags, keys of 1 to 128 characters, values up to 256, no key twice.
fn check_class_and_tags(
    operation: &'static str,
    storage_class: Option<&str>,
    tags: &[(String, String)],
) -> Result<()> {
    const CLASSES: [&str; 9] = [
        "STANDARD",
        "REDUCED_REDUNDANCY",
        "STANDARD_IA",
        "ONEZONE_IA",
        "INTELLIGENT_TIERING",
        "GLACIER",
        "DEEP_ARCHIVE",
        "GLACIER_IR",
        "OUTPOSTS",
    ];
    if let Some(class) = storage_class.filter(|c| !CLASSES.contains(c)) {
        return Err(s3_error(
            operation,
            "InvalidStorageClass",
            format!("the storage class {class} you specified is not valid"),
        ));
    }
    let bad = tags.len() > 10
        || tags.iter().enumerate().any(|(i, (k, v))| {
            k.is_empty()
                || k.chars().count() > 128
                || v.chars().count() > 256
                || tags[..i].iter().any(|(earlier, _)| earlier == k)
        });
    if bad {
        return Err(s3_error(
            operation,
            "InvalidTag",
            "the tag set breaks S3's limits (10 tags, keys up to 128 characters, values up to 256, no key twice)",
        ));
    }
    Ok(())
}

#[async_trait]
impl ObjectCalls for MemoryBackend {
    async fn list_object_versions(
        &self,
        bucket: &str,
        prefix: &str,
        continuation: Option<crate::backend::VersionCursor>,
    ) -> Result<crate::backend::VersionPage> {
        super::versions::MemVersioning::object_versions(self, bucket, prefix, continuation).await
    }

    async fn get_object_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<Option<StoredObject>> {
        super::versions::MemVersioning::object_version(self, bucket, key, version_id).await
    }

    async fn delete_object_version(&self, bucket: &str, key: &str, version_id: &str) -> Result<()> {
        super::versions::MemVersioning::delete_version(self, bucket, key, version_id).await
    }

    async fn put_object(&self, request: PutObject) -> Result<PutOutcome> {
        request.complete_after.wait().await;
        yield_now().await;
        check_class_and_tags(
            Op::PutObject.name(),
            request.storage_class.as_deref(),
            &request.tags,
        )?;
        if request.key.is_empty() || request.key.len() > MAX_KEY_BYTES {
            return Err(Error::Backend {
                service: "memory",
                operation: Op::PutObject.name(),
                code: Some("KeyTooLongError".into()),
                retryable: false,
                message: format!("key of {} bytes", request.key.len()),
                source: None,
            });
        }
        let sent = &request.checksum;
        if crate::blob::checksum_of(&request.body, sent.algorithm()).await != *sent {
            return Err(bad_digest(Op::PutObject.name(), sent.algorithm()));
        }
        let etag = match sent.algorithm() {
            ChecksumAlgorithm::Md5 => sent.hex(),
            _ => crate::blob::checksum_of(&request.body, ChecksumAlgorithm::Md5)
                .await
                .hex(),
        };
        let mut state = self.lock();
        let objects = state.bucket(&request.bucket, Op::PutObject.name())?;
        if request.if_none_match && objects.contains_key(&request.key) {
            return Ok(PutOutcome::AlreadyExisted);
        }
        state.put_current(
            &request.bucket,
            request.key,
            MemObject {
                object: StoredObject {
                    body: request.body,
                    metadata: request.metadata,
                    content_type: Some(request.content_type),
                    content_encoding: request.content_encoding,
                },
                last_modified: SystemTime::now(),
                storage_class: request.storage_class,
                tags: request.tags,
                etag,
                checksums: kept_checksum(&request.checksum),
            },
        );
        Ok(PutOutcome::Created)
    }

    async fn get_object(&self, bucket: &str, key: &str) -> Result<Option<StoredObject>> {
        yield_now().await;
        let mut state = self.lock();
        Ok(state
            .bucket(bucket, Op::GetObject.name())?
            .get(key)
            .map(|o| o.object.clone()))
    }

    async fn get_object_range(
        &self,
        bucket: &str,
        key: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Option<ObjectRange>> {
        yield_now().await;
        let mut state = self.lock();
        Ok(state
            .bucket(bucket, Op::GetObject.name())?
            .get(key)
            .map(|o| ObjectRange::cut(&o.object.body, range)))
    }

    async fn head_object(&self, bucket: &str, key: &str) -> Result<Option<ObjectInfo>> {
        yield_now().await;
        let mut state = self.lock();
        Ok(state
            .bucket(bucket, Op::HeadObject.name())?
            .get(key)
            .map(|o| (o.info(key), o))
            .map(|(info, o)| ObjectInfo {
                // As S3's HeadObject: `x-amz-storage-class` only when not STANDARD.
                storage_class: info.storage_class.clone().filter(|c| c != "STANDARD"),
                etag: Some(o.etag.clone()),
                checksums: o.checksums.clone(),
                metadata: o.object.metadata.clone(),
                ..info
            }))
    }

    async fn get_object_tagging(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<Vec<(String, String)>>> {
        yield_now().await;
        let mut state = self.lock();
        Ok(state
            .bucket(bucket, Op::GetObjectTagging.name())?
            .get(key)
            .map(|o| o.tags.clone()))
    }

    async fn delete_objects(
        &self,
        bucket: &str,
        keys: &[String],
        _attempts: Attempts,
    ) -> Result<Vec<(String, String)>> {
        yield_now().await;
        if keys.len() > crate::backend::MAX_DELETE_BATCH {
            return Err(Error::Backend {
                service: "memory",
                operation: Op::DeleteObjects.name(),
                code: Some("MalformedXML".into()),
                retryable: false,
                message: format!("{} keys in one request", keys.len()),
                source: None,
            });
        }
        let mut state = self.lock();
        state.bucket(bucket, Op::DeleteObjects.name())?;
        for k in keys {
            state.delete_current(bucket, k);
        }
        Ok(Vec::new())
    }

    async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        continuation: Option<String>,
    ) -> Result<ObjectPage> {
        yield_now().await;
        const PAGE: usize = 1000;
        let mut state = self.lock();
        let objects = state.bucket(bucket, Op::ListObjects.name())?;
        let start = continuation.unwrap_or_default();
        let mut page: Vec<ObjectInfo> = objects
            .range::<String, _>((
                std::ops::Bound::Excluded(&start),
                std::ops::Bound::Unbounded,
            ))
            .filter(|(k, _)| k.starts_with(prefix))
            .take(PAGE + 1)
            .map(|(k, o)| o.info(k))
            .collect();
        let next = if page.len() > PAGE {
            page.truncate(PAGE);
            page.last().map(|o| o.key.clone())
        } else {
            None
        };
        Ok(ObjectPage {
            objects: page,
            next,
        })
    }

    async fn create_multipart_upload(&self, request: &MultipartStart) -> Result<String> {
        yield_now().await;
        check_class_and_tags(
            Op::CreateMultipartUpload.name(),
            request.storage_class.as_deref(),
            &request.tags,
        )?;
        let mut state = self.lock();
        state.bucket(&request.bucket, Op::CreateMultipartUpload.name())?;
        state.next_upload += 1;
        let id = format!("upload-{}", state.next_upload);
        state.uploads.insert(
            id.clone(),
            MemUpload {
                bucket: request.bucket.clone(),
                key: request.key.clone(),
                content_type: request.content_type.clone(),
                content_encoding: request.content_encoding.clone(),
                metadata: request.metadata.clone(),
                storage_class: request.storage_class.clone(),
                tags: request.tags.clone(),
                parts: BTreeMap::new(),
                initiated: SystemTime::now(),
                checksum: request.checksum,
                part_checksums: BTreeMap::new(),
            },
        );
        Ok(id)
    }

    async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: u32,
        body: bytes::Bytes,
        checksum: &Checksum,
    ) -> Result<String> {
        yield_now().await;
        if number == 0 || u64::from(number) > MAX_PARTS {
            return Err(s3_error(
                Op::UploadPart.name(),
                "InvalidArgument",
                format!("part number {number} is outside 1..={MAX_PARTS}"),
            ));
        }
        if crate::blob::checksum_of(&body, checksum.algorithm()).await != *checksum {
            return Err(bad_digest(Op::UploadPart.name(), checksum.algorithm()));
        }
        let md5 = crate::blob::checksum_of(&body, ChecksumAlgorithm::Md5).await;
        let mut state = self.lock();
        let upload = state
            .uploads
            .get_mut(upload_id)
            .filter(|u| u.bucket == bucket && u.key == key)
            .ok_or_else(|| s3_error(Op::UploadPart.name(), "NoSuchUpload", "no such upload"))?;
        if checksum.algorithm() != upload.checksum && checksum.algorithm() != ChecksumAlgorithm::Md5
        {
            // As S3: a part's checksum must be the upload's algorithm (a
            // Content-MD5 is accepted on any upload).
            return Err(s3_error(
                Op::UploadPart.name(),
                "InvalidRequest",
                format!(
                    "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {}",
                    upload.checksum,
                    checksum.algorithm()
                ),
            ));
        }
        let etag = format!("\"{}\"", md5.hex());
        upload.parts.insert(number, (etag.clone(), body));
        upload.part_checksums.insert(number, checksum.clone());
        Ok(etag)
    }

    async fn complete_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
        checksum: &Checksum,
        if_none_match: bool,
    ) -> Result<PutOutcome> {
        yield_now().await;
        const OP: &str = Op::CompleteMultipartUpload.name();
        let mut state = self.lock();
        let upload = state
            .uploads
            .get(upload_id)
            .filter(|u| u.bucket == bucket && u.key == key)
            .ok_or_else(|| s3_error(OP, "NoSuchUpload", "no such upload"))?;
        if parts.is_empty() {
            return Err(s3_error(OP, "MalformedXML", "no parts"));
        }
        let mut body = Vec::new();
        let (mut md5s, mut digests) = (Vec::new(), Vec::new());
        for (i, part) in parts.iter().enumerate() {
            if i > 0 && parts[i - 1].number >= part.number {
                return Err(s3_error(OP, "InvalidPartOrder", "parts out of order"));
            }
            let (etag, bytes) = upload
                .parts
                .get(&part.number)
                .filter(|(etag, _)| *etag == part.etag)
                .ok_or_else(|| s3_error(OP, "InvalidPart", format!("part {}", part.number)))?;
            if i + 1 < parts.len() && (bytes.len() as u64) < MIN_PART_BYTES {
                return Err(s3_error(
                    OP,
                    "EntityTooSmall",
                    format!("part {} ({etag}) is below the minimum size", part.number),
                ));
            }
            // As S3: the part's checksum in the upload's algorithm is repeated
            // in the completion (SHA-256, CRC-64/NVME) and must be the one
            // UploadPart was sent.
            if upload.checksum != ChecksumAlgorithm::Md5
                && upload.part_checksums.get(&part.number) != Some(&part.checksum)
            {
                return Err(s3_error(
                    OP,
                    "InvalidPart",
                    format!(
                        "part {}: its {} is not the one it was uploaded with",
                        part.number, upload.checksum
                    ),
                ));
            }
            md5s.extend_from_slice(ChecksumAlgorithm::Md5.digest(bytes).bytes());
            digests.extend_from_slice(part.checksum.bytes());
            body.extend_from_slice(bytes);
        }
        let whole = match upload.checksum {
            ChecksumAlgorithm::Md5 => None,
            // Composite: the SHA-256 of the parts' SHA-256s.
            ChecksumAlgorithm::Sha256 => Some(format!(
                "{}-{}",
                ChecksumAlgorithm::Sha256.digest(&digests).base64(),
                parts.len()
            )),
            // Full-object: the CRC of the whole, checked against the caller's.
            ChecksumAlgorithm::Crc64Nvme => {
                let actual = ChecksumAlgorithm::Crc64Nvme.digest(&body);
                if actual != *checksum {
                    return Err(bad_digest(OP, ChecksumAlgorithm::Crc64Nvme));
                }
                Some(actual.base64())
            }
        };
        let object = MemObject {
            object: StoredObject {
                body: body.into(),
                metadata: upload.metadata.clone(),
                content_type: Some(upload.content_type.clone()),
                content_encoding: upload.content_encoding.clone(),
            },
            last_modified: SystemTime::now(),
            storage_class: upload.storage_class.clone(),
            tags: upload.tags.clone(),
            etag: format!(
                "{}-{}",
                ChecksumAlgorithm::Md5.digest(&md5s).hex(),
                parts.len()
            ),
            checksums: whole
                .map(|w| (upload.checksum.name().to_owned(), w))
                .into_iter()
                .collect(),
        };
        let objects = state.bucket(bucket, OP)?;
        if if_none_match && objects.contains_key(key) {
            // As S3: the upload stays open, to be aborted.
            return Ok(PutOutcome::AlreadyExisted);
        }
        state.put_current(bucket, key.to_owned(), object);
        state.uploads.remove(upload_id);
        Ok(PutOutcome::Created)
    }

    async fn abort_multipart_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<()> {
        yield_now().await;
        let mut state = self.lock();
        if state
            .uploads
            .get(upload_id)
            .is_some_and(|u| u.bucket == bucket && u.key == key)
        {
            state.uploads.remove(upload_id);
        }
        Ok(())
    }

    async fn list_multipart_uploads(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<MultipartInfo>> {
        yield_now().await;
        let mut state = self.lock();
        state.bucket(bucket, Op::ListMultipartUploads.name())?;
        let mut uploads: Vec<MultipartInfo> = state
            .uploads
            .iter()
            .filter(|(_, u)| u.bucket == bucket && u.key.starts_with(prefix))
            .map(|(id, u)| MultipartInfo {
                key: u.key.clone(),
                upload_id: id.clone(),
                initiated: Some(u.initiated),
            })
            .collect();
        uploads.sort_by(|a, b| (&a.key, &a.upload_id).cmp(&(&b.key, &b.upload_id)));
        Ok(uploads)
    }
}

/// S3's answer to bytes whose checksum is not the one sent.
fn bad_digest(operation: &'static str, algorithm: ChecksumAlgorithm) -> Error {
    let message = match algorithm {
        ChecksumAlgorithm::Md5 => {
            "The Content-MD5 you specified did not match what we received.".to_owned()
        }
        other => format!("The {other} you specified did not match the calculated checksum."),
    };
    s3_error(operation, "BadDigest", message)
}

/// The checksums S3 keeps with an object written with `sent` (a single
/// PutObject): the SHA-256 or CRC-64/NVME it was sent, none for MD5.
fn kept_checksum(sent: &Checksum) -> BTreeMap<String, String> {
    match sent.algorithm() {
        ChecksumAlgorithm::Md5 => BTreeMap::new(),
        other => BTreeMap::from([(other.name().to_owned(), sent.base64())]),
    }
}
