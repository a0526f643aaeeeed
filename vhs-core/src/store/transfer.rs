//! Moving bytes: one PutObject or a multipart upload per value, and downloads
//! that stream to an `AsyncWrite` with the MD5 checked as the bytes pass.
//!
//! A multipart upload is never left behind by a call that returns: on any
//! failure it is aborted. (A process that dies mid-upload leaves one; GC aborts
//! uploads older than the retention.)

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::ops::Range;
use std::path::Path;

use bytes::Bytes;
use futures_util::stream::{FuturesOrdered, FuturesUnordered, StreamExt};
use md5::{Digest, Md5};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tracing::field::Empty;

use super::{traced, Store, READ_RACE_LOST, READ_RACE_RETRIES};
use crate::backend::{
    CompletedPart, MultipartStart, ObjectRange, PutObject, PutOutcome, Signal, MAX_PARTS,
    MIN_PART_BYTES,
};
use crate::blob::{changed, Blob, Repr};
use crate::error::{Error, Result};
use crate::layout::{Md5Sum, Pointer};
use crate::model::{Key, Model};

/// One object to write: a value's key, bytes and metadata.
#[derive(Clone)]
pub(crate) struct ObjectPut {
    pub bucket: String,
    pub key: String,
    pub body: Blob,
    pub md5: Md5Sum,
    pub content_type: String,
    pub metadata: HashMap<String, String>,
}

impl fmt::Debug for ObjectPut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectPut")
            .field("key", &self.key)
            .field("len", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// A part read and hashed, ready to send.
struct Part {
    number: u32,
    body: Bytes,
    md5_base64: String,
}

/// The Content-Encoding of the object at `key`: the codec its key records
/// (`enc=zstd` → `zstd`, `enc=gzip` → `gzip`, both HTTP content codings).
fn content_encoding(key: &str) -> Option<String> {
    super::encoding_in_key(key).map(|e| e.name().to_owned())
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
                        content_md5: put.md5.base64.clone(),
                        content_type: put.content_type.clone(),
                        content_encoding: content_encoding(&put.key),
                        metadata: put.metadata.clone(),
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
            .complete_multipart_upload(&put.bucket, &put.key, &upload_id, &parts, true)
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
    /// memory), hashes each for its `Content-MD5`, and sends up to
    /// [`Options::part_concurrency`](crate::Options::part_concurrency) at once.
    /// A file whose bytes no longer have the planned MD5 fails the upload before
    /// it is completed.
    async fn send_parts(&self, put: &ObjectPut, upload_id: &str) -> Result<Vec<CompletedPart>> {
        let concurrency = self.inner.options.part_concurrency;
        let size = part_size(put.body.len(), self.inner.options.part_size);
        // One part waits in the channel while `concurrency` are sent.
        let (tx, mut rx) = mpsc::channel::<Result<Part>>(1);
        let body = put.body.clone();
        let expected = put.md5.clone();
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
                &part.md5_base64,
            )
            .await?;
        Ok(CompletedPart {
            number: part.number,
            etag,
        })
    }

    /// Streams a large attribute of an item to `writer`, fetching up to
    /// [`Options::part_concurrency`](crate::Options::part_concurrency) ranges of
    /// [`Options::part_size`](crate::Options::part_size) at once and writing them
    /// in order, so memory stays bounded whatever the value's size. Returns the
    /// number of bytes written.
    ///
    /// The MD5 is checked as the bytes pass: a mismatch is [`Error::Integrity`],
    /// reported after the last byte and before this returns `Ok`, so treat what
    /// was written as good only on `Ok` ([`Store::download_large_to_file`] does
    /// that for you). An attribute the item does not hold is
    /// [`Error::InvalidInput`]; a missing object [`Error::DanglingPointer`]. A
    /// value kept in the item (`#[large(inline_below = N)]`) is written as it is.
    pub async fn download_large<M: Model, W: AsyncWrite + Unpin + Send>(
        &self,
        key: &Key<M>,
        attr: &str,
        writer: &mut W,
    ) -> Result<u64> {
        let span = tracing::info_span!(
            "download_large",
            table = self.table_name::<M>(),
            key = %key,
            attr,
            bytes = Empty,
            requests = Empty,
        );
        let written = traced(&span, self.download(key, attr, writer)).await;
        if let Ok(bytes) = written {
            span.record("bytes", bytes);
        }
        written
    }

    /// [`Store::download_large`] without its span.
    async fn download<M: Model, W: AsyncWrite + Unpin + Send>(
        &self,
        key: &Key<M>,
        attr: &str,
        writer: &mut W,
    ) -> Result<u64> {
        match self.locate(key, attr).await? {
            Located::Object(pointer, md5) => {
                self.stream_object(key, attr, &pointer, &md5, writer).await
            }
            Located::Inline(bytes) => write_out(writer, &bytes).await,
        }
    }

    /// [`Store::download_large`] into the file at `path`: written to a temporary
    /// file beside it and renamed over `path` only once the MD5 checked out, so
    /// `path` never holds bytes that failed the check.
    pub async fn download_large_to_file<M: Model>(
        &self,
        key: &Key<M>,
        attr: &str,
        path: impl AsRef<Path>,
    ) -> Result<u64> {
        let path = path.as_ref();
        let span = tracing::info_span!(
            "download_large_to_file",
            table = self.table_name::<M>(),
            key = %key,
            attr,
            path = %path.display(),
            bytes = Empty,
            requests = Empty,
        );
        let written = traced(&span, self.download_to_file(key, attr, path)).await;
        if let Ok(bytes) = written {
            span.record("bytes", bytes);
        }
        written
    }

    /// [`Store::download_large_to_file`] without its span.
    async fn download_to_file<M: Model>(
        &self,
        key: &Key<M>,
        attr: &str,
        path: &Path,
    ) -> Result<u64> {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        let temp = tempfile::Builder::new()
            .prefix(".vhs-download-")
            .tempfile_in(&dir)
            .map_err(|e| Error::io(format!("create a temporary file in {}", dir.display()), e))?;
        let (file, temp_path) = temp.into_parts();
        let mut file = tokio::fs::File::from_std(file);
        let written = self.download(key, attr, &mut file).await?;
        let write_err = |e| Error::io(format!("write {}", temp_path.display()), e);
        file.flush().await.map_err(write_err)?;
        file.sync_all().await.map_err(write_err)?;
        drop(file);
        temp_path
            .persist(path)
            .map_err(|e| Error::io(format!("rename a download to {}", path.display()), e.error))?;
        Ok(written)
    }

    /// Bytes `range` of a large attribute (cut short at the value's end): one
    /// ranged GetObject after reading the item. The whole value's MD5 cannot be
    /// checked on a part of it; S3 checks the transfer. A compressed value
    /// (`#[large(compress = "...")]`) has no ranges: [`Error::InvalidInput`].
    pub async fn read_large_range<M: Model>(
        &self,
        key: &Key<M>,
        attr: &str,
        range: Range<u64>,
    ) -> Result<Bytes> {
        let span = tracing::info_span!(
            "read_large_range",
            table = self.table_name::<M>(),
            key = %key,
            attr,
            start = range.start,
            end = range.end,
            bytes = Empty,
            requests = Empty,
        );
        let read = traced(&span, self.read_range(key, attr, range)).await;
        if let Ok(bytes) = &read {
            span.record("bytes", bytes.len());
        }
        read
    }

    /// [`Store::read_large_range`] without its span.
    async fn read_range<M: Model>(
        &self,
        key: &Key<M>,
        attr: &str,
        range: Range<u64>,
    ) -> Result<Bytes> {
        for _ in 0..=READ_RACE_RETRIES {
            let pointer = match self.locate(key, attr).await? {
                Located::Object(pointer, _) => {
                    if let Some(encoding) = super::encoding_in_key(&pointer.key) {
                        return Err(Error::invalid(format!(
                            "large attribute `{attr}` of item {key} is stored {}-compressed: \
                             a range of the value is no range of the object; use download_large",
                            encoding.name()
                        )));
                    }
                    pointer
                }
                Located::Inline(bytes) => return Ok(ObjectRange::cut(&bytes, range).body),
            };
            match self
                .object_range(&pointer.bucket, &pointer.key, range.clone())
                .await?
            {
                Some(r) => return Ok(r.body),
                None => self.gone(key, attr, &pointer).await?,
            }
        }
        Err(self.target(key)?.busy(READ_RACE_LOST))
    }

    /// A presigned GET URL for a large attribute, valid for `expires_in` (at most
    /// 7 days, SigV4's limit): a web client downloads the object straight from
    /// S3. vhs reads the item, checks the pointer (this bucket, this table's
    /// prefix) and that the object exists first, so a URL is never handed out for
    /// a dangling or foreign pointer. The client receives the bytes unchecked; the
    /// key ends in their MD5 (`md5=<hex>`) for it to check. A value kept in the
    /// item (`#[large(inline_below = N)]`) has no object: [`Error::InvalidInput`].
    /// A compressed value (`#[large(compress = "...")]`) is served as stored,
    /// compressed; its key says how (`enc=zstd/` or `enc=gzip/` before `md5=`).
    pub async fn presign_large<M: Model>(
        &self,
        key: &Key<M>,
        attr: &str,
        expires_in: std::time::Duration,
    ) -> Result<String> {
        let span = tracing::info_span!(
            "presign_large",
            table = self.table_name::<M>(),
            key = %key,
            attr,
            requests = Empty,
        );
        traced(&span, self.presign(key, attr, expires_in)).await
    }

    /// [`Store::presign_large`] without its span.
    async fn presign<M: Model>(
        &self,
        key: &Key<M>,
        attr: &str,
        expires_in: std::time::Duration,
    ) -> Result<String> {
        const MAX: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);
        if expires_in.is_zero() || expires_in > MAX {
            return Err(Error::invalid(format!(
                "a presigned URL must expire within 1 s to 7 days, not {expires_in:?}"
            )));
        }
        for _ in 0..=READ_RACE_RETRIES {
            let pointer = self.locate_object(key, attr).await?;
            let backend = &self.inner.backend;
            match backend.head_object(&pointer.bucket, &pointer.key).await? {
                Some(_) => {
                    return backend
                        .presign_get(&pointer.bucket, &pointer.key, expires_in)
                        .await
                }
                None => self.gone(key, attr, &pointer).await?,
            }
        }
        Err(self.target(key)?.busy(READ_RACE_LOST))
    }

    /// Reads the item and checks the pointer a large attribute holds, or finds
    /// its value kept in the item.
    async fn locate<M: Model>(&self, key: &Key<M>, attr: &str) -> Result<Located> {
        let index = M::SCHEMA.require_large(attr)?;
        let attr = M::SCHEMA.large[index].name;
        let stored = self.read_stored(key, false).await?;
        if let Some(bytes) = stored.inline_value(attr) {
            return Ok(Located::Inline(bytes.clone()));
        }
        let uri = stored.pointer(attr).ok_or_else(|| {
            Error::invalid(format!(
                "item {key} holds no value for large attribute `{attr}`"
            ))
        })?;
        let (pointer, md5) = self.check_pointer(&self.target(key)?, attr, uri)?;
        Ok(Located::Object(pointer, md5))
    }

    /// [`Store::locate`] for calls that need an object.
    async fn locate_object<M: Model>(&self, key: &Key<M>, attr: &str) -> Result<Pointer> {
        match self.locate(key, attr).await? {
            Located::Object(pointer, _) => Ok(pointer),
            Located::Inline(_) => Err(Error::invalid(format!(
                "large attribute `{attr}` of item {key} is kept in the item \
                 (#[large(inline_below = ..)]): it has no object; read it with get_large"
            ))),
        }
    }

    /// An object found missing: `Ok` if the item now points elsewhere (a
    /// concurrent write replaced it: read again), a dangling pointer if not.
    async fn gone<M: Model>(&self, key: &Key<M>, attr: &str, pointer: &Pointer) -> Result<()> {
        let now = self.read_stored(key, true).await?;
        if now.pointer(attr) == Some(pointer.uri().as_str()) {
            return Err(Error::DanglingPointer {
                attr: attr.to_owned(),
                uri: pointer.uri(),
            });
        }
        Ok(())
    }

    async fn stream_object<M: Model, W: AsyncWrite + Unpin + Send>(
        &self,
        key: &Key<M>,
        attr: &str,
        pointer: &Pointer,
        md5: &str,
        writer: &mut W,
    ) -> Result<u64> {
        // The first range says the size; a missing object before any byte was
        // written is a race to read again, as for `get_large`.
        let mut pointer = pointer.clone();
        let mut md5 = md5.to_owned();
        let mut first = None;
        for _ in 0..=READ_RACE_RETRIES {
            match self.first_range_if_any(&pointer).await? {
                Some(r) => {
                    first = Some(r);
                    break;
                }
                None => {
                    self.gone(key, attr, &pointer).await?;
                    match self.locate(key, attr).await? {
                        Located::Object(p, m) => (pointer, md5) = (p, m),
                        // Rewritten meanwhile as a value kept in the item.
                        Located::Inline(bytes) => return write_out(writer, &bytes).await,
                    }
                }
            }
        }
        let first = first.ok_or_else(|| match self.target(key) {
            Ok(t) => t.busy(READ_RACE_LOST),
            Err(e) => e,
        })?;
        let streamed = self.stream_from(attr, &pointer, &md5, first, writer).await;
        replaced_midway(streamed, self.table_name::<M>(), &key.to_string(), attr)
    }

    /// Streams the object a pointer names to `writer`, MD5-checked, for a
    /// caller without a model ([`AnyTable`](crate::AnyTable)): a missing object
    /// is [`Error::DanglingPointer`] (the caller reads the item again to tell a
    /// replaced value from a lost one), or [`Error::Busy`] once bytes were
    /// written. `table` and `key` name the item in errors.
    pub(crate) async fn stream_pointer<W: AsyncWrite + Unpin + Send>(
        &self,
        table: &str,
        key: &str,
        attr: &str,
        pointer: &Pointer,
        md5: &str,
        writer: &mut W,
    ) -> Result<u64> {
        let first = self.first_range(attr, pointer).await?;
        let streamed = self.stream_from(attr, pointer, md5, first, writer).await;
        replaced_midway(streamed, table, key, attr)
    }

    /// The value a pointer names, for a field that takes a [`Blob`]: in memory
    /// when it fits in one download range, else streamed (range by range,
    /// MD5-checked, decoded if compressed) into a temporary file in
    /// [`Options::spool_dir`](crate::Options::spool_dir), so memory stays
    /// bounded whatever its size. A missing object, before the first byte or
    /// after, is [`Error::DanglingPointer`].
    pub(crate) async fn fetch_to_blob(
        &self,
        attr: &str,
        (pointer, md5): &(Pointer, String),
    ) -> Result<Blob> {
        let first = self.first_range(attr, pointer).await?;
        let encoding = super::encoding_in_key(&pointer.key);
        if first.range.body.len() as u64 == first.range.total {
            let body = super::checked(attr, pointer, md5, first.range.body).await?;
            let value = match encoding {
                Some(encoding) => crate::compress::decompress(body, encoding).await?,
                None => body,
            };
            return Ok(Blob::from_bytes(value));
        }
        let dir = match &self.inner.options.spool_dir {
            Some(dir) => dir.clone(),
            None => std::env::temp_dir(),
        };
        let temp = tempfile::Builder::new()
            .prefix(".vhs-read-")
            .tempfile_in(&dir)
            .map_err(|e| Error::io(format!("create a temporary file in {}", dir.display()), e))?;
        let (file, path) = temp.into_parts();
        let mut file = tokio::fs::File::from_std(file);
        let len = self
            .stream_from(attr, pointer, md5, first, &mut file)
            .await?;
        drop(file);
        // The stored bytes' MD5 is the value's only when it is not compressed.
        let known = match encoding {
            None => Md5Sum::from_hex(md5),
            Some(_) => None,
        };
        Ok(crate::blob::spooled_from(path, len, known))
    }

    /// The first download range of an object (its size with it), the store's
    /// download budget held for it; [`Error::DanglingPointer`] if the object
    /// does not exist.
    async fn first_range(&self, attr: &str, pointer: &Pointer) -> Result<Held> {
        self.first_range_if_any(pointer)
            .await?
            .ok_or_else(|| super::dangling(attr, pointer))
    }

    /// [`Store::first_range`], `None` if the object does not exist.
    async fn first_range_if_any(&self, pointer: &Pointer) -> Result<Option<Held>> {
        let chunk = self.inner.options.part_size;
        let permit = self.download_permit(chunk, true).await;
        Ok(self
            .object_range(&pointer.bucket, &pointer.key, 0..chunk)
            .await?
            .map(|range| Held {
                range,
                _permit: permit,
            }))
    }

    /// Permits of the store's download budget for a range of `len` bytes:
    /// waited for when `wait` (the caller holds none), else only if free now.
    async fn download_permit(
        &self,
        len: u64,
        wait: bool,
    ) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let budget = &self.inner.downloads;
        let total = budget_permits(self.inner.options.download_buffer);
        let n = (len.div_ceil(MIB) as usize).clamp(1, total) as u32;
        if wait {
            budget.clone().acquire_many_owned(n).await.ok()
        } else {
            budget.clone().try_acquire_many_owned(n).ok()
        }
    }

    /// One GetObject of a whole object, repeated on a retryable failure (a
    /// transfer cut midway that the backend could not resume) within
    /// [`READ_RETRY`].
    pub(crate) async fn read_object(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<crate::backend::StoredObject>> {
        read_retried(|| self.inner.backend.get_object(bucket, key)).await
    }

    /// One ranged GetObject, repeated like [`Store::read_object`].
    pub(crate) async fn object_range(
        &self,
        bucket: &str,
        key: &str,
        range: Range<u64>,
    ) -> Result<Option<ObjectRange>> {
        read_retried(|| {
            self.inner
                .backend
                .get_object_range(bucket, key, range.clone())
        })
        .await
    }

    /// The rest of a download whose first range is `first`: the next ranges
    /// fetched [`Options::part_concurrency`](crate::Options::part_concurrency)
    /// at once within the store's download budget, written in order. A range
    /// found missing is [`Error::DanglingPointer`].
    async fn stream_from<W: AsyncWrite + Unpin + Send>(
        &self,
        attr: &str,
        pointer: &Pointer,
        md5: &str,
        first: Held,
        writer: &mut W,
    ) -> Result<u64> {
        let chunk = self.inner.options.part_size;
        let Held {
            range: first,
            _permit: first_permit,
        } = first;
        let total = first.total;
        // The MD5 is that of the stored bytes; a compressed value is decoded as
        // it is written.
        let mut decoder = match super::encoding_in_key(&pointer.key) {
            Some(encoding) => Some(crate::compress::StreamDecoder::new(encoding)?),
            None => None,
        };
        let mut undecodable = None;
        let mut hasher = Some(Md5::new());
        // Stored bytes received, and value bytes written.
        let (mut written, mut delivered) = (0u64, 0u64);
        let mut fetching = FuturesOrdered::new();
        let mut next = first.body.len() as u64;
        let mut ready = Some((first.body, first_permit));
        let fetch = |start: u64, permit| {
            let pointer = &pointer;
            async move {
                let end = (start + chunk).min(total);
                match self
                    .object_range(&pointer.bucket, &pointer.key, start..end)
                    .await?
                {
                    Some(r) if r.body.len() as u64 == end - start && r.total == total => {
                        Ok((r.body, permit))
                    }
                    Some(_) => Err(Error::backend(
                        "s3",
                        "GetObject",
                        true,
                        format!("range {start}..{end} of {} came back short", pointer.uri()),
                    )),
                    None => Err(Error::DanglingPointer {
                        attr: attr.to_owned(),
                        uri: pointer.uri(),
                    }),
                }
            }
        };
        loop {
            // Budget taken in range order, and waited for only while this
            // download holds none: two downloads never wait on each other.
            while fetching.len() < self.inner.options.part_concurrency && next < total {
                let idle = fetching.is_empty() && ready.is_none();
                let Some(permit) = self.download_permit(chunk, idle).await else {
                    break;
                };
                fetching.push_back(fetch(next, Some(permit)));
                next = (next + chunk).min(total);
            }
            let (bytes, permit) = match ready.take() {
                Some(b) => b,
                None => match fetching.next().await {
                    Some(r) => r?,
                    None => break,
                },
            };
            // Hash on a blocking thread while the next ranges are in flight.
            let h = hasher.take().unwrap_or_default();
            let b = bytes.clone();
            let hashing = tokio::task::spawn_blocking(move || {
                let mut h = h;
                h.update(&b);
                h
            });
            written += bytes.len() as u64;
            let out = match decoder.take() {
                None if undecodable.is_some() => Bytes::new(),
                None => bytes,
                Some(d) => match d.feed_off(bytes).await {
                    Ok((d, out)) => {
                        decoder = Some(d);
                        Bytes::from(out)
                    }
                    // Reported after the MD5 check, which says whether the
                    // stored bytes were altered (`Integrity`) or not.
                    Err(e) => {
                        undecodable = Some(e);
                        Bytes::new()
                    }
                },
            };
            delivered += write_out(writer, &out).await?;
            drop(permit);
            hasher = Some(match hashing.await {
                Ok(h) => h,
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            });
        }
        if let Some(d) = decoder {
            let out = match d.finish() {
                Ok(out) => out,
                Err(e) => {
                    undecodable = Some(e);
                    Vec::new()
                }
            };
            delivered += write_out(writer, &out).await?;
        }
        writer
            .flush()
            .await
            .map_err(|e| Error::io("write a download", e))?;
        let actual = Md5Sum::from_digest(&hasher.unwrap_or_default().finalize()).hex;
        if actual != md5 || written != total {
            return Err(Error::Integrity {
                attr: attr.to_owned(),
                uri: pointer.uri(),
                expected: md5.to_owned(),
                actual,
            });
        }
        if let Some(e) = undecodable {
            return Err(e);
        }
        Ok(delivered)
    }
}

/// The reader of [`Store::send_parts`], on a blocking thread: sends each part
/// down `tx` in order, then an error instead of the last part if the bytes read
/// do not have the planned MD5 or length. Stops when `tx` is closed.
fn read_parts(body: Blob, size: u64, expected: Md5Sum, tx: mpsc::Sender<Result<Part>>) {
    let len = body.len();
    let count = len.div_ceil(size).max(1);
    match body.0 {
        Repr::Bytes(bytes) => {
            for i in 0..count {
                let start = (i * size) as usize;
                let end = ((i + 1) * size).min(len) as usize;
                let body = bytes.slice(start..end);
                let md5 = Md5Sum::of(&body);
                let part = Part {
                    number: (i + 1) as u32,
                    body,
                    md5_base64: md5.base64,
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
            let mut whole = Md5::new();
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
                    let sum = Md5Sum::from_digest(&whole.clone().finalize());
                    if longer || sum != expected {
                        return fail(changed(&path));
                    }
                }
                let md5 = Md5Sum::of(&buf);
                let part = Part {
                    number: (i + 1) as u32,
                    body: Bytes::from(buf),
                    md5_base64: md5.base64,
                };
                if tx.blocking_send(Ok(part)).is_err() {
                    return;
                }
            }
        }
    }
}

const MIB: u64 = 1024 * 1024;

/// A download whose object went missing after bytes were written to the
/// caller's writer: [`Error::Busy`], for the caller to start again.
fn replaced_midway(streamed: Result<u64>, table: &str, key: &str, attr: &str) -> Result<u64> {
    match streamed {
        Err(Error::DanglingPointer { .. }) => Err(Error::Busy {
            table: table.to_owned(),
            key: key.to_owned(),
            reason: format!(
                "`{attr}` was replaced (its object deleted) while it was downloaded; read it again"
            ),
        }),
        other => other,
    }
}

/// How object reads repeat a retryable failure: 6 attempts, 50 ms doubling up
/// to 2 s (the backend resumes a cut body itself first).
const READ_RETRY: crate::retry::RetryPolicy = crate::retry::RetryPolicy {
    max_attempts: 6,
    base_delay: std::time::Duration::from_millis(50),
    max_delay: std::time::Duration::from_secs(2),
};

/// `read` once, and again on a retryable failure within [`READ_RETRY`].
async fn read_retried<T, F: std::future::Future<Output = Result<T>>>(
    read: impl Fn() -> F,
) -> Result<T> {
    let mut attempt = 1;
    loop {
        match read().await {
            Err(e) if READ_RETRY.again(&e, attempt).await => attempt += 1,
            other => return other,
        }
    }
}

/// The permits of a download budget of `bytes` (one per MiB, at least one).
pub(crate) fn budget_permits(bytes: u64) -> usize {
    (bytes.div_ceil(MIB) as usize).clamp(1, tokio::sync::Semaphore::MAX_PERMITS)
}

/// A download range with the budget it holds until it is written.
pub(crate) struct Held {
    range: ObjectRange,
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// Where a large attribute's value is.
enum Located {
    /// In this object, whose bytes have this MD5 (hex).
    Object(Pointer, String),
    /// In the item itself.
    Inline(Bytes),
}

/// Writes bytes of a download to the caller's writer; returns how many.
async fn write_out<W: AsyncWrite + Unpin + Send>(writer: &mut W, bytes: &[u8]) -> Result<u64> {
    writer
        .write_all(bytes)
        .await
        .map_err(|e| Error::io("write a download", e))?;
    Ok(bytes.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::MAX_PUT_OBJECT_BYTES;

    #[test]
    fn part_size_grows_to_fit_ten_thousand_parts() {
        const MIB: u64 = 1024 * 1024;
        assert_eq!(part_size(0, 8 * MIB), 8 * MIB);
        assert_eq!(part_size(20 * MIB, 8 * MIB), 8 * MIB);
        assert_eq!(part_size(10_000 * 8 * MIB, 8 * MIB), 8 * MIB);
        // 5 TiB: 524.288 MiB per part, rounded up to 525 MiB.
        let tib5 = 5 * 1024 * 1024 * MIB;
        let size = part_size(tib5, 8 * MIB);
        assert_eq!(size, 525 * MIB);
        assert!(tib5.div_ceil(size) <= MAX_PARTS);
        assert!(size <= MAX_PUT_OBJECT_BYTES);
        assert_eq!(part_size(6 * 1024 * MIB, MIN_PART_BYTES), MIN_PART_BYTES);
    }

    /// Runs `read_parts` on a file whose bytes are not the ones planned.
    fn read_file_parts(content: &[u8], planned: &[u8]) -> Vec<Result<Part>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, content).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let blob = rt.block_on(Blob::from_file(&path)).unwrap();
        let (tx, mut rx) = mpsc::channel(1);
        let planned = Md5Sum::of(planned);
        let reader = std::thread::spawn(move || read_parts(blob, MIN_PART_BYTES, planned, tx));
        let mut got = Vec::new();
        while let Some(part) = rx.blocking_recv() {
            got.push(part);
        }
        reader.join().unwrap();
        got
    }

    #[test]
    fn a_file_that_changed_since_it_was_hashed_fails_before_its_last_part() {
        let len = MIN_PART_BYTES as usize + 10;
        let planned = vec![7u8; len];
        let parts = read_file_parts(&planned, &planned);
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.is_ok()));
        assert_eq!(parts[1].as_ref().unwrap().number, 2);
        assert_eq!(parts[1].as_ref().unwrap().body.len(), 10);

        // Same length, other bytes: the first part goes, the last never does.
        let mut changed = planned.clone();
        changed[len - 1] = 8;
        let parts = read_file_parts(&changed, &planned);
        assert_eq!(parts.len(), 2);
        assert!(parts[0].is_ok());
        let err = parts[1].as_ref().err().unwrap();
        assert!(err.to_string().contains("changed"), "{err}");
    }
}
