//! Where objects go: S3 key layout, escaping, and `s3://` pointers.
//!
//! An object key is `{prefix}/pk={pk}/sk={sk}/attr={attr}/md5={md5}` (no `sk=`
//! segment for models without a range key). Every value is escaped with
//! [`escape`], which keeps only `A-Z a-z 0-9 - _ . ~` and percent-encodes every
//! other byte of its UTF-8 form, `%`, `/` and `=` included. An escaped value
//! therefore never contains `/` or `=`, and `%` only as an escape: the key parses
//! back to exactly one (pk, sk, attr, md5), so two different items can never
//! share an object key.

use std::fmt;

use base64::Engine;
use md5::{Digest, Md5};

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

/// MD5 of some bytes, as lowercase hex (for keys) and base64 (for `Content-MD5`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Md5Sum {
    pub hex: String,
    pub base64: String,
}

impl Md5Sum {
    pub fn of(bytes: &[u8]) -> Self {
        Self::from_digest(&Md5::digest(bytes))
    }

    /// From its hex form (as a key holds it); `None` if it is not 32 hex digits.
    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 32 {
            return None;
        }
        let digest = (0..16)
            .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        Some(Self::from_digest(&digest))
    }

    /// From a finished digest.
    pub fn from_digest(digest: &[u8]) -> Self {
        Md5Sum {
            hex: digest.iter().map(|b| format!("{b:02x}")).collect(),
            base64: base64::engine::general_purpose::STANDARD.encode(digest),
        }
    }
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

/// An object's identity within its item and attribute: the hex MD5 of its
/// bytes, prefixed by `<encoding>.` for an encoded object (deletion marks are
/// named after it, so two objects of one attribute never share a mark).
pub(crate) fn object_id(encoding: Option<Encoding>, md5_hex: &str) -> String {
    match encoding {
        None => md5_hex.to_owned(),
        Some(e) => format!("{}.{md5_hex}", e.name()),
    }
}

/// The parts of an [`object_id`]; `None` for an unknown encoding.
pub(crate) fn split_object_id(id: &str) -> Option<(Option<Encoding>, &str)> {
    match id.split_once('.') {
        None => Some((None, id)),
        Some((name, md5)) => Some((Some(Encoding::from_name(name)?), md5)),
    }
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
    /// Lowercase hex MD5 of the object's bytes (as stored, encoded or not).
    pub md5: String,
}

impl ObjectKey {
    /// The object's identity within its attribute (see [`object_id`]).
    pub(crate) fn id(&self) -> String {
        object_id(self.encoding, &self.md5)
    }

    /// The S3 key under a (normalized) prefix.
    pub fn render(&self, prefix: &str) -> String {
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
        key.push_str("/md5=");
        key.push_str(&self.md5);
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
        // pk=, then sk= if present, attr=, enc= if present, md5=: in that order.
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
        let md5 = segments.next()?.strip_prefix("md5=")?;
        if segments.next().is_some() {
            return None;
        }
        if md5.len() != 32 || !md5.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        Some(ObjectKey {
            hash,
            range,
            attr: field(attr, "attr")?,
            encoding,
            md5: md5.to_owned(),
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
        let md5 = Md5Sum::of(b"hello").hex;
        let k = ObjectKey {
            hash: "a/sk=b".into(),
            range: Some("c/attr=d".into()),
            attr: "html".into(),
            encoding: None,
            md5: md5.clone(),
        };
        let s = k.render("pre/fix");
        assert_eq!(
            s,
            format!("pre/fix/pk=a%2Fsk%3Db/sk=c%2Fattr%3Dd/attr=html/md5={md5}")
        );
        assert_eq!(ObjectKey::parse("pre/fix", &s), Some(k));
        let k2 = ObjectKey {
            hash: "x".into(),
            range: None,
            attr: "a".into(),
            encoding: None,
            md5: md5.clone(),
        };
        assert_eq!(ObjectKey::parse("", &k2.render("")), Some(k2));
        assert_eq!(ObjectKey::parse("", "pk=x/attr=a/md5=zz"), None);
        // An encoded object, with and without a range key.
        for range in [None, Some("enc=zstd".to_owned())] {
            let k3 = ObjectKey {
                hash: "enc=gzip".into(),
                range,
                attr: "enc".into(),
                encoding: Some(Encoding::Zstd),
                md5: md5.clone(),
            };
            let s = k3.render("p");
            assert!(s.ends_with(&format!("/attr=enc/enc=zstd/md5={md5}")), "{s}");
            assert_eq!(ObjectKey::parse("p", &s), Some(k3));
        }
        let bad = format!("pk=x/attr=a/enc=lz4/md5={md5}");
        assert_eq!(ObjectKey::parse("", &bad), None, "unknown encoding");
        let extra = format!("pk=x/attr=a/enc=zstd/x=y/md5={md5}");
        assert_eq!(ObjectKey::parse("", &extra), None);
        assert_eq!(
            split_object_id(&object_id(Some(Encoding::Gzip), "ab")),
            Some((Some(Encoding::Gzip), "ab"))
        );
        assert_eq!(split_object_id("ab"), Some((None, "ab")));
        assert_eq!(split_object_id("lz4.ab"), None);
    }

    #[test]
    fn prefixes_are_normalized() {
        assert_eq!(normalize_prefix("/a//b/"), "a/b");
        assert_eq!(normalize_prefix("///"), "");
    }

    #[test]
    fn md5_known_value() {
        let m = Md5Sum::of(b"");
        assert_eq!(m.hex, "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(m.base64, "1B2M2Y8AsgTpgAmY7PhCfg==");
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
