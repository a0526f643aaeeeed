//! Presigning in memory: URLs that name what they allow, and
//! [`MemoryBackend::send_presigned`], which does with a presigned upload what
//! S3 does with the client's request (there is no HTTP server to send it to).

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;

use super::{s3_error, MemoryBackend};
use crate::backend::{
    ObjectCalls, Op, PresignCalls, PresignUpload, PresignedUpload, PutObject, PutOutcome, Signal,
    UploadMethod,
};
use crate::checksum::{Checksum, ChecksumAlgorithm};
use crate::error::Result;

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn expiry(expires_in: Duration) -> u64 {
    unix(
        SystemTime::now()
            .checked_add(expires_in)
            .unwrap_or(SystemTime::UNIX_EPOCH),
    )
}

#[async_trait]
impl PresignCalls for MemoryBackend {
    /// `memory://{bucket}/{key}?expires={unix seconds}`: names the object, but no
    /// HTTP client can fetch it (there is no server).
    async fn presign_get(&self, bucket: &str, key: &str, expires_in: Duration) -> Result<String> {
        self.lock().bucket(bucket, Op::GetObject.name())?;
        Ok(format!(
            "memory://{bucket}/{key}?expires={}",
            expiry(expires_in)
        ))
    }

    /// `memory://{bucket}/{key}?upload={n}&expires={unix seconds}`, with the
    /// headers (PUT) or fields (POST) S3 would require; only
    /// [`MemoryBackend::send_presigned`] takes it.
    async fn presign_upload(&self, request: &PresignUpload) -> Result<PresignedUpload> {
        let mut state = self.lock();
        state.bucket(&request.bucket, Op::PutObject.name())?;
        state.next_upload += 1;
        let url = format!(
            "memory://{}/{}?upload={}&expires={}",
            request.bucket,
            request.key,
            state.next_upload,
            expiry(request.expires_in)
        );
        state.presigned.insert(url.clone(), request.clone());
        Ok(form(request, &url))
    }
}

impl MemoryBackend {
    /// Does what S3 does with a client's presigned upload: `sent` is what the
    /// client sends (the URL, and the headers of a PUT or the fields of a
    /// POST), `body` its bytes. Refused as S3 refuses it: an expired URL
    /// (`AccessDenied`), headers or fields other than those signed
    /// (`SignatureDoesNotMatch`, `AccessDenied` for a POST policy), a body
    /// whose checksum differs (`BadDigest`), a size outside the signed one or
    /// range (`EntityTooLarge`, `EntityTooSmall`), a PUT onto an existing
    /// object (`PreconditionFailed`).
    pub async fn send_presigned(&self, sent: &PresignedUpload, body: Bytes) -> Result<()> {
        let op = Op::PutObject.name();
        let issued = self.lock().presigned.get(&sent.url).cloned();
        let Some(issued) = issued else {
            return Err(s3_error(op, "AccessDenied", "no such presigned URL"));
        };
        let expires = sent
            .url
            .rsplit("expires=")
            .next()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0);
        if unix(SystemTime::now()) > expires {
            return Err(s3_error(op, "AccessDenied", "Request has expired"));
        }
        let mine = form(&issued, &sent.url);
        let (given, wanted) = match sent.method {
            UploadMethod::Put => (&sent.headers, &mine.headers),
            UploadMethod::Post => (&sent.fields, &mine.fields),
        };
        if sent.method != issued.method || given != wanted {
            let code = match sent.method {
                UploadMethod::Put => "SignatureDoesNotMatch",
                UploadMethod::Post => "AccessDenied",
            };
            return Err(s3_error(
                op,
                code,
                "the request's headers or fields are not the ones signed",
            ));
        }
        let size = body.len() as u64;
        match issued.method {
            UploadMethod::Put => {
                if issued.size.is_some_and(|n| n != size) {
                    return Err(s3_error(
                        op,
                        "SignatureDoesNotMatch",
                        format!("Content-Length {size} is not the one signed"),
                    ));
                }
            }
            UploadMethod::Post => {
                if size < issued.size.unwrap_or(0) {
                    return Err(s3_error(op, "EntityTooSmall", "below content-length-range"));
                }
                if issued.max_size.is_some_and(|max| size > max) {
                    return Err(s3_error(op, "EntityTooLarge", "above content-length-range"));
                }
            }
        }
        let algorithm: ChecksumAlgorithm = issued.checksum.algorithm();
        let actual: Checksum = algorithm.digest(&body);
        if actual != issued.checksum {
            return Err(s3_error(
                op,
                "BadDigest",
                format!("the {algorithm} you specified did not match the calculated checksum"),
            ));
        }
        let put = PutObject {
            bucket: issued.bucket.clone(),
            key: issued.key.clone(),
            body,
            checksum: actual,
            content_type: issued.content_type.clone(),
            content_encoding: None,
            metadata: issued.metadata.clone(),
            storage_class: issued.storage_class.clone(),
            tags: issued.tags.clone(),
            // A POST overwrites: S3's form upload takes no condition.
            if_none_match: issued.method == UploadMethod::Put,
            complete_after: Signal::open(),
        };
        match ObjectCalls::put_object(self, put).await? {
            PutOutcome::Created => Ok(()),
            PutOutcome::AlreadyExisted => Err(s3_error(
                op,
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold",
            )),
        }
    }
}

/// The headers (PUT) or fields (POST) S3 would require of `issued` at `url`.
fn form(issued: &PresignUpload, url: &str) -> PresignedUpload {
    let mut pairs = vec![
        ("content-type".to_owned(), issued.content_type.clone()),
        (
            issued.checksum.algorithm().header().to_ascii_lowercase(),
            issued.checksum.base64(),
        ),
    ];
    let mut metadata: Vec<_> = issued.metadata.iter().collect();
    metadata.sort();
    pairs.extend(
        metadata
            .into_iter()
            .map(|(k, v)| (format!("x-amz-meta-{k}"), v.clone())),
    );
    if let Some(class) = &issued.storage_class {
        pairs.push(("x-amz-storage-class".to_owned(), class.clone()));
    }
    if !issued.tags.is_empty() {
        let tags: Vec<String> = issued
            .tags
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        pairs.push(("x-amz-tagging".to_owned(), tags.join("&")));
    }
    match issued.method {
        UploadMethod::Put => {
            pairs.push(("if-none-match".to_owned(), "*".to_owned()));
            if let Some(size) = issued.size {
                pairs.push(("content-length".to_owned(), size.to_string()));
            }
            PresignedUpload {
                method: UploadMethod::Put,
                url: url.to_owned(),
                headers: pairs,
                fields: Vec::new(),
            }
        }
        UploadMethod::Post => {
            pairs.insert(0, ("key".to_owned(), issued.key.clone()));
            PresignedUpload {
                method: UploadMethod::Post,
                url: url.to_owned(),
                headers: Vec::new(),
                fields: pairs,
            }
        }
    }
}
