//! Where objects go: S3 key layout, escaping, and `s3://` pointers.
//!
//! An object key is `{prefix}/pk={pk}/sk={sk}/attr={attr}/{algorithm}={hex}`
//! (no `sk=` segment for models without a range key; an `enc={codec}` segment
//! before the last one for a compressed attribute). The last segment is the
//! object's content address, a [`Checksum`]: `md5=<32 hex>` (every key vhs
//! wrote before `#[large(checksum)]`), `sha256=<64 hex>` or `crc64nvme=<16 hex>`,
//! lowercase. Every value is escaped with
//! [`escape`], which keeps only `A-Z a-z 0-9 - _ . ~` and percent-encodes every
//! other byte of its UTF-8 form, `%`, `/` and `=` included. An escaped value
//! therefore never contains `/` or `=`, and `%` only as an escape: the key parses
//! back to exactly one (pk, sk, attr, checksum), so two different items can never
//! share an object key.

use std::fmt;

use crate::checksum::{Checksum, ChecksumAlgorithm};
use crate::error::{Error, Result};

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn is_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

/// Percent-encodes every byte outside `A-Z a-z 0-9 - _ . ~`.
///
/// ```
/// assert_eq!(vhs_core::escape("a/b=c%d é"), "a%2Fb%3Dc%25d%20%C3%A9");
/// ```
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if is_safe(b) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
    out
}

/// Inverse of [`escape`]; `None` if `value` is not something `escape` produces.
///
/// ```
/// assert_eq!(vhs_core::unescape("a%2Fb").as_deref(), Some("a/b"));
/// assert_eq!(vhs_core::unescape("a/b"), None);
/// ```
pub fn unescape(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hi = hex_digit(*bytes.get(i + 1)?)?;
                let lo = hex_digit(*bytes.get(i + 2)?)?;
                let b = hi << 4 | lo;
                if is_safe(b) {
                    return None; // not canonical: escape never encodes a safe byte
                }
                out.push(b);
                i += 3;
            }
            b if is_safe(b) => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Removes empty segments, so `"/a//b/"` becomes `"a/b"` and no key contains `//`.
pub(crate) fn normalize_prefix(prefix: &str) -> String {
    prefix
        .split('/')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("/")
}

/// How an object's bytes hold its value: compressed with this codec
/// (`#[large(compress = "zstd")]`), recorded in the object's key as an
/// `enc=<name>` segment so that every reader knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Zstandard (level 3).
    Zstd,
    /// gzip (DEFLATE, level 6).
    Gzip,
}

impl Encoding {
    /// Every encoding.
    pub const ALL: [Encoding; 2] = [Encoding::Zstd, Encoding::Gzip];

    /// `"zstd"` or `"gzip"`: its name in keys and in `#[large(compress = "...")]`.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Zstd => "zstd",
            Encoding::Gzip => "gzip",
        }
    }

    /// The encoding of this name.
    pub fn from_name(name: &str) -> Option<Encoding> {
        Encoding::ALL.into_iter().find(|e| e.name() == name)
    }
}

/// An object's identity within its item and attribute: its checksum, as the
/// bare hex digest for MD5 (the form every id had before other algorithms) and
/// as `{algorithm}={hex}` for the others, prefixed by `<encoding>.` for an
/// encoded object (deletion marks are named after it, so two objects of one
/// attribute never share a mark).
pub(crate) fn object_id(encoding: Option<Encoding>, checksum: &Checksum) -> String {
    let digest = match checksum.algorithm() {
        ChecksumAlgorithm::Md5 => checksum.hex(),
        _ => checksum.segment(),
    };
    match encoding {
        None => digest,
        Some(e) => format!("{}.{digest}", e.name()),
    }
}

/// The parts of an [`object_id`]; `None` for an unknown encoding or a digest
/// that is not one [`object_id`] writes.
pub(crate) fn split_object_id(id: &str) -> Option<(Option<Encoding>, Checksum)> {
    let (encoding, digest) = match id.split_once('.') {
        None => (None, id),
        Some((name, digest)) => (Some(Encoding::from_name(name)?), digest),
    };
    let checksum = if digest.contains('=') {
        Checksum::from_segment(digest).filter(|c| c.algorithm() != ChecksumAlgorithm::Md5)?
    } else {
        Checksum::from_hex(ChecksumAlgorithm::Md5, digest)?
    };
    Some((encoding, checksum))
}

/// The parts of an object key, unescaped.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectKey {
    /// Hash key value.
    pub hash: String,
    /// Range key value, for models with a range key.
    pub range: Option<String>,
    /// Large attribute name.
    pub attr: String,
    /// How the bytes encode the value (`enc=` segment); `None`: as they are.
    pub encoding: Option<Encoding>,
    /// The checksum of the object's bytes (as stored, encoded or not) in its
    /// attribute's algorithm: the key's last segment, `{algorithm}={hex}`.
    pub checksum: Checksum,
}

impl ObjectKey {
    /// The object's identity within its attribute (see [`object_id`]).
    pub(crate) fn id(&self) -> String {
        object_id(self.encoding, &self.checksum)
    }

    /// The S3 key under a (normalized) prefix.
    pub fn render(&self, prefix: &str) -> String {
        self.render_ending(prefix, &self.checksum.segment())
    }

    /// The key under `prefix` with `last` as its last segment in place of the
    /// checksum's (for an object id that is not one: a key no reader parses).
    pub(crate) fn render_ending(&self, prefix: &str, last: &str) -> String {
        let mut key = String::new();
        if !prefix.is_empty() {
            key.push_str(prefix);
            key.push('/');
        }
        key.push_str("pk=");
        key.push_str(&escape(&self.hash));
        if let Some(range) = &self.range {
            key.push_str("/sk=");
            key.push_str(&escape(range));
        }
        key.push_str("/attr=");
        key.push_str(&escape(&self.attr));
        if let Some(encoding) = self.encoding {
            key.push_str("/enc=");
            key.push_str(encoding.name());
        }
        key.push('/');
        key.push_str(last);
        key
    }

    /// Parses a key rendered under `prefix`; `None` if it is not one.
    pub fn parse(prefix: &str, key: &str) -> Option<ObjectKey> {
        let rest = if prefix.is_empty() {
            key
        } else {
            key.strip_prefix(prefix)?.strip_prefix('/')?
        };
        let field =
            |s: &str, name: &str| s.strip_prefix(name)?.strip_prefix('=').and_then(unescape);
        // pk=, then sk= if present, attr=, enc= if present, the checksum: in
        // that order.
        let mut segments = rest.split('/').peekable();
        let hash = field(segments.next()?, "pk")?;
        let range = match segments.peek() {
            Some(s) if s.starts_with("sk=") => Some(field(segments.next()?, "sk")?),
            _ => None,
        };
        let attr = segments.next()?;
        let encoding = match segments.peek() {
            Some(s) if s.starts_with("enc=") => {
                Some(Encoding::from_name(segments.next()?.strip_prefix("enc=")?)?)
            }
            _ => None,
        };
        let checksum = Checksum::from_segment(segments.next()?)?;
        if segments.next().is_some() {
            return None;
        }
        Some(ObjectKey {
            hash,
            range,
            attr: field(attr, "attr")?,
            encoding,
            checksum,
        })
    }
}

/// An `s3://bucket/key` pointer, the value a large attribute holds in DynamoDB
/// (the format pynamodb_mate writes).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pointer {
    /// Bucket.
    pub bucket: String,
    /// Object key.
    pub key: String,
}

impl Pointer {
    /// Parses `s3://bucket/key`.
    pub fn parse(uri: &str) -> Result<Pointer> {
        let rest = uri
            .strip_prefix("s3://")
            .ok_or_else(|| Error::invalid(format!("pointer {uri:?} is not an s3:// URI")))?;
        match rest.split_once('/') {
            Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => Ok(Pointer {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            }),
            _ => Err(Error::invalid(format!(
                "pointer {uri:?} does not name a bucket and a key"
            ))),
        }
    }

    /// The `s3://bucket/key` form.
    pub fn uri(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }
}

impl fmt::Display for Pointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_round_trips_and_is_injective() {
        let samples = [
            "", "a", "a/b", "a=b", "%", "%25", "a b", "ü/é", "日本", "..", "\0\n", "~-_.", "a%2Fb",
        ];
        for s in samples {
            let e = escape(s);
            assert!(!e.contains('/') && !e.contains('='), "{e}");
            assert_eq!(unescape(&e).as_deref(), Some(s));
        }
        let mut all: Vec<String> = samples.iter().map(|s| escape(s)).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), samples.len());
        assert_eq!(unescape("%2f"), None, "lowercase hex is not canonical");
        assert_eq!(unescape("%41"), None, "escaped safe byte is not canonical");
        assert_eq!(unescape("%2"), None);
    }

    #[test]
    fn keys_parse_back_to_their_parts() {
        let md5 = ChecksumAlgorithm::Md5.digest(b"hello");
        let k = ObjectKey {
            hash: "a/sk=b".into(),
            range: Some("c/attr=d".into()),
            attr: "html".into(),
            encoding: None,
            checksum: md5.clone(),
        };
        let s = k.render("pre/fix");
        assert_eq!(
            s,
            format!(
                "pre/fix/pk=a%2Fsk%3Db/sk=c%2Fattr%3Dd/attr=html/md5={}",
                md5.hex()
            )
        );
        assert_eq!(ObjectKey::parse("pre/fix", &s), Some(k));
        // A key written before other algorithms existed parses as it did.
        let old = "pk=x/attr=a/md5=5d41402abc4b2a76b9719d911017c592";
        let parsed = ObjectKey::parse("", old).unwrap();
        assert_eq!(parsed.checksum, md5);
        assert_eq!(parsed.id(), md5.hex());
        assert_eq!(parsed.render(""), old);
        assert_eq!(ObjectKey::parse("", "pk=x/attr=a/md5=zz"), None);
        let hex = md5.hex();
        // An encoded object, with and without a range key.
        for range in [None, Some("enc=zstd".to_owned())] {
            let k3 = ObjectKey {
                hash: "enc=gzip".into(),
                range,
                attr: "enc".into(),
                encoding: Some(Encoding::Zstd),
                checksum: md5.clone(),
            };
            let s = k3.render("p");
            assert!(s.ends_with(&format!("/attr=enc/enc=zstd/md5={hex}")), "{s}");
            assert_eq!(ObjectKey::parse("p", &s), Some(k3));
        }
        let bad = format!("pk=x/attr=a/enc=lz4/md5={hex}");
        assert_eq!(ObjectKey::parse("", &bad), None, "unknown encoding");
        let extra = format!("pk=x/attr=a/enc=zstd/x=y/md5={hex}");
        assert_eq!(ObjectKey::parse("", &extra), None);
    }

    #[test]
    fn keys_of_every_algorithm_round_trip() {
        for algorithm in ChecksumAlgorithm::ALL {
            let checksum = algorithm.digest(b"hello");
            for encoding in [None, Some(Encoding::Gzip)] {
                let k = ObjectKey {
                    hash: "h".into(),
                    range: Some("r".into()),
                    attr: "a".into(),
                    encoding,
                    checksum: checksum.clone(),
                };
                let s = k.render("p");
                assert!(
                    s.ends_with(&format!("/{}={}", algorithm.name(), checksum.hex())),
                    "{s}"
                );
                assert_eq!(ObjectKey::parse("p", &s), Some(k.clone()), "{s}");
                let id = k.id();
                assert_eq!(split_object_id(&id), Some((encoding, checksum.clone())));
                assert_eq!(object_id(encoding, &checksum), id);
                // Not canonical: uppercase hex (where the digest has a letter).
                let upper = s.replace(&checksum.hex(), &checksum.hex().to_uppercase());
                if upper != s {
                    assert_eq!(ObjectKey::parse("p", &upper), None, "{upper}");
                }
            }
        }
        let sha = ChecksumAlgorithm::Sha256.digest(b"hello").hex();
        let crc = ChecksumAlgorithm::Crc64Nvme.digest(b"hello").hex();
        let md5 = ChecksumAlgorithm::Md5.digest(b"hello").hex();
        // A digest of another algorithm's length is refused, in every direction.
        for (name, hex) in [
            ("md5", &sha),
            ("md5", &crc),
            ("sha256", &md5),
            ("sha256", &crc),
            ("crc64nvme", &md5),
            ("crc64nvme", &sha),
            ("sha1", &sha),
        ] {
            let key = format!("pk=x/attr=a/{name}={hex}");
            assert_eq!(ObjectKey::parse("", &key), None, "{key}");
        }
    }

    #[test]
    fn object_ids_keep_the_md5_form() {
        let md5 = ChecksumAlgorithm::Md5.digest(b"x");
        assert_eq!(object_id(None, &md5), md5.hex());
        assert_eq!(
            object_id(Some(Encoding::Gzip), &md5),
            format!("gzip.{}", md5.hex())
        );
        let sha = ChecksumAlgorithm::Sha256.digest(b"x");
        assert_eq!(
            object_id(Some(Encoding::Zstd), &sha),
            format!("zstd.sha256={}", sha.hex())
        );
        assert_eq!(split_object_id(&format!("md5={}", md5.hex())), None);
        assert_eq!(split_object_id(&format!("lz4.{}", md5.hex())), None);
        assert_eq!(split_object_id("ab"), None);
    }

    #[test]
    fn prefixes_are_normalized() {
        assert_eq!(normalize_prefix("/a//b/"), "a/b");
        assert_eq!(normalize_prefix("///"), "");
    }

    #[test]
    fn pointers_parse() {
        let p = Pointer::parse("s3://b/k/e/y").unwrap();
        assert_eq!((p.bucket.as_str(), p.key.as_str()), ("b", "k/e/y"));
        assert_eq!(p.uri(), "s3://b/k/e/y");
        assert!(Pointer::parse("http://b/k").is_err());
        assert!(Pointer::parse("s3://b").is_err());
        assert!(Pointer::parse("s3:///k").is_err());
    }
}
