//! Presigning, computed locally: GetObject URLs, and uploads by PUT (the
//! SDK's presigned PutObject) or by a browser's POST (a policy signed here
//! with SigV4, the one thing the SDK does not build).

use aws_credential_types::provider::ProvideCredentials as _;
use base64::Engine as _;

use super::*;
use crate::backend::{PresignUpload, PresignedUpload, UploadMethod, MAX_PUT_OBJECT_BYTES};
use crate::checksum::ChecksumAlgorithm;

fn presigning(expires_in: Duration) -> Result<s3::presigning::PresigningConfig> {
    s3::presigning::PresigningConfig::expires_in(expires_in).map_err(|e| {
        Error::invalid(format!(
            "a presigned URL cannot expire in {expires_in:?}: {e}"
        ))
    })
}

#[async_trait]
impl PresignCalls for AwsBackend {
    async fn presign_get(&self, bucket: &str, key: &str, expires_in: Duration) -> Result<String> {
        let request = self
            .s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_expected_bucket_owner(self.expected_bucket_owner.clone())
            .presigned(presigning(expires_in)?)
            .await
            .map_err(|e| self.s3_error("GetObject (presign)", bucket, e))?;
        Ok(request.uri().to_owned())
    }

    async fn presign_upload(&self, request: &PresignUpload) -> Result<PresignedUpload> {
        if request.size.or(request.max_size).unwrap_or(0) > MAX_PUT_OBJECT_BYTES {
            return Err(Error::invalid(format!(
                "a presigned upload holds at most {MAX_PUT_OBJECT_BYTES} bytes (S3's limit of one \
                 request)"
            )));
        }
        match request.method {
            UploadMethod::Put => self.presign_put(request).await,
            UploadMethod::Post => self.presign_post(request).await,
        }
    }
}

/// Object tags as a POST form's `tagging` field wants them: S3's `Tagging`
/// XML document.
fn tagging_xml(tags: &[(String, String)]) -> String {
    fn escape(s: &str) -> String {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
            .replace('\'', "&apos;")
    }
    let set: String = tags
        .iter()
        .map(|(k, v)| {
            format!(
                "<Tag><Key>{}</Key><Value>{}</Value></Tag>",
                escape(k),
                escape(v)
            )
        })
        .collect();
    format!("<Tagging><TagSet>{set}</TagSet></Tagging>")
}

impl AwsBackend {
    async fn presign_put(&self, r: &PresignUpload) -> Result<PresignedUpload> {
        let b64 = r.checksum.base64();
        let mut put = self
            .s3
            .put_object()
            .bucket(&r.bucket)
            .key(&r.key)
            .content_type(&r.content_type)
            .if_none_match("*")
            .set_metadata(non_empty(r.metadata.clone()))
            .set_storage_class(
                r.storage_class
                    .as_deref()
                    .map(s3::types::StorageClass::from),
            )
            .set_tagging(super::objects::tagging(&r.tags))
            .set_expected_bucket_owner(self.expected_bucket_owner.clone());
        put = match r.checksum.algorithm() {
            ChecksumAlgorithm::Md5 => put.content_md5(b64),
            ChecksumAlgorithm::Sha256 => put
                .checksum_algorithm(s3::types::ChecksumAlgorithm::Sha256)
                .checksum_sha256(b64),
            ChecksumAlgorithm::Crc64Nvme => put
                .checksum_algorithm(s3::types::ChecksumAlgorithm::Crc64Nvme)
                .checksum_crc64_nvme(b64),
        };
        if let Some(size) = r.size {
            put = put.content_length(size as i64);
        }
        let (sse, kms_key) = self.sse();
        put = put
            .set_server_side_encryption(sse)
            .set_ssekms_key_id(kms_key);
        let presigned = put
            .presigned(presigning(r.expires_in)?)
            .await
            .map_err(|e| self.s3_error("PutObject (presign)", &r.bucket, e))?;
        let headers = presigned
            .headers()
            .filter(|(name, _)| !name.eq_ignore_ascii_case("host"))
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect();
        Ok(PresignedUpload {
            method: UploadMethod::Put,
            url: presigned.uri().to_owned(),
            headers,
            fields: Vec::new(),
        })
    }

    /// A browser POST: the form fields and their policy, signed with SigV4
    /// (`AWS4-HMAC-SHA256`, the signing key of the credentials' date, region
    /// and `s3`, over the base64 policy).
    async fn presign_post(&self, r: &PresignUpload) -> Result<PresignedUpload> {
        let config_error = |message: String| Error::Config {
            service: "s3",
            operation: "PostObject (presign)",
            message,
            source: None,
        };
        let provider = self.credentials.as_ref().ok_or_else(|| {
            config_error(
                "no credentials to sign a POST policy with: build the backend from an SdkConfig, \
                 or call AwsBackend::with_signing_credentials"
                    .to_owned(),
            )
        })?;
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|e| config_error(format!("no credentials to sign with: {e}")))?;
        let region = self
            .region
            .clone()
            .ok_or_else(|| config_error("no region to sign for".to_owned()))?;
        let now = SystemTime::now();
        let utc = chrono::DateTime::<chrono::Utc>::from(now);
        let date = utc.format("%Y%m%d").to_string();
        let amz_date = utc.format("%Y%m%dT%H%M%SZ").to_string();
        let expiration = (utc + chrono::Duration::from_std(r.expires_in).unwrap_or_default())
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string();
        let credential = format!(
            "{}/{date}/{region}/s3/aws4_request",
            credentials.access_key_id()
        );

        // Fields in the order the form sends them; each one is also an exact
        // condition of the policy.
        let mut fields: Vec<(String, String)> = vec![
            ("key".to_owned(), r.key.clone()),
            ("Content-Type".to_owned(), r.content_type.clone()),
        ];
        let b64 = r.checksum.base64();
        match r.checksum.algorithm() {
            ChecksumAlgorithm::Md5 => fields.push(("Content-MD5".to_owned(), b64)),
            algorithm => {
                let name = match algorithm {
                    ChecksumAlgorithm::Sha256 => "SHA256",
                    _ => "CRC64NVME",
                };
                fields.push(("x-amz-checksum-algorithm".to_owned(), name.to_owned()));
                fields.push((algorithm.header().to_owned(), b64));
            }
        }
        let mut metadata: Vec<_> = r.metadata.iter().collect();
        metadata.sort();
        for (k, v) in metadata {
            fields.push((format!("x-amz-meta-{k}"), v.clone()));
        }
        if let Some(class) = &r.storage_class {
            fields.push(("x-amz-storage-class".to_owned(), class.clone()));
        }
        if !r.tags.is_empty() {
            fields.push(("tagging".to_owned(), tagging_xml(&r.tags)));
        }
        let (sse, kms_key) = self.sse();
        if let Some(sse) = sse {
            fields.push((
                "x-amz-server-side-encryption".to_owned(),
                sse.as_str().to_owned(),
            ));
        }
        if let Some(key_id) = kms_key {
            fields.push((
                "x-amz-server-side-encryption-aws-kms-key-id".to_owned(),
                key_id,
            ));
        }
        fields.push(("x-amz-algorithm".to_owned(), "AWS4-HMAC-SHA256".to_owned()));
        fields.push(("x-amz-credential".to_owned(), credential));
        fields.push(("x-amz-date".to_owned(), amz_date));
        if let Some(token) = credentials.session_token() {
            fields.push(("x-amz-security-token".to_owned(), token.to_owned()));
        }

        let mut conditions = vec![serde_json::json!({ "bucket": r.bucket })];
        conditions.extend(
            fields
                .iter()
                .map(|(k, v)| serde_json::json!(["eq", format!("${k}"), v])),
        );
        conditions.push(serde_json::json!([
            "content-length-range",
            r.size.unwrap_or(0),
            r.max_size.unwrap_or(MAX_PUT_OBJECT_BYTES)
        ]));
        let policy = serde_json::json!({ "expiration": expiration, "conditions": conditions });
        let policy = base64::engine::general_purpose::STANDARD.encode(policy.to_string());
        let key = aws_sigv4::sign::v4::generate_signing_key(
            credentials.secret_access_key(),
            now,
            &region,
            "s3",
        );
        let signature = aws_sigv4::sign::v4::calculate_signature(key, policy.as_bytes());
        fields.push(("policy".to_owned(), policy));
        fields.push(("x-amz-signature".to_owned(), signature));
        Ok(PresignedUpload {
            method: UploadMethod::Post,
            url: self.bucket_url(&r.bucket).await?,
            headers: Vec::new(),
            fields,
        })
    }

    /// The URL of a bucket, in the addressing style the client is configured
    /// with (virtual-hosted, or path-style for emulators): a presigned URL of
    /// a one-letter key, cut at that key.
    async fn bucket_url(&self, bucket: &str) -> Result<String> {
        let url = self
            .presign_get(bucket, "k", Duration::from_secs(60))
            .await?;
        let path = url.split('?').next().unwrap_or_default();
        path.strip_suffix("/k")
            .map(str::to_owned)
            .ok_or_else(|| Error::Config {
                service: "s3",
                operation: "PostObject (presign)",
                message: format!("cannot tell the bucket's URL from {path:?}"),
                source: None,
            })
    }
}
