//! S3 object calls and multipart uploads, and the reading of
//! GetObject bodies that resumes a cut transfer.

use super::*;
use crate::checksum::{Checksum, ChecksumAlgorithm};

#[async_trait]
impl ObjectCalls for AwsBackend {
    async fn list_object_versions(
        &self,
        bucket: &str,
        prefix: &str,
        continuation: Option<crate::backend::VersionCursor>,
    ) -> Result<crate::backend::VersionPage> {
        self.object_versions(bucket, prefix, continuation).await
    }

    async fn get_object_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<Option<StoredObject>> {
        self.object_version(bucket, key, version_id).await
    }

    async fn delete_object_version(&self, bucket: &str, key: &str, version_id: &str) -> Result<()> {
        self.delete_version(bucket, key, version_id).await
    }

    async fn put_object(&self, request: PutObject) -> Result<PutOutcome> {
        if request.body.is_empty() {
            // No byte to hold back: the request waits whole.
            request.complete_after.wait().await;
        }
        let mut req = self
            .s3
            .put_object()
            .bucket(&request.bucket)
            .key(request.key)
            .content_type(request.content_type)
            .set_content_encoding(request.content_encoding)
            .set_metadata(non_empty(request.metadata))
            .content_length(request.body.len() as i64)
            .body(gated_body(request.body, &request.complete_after))
            .set_expected_bucket_owner(self.expected_bucket_owner.clone());
        let (sse, kms_key) = self.sse();
        req = req
            .set_server_side_encryption(sse)
            .set_ssekms_key_id(kms_key);
        let sent = ChecksumHeaders::of(&request.checksum);
        req = req
            .set_content_md5(sent.md5)
            .set_checksum_algorithm(sent.algorithm)
            .set_checksum_sha256(sent.sha256)
            .set_checksum_crc64_nvme(sent.crc64nvme);
        if request.if_none_match {
            req = req.if_none_match("*");
        }
        req = req
            .set_storage_class(storage_class(&request.storage_class))
            .set_tagging(tagging(&request.tags));
        put_outcome(
            self,
            req.customize()
                .disable_payload_signing()
                .config_override(upload_config())
                .send()
                .await,
            Op::PutObject.name(),
            &request.bucket,
        )
    }

    async fn get_object(&self, bucket: &str, key: &str) -> Result<Option<StoredObject>> {
        let out = match self
            .s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_expected_bucket_owner(self.expected_bucket_owner.clone())
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(self.s3_error(Op::GetObject.name(), bucket, e)),
        };
        let metadata = out.metadata.clone().unwrap_or_default();
        let content_type = out.content_type.clone();
        let content_encoding = out.content_encoding.clone();
        let Some(body) = self.read_body(bucket, key, out, 0).await? else {
            return Ok(None);
        };
        Ok(Some(StoredObject {
            body,
            metadata,
            content_type,
            content_encoding,
        }))
    }

    async fn get_object_range(
        &self,
        bucket: &str,
        key: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Option<ObjectRange>> {
        let empty = |info: Option<ObjectInfo>| {
            info.map(|i| ObjectRange {
                body: bytes::Bytes::new(),
                total: i.size,
            })
        };
        if range.start >= range.end {
            return Ok(empty(self.head_object(bucket, key).await?));
        }
        let out = match self
            .s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .range(format!("bytes={}-{}", range.start, range.end - 1))
            .set_expected_bucket_owner(self.expected_bucket_owner.clone())
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => return Ok(None),
            // 416: the range starts at or after the end.
            Err(e)
                if e.code() == Some("InvalidRange")
                    || e.raw_response().is_some_and(|r| r.status().as_u16() == 416) =>
            {
                return Ok(empty(self.head_object(bucket, key).await?));
            }
            Err(e) => return Err(self.s3_error(Op::GetObject.name(), bucket, e)),
        };
        let ranged = out.content_range().and_then(|r| {
            r.rsplit('/')
                .next()
                .and_then(|total| total.trim().parse::<u64>().ok())
        });
        // A ranged answer starts at the range's start; a whole object at 0.
        let from = if ranged.is_some() { range.start } else { 0 };
        let Some(body) = self.read_body(bucket, key, out, from).await? else {
            return Ok(None);
        };
        Ok(Some(match ranged {
            Some(total) => ObjectRange { body, total },
            // The server sent the whole object: cut the range out of it.
            None => ObjectRange::cut(&body, range),
        }))
    }

    async fn head_object(&self, bucket: &str, key: &str) -> Result<Option<ObjectInfo>> {
        match self
            .s3
            .head_object()
            .bucket(bucket)
            .key(key)
            .checksum_mode(s3::types::ChecksumMode::Enabled)
            .set_expected_bucket_owner(self.expected_bucket_owner.clone())
            .send()
            .await
        {
            Ok(out) => Ok(Some(ObjectInfo {
                last_modified: out
                    .last_modified()
                    .and_then(|t| SystemTime::try_from(*t).ok()),
                etag: out.e_tag().map(|t| t.trim_matches('"').to_owned()),
                checksums: [
                    ("crc32", out.checksum_crc32()),
                    ("crc32c", out.checksum_crc32_c()),
                    ("crc64nvme", out.checksum_crc64_nvme()),
                    ("sha1", out.checksum_sha1()),
                    ("sha256", out.checksum_sha256()),
                ]
                .into_iter()
                .filter_map(|(name, v)| Some((name.to_owned(), v?.to_owned())))
                .collect(),
                storage_class: out.storage_class().map(|c| c.as_str().to_owned()),
                metadata: out.metadata().cloned().unwrap_or_default(),
                ..ObjectInfo::new(key, out.content_length().unwrap_or_default().max(0) as u64)
            })),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(None),
            Err(e) => Err(self.s3_error(Op::HeadObject.name(), bucket, e)),
        }
    }

    async fn get_object_tagging(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<Vec<(String, String)>>> {
        match self
            .s3
            .get_object_tagging()
            .bucket(bucket)
            .key(key)
            .set_expected_bucket_owner(self.expected_bucket_owner.clone())
            .send()
            .await
        {
            Ok(out) => Ok(Some(
                out.tag_set()
                    .iter()
                    .map(|t| (t.key().to_owned(), t.value().to_owned()))
                    .collect(),
            )),
            Err(e)
                if e.code() == Some("NoSuchKey")
                    || e.raw_response().is_some_and(|r| r.status().as_u16() == 404) =>
            {
                Ok(None)
            }
            Err(e) => Err(self.s3_error(Op::GetObjectTagging.name(), bucket, e)),
        }
    }

    async fn delete_objects(
        &self,
        bucket: &str,
        keys: &[String],
        attempts: Attempts,
    ) -> Result<Vec<(String, String)>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let objects = keys
            .iter()
            .map(|k| {
                built(
                    "s3",
                    Op::DeleteObjects.name(),
                    ObjectIdentifier::builder().key(k).build(),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let delete = built(
            "s3",
            Op::DeleteObjects.name(),
            Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build(),
        )?;
        let request = self
            .s3
            .delete_objects()
            .bucket(bucket)
            .delete(delete)
            .set_expected_bucket_owner(self.expected_bucket_owner.clone());
        let sent = match attempts {
            Attempts::Retried => request.send().await,
            Attempts::Once => {
                request
                    .customize()
                    .config_override(s3::config::Builder::default().retry_config(
                        aws_config::retry::RetryConfig::standard().with_max_attempts(1),
                    ))
                    .send()
                    .await
            }
        };
        let out = sent.map_err(|e| self.s3_error(Op::DeleteObjects.name(), bucket, e))?;
        Ok(out
            .errors()
            .iter()
            .map(|e| {
                (
                    e.key().unwrap_or_default().to_owned(),
                    format!(
                        "{}: {}",
                        e.code().unwrap_or("Error"),
                        e.message().unwrap_or_default()
                    ),
                )
            })
            .collect())
    }

    async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        continuation: Option<String>,
    ) -> Result<ObjectPage> {
        let out = self
            .s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_expected_bucket_owner(self.expected_bucket_owner.clone())
            .set_continuation_token(continuation)
            .send()
            .await
            .map_err(|e| self.s3_error(Op::ListObjects.name(), bucket, e))?;
        Ok(ObjectPage {
            objects: out
                .contents()
                .iter()
                .map(|o| ObjectInfo {
                    last_modified: o
                        .last_modified()
                        .and_then(|t| SystemTime::try_from(*t).ok()),
                    storage_class: o.storage_class().map(|c| c.as_str().to_owned()),
                    ..ObjectInfo::new(
                        o.key().unwrap_or_default(),
                        o.size().unwrap_or_default().max(0) as u64,
                    )
                })
                .collect(),
            next: out
                .next_continuation_token
                .filter(|_| out.is_truncated == Some(true)),
        })
    }

    async fn create_multipart_upload(&self, request: &MultipartStart) -> Result<String> {
        let mut req = self
            .s3
            .create_multipart_upload()
            .bucket(&request.bucket)
            .key(&request.key)
            .content_type(&request.content_type)
            .set_content_encoding(request.content_encoding.clone())
            .set_metadata(non_empty(request.metadata.clone()))
            .set_expected_bucket_owner(self.expected_bucket_owner.clone());
        req = match request.checksum {
            ChecksumAlgorithm::Md5 => req,
            ChecksumAlgorithm::Sha256 => {
                req.checksum_algorithm(s3::types::ChecksumAlgorithm::Sha256)
            }
            ChecksumAlgorithm::Crc64Nvme if self.composite_checksums_only => {
                req.checksum_algorithm(s3::types::ChecksumAlgorithm::Crc64Nvme)
            }
            ChecksumAlgorithm::Crc64Nvme => req
                .checksum_algorithm(s3::types::ChecksumAlgorithm::Crc64Nvme)
                .checksum_type(s3::types::ChecksumType::FullObject),
        };
        let (sse, kms_key) = self.sse();
        req = req
            .set_server_side_encryption(sse)
            .set_ssekms_key_id(kms_key)
            .set_storage_class(storage_class(&request.storage_class))
            .set_tagging(tagging(&request.tags));
        let out = req
            .send()
            .await
            .map_err(|e| self.s3_error(Op::CreateMultipartUpload.name(), &request.bucket, e))?;
        out.upload_id.ok_or_else(|| {
            Error::backend(
                "s3",
                Op::CreateMultipartUpload.name(),
                true,
                "no upload id in the answer",
            )
        })
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
        let req = self
            .s3
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number as i32);
        let sent = ChecksumHeaders::of(checksum);
        let req = req
            .set_content_md5(sent.md5)
            .set_checksum_algorithm(sent.algorithm)
            .set_checksum_sha256(sent.sha256)
            .set_checksum_crc64_nvme(sent.crc64nvme);
        let out = req
            .content_length(body.len() as i64)
            .body(s3::primitives::ByteStream::from(body))
            .set_expected_bucket_owner(self.expected_bucket_owner.clone())
            .customize()
            .disable_payload_signing()
            .config_override(upload_config())
            .send()
            .await
            .map_err(|e| self.s3_error(Op::UploadPart.name(), bucket, e))?;
        out.e_tag.ok_or_else(|| {
            Error::backend("s3", Op::UploadPart.name(), true, "no ETag in the answer")
        })
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
        let completed = s3::types::CompletedMultipartUpload::builder()
            .set_parts(Some(
                parts
                    .iter()
                    .map(|p| {
                        let part = s3::types::CompletedPart::builder()
                            .part_number(p.number as i32)
                            .e_tag(&p.etag);
                        let sum = p.checksum.base64();
                        match p.checksum.algorithm() {
                            ChecksumAlgorithm::Md5 => part,
                            ChecksumAlgorithm::Sha256 => part.checksum_sha256(sum),
                            ChecksumAlgorithm::Crc64Nvme => part.checksum_crc64_nvme(sum),
                        }
                        .build()
                    })
                    .collect(),
            ))
            .build();
        let mut req = self
            .s3
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(completed)
            .set_expected_bucket_owner(self.expected_bucket_owner.clone());
        if checksum.algorithm() == ChecksumAlgorithm::Crc64Nvme && !self.composite_checksums_only {
            req = req
                .checksum_crc64_nvme(checksum.base64())
                .checksum_type(s3::types::ChecksumType::FullObject);
        }
        if if_none_match {
            req = req.if_none_match("*");
        }
        put_outcome(
            self,
            req.send().await,
            Op::CompleteMultipartUpload.name(),
            bucket,
        )
    }

    async fn abort_multipart_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<()> {
        match self
            .s3
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .set_expected_bucket_owner(self.expected_bucket_owner.clone())
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error().is_some_and(|e| e.is_no_such_upload())
                    || e.code() == Some("NoSuchUpload") =>
            {
                Ok(())
            }
            Err(e) => Err(self.s3_error(Op::AbortMultipartUpload.name(), bucket, e)),
        }
    }

    async fn list_multipart_uploads(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<MultipartInfo>> {
        let mut uploads = Vec::new();
        let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
        loop {
            let out = self
                .s3
                .list_multipart_uploads()
                .bucket(bucket)
                .prefix(prefix)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .set_expected_bucket_owner(self.expected_bucket_owner.clone())
                .send()
                .await
                .map_err(|e| self.s3_error(Op::ListMultipartUploads.name(), bucket, e))?;
            for u in out.uploads() {
                if let (Some(key), Some(id)) = (u.key(), u.upload_id()) {
                    uploads.push(MultipartInfo {
                        key: key.to_owned(),
                        upload_id: id.to_owned(),
                        initiated: u.initiated().and_then(|t| SystemTime::try_from(*t).ok()),
                    });
                }
            }
            if out.is_truncated != Some(true) {
                break;
            }
            key_marker = out.next_key_marker.clone();
            id_marker = out.next_upload_id_marker.clone();
            if key_marker.is_none() {
                break;
            }
        }
        Ok(uploads)
    }
}

impl AwsBackend {
    /// The server-side encryption headers of object writes.
    pub(super) fn sse(&self) -> (Option<s3::types::ServerSideEncryption>, Option<String>) {
        match &self.encryption {
            Some(Encryption::S3) => (Some(s3::types::ServerSideEncryption::Aes256), None),
            Some(Encryption::Kms { key_id }) => (
                Some(s3::types::ServerSideEncryption::AwsKms),
                key_id.clone(),
            ),
            None => (None, None),
        }
    }
}

/// A storage class as the SDK takes it.
fn storage_class(class: &Option<String>) -> Option<s3::types::StorageClass> {
    class.as_deref().map(s3::types::StorageClass::from)
}

/// What an upload (PutObject, UploadPart) changes in the client's settings.
/// Its body is bound by the checksum vhs sends ([`ChecksumHeaders`]), so the
/// SDK makes no second and third pass over it: the upload goes with an
/// unsigned payload (`disable_payload_signing` where it is sent:
/// `UNSIGNED-PAYLOAD`; SigV4 signs the checksum headers, and the server
/// refuses a body that does not match them with `BadDigest`), and without the
/// SDK's own CRC32 (`RequestChecksumCalculation::WhenRequired`): a second
/// checksum of the same body, which the server would compute again and vhs
/// never reads (vhs checks every object it reads against the checksum its key
/// names).
fn upload_config() -> s3::config::Builder {
    s3::config::Builder::default()
        .request_checksum_calculation(s3::config::RequestChecksumCalculation::WhenRequired)
}

/// The headers an upload (PutObject, UploadPart) sends its checksum in:
/// `Content-MD5` for MD5, else the algorithm (`x-amz-sdk-checksum-algorithm`)
/// and `x-amz-checksum-sha256` or `x-amz-checksum-crc64nvme` (which also
/// stops the SDK from adding its default CRC32). See [`upload_config`].
struct ChecksumHeaders {
    md5: Option<String>,
    algorithm: Option<s3::types::ChecksumAlgorithm>,
    sha256: Option<String>,
    crc64nvme: Option<String>,
}

impl ChecksumHeaders {
    fn of(checksum: &Checksum) -> Self {
        let b64 = Some(checksum.base64());
        let none = ChecksumHeaders {
            md5: None,
            algorithm: None,
            sha256: None,
            crc64nvme: None,
        };
        match checksum.algorithm() {
            ChecksumAlgorithm::Md5 => ChecksumHeaders { md5: b64, ..none },
            ChecksumAlgorithm::Sha256 => ChecksumHeaders {
                algorithm: Some(s3::types::ChecksumAlgorithm::Sha256),
                sha256: b64,
                ..none
            },
            ChecksumAlgorithm::Crc64Nvme => ChecksumHeaders {
                algorithm: Some(s3::types::ChecksumAlgorithm::Crc64Nvme),
                crc64nvme: b64,
                ..none
            },
        }
    }
}

/// Object tags as the `x-amz-tagging` header wants them, a URL query
/// (`k=v&k2=v2`, each key and value percent-encoded); `None` for no tags, so
/// that no header (and no `s3:PutObjectTagging` permission) is needed.
pub(super) fn tagging(tags: &[(String, String)]) -> Option<String> {
    fn encode(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    out.push(b as char)
                }
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
        out
    }
    (!tags.is_empty()).then(|| {
        tags.iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    })
}

/// How many times in a row a GetObject body may be cut without a byte of
/// progress before the read gives up (a cut that brought bytes resets the count).
const BODY_CUTS_WITHOUT_PROGRESS: u32 = 5;

impl AwsBackend {
    /// Reads the body of a GetObject answer whose first byte is byte `from` of
    /// the object, to its end. A transfer cut midway (a reset connection, a
    /// truncated body) resumes with a ranged GET from the byte reached,
    /// conditional on the ETag first seen: an object's key names its content,
    /// so the rest is the same bytes. `None`: the object was deleted meanwhile.
    /// Gives up, retryable, after [`BODY_CUTS_WITHOUT_PROGRESS`] cuts in a row
    /// that brought nothing.
    async fn read_body(
        &self,
        bucket: &str,
        key: &str,
        out: s3::operation::get_object::GetObjectOutput,
        from: u64,
    ) -> Result<Option<bytes::Bytes>> {
        let expected = out.content_length().and_then(|n| u64::try_from(n).ok());
        let etag = out.e_tag().map(str::to_owned);
        let mut body = out.body;
        // The whole body is kept: allocated once at the length the server
        // gave (up to 1 GiB), not grown by doubling.
        let mut buf =
            bytes::BytesMut::with_capacity(expected.map_or(0, |n| n.min(1 << 30) as usize));
        let mut cuts = 0u32;
        loop {
            let before = buf.len();
            let cut = loop {
                match body.try_next().await {
                    Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
                    Ok(None) => match expected {
                        Some(n) if (buf.len() as u64) < n => {
                            break format!("the body ended after {} of {n} bytes", buf.len())
                        }
                        _ => return Ok(Some(buf.freeze())),
                    },
                    // Every byte arrived, then the SDK refused the body: the
                    // checksum the server stored (and sent) does not match
                    // it. Not a cut: reading again gives the same bytes.
                    Err(e) if expected == Some(buf.len() as u64) => {
                        return Err(Error::backend(
                            "s3",
                            Op::GetObject.name(),
                            false,
                            format!(
                                "s3://{bucket}/{key}: the body does not match the checksum the \
                                 server stored with it: {}",
                                DisplayErrorContext(&e)
                            ),
                        ))
                    }
                    Err(e) => {
                        break format!("reading the body failed: {}", DisplayErrorContext(&e))
                    }
                }
            };
            // Without a length the server gave, a cut body can't be told from
            // a whole one: only a stream error gets here, and is retried from
            // the byte reached like any other.
            if buf.len() > before {
                cuts = 0;
            }
            cuts += 1;
            let reached = from + buf.len() as u64;
            if cuts > BODY_CUTS_WITHOUT_PROGRESS {
                return Err(Error::backend(
                    "s3",
                    Op::GetObject.name(),
                    true,
                    format!("s3://{bucket}/{key}: {cut}, {cuts} times at byte {reached}"),
                ));
            }
            tracing::debug!(bucket, key, reached, cuts, %cut, "GetObject body cut; resuming");
            tokio::time::sleep(Duration::from_millis(20 << cuts.min(6))).await;
            let last = expected.map(|n| from + n - 1);
            let range = match last {
                Some(last) => format!("bytes={reached}-{last}"),
                None => format!("bytes={reached}-"),
            };
            let resumed = self
                .s3
                .get_object()
                .bucket(bucket)
                .key(key)
                .range(range)
                .set_if_match(etag.clone())
                .set_expected_bucket_owner(self.expected_bucket_owner.clone())
                .send()
                .await;
            match resumed {
                // The rest must start where the body was cut: a server that
                // ignored the range (a whole object) would be appended to the
                // bytes already read.
                Ok(out)
                    if out.content_range().is_some_and(|r| {
                        r.trim_start_matches("bytes ")
                            .split('-')
                            .next()
                            .and_then(|start| start.trim().parse::<u64>().ok())
                            == Some(reached)
                    }) =>
                {
                    body = out.body
                }
                Ok(_) => {
                    return Err(Error::backend(
                        "s3",
                        Op::GetObject.name(),
                        true,
                        format!(
                            "s3://{bucket}/{key}: resuming at byte {reached}, the server did not answer that range"
                        ),
                    ))
                }
                Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                    return Ok(None)
                }
                // Deleted and written again (same bytes, another ETag, as
                // a multipart upload of other part sizes gives): the caller
                // reads again from the start.
                Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 412) => {
                    return Err(Error::backend(
                        "s3",
                        Op::GetObject.name(),
                        true,
                        format!("s3://{bucket}/{key} was written again while it was read"),
                    ));
                }
                Err(e) => {
                    let e = self.s3_error(Op::GetObject.name(), bucket, e);
                    if !e.is_retryable() || expected.is_none() {
                        return Err(e);
                    }
                    // A failed resume counts as a cut without progress.
                    body = s3::primitives::ByteStream::from_static(b"");
                    // The empty body ends at once and is judged short above.
                }
            }
        }
    }
}

/// The body of a PutObject that sends all but its last byte at once and the last
/// one only after `signal` fired: the server cannot create the object before it
/// has the whole body, so the object comes into existence after the signal while
/// the transfer overlaps whatever the signal waits for. Rebuilt (with the same
/// signal) when the SDK retries.
fn gated_body(body: bytes::Bytes, signal: &Signal) -> s3::primitives::ByteStream {
    let Some(gate) = signal
        .0
        .clone()
        .filter(|_| !signal.is_open() && !body.is_empty())
    else {
        return s3::primitives::ByteStream::from(body);
    };
    s3::primitives::ByteStream::new(s3::primitives::SdkBody::retryable(move || {
        let split = body.len() - 1;
        s3::primitives::SdkBody::from_body_1_x(GatedBody {
            head: Some(body.slice(..split)),
            tail: Some(body.slice(split..)),
            gate: Some(gate.clone()),
        })
    }))
}

/// See [`gated_body`].
struct GatedBody {
    head: Option<bytes::Bytes>,
    tail: Option<bytes::Bytes>,
    gate: Option<futures_util::future::Shared<futures_util::future::BoxFuture<'static, ()>>>,
}

impl http_body::Body for GatedBody {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<std::result::Result<http_body::Frame<Self::Data>, Self::Error>>>
    {
        use std::future::Future;
        use std::task::Poll;
        let this = self.get_mut();
        if let Some(head) = this.head.take().filter(|h| !h.is_empty()) {
            return Poll::Ready(Some(Ok(http_body::Frame::data(head))));
        }
        if let Some(gate) = this.gate.as_mut() {
            if std::pin::Pin::new(gate).poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.gate = None;
        }
        Poll::Ready(this.tail.take().map(|t| Ok(http_body::Frame::data(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.head.is_none() && self.tail.is_none()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        let len =
            self.head.as_ref().map_or(0, |b| b.len()) + self.tail.as_ref().map_or(0, |b| b.len());
        http_body::SizeHint::with_exact(len as u64)
    }
}
