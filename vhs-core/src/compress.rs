//! Compression of large values stored as objects (`#[large(compress = "...")]`).
//!
//! The object holds the compressed bytes, its key records the codec (`enc=`
//! segment, see [`Encoding`]) and the checksum in the key is that of the bytes as
//! stored, so integrity is checked before anything is decompressed. Values kept
//! in the item (`inline_below`) are never compressed: a binary attribute has no
//! place to record a codec. The work runs on blocking threads, never on the
//! async executor's workers, except for small bodies.

use std::io::{Read, Write};

use bytes::Bytes;

use crate::blob::{self, Blob, HASH_IN_PLACE, READ_CHUNK};
use crate::checksum::{ChecksumAlgorithm, Hasher};
use crate::error::{Error, Result};
use crate::layout::Encoding;

/// zstd's level: its default, a good ratio at hundreds of MB/s.
const ZSTD_LEVEL: i32 = 3;

/// `bytes` compressed with `encoding`.
fn compress_slice(bytes: &[u8], encoding: Encoding) -> std::io::Result<Vec<u8>> {
    match encoding {
        // The streaming encoder, as for files: a value compresses to the same
        // bytes (the same object) whether it came from memory or from a file.
        Encoding::Zstd => {
            let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), ZSTD_LEVEL)?;
            encoder.write_all(bytes)?;
            encoder.finish()
        }
        Encoding::Gzip => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(bytes)?;
            encoder.finish()
        }
    }
}

/// `bytes` decompressed with `encoding`.
fn decompress_slice(bytes: &[u8], encoding: Encoding) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    match encoding {
        Encoding::Zstd => {
            zstd::stream::read::Decoder::new(bytes)?.read_to_end(&mut out)?;
        }
        Encoding::Gzip => {
            flate2::read::GzDecoder::new(bytes).read_to_end(&mut out)?;
        }
    }
    Ok(out)
}

/// Runs `f` on a blocking thread, or in place for a small body.
async fn off_executor<T: Send + 'static>(len: usize, f: impl FnOnce() -> T + Send + 'static) -> T {
    if len as u64 <= HASH_IN_PLACE as u64 {
        return f();
    }
    match tokio::task::spawn_blocking(f).await {
        Ok(out) => out,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// A value compressed: in memory for a value in memory, in a temporary file
/// (hashed with `algorithm` as it is written) for a value in a file.
pub(crate) async fn compress(
    blob: &Blob,
    encoding: Encoding,
    algorithm: ChecksumAlgorithm,
) -> Result<Blob> {
    if let Some(bytes) = blob.as_bytes() {
        let bytes = bytes.clone();
        let out = off_executor(bytes.len(), move || compress_slice(&bytes, encoding)).await;
        let out = out.map_err(|e| Error::io(format!("{} compression", encoding.name()), e))?;
        return Ok(Blob::from_bytes(out));
    }
    let path = blob
        .path()
        .expect("a blob not in memory is a file")
        .to_path_buf();
    let expected = blob.len();
    let done =
        tokio::task::spawn_blocking(move || compress_file(&path, expected, encoding, algorithm))
            .await;
    match done {
        Ok(result) => result,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Writes to a file and hashes what passes.
struct Hashing {
    file: std::fs::File,
    hasher: Hasher,
    len: u64,
}

impl Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// The file at `path` (which must still be `expected` bytes long) compressed into
/// a temporary file beside the system's others, hashed with `algorithm`.
fn compress_file(
    path: &std::path::Path,
    expected: u64,
    encoding: Encoding,
    algorithm: ChecksumAlgorithm,
) -> Result<Blob> {
    let dir = std::env::temp_dir();
    let io = |what: String| move |e| Error::io(what, e);
    let temp = tempfile::Builder::new()
        .prefix(".vhs-compress-")
        .tempfile_in(&dir)
        .map_err(io(format!("create a temporary file in {}", dir.display())))?;
    let (file, temp_path) = temp.into_parts();
    let out = Hashing {
        file,
        hasher: algorithm.hasher(),
        len: 0,
    };
    let mut input = std::fs::File::open(path).map_err(io(format!("read {}", path.display())))?;
    let mut buf = vec![0u8; READ_CHUNK];
    let mut read = 0u64;
    let codec = |e| Error::io(format!("{} compression", encoding.name()), e);
    let mut feed = |sink: &mut dyn Write| -> Result<()> {
        loop {
            let n = input
                .read(&mut buf)
                .map_err(io(format!("read {}", path.display())))?;
            if n == 0 {
                return Ok(());
            }
            read += n as u64;
            sink.write_all(&buf[..n]).map_err(codec)?;
        }
    };
    let mut out = match encoding {
        Encoding::Zstd => {
            let mut encoder = zstd::stream::write::Encoder::new(out, ZSTD_LEVEL).map_err(codec)?;
            feed(&mut encoder)?;
            encoder.finish().map_err(codec)?
        }
        Encoding::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::default());
            feed(&mut encoder)?;
            encoder.finish().map_err(codec)?
        }
    };
    if read != expected {
        return Err(blob::changed(path));
    }
    out.flush()
        .and_then(|()| out.file.sync_all())
        .map_err(io(format!("write {}", temp_path.display())))?;
    Ok(blob::spooled(temp_path, out.len, out.hasher.finish()))
}

/// Stored bytes decompressed.
pub(crate) async fn decompress(bytes: Bytes, encoding: Encoding) -> Result<Bytes> {
    let out = off_executor(bytes.len(), move || decompress_slice(&bytes, encoding)).await;
    out.map(Bytes::from).map_err(|e| {
        Error::io(
            format!("{} decompression of a stored value", encoding.name()),
            e,
        )
    })
}

/// Decompresses a stream of stored bytes chunk by chunk, for downloads. Its
/// calls do codec work: run them off the executor ([`StreamDecoder::feed_off`]).
/// A stream cut short is not detected here: the download's checksum check over the
/// stored bytes is what proves the stream whole.
pub(crate) enum StreamDecoder {
    Zstd(zstd::stream::write::Decoder<'static, Vec<u8>>),
    Gzip(flate2::write::GzDecoder<Vec<u8>>),
}

impl StreamDecoder {
    pub(crate) fn new(encoding: Encoding) -> Result<StreamDecoder> {
        Ok(match encoding {
            Encoding::Zstd => {
                StreamDecoder::Zstd(zstd::stream::write::Decoder::new(Vec::new()).map_err(err)?)
            }
            Encoding::Gzip => StreamDecoder::Gzip(flate2::write::GzDecoder::new(Vec::new())),
        })
    }

    /// Feeds stored bytes; returns the decompressed bytes they completed.
    fn feed(&mut self, chunk: &[u8]) -> Result<Vec<u8>> {
        match self {
            StreamDecoder::Zstd(d) => {
                d.write_all(chunk).and_then(|()| d.flush()).map_err(err)?;
                Ok(std::mem::take(d.get_mut()))
            }
            StreamDecoder::Gzip(d) => {
                d.write_all(chunk).and_then(|()| d.flush()).map_err(err)?;
                Ok(std::mem::take(d.get_mut()))
            }
        }
    }

    /// [`StreamDecoder::feed`] on a blocking thread: the decoder goes there and
    /// comes back with the output.
    pub(crate) async fn feed_off(mut self, chunk: Bytes) -> Result<(StreamDecoder, Vec<u8>)> {
        let fed = tokio::task::spawn_blocking(move || {
            let out = self.feed(&chunk);
            (self, out)
        })
        .await;
        match fed {
            Ok((decoder, out)) => Ok((decoder, out?)),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// Ends the stream; returns the last bytes.
    pub(crate) fn finish(self) -> Result<Vec<u8>> {
        match self {
            StreamDecoder::Zstd(mut d) => {
                d.flush().map_err(err)?;
                Ok(d.into_inner())
            }
            StreamDecoder::Gzip(d) => d.finish().map_err(err),
        }
    }
}

fn err(e: std::io::Error) -> Error {
    Error::io("decompress a stored value", e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::FileBody;

    #[tokio::test]
    async fn round_trips_in_memory_from_files_and_streamed() {
        // Over one read chunk (1 MiB), so the file is fed in several writes.
        let value: Vec<u8> = (0..3_000_000u32)
            .map(|i| (i % 7 + i / 100_000) as u8)
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v");
        std::fs::write(&path, &value).unwrap();
        for encoding in Encoding::ALL {
            let algorithm = ChecksumAlgorithm::Sha256;
            let packed = compress(&Blob::from_bytes(value.clone()), encoding, algorithm)
                .await
                .unwrap();
            let bytes = packed.to_bytes().await.unwrap();
            assert!(
                bytes.len() < value.len() / 10,
                "{encoding:?}: {}",
                bytes.len()
            );
            let from_file = compress(&Blob::from_file(&path).await.unwrap(), encoding, algorithm)
                .await
                .unwrap();
            assert_eq!(from_file.to_bytes().await.unwrap(), bytes, "{encoding:?}");
            // Hashed as written, in the algorithm asked for.
            let FileBody { checksum, .. } = match &from_file.0 {
                crate::blob::Repr::File(f) => f.clone(),
                crate::blob::Repr::Bytes(_) => panic!("a file compresses to a file"),
            };
            assert_eq!(checksum, Some(algorithm.digest(&bytes)));
            assert_eq!(
                blob::checksum_of_blob(&from_file, algorithm).await.unwrap(),
                algorithm.digest(&bytes)
            );
            let back = decompress(bytes.clone(), encoding).await.unwrap();
            assert_eq!(back, value);
            let mut stream = StreamDecoder::new(encoding).unwrap();
            let mut out = Vec::new();
            for chunk in bytes.chunks(1000) {
                let (back, more) = stream
                    .feed_off(Bytes::copy_from_slice(chunk))
                    .await
                    .unwrap();
                stream = back;
                out.extend(more);
            }
            out.extend(stream.finish().unwrap());
            assert_eq!(out, value, "{encoding:?}");
            // A truncated body is an error, not a short value.
            assert!(decompress(bytes.slice(..bytes.len() / 2), encoding)
                .await
                .is_err());
        }
    }
}
