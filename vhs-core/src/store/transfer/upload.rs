//! Writing objects: one PutObject, or a multipart upload whose parts are read
//! and hashed on a blocking thread.

use std::io::Read;

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc;

use crate::backend::BackendExt as _;
use crate::backend::{
    CompletedPart, MultipartStart, PutObject, PutOutcome, Signal, MAX_PARTS, MIN_PART_BYTES,
};
use crate::blob::{changed, Blob, Repr};
use crate::checksum::Checksum;
use crate::error::{Error, Result};
use crate::store::Store;

use super::{ObjectPut, MIB};

/// A part read and hashed, ready to send.
pub(super) struct Part {
    pub(super) number: u32,
    pub(super) body: Bytes,
    /// In the object's algorithm.
    checksum: Checksum,
}

/// The Content-Encoding of the object at `key`: the codec its key records
/// (`enc=zstd` → `zstd`, `enc=gzip` → `gzip`, both HTTP content codings).
fn content_encoding(key: &str) -> Option<String> {
    crate::store::encoding_in_key(key).map(|e| e.name().to_owned())
}

/// The part size for a value of `len` bytes: the configured size, grown (in whole
/// MiB) where `len` would need more than [`MAX_PARTS`] parts.
pub(crate) fn part_size(len: u64, configured: u64) -> u64 {
    let least = len.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB;
    configured.max(least).max(MIN_PART_BYTES)
}

impl Store {
    /// Writes one object (`If-None-Match: *`), which does not come into existence
    /// before `after` fires: by one PutObject up to
    /// [`Options::multipart_threshold`](crate::Options::multipart_threshold), by
    /// a multipart upload above it.
    pub(crate) async fn put_object(&self, put: &ObjectPut, after: &Signal) -> Result<PutOutcome> {
        match &put.body.0 {
            Repr::Bytes(body) if body.len() as u64 <= self.inner.options.multipart_threshold => {
                self.inner
                    .backend
                    .put_object(PutObject {
                        bucket: put.bucket.clone(),
                        key: put.key.clone(),
                        body: body.clone(),
                        checksum: put.checksum.clone(),
                        content_type: put.content_type.clone(),
                        content_encoding: content_encoding(&put.key),
                        metadata: put.metadata.clone(),
                        storage_class: put.storage_class.clone(),
                        tags: put.tags.clone(),
                        if_none_match: true,
                        complete_after: after.clone(),
                    })
                    .await
            }
            _ => self.put_multipart(put, after).await,
        }
    }

    /// A multipart upload, aborted on any failure. An object already at the key
    /// (found before the upload, or by the completion's `If-None-Match: *`) is
    /// left as is: [`PutOutcome::AlreadyExisted`].
    async fn put_multipart(&self, put: &ObjectPut, after: &Signal) -> Result<PutOutcome> {
        let backend = &self.inner.backend;
        // Content-addressed: an object at this key holds these bytes. Finding it
        // first saves sending them, at one round trip next to many.
        if backend.head_object(&put.bucket, &put.key).await?.is_some() {
            return Ok(PutOutcome::AlreadyExisted);
        }
        let upload_id = backend
            .create_multipart_upload(&MultipartStart {
                bucket: put.bucket.clone(),
                key: put.key.clone(),
                content_type: put.content_type.clone(),
                content_encoding: content_encoding(&put.key),
                metadata: put.metadata.clone(),
                checksum: put.checksum.algorithm(),
                storage_class: put.storage_class.clone(),
                tags: put.tags.clone(),
            })
            .await?;
        let parts = match self.send_parts(put, &upload_id).await {
            Ok(parts) => parts,
            Err(e) => {
                self.abort_upload(put, &upload_id).await;
                return Err(e);
            }
        };
        after.wait().await;
        match backend
            .complete_multipart_upload(
                &put.bucket,
                &put.key,
                &upload_id,
                &parts,
                &put.checksum,
                true,
            )
            .await
        {
            Ok(PutOutcome::Created) => Ok(PutOutcome::Created),
            Ok(PutOutcome::AlreadyExisted) => {
                self.abort_upload(put, &upload_id).await;
                Ok(PutOutcome::AlreadyExisted)
            }
            Err(e) => {
                self.abort_upload(put, &upload_id).await;
                // The completion may have landed with its answer lost. Whoever
                // created the object, it holds these bytes and existed during
                // this call: as good as a 412.
                if e.is_retryable()
                    && matches!(
                        backend.head_object(&put.bucket, &put.key).await,
                        Ok(Some(_))
                    )
                {
                    return Ok(PutOutcome::AlreadyExisted);
                }
                Err(e)
            }
        }
    }

    /// Aborts an upload. If that fails too, the upload stays for GC to abort
    /// (after the retention); the caller's own outcome stands.
    async fn abort_upload(&self, put: &ObjectPut, upload_id: &str) {
        let _ = self
            .inner
            .backend
            .abort_multipart_upload(&put.bucket, &put.key, upload_id)
            .await;
    }

    /// Reads the parts on a blocking thread (a file's, or slices of bytes in
    /// memory), hashes each in the object's algorithm (for its `Content-MD5`,
    /// `x-amz-checksum-sha256` or `x-amz-checksum-crc64nvme`), and sends up to
    /// [`Options::part_concurrency`](crate::Options::part_concurrency) at once.
    /// A file whose bytes no longer have the planned checksum fails the upload
    /// before it is completed.
    async fn send_parts(&self, put: &ObjectPut, upload_id: &str) -> Result<Vec<CompletedPart>> {
        let concurrency = self.inner.options.part_concurrency;
        let size = part_size(put.body.len(), self.inner.options.part_size);
        // One part waits in the channel while `concurrency` are sent.
        let (tx, mut rx) = mpsc::channel::<Result<Part>>(1);
        let body = put.body.clone();
        let expected = put.checksum.clone();
        let reader = tokio::task::spawn_blocking(move || read_parts(body, size, expected, tx));
        let mut sending = FuturesUnordered::new();
        let mut parts = Vec::new();
        let mut more = true;
        let outcome = loop {
            tokio::select! {
                part = rx.recv(), if more && sending.len() < concurrency => match part {
                    Some(Ok(part)) => sending.push(self.send_part(put, upload_id, part)),
                    Some(Err(e)) => break Err(e),
                    None => more = false,
                },
                sent = sending.next(), if !sending.is_empty() => match sent {
                    Some(Ok(part)) => parts.push(part),
                    Some(Err(e)) => break Err(e),
                    None => {}
                },
                else => break Ok(()),
            }
        };
        // Stops the reader (its next send fails) before waiting for it.
        drop(rx);
        if let Err(e) = reader.await {
            if e.is_panic() {
                std::panic::resume_unwind(e.into_panic());
            }
        }
        outcome?;
        parts.sort_by_key(|p| p.number);
        Ok(parts)
    }

    async fn send_part(
        &self,
        put: &ObjectPut,
        upload_id: &str,
        part: Part,
    ) -> Result<CompletedPart> {
        let etag = self
            .inner
            .backend
            .upload_part(
                &put.bucket,
                &put.key,
                upload_id,
                part.number,
                part.body,
                &part.checksum,
            )
            .await?;
        Ok(CompletedPart {
            number: part.number,
            etag,
            checksum: part.checksum,
        })
    }
}

/// The reader of [`Store::send_parts`], on a blocking thread: sends each part
/// down `tx` in order, then an error instead of the last part if the bytes read
/// do not have the planned checksum or length. Stops when `tx` is closed. Each
/// part is hashed in the planned checksum's algorithm.
pub(super) fn read_parts(
    body: Blob,
    size: u64,
    expected: Checksum,
    tx: mpsc::Sender<Result<Part>>,
) {
    let len = body.len();
    let count = len.div_ceil(size).max(1);
    match body.0 {
        Repr::Bytes(bytes) => {
            for i in 0..count {
                let start = (i * size) as usize;
                let end = ((i + 1) * size).min(len) as usize;
                let body = bytes.slice(start..end);
                let part = Part {
                    number: (i + 1) as u32,
                    checksum: expected.algorithm().digest(&body),
                    body,
                };
                if tx.blocking_send(Ok(part)).is_err() {
                    return;
                }
            }
        }
        Repr::File(file) => {
            let path = file.path.clone();
            let fail = |e: Error| {
                let _ = tx.blocking_send(Err(e));
            };
            let mut f = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e) => return fail(Error::io(format!("open {}", path.display()), e)),
            };
            let mut whole = expected.algorithm().hasher();
            for i in 0..count {
                let want = (size).min(len - i * size) as usize;
                let mut buf = vec![0u8; want];
                if let Err(e) = f.read_exact(&mut buf) {
                    return fail(match e.kind() {
                        std::io::ErrorKind::UnexpectedEof => changed(&path),
                        _ => Error::io(format!("read {}", path.display()), e),
                    });
                }
                whole.update(&buf);
                let last = i + 1 == count;
                if last {
                    // The bytes sent must be the bytes planned: no more, and the same.
                    let mut extra = [0u8; 1];
                    let longer = matches!(f.read(&mut extra), Ok(n) if n > 0);
                    let sum = whole.clone().finish();
                    if longer || sum != expected {
                        return fail(changed(&path));
                    }
                }
                let part = Part {
                    number: (i + 1) as u32,
                    checksum: expected.algorithm().digest(&buf),
                    body: Bytes::from(buf),
                };
                if tx.blocking_send(Ok(part)).is_err() {
                    return;
                }
            }
        }
    }
}
