//! Moving bytes: one PutObject or a multipart upload per value, and downloads
//! that stream to an `AsyncWrite` with the checksum checked as the bytes pass.
//!
//! A multipart upload is never left behind by a call that returns: on any
//! failure it is aborted. (A process that dies mid-upload leaves one; GC aborts
//! uploads older than the retention.)

use std::collections::HashMap;
use std::fmt;

use crate::blob::Blob;
use crate::checksum::Checksum;

mod download;
mod stream;
mod upload;

#[cfg(test)]
mod tests;

/// One object to write: a value's key, bytes and metadata.
#[derive(Clone)]
pub(crate) struct ObjectPut {
    pub bucket: String,
    pub key: String,
    pub body: Blob,
    /// The checksum of `body` in the attribute's algorithm: the key's.
    pub checksum: Checksum,
    pub content_type: String,
    pub metadata: HashMap<String, String>,
    /// The attribute's storage class, else the store's (`None`: the bucket's).
    pub storage_class: Option<String>,
    /// Its tags (empty unless the store tags objects).
    pub tags: Vec<(String, String)>,
}

impl fmt::Debug for ObjectPut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectPut")
            .field("key", &self.key)
            .field("len", &self.body.len())
            .finish_non_exhaustive()
    }
}

const MIB: u64 = 1024 * 1024;

/// The permits of a download budget of `bytes` (one per MiB, at least one).
pub(crate) fn budget_permits(bytes: u64) -> usize {
    (bytes.div_ceil(MIB) as usize).clamp(1, tokio::sync::Semaphore::MAX_PERMITS)
}
