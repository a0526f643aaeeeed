//! Following a pointer: the checks before it is followed, and the errors
//! of an object missing or not matching its checksum.

use aws_sdk_dynamodb::types::AttributeValue;
use bytes::Bytes;

use super::Store;
use crate::blob::checksum_of;
use crate::checksum::Checksum;
use crate::error::{Error, Result};
use crate::layout::{Encoding, Pointer};
use crate::protocol::item::Target;
impl Store {
    /// Checks a pointer before it is followed: in this bucket, under the
    /// table's prefix, ending in a checksum (`md5=`, `sha256=` or
    /// `crc64nvme=`, and a known encoding), and naming
    /// the very item (`target`) and attribute (`attr`) that hold it. Any other
    /// is [`Error::BadPointer`]: never read from, never deleted. (An item that
    /// points to another item's object would otherwise read a value its owner
    /// may delete at any time.)
    pub(crate) fn check_pointer(
        &self,
        target: &Target,
        attr: &str,
        uri: &str,
    ) -> Result<(Pointer, Checksum)> {
        let bad = |reason: String| Error::BadPointer {
            attr: attr.to_owned(),
            value: uri.to_owned(),
            reason,
        };
        let prefix = &target.prefix;
        let pointer = Pointer::parse(uri).map_err(|e| bad(e.to_string()))?;
        if pointer.bucket != self.inner.bucket {
            return Err(bad(format!(
                "it names bucket {:?}, not {:?}",
                pointer.bucket, self.inner.bucket
            )));
        }
        if !prefix.is_empty() && !pointer.key.starts_with(&format!("{prefix}/")) {
            return Err(bad(format!("it is outside the table's prefix {prefix:?}")));
        }
        let checksum = pointer
            .key
            .rsplit('/')
            .next()
            .and_then(Checksum::from_segment)
            .ok_or_else(|| {
                bad("its key does not end in md5=<32 hex digits>, sha256=<64 hex digits> or crc64nvme=<16 hex digits> (lowercase)".to_owned())
            })?;
        let mut segments = pointer.key.rsplit('/');
        if let Some(name) = segments.nth(1).and_then(|s| s.strip_prefix("enc=")) {
            if Encoding::from_name(name).is_none() {
                return Err(bad(format!("its key names an unknown encoding {name:?}")));
            }
        }
        if target
            .owned(attr, &AttributeValue::S(uri.to_owned()))
            .is_none()
        {
            let named = crate::layout::ObjectKey::parse(prefix, &pointer.key)
                .map(|k| {
                    let range = k.range.map(|r| format!(", sk={r:?}")).unwrap_or_default();
                    format!("pk={:?}{range}, attr={:?}", k.hash, k.attr)
                })
                .unwrap_or_else(|| "something outside vhs's key layout".to_owned());
            return Err(bad(format!(
                "its key names {named}, not this item ({}) and attribute {attr:?}: that object is not this item's to read",
                target.describe
            )));
        }
        Ok((pointer, checksum))
    }

    pub(crate) async fn fetch(
        &self,
        attr: &str,
        (pointer, checksum): &(Pointer, Checksum),
    ) -> Result<Bytes> {
        let object = self
            .read_object(&pointer.bucket, &pointer.key)
            .await?
            .ok_or_else(|| dangling(attr, pointer))?;
        checked(attr, pointer, checksum, object.body).await
    }
}

/// The error for a pointer whose object does not exist.
pub(crate) fn dangling(attr: &str, pointer: &Pointer) -> Error {
    Error::DanglingPointer {
        attr: attr.to_owned(),
        uri: pointer.uri(),
    }
}

/// `body` if its checksum (in the key's algorithm) is the one its key names,
/// else [`Error::Integrity`].
pub(crate) async fn checked(
    attr: &str,
    pointer: &Pointer,
    expected: &Checksum,
    body: Bytes,
) -> Result<Bytes> {
    let actual = checksum_of(&body, expected.algorithm()).await;
    if &actual != expected {
        return Err(Error::Integrity {
            attr: attr.to_owned(),
            uri: pointer.uri(),
            expected: expected.clone(),
            actual,
        });
    }
    Ok(body)
}

/// The encoding an object key records (its `enc=` segment, just before the
/// checksum),
/// for a key [`Store::check_pointer`] accepted.
pub(crate) fn encoding_in_key(key: &str) -> Option<Encoding> {
    let name = key.rsplit('/').nth(1)?.strip_prefix("enc=")?;
    Encoding::from_name(name)
}
