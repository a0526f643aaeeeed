//! Fetching objects: locating a value, reading ranges within the download
//! budget, streaming them in order with the checksum checked as the bytes pass.

use std::ops::Range;

use bytes::Bytes;
use futures_util::stream::{FuturesOrdered, StreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::backend::BackendExt as _;
use crate::backend::ObjectRange;
use crate::blob::Blob;
use crate::checksum::Checksum;
use crate::error::{Error, Result};
use crate::layout::Pointer;
use crate::model::{Key, Model};
use crate::store::{Store, READ_RACE_LOST, READ_RACE_RETRIES};

use super::{budget_permits, MIB};

impl Store {
    /// Reads the item and checks the pointer a large attribute holds, or finds
    /// its value kept in the item.
    pub(super) async fn locate<M: Model>(&self, key: &Key<M>, attr: &str) -> Result<Located> {
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
        let (pointer, checksum) = self.check_pointer(&self.target(key)?, attr, uri)?;
        Ok(Located::Object(pointer, checksum))
    }

    /// [`Store::locate`] for calls that need an object.
    pub(super) async fn locate_object<M: Model>(
        &self,
        key: &Key<M>,
        attr: &str,
    ) -> Result<Pointer> {
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
    pub(super) async fn gone<M: Model>(
        &self,
        key: &Key<M>,
        attr: &str,
        pointer: &Pointer,
    ) -> Result<()> {
        let now = self.read_stored(key, true).await?;
        if now.pointer(attr) == Some(pointer.uri().as_str()) {
            return Err(Error::DanglingPointer {
                attr: attr.to_owned(),
                uri: pointer.uri(),
            });
        }
        Ok(())
    }

    pub(super) async fn stream_object<M: Model, W: AsyncWrite + Unpin + Send>(
        &self,
        key: &Key<M>,
        attr: &str,
        pointer: &Pointer,
        checksum: &Checksum,
        writer: &mut W,
    ) -> Result<u64> {
        // The first range says the size; a missing object before any byte was
        // written is a race to read again, as for `get_large`.
        let mut pointer = pointer.clone();
        let mut checksum = checksum.clone();
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
                        Located::Object(p, c) => (pointer, checksum) = (p, c),
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
        let streamed = self
            .stream_from(attr, &pointer, &checksum, first, writer)
            .await;
        replaced_midway(streamed, self.table_name::<M>(), &key.to_string(), attr)
    }

    /// Streams the object a pointer names to `writer`, checksum-checked, for a
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
        checksum: &Checksum,
        writer: &mut W,
    ) -> Result<u64> {
        let first = self.first_range(attr, pointer).await?;
        let streamed = self
            .stream_from(attr, pointer, checksum, first, writer)
            .await;
        replaced_midway(streamed, table, key, attr)
    }

    /// The value a pointer names, for a field that takes a [`Blob`]: in memory
    /// when it fits in one download range, else streamed (range by range,
    /// checksum-checked, decoded if compressed) into a temporary file in
    /// [`Options::spool_dir`](crate::Options::spool_dir), so memory stays
    /// bounded whatever its size. A missing object, before the first byte or
    /// after, is [`Error::DanglingPointer`].
    pub(crate) async fn fetch_to_blob(
        &self,
        attr: &str,
        (pointer, checksum): &(Pointer, Checksum),
    ) -> Result<Blob> {
        let first = self.first_range(attr, pointer).await?;
        let encoding = crate::store::encoding_in_key(&pointer.key);
        if first.range.body.len() as u64 == first.range.total {
            let body = crate::store::checked(attr, pointer, checksum, first.range.body).await?;
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
            .stream_from(attr, pointer, checksum, first, &mut file)
            .await?;
        drop(file);
        // The stored bytes' checksum is the value's only when it is not
        // compressed.
        let known = match encoding {
            None => Some(checksum.clone()),
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
            .ok_or_else(|| crate::store::dangling(attr, pointer))
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
        expected: &Checksum,
        first: Held,
        writer: &mut W,
    ) -> Result<u64> {
        let chunk = self.inner.options.part_size;
        let Held {
            range: first,
            _permit: first_permit,
        } = first;
        let total = first.total;
        // The checksum is that of the stored bytes; a compressed value is decoded as
        // it is written.
        let mut decoder = match crate::store::encoding_in_key(&pointer.key) {
            Some(encoding) => Some(crate::compress::StreamDecoder::new(encoding)?),
            None => None,
        };
        let mut undecodable = None;
        let mut hasher = Some(expected.algorithm().hasher());
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
            let h = hasher
                .take()
                .unwrap_or_else(|| expected.algorithm().hasher());
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
                    // Reported after the checksum check, which says whether the
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
        let actual = hasher
            .unwrap_or_else(|| expected.algorithm().hasher())
            .finish();
        if &actual != expected || written != total {
            return Err(Error::Integrity {
                attr: attr.to_owned(),
                uri: pointer.uri(),
                expected: expected.clone(),
                actual,
            });
        }
        if let Some(e) = undecodable {
            return Err(e);
        }
        Ok(delivered)
    }
}

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

/// A download range with the budget it holds until it is written.
pub(crate) struct Held {
    range: ObjectRange,
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// Where a large attribute's value is.
pub(super) enum Located {
    /// In this object, whose bytes have this checksum (its key's).
    Object(Pointer, Checksum),
    /// In the item itself.
    Inline(Bytes),
}

/// Writes bytes of a download to the caller's writer; returns how many.
pub(super) async fn write_out<W: AsyncWrite + Unpin + Send>(
    writer: &mut W,
    bytes: &[u8],
) -> Result<u64> {
    writer
        .write_all(bytes)
        .await
        .map_err(|e| Error::io("write a download", e))?;
    Ok(bytes.len() as u64)
}
