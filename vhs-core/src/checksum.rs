//! Content addresses: the checksum a large attribute's object keys end in.
//!
//! Each `#[large]` attribute names one algorithm
//! (`#[large(checksum = "sha256")]`; [`ChecksumAlgorithm::Md5`] by default).
//! The last segment of an object key is `{name}={lowercase hex digest}` of the
//! object's bytes as stored (`md5=…`, `sha256=…`, `crc64nvme=…`), and uploads
//! send the digest so that S3 itself refuses other bytes (`Content-MD5`, or
//! `x-amz-checksum-sha256` / `x-amz-checksum-crc64nvme`).
//!
//! Which to choose:
//! - `md5` (the default, and every key vhs wrote before): 128 bits, checked by
//!   every S3 implementation through `Content-MD5`.
//! - `sha256`: collision resistant. Choose it when the content comes from
//!   clients you do not trust (presigned uploads): two different contents can
//!   never share a key, which with MD5 a client can arrange on purpose.
//! - `crc64nvme`: the fastest to compute, and the checksum S3 computes for
//!   every object by default; 64 bits, an integrity check against accidents,
//!   not against an adversary.

use std::fmt;

use base64::Engine;

/// The algorithm of a large attribute's content addresses: the checksum its
/// object keys end in.
///
/// Each `#[large]` attribute names one algorithm
/// (`#[large(checksum = "sha256")]`; [`ChecksumAlgorithm::Md5`] by default).
/// The last segment of an object key is `{name}={lowercase hex digest}` of the
/// object's bytes as stored (`md5=…`, `sha256=…`, `crc64nvme=…`), and uploads
/// send the digest so that S3 itself refuses other bytes (`Content-MD5`, or
/// `x-amz-checksum-sha256` / `x-amz-checksum-crc64nvme`).
///
/// Which to choose:
/// - `md5` (the default, and every key vhs wrote before): 128 bits, checked by
///   every S3 implementation through `Content-MD5`.
/// - `sha256`: collision resistant. Choose it when the content comes from
///   clients you do not trust (presigned uploads): two different contents can
///   never share a key, which with MD5 a client can arrange on purpose.
/// - `crc64nvme`: the fastest to compute, and the checksum S3 computes for
///   every object by default; 64 bits, an integrity check against accidents,
///   not against an adversary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub enum ChecksumAlgorithm {
    /// MD5, 16 bytes (`md5=` keys, `Content-MD5`).
    #[default]
    Md5,
    /// SHA-256, 32 bytes (`sha256=` keys, `x-amz-checksum-sha256`).
    Sha256,
    /// CRC-64/NVME, 8 bytes (`crc64nvme=` keys, `x-amz-checksum-crc64nvme`).
    Crc64Nvme,
}

impl ChecksumAlgorithm {
    /// Every algorithm, in the order of their names.
    pub const ALL: [ChecksumAlgorithm; 3] = [Self::Crc64Nvme, Self::Md5, Self::Sha256];

    /// The name in keys and in `#[large(checksum = "...")]`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Md5 => "md5",
            Self::Sha256 => "sha256",
            Self::Crc64Nvme => "crc64nvme",
        }
    }

    /// The algorithm of a name; `None` for any other string.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The digest's length in bytes.
    #[allow(clippy::len_without_is_empty)] // an algorithm, not a collection
    pub const fn len(self) -> usize {
        match self {
            Self::Md5 => 16,
            Self::Sha256 => 32,
            Self::Crc64Nvme => 8,
        }
    }

    /// The HTTP header an upload sends the digest in (base64): `Content-MD5`
    /// for MD5, else `x-amz-checksum-{name}`.
    pub const fn header(self) -> &'static str {
        match self {
            Self::Md5 => "Content-MD5",
            Self::Sha256 => "x-amz-checksum-sha256",
            Self::Crc64Nvme => "x-amz-checksum-crc64nvme",
        }
    }

    /// A hasher for this algorithm.
    pub fn hasher(self) -> Hasher {
        Hasher::new(self)
    }

    /// The digest of `bytes`.
    pub fn digest(self, bytes: &[u8]) -> Checksum {
        let mut h = self.hasher();
        h.update(bytes);
        h.finish()
    }
}

impl fmt::Display for ChecksumAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A digest and its algorithm: an object's content address.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Checksum {
    algorithm: ChecksumAlgorithm,
    bytes: Vec<u8>,
}

impl Checksum {
    /// A digest from its bytes; `None` if their length is not the algorithm's.
    pub fn new(algorithm: ChecksumAlgorithm, bytes: Vec<u8>) -> Option<Self> {
        (bytes.len() == algorithm.len()).then_some(Checksum { algorithm, bytes })
    }

    /// From lowercase hex (as a key holds it); `None` if it is not exactly the
    /// algorithm's length in lowercase hex digits.
    pub fn from_hex(algorithm: ChecksumAlgorithm, hex: &str) -> Option<Self> {
        if hex.len() != 2 * algorithm.len()
            || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return None;
        }
        let bytes = (0..algorithm.len())
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        Some(Checksum { algorithm, bytes })
    }

    /// From base64 (as an HTTP header holds it); `None` if it does not decode
    /// to the algorithm's length.
    pub fn from_base64(algorithm: ChecksumAlgorithm, b64: &str) -> Option<Self> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()?;
        Self::new(algorithm, bytes)
    }

    /// Parses a key's last segment, `{name}={hex}`.
    pub fn from_segment(segment: &str) -> Option<Self> {
        let (name, hex) = segment.split_once('=')?;
        Self::from_hex(ChecksumAlgorithm::from_name(name)?, hex)
    }

    /// The algorithm.
    pub fn algorithm(&self) -> ChecksumAlgorithm {
        self.algorithm
    }

    /// The digest's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Lowercase hex, as keys hold it.
    pub fn hex(&self) -> String {
        use fmt::Write;
        let mut s = String::with_capacity(2 * self.bytes.len());
        for b in &self.bytes {
            let _ = write!(s, "{b:02x}");
        }
        s
    }

    /// Base64, as the upload header ([`ChecksumAlgorithm::header`]) holds it.
    pub fn base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.bytes)
    }

    /// The key segment, `{name}={hex}`.
    pub fn segment(&self) -> String {
        format!("{}={}", self.algorithm.name(), self.hex())
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.segment())
    }
}

impl fmt::Debug for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Checksum({})", self.segment())
    }
}

/// An incremental hasher of one [`ChecksumAlgorithm`].
#[derive(Clone)]
pub struct Hasher(Inner);

#[derive(Clone)]
enum Inner {
    Md5(md5::Md5),
    Sha256(sha2::Sha256),
    Crc64(crc_fast::Digest),
}

impl Hasher {
    /// A hasher of nothing yet.
    pub fn new(algorithm: ChecksumAlgorithm) -> Self {
        use sha2::Digest as _;
        Hasher(match algorithm {
            ChecksumAlgorithm::Md5 => Inner::Md5(md5::Md5::new()),
            ChecksumAlgorithm::Sha256 => Inner::Sha256(sha2::Sha256::new()),
            ChecksumAlgorithm::Crc64Nvme => {
                Inner::Crc64(crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme))
            }
        })
    }

    /// The algorithm.
    pub fn algorithm(&self) -> ChecksumAlgorithm {
        match self.0 {
            Inner::Md5(_) => ChecksumAlgorithm::Md5,
            Inner::Sha256(_) => ChecksumAlgorithm::Sha256,
            Inner::Crc64(_) => ChecksumAlgorithm::Crc64Nvme,
        }
    }

    /// Hashes more bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        use sha2::Digest as _;
        match &mut self.0 {
            Inner::Md5(h) => h.update(bytes),
            Inner::Sha256(h) => h.update(bytes),
            Inner::Crc64(h) => h.update(bytes),
        }
    }

    /// The digest of everything hashed.
    pub fn finish(self) -> Checksum {
        use sha2::Digest as _;
        let algorithm = self.algorithm();
        let bytes = match self.0 {
            Inner::Md5(h) => h.finalize().to_vec(),
            Inner::Sha256(h) => h.finalize().to_vec(),
            Inner::Crc64(h) => h.finalize().to_be_bytes().to_vec(),
        };
        Checksum { algorithm, bytes }
    }
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hasher({})", self.algorithm())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        // RFC 1321, FIPS 180-2, and the CRC-64/NVME check value of "123456789".
        let md5 = ChecksumAlgorithm::Md5.digest(b"abc");
        assert_eq!(md5.hex(), "900150983cd24fb0d6963f7d28e17f72");
        let sha = ChecksumAlgorithm::Sha256.digest(b"abc");
        assert_eq!(
            sha.hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let crc = ChecksumAlgorithm::Crc64Nvme.digest(b"123456789");
        assert_eq!(crc.hex(), "ae8b14860a799888");
    }

    #[test]
    fn incremental_equals_whole() {
        for a in ChecksumAlgorithm::ALL {
            let mut h = a.hasher();
            h.update(b"hello ");
            h.update(b"world");
            assert_eq!(h.finish(), a.digest(b"hello world"), "{a}");
        }
    }

    #[test]
    fn segments_round_trip_and_refuse_what_is_not_canonical() {
        for a in ChecksumAlgorithm::ALL {
            let c = a.digest(b"x");
            assert_eq!(Checksum::from_segment(&c.segment()), Some(c.clone()));
            assert_eq!(Checksum::from_base64(a, &c.base64()), Some(c.clone()));
            let upper = format!("{}={}", a.name(), c.hex().to_uppercase());
            assert_eq!(Checksum::from_segment(&upper), None, "{a}");
            let short = &c.segment()[..c.segment().len() - 1];
            assert_eq!(Checksum::from_segment(short), None, "{a}");
        }
        assert_eq!(Checksum::from_segment("sha1=00"), None);
        assert_eq!(Checksum::from_segment("md5"), None);
        let md5 = ChecksumAlgorithm::Md5.digest(b"x");
        // An MD5's hex is not a CRC-64 nor a SHA-256.
        assert_eq!(
            Checksum::from_segment(&format!("sha256={}", md5.hex())),
            None
        );
    }

    #[test]
    fn names() {
        for a in ChecksumAlgorithm::ALL {
            assert_eq!(ChecksumAlgorithm::from_name(a.name()), Some(a));
        }
        assert_eq!(ChecksumAlgorithm::default(), ChecksumAlgorithm::Md5);
        assert_eq!(ChecksumAlgorithm::Sha256.header(), "x-amz-checksum-sha256");
    }
}
