//! The public downloads: to a writer, to a file, a byte range, a presigned URL.

use std::ops::Range;
use std::path::Path;

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tracing::field::Empty;

use crate::backend::BackendExt as _;
use crate::backend::ObjectRange;
use crate::error::{Error, Result};
use crate::model::{Key, Model};
use crate::store::{traced, Store, READ_RACE_LOST, READ_RACE_RETRIES};

use super::stream::{write_out, Located};

impl Store {
    /// Streams a large attribute of an item to `writer`, fetching up to
    /// [`Options::part_concurrency`](crate::Options::part_concurrency) ranges of
    /// [`Options::part_size`](crate::Options::part_size) at once and writing them
    /// in order, so memory stays bounded whatever the value's size. Returns the
    /// number of bytes written.
    ///
    /// The checksum the key names (in its algorithm: MD5, SHA-256 or
    /// CRC-64/NVME) is checked as the bytes pass: a mismatch is [`Error::Integrity`],
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
            Located::Object(pointer, checksum) => {
                self.stream_object(key, attr, &pointer, &checksum, writer)
                    .await
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
                    if let Some(encoding) = crate::store::encoding_in_key(&pointer.key) {
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
    /// key ends in their checksum (`md5=<hex>`, `sha256=<hex>` or
    /// `crc64nvme=<hex>`) for it to check. A value kept in the
    /// item (`#[large(inline_below = N)]`) has no object: [`Error::InvalidInput`].
    /// A compressed value (`#[large(compress = "...")]`) is served as stored,
    /// compressed; its key says how (`enc=zstd/` or `enc=gzip/` before the checksum).
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
}
