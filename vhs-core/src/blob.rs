//! [`Blob`]: a large value's bytes, in memory or in a file; and hashing (in any
//! [`ChecksumAlgorithm`]) that never holds an async executor's worker for long.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::checksum::{Checksum, ChecksumAlgorithm};
use crate::error::{Error, Result};

/// Bodies up to this size are hashed in place at once; it is also the step of
/// [`checksum_of`]'s stepped hashing (~0.1 ms of MD5).
pub(crate) const HASH_IN_PLACE: usize = 64 * 1024;
/// Bodies in memory up to this size are hashed in place in steps of
/// [`HASH_IN_PLACE`] bytes, yielding between steps; larger ones on a blocking
/// thread (see [`checksum_of`]).
pub(crate) const HASH_STEPPED: usize = 1024 * 1024;
/// Bytes read per call when hashing or spooling a file.
pub(crate) const READ_CHUNK: usize = 1024 * 1024;

/// The bytes of a large value: in memory, or in a file read only as it uploads.
///
/// Every `#[large]` type encodes to a `Blob`. Used as a field type itself
/// (`#[large] video: Option<Blob>`), it lets a value of any size come from a file
/// ([`Blob::from_file`]) or from any [`AsyncRead`] ([`Blob::from_reader`]) and go
/// up by multipart upload without being held in memory. A `Blob` read back by
/// [`Store::get_large`](crate::Store::get_large) (or a query, a scan, a batch
/// read) is held in memory when it fits in one download range
/// ([`Options::part_size`](crate::Options::part_size)), and otherwise streamed
/// into a temporary file ([`Blob::path`]; see
/// [`Options::spool_dir`](crate::Options::spool_dir)). To stream a value to a
/// file or an `AsyncWrite` of your own, use
/// [`Store::download_large`](crate::Store::download_large).
///
/// ```
/// use vhs_core::Blob;
/// let blob = Blob::from("hello");
/// assert_eq!(blob.len(), 5);
/// assert_eq!(blob.as_bytes().map(|b| &b[..]), Some(&b"hello"[..]));
/// ```
#[derive(Clone)]
pub struct Blob(pub(crate) Repr);

#[derive(Clone)]
pub(crate) enum Repr {
    Bytes(Bytes),
    File(FileBody),
}

/// A file holding a value: its path and length, a checksum of it when already
/// known (the default algorithm's for a spooled reader, the key's for a value
/// read back), and the temporary file's guard when vhs spooled it.
#[derive(Clone)]
pub(crate) struct FileBody {
    pub path: Arc<Path>,
    pub len: u64,
    pub checksum: Option<Checksum>,
    _spool: Option<Arc<tempfile::TempPath>>,
}

impl Blob {
    /// A value held in memory.
    pub fn from_bytes(bytes: impl Into<Bytes>) -> Blob {
        Blob(Repr::Bytes(bytes.into()))
    }

    /// A value read from the file at `path` when it is written: its length is read
    /// now, its bytes (hashed in one pass, uploaded in a second) later. The file
    /// must not change until the write returns; if it does, the write fails with
    /// [`Error::InvalidInput`] and stores nothing.
    pub async fn from_file(path: impl AsRef<Path>) -> Result<Blob> {
        let path = path.as_ref();
        let meta = tokio::fs::metadata(path)
            .await
            .map_err(|e| Error::io(format!("read the metadata of {}", path.display()), e))?;
        if !meta.is_file() {
            return Err(Error::invalid(format!(
                "{} is not a regular file",
                path.display()
            )));
        }
        Ok(Blob(Repr::File(FileBody {
            path: Arc::from(path),
            len: meta.len(),
            checksum: None,
            _spool: None,
        })))
    }

    /// A value read to its end from `reader`, spooled to a temporary file (in
    /// [`std::env::temp_dir`]) and hashed as it passes, so memory stays bounded
    /// whatever its size. The file is removed when the last clone of the `Blob`
    /// is dropped.
    pub async fn from_reader<R: AsyncRead + Unpin + Send>(reader: R) -> Result<Blob> {
        Self::spool(reader, std::env::temp_dir()).await
    }

    /// [`Blob::from_reader`] with the temporary file in `dir`.
    pub async fn spool<R: AsyncRead + Unpin + Send>(
        mut reader: R,
        dir: impl AsRef<Path>,
    ) -> Result<Blob> {
        let dir = dir.as_ref();
        let temp = tempfile::Builder::new()
            .prefix(".vhs-spool-")
            .tempfile_in(dir)
            .map_err(|e| Error::io(format!("create a temporary file in {}", dir.display()), e))?;
        let (file, path) = temp.into_parts();
        let mut file = tokio::fs::File::from_std(file);
        // The default algorithm's: most attributes use it.
        let mut hasher = ChecksumAlgorithm::default().hasher();
        let mut buf = vec![0u8; 64 * 1024];
        let mut len = 0u64;
        let write_err = |e| Error::io(format!("write {}", path.display()), e);
        loop {
            let n = reader
                .read(&mut buf)
                .await
                .map_err(|e| Error::io("read the value", e))?;
            if n == 0 {
                break;
            }
            // 64 KiB at a time: hashing as the bytes pass costs ~0.1 ms per call.
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n]).await.map_err(write_err)?;
            len += n as u64;
        }
        file.flush().await.map_err(write_err)?;
        file.sync_all().await.map_err(write_err)?;
        Ok(Blob(Repr::File(FileBody {
            path: Arc::from(path.to_path_buf()),
            len,
            checksum: Some(hasher.finish()),
            _spool: Some(Arc::new(path)),
        })))
    }

    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        match &self.0 {
            Repr::Bytes(b) => b.len() as u64,
            Repr::File(f) => f.len,
        }
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes, if it is held in memory.
    pub fn as_bytes(&self) -> Option<&Bytes> {
        match &self.0 {
            Repr::Bytes(b) => Some(b),
            Repr::File(_) => None,
        }
    }

    /// The file it is read from, if it is not held in memory.
    pub fn path(&self) -> Option<&Path> {
        match &self.0 {
            Repr::Bytes(_) => None,
            Repr::File(f) => Some(&f.path),
        }
    }

    /// The bytes, read from its file if it has one.
    pub async fn to_bytes(&self) -> Result<Bytes> {
        match &self.0 {
            Repr::Bytes(b) => Ok(b.clone()),
            Repr::File(f) => tokio::fs::read(&f.path)
                .await
                .map(Bytes::from)
                .map_err(|e| Error::io(format!("read {}", f.path.display()), e)),
        }
    }
}

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the bytes.
        match &self.0 {
            Repr::Bytes(b) => f.debug_struct("Blob").field("len", &b.len()).finish(),
            Repr::File(file) => f
                .debug_struct("Blob")
                .field("path", &file.path)
                .field("len", &file.len)
                .finish(),
        }
    }
}

impl From<Bytes> for Blob {
    fn from(bytes: Bytes) -> Self {
        Blob::from_bytes(bytes)
    }
}

impl From<Vec<u8>> for Blob {
    fn from(bytes: Vec<u8>) -> Self {
        Blob::from_bytes(bytes)
    }
}

impl From<String> for Blob {
    fn from(s: String) -> Self {
        Blob::from_bytes(s)
    }
}

impl From<&'static str> for Blob {
    fn from(s: &'static str) -> Self {
        Blob::from_bytes(s)
    }
}

impl From<&'static [u8]> for Blob {
    fn from(s: &'static [u8]) -> Self {
        Blob::from_bytes(s)
    }
}

/// A value spooled by vhs into a temporary file whose length and checksum are
/// known.
pub(crate) fn spooled(path: tempfile::TempPath, len: u64, checksum: Checksum) -> Blob {
    Blob(Repr::File(FileBody {
        path: Arc::from(path.to_path_buf()),
        len,
        checksum: Some(checksum),
        _spool: Some(Arc::new(path)),
    }))
}

/// A value vhs read back into a temporary file, with its checksum when known.
pub(crate) fn spooled_from(path: tempfile::TempPath, len: u64, checksum: Option<Checksum>) -> Blob {
    Blob(Repr::File(FileBody {
        path: Arc::from(path.to_path_buf()),
        len,
        checksum,
        _spool: Some(Arc::new(path)),
    }))
}

/// The checksum of bytes in memory, without holding an executor's worker for
/// more than [`HASH_IN_PLACE`] bytes of hashing at a time: up to
/// [`HASH_STEPPED`] bytes are hashed in place in steps of that size, yielding
/// to the worker's other tasks between steps; larger bodies on a blocking
/// thread. Handing a body to a blocking thread and back costs two thread
/// wake-ups (futex and context switches, tens of µs of CPU): more than the
/// yields, and a large share of hashing a value of a few hundred KiB.
pub(crate) async fn checksum_of(bytes: &Bytes, algorithm: ChecksumAlgorithm) -> Checksum {
    if bytes.len() <= HASH_IN_PLACE {
        return algorithm.digest(bytes);
    }
    if bytes.len() <= HASH_STEPPED {
        let mut hasher = algorithm.hasher();
        let mut steps = bytes.chunks(HASH_IN_PLACE).peekable();
        while let Some(step) = steps.next() {
            hasher.update(step);
            if steps.peek().is_some() {
                tokio::task::yield_now().await;
            }
        }
        return hasher.finish();
    }
    let bytes = bytes.clone();
    match tokio::task::spawn_blocking(move || algorithm.digest(&bytes)).await {
        Ok(sum) => sum,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// The checksum of a blob: its bytes, or its file read in one pass on a
/// blocking thread (a file whose length is no longer the one recorded is an
/// error).
pub(crate) async fn checksum_of_blob(
    blob: &Blob,
    algorithm: ChecksumAlgorithm,
) -> Result<Checksum> {
    match &blob.0 {
        Repr::Bytes(b) => Ok(checksum_of(b, algorithm).await),
        Repr::File(f) => {
            if let Some(known) = f.checksum.as_ref().filter(|c| c.algorithm() == algorithm) {
                return Ok(known.clone());
            }
            let path = f.path.clone();
            let expected = f.len;
            let hashed =
                tokio::task::spawn_blocking(move || -> std::io::Result<(Checksum, u64)> {
                    use std::io::Read;
                    let mut file = std::fs::File::open(&path)?;
                    let mut hasher = algorithm.hasher();
                    let mut buf = vec![0u8; READ_CHUNK];
                    let mut len = 0u64;
                    loop {
                        let n = file.read(&mut buf)?;
                        if n == 0 {
                            break;
                        }
                        hasher.update(&buf[..n]);
                        len += n as u64;
                    }
                    Ok((hasher.finish(), len))
                })
                .await;
            let (checksum, len) = match hashed {
                Ok(r) => r.map_err(|e| Error::io(format!("read {}", f.path.display()), e))?,
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            };
            if len != expected {
                return Err(changed(&f.path));
            }
            Ok(checksum)
        }
    }
}

/// The error for a file that changed between its hashing and its upload.
pub(crate) fn changed(path: &Path) -> Error {
    Error::invalid(format!(
        "{} changed while it was being stored; nothing was written",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hashed at once, in steps with yields, or on a blocking thread: the same
    /// checksum as the one-shot digest, at every boundary between the three.
    #[tokio::test]
    async fn checksum_of_is_the_digest_at_every_size_boundary() {
        let sizes = [
            0,
            1,
            HASH_IN_PLACE,
            HASH_IN_PLACE + 1,
            3 * HASH_IN_PLACE + 7,
            HASH_STEPPED,
            HASH_STEPPED + 1,
        ];
        for len in sizes {
            let bytes = Bytes::from((0..len).map(|i| (i * 131 % 251) as u8).collect::<Vec<u8>>());
            for a in ChecksumAlgorithm::ALL {
                assert_eq!(
                    checksum_of(&bytes, a).await,
                    a.digest(&bytes),
                    "{a:?} of {len} bytes"
                );
            }
        }
    }
}
