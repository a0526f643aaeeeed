//! The models the contract suite stores.

use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use vhs::{Json, Model};

/// Hash + range key, two large attributes of different types, ordinary attributes.
#[derive(Model, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[vhs(table = "documents")]
pub struct Document {
    #[vhs(hash_key)]
    pub pk: String,
    #[vhs(range_key)]
    pub sk: String,
    pub update_at: DateTime<Utc>,
    #[large]
    pub html: Option<String>,
    #[large(content_type = "image/png")]
    pub image: Option<Vec<u8>>,
    pub data: serde_json::Value,
}

impl Document {
    pub fn sample(pk: &str, sk: &str) -> Self {
        Document {
            pk: pk.into(),
            sk: sk.into(),
            update_at: Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap(),
            html: Some(format!("<html>{pk}/{sk}</html>")),
            image: Some(vec![0x89, b'P', b'N', b'G', 1, 2, 3]),
            data: serde_json::json!({"title": "hello", "n": 1}),
        }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Meta {
    pub tags: Vec<String>,
    pub score: f64,
}

/// Numeric hash key only, `Bytes` and JSON large attributes. No serde derive on
/// the struct: `Model` needs serde only on the ordinary fields' types.
#[derive(Model, Debug, Clone, PartialEq)]
#[vhs(table = "blobs")]
pub struct Blob {
    #[vhs(hash_key)]
    pub id: u64,
    #[large]
    pub body: Option<Bytes>,
    #[large]
    pub meta: Option<Json<Meta>>,
    pub note: Option<String>,
}

impl Blob {
    pub fn sample(id: u64) -> Self {
        Blob {
            id,
            body: Some(Bytes::from(vec![7u8; 3000])),
            meta: Some(Json(Meta {
                tags: vec!["a".into(), "b".into()],
                score: 0.5,
            })),
            note: Some("small".into()),
        }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct CounterState {
    pub count: u64,
    pub writers: Vec<u32>,
}

/// A value for the versioned stores: the counter lives in a large JSON attribute.
#[derive(Model, Debug, Clone, PartialEq)]
#[vhs(table = "counters")]
pub struct Counter {
    #[vhs(hash_key)]
    pub name: String,
    #[large]
    pub state: Option<Json<CounterState>>,
    pub label: String,
}

impl Counter {
    pub fn new(count: u64) -> Self {
        Counter {
            name: "c".into(),
            state: Some(Json(CounterState {
                count,
                writers: Vec::new(),
            })),
            label: format!("count {count}"),
        }
    }

    pub fn count(&self) -> u64 {
        self.state.as_ref().map_or(0, |s| s.0.count)
    }
}

/// Optimistic locking through the transactional API.
#[derive(Model, Debug, Clone, PartialEq)]
#[vhs(table = "vdocs")]
pub struct VDoc {
    #[vhs(hash_key)]
    pub id: String,
    #[vhs(version)]
    pub version: u64,
    #[large]
    pub body: Option<String>,
    pub title: String,
}

/// One large attribute and a plain hash key: the smallest model, for the
/// interleaving explorer and the race tests. Its table is the same shape as
/// `Document`'s but another table, for the cross-table cases.
#[derive(Model, Debug, Clone, PartialEq)]
#[vhs(table = "notes")]
pub struct Note {
    #[vhs(hash_key)]
    pub pk: String,
    #[large]
    pub html: Option<String>,
}

impl Note {
    pub fn new(pk: &str, html: &str) -> Self {
        Note {
            pk: pk.into(),
            html: Some(html.into()),
        }
    }
}

/// Same key schema and large attribute name as `Document`: for the cross-table case.
#[derive(Model, Debug, Clone, PartialEq)]
#[vhs(table = "pages")]
pub struct Page {
    #[vhs(hash_key)]
    pub pk: String,
    #[vhs(range_key)]
    pub sk: String,
    #[large]
    pub html: Option<String>,
}

/// Eight large attributes: the round-trip tests set 1, 2 or 8 of them.
#[derive(Model, Debug, Clone, PartialEq)]
#[vhs(table = "wide")]
pub struct Wide {
    #[vhs(hash_key)]
    pub id: String,
    #[large]
    pub a: Option<Bytes>,
    #[large]
    pub b: Option<Bytes>,
    #[large]
    pub c: Option<Bytes>,
    #[large]
    pub d: Option<Bytes>,
    #[large]
    pub e: Option<Bytes>,
    #[large]
    pub f: Option<Bytes>,
    #[large]
    pub g: Option<Bytes>,
    #[large]
    pub h: Option<Bytes>,
}

impl Wide {
    /// `k` of the eight attributes set, each to a value derived from `seed`.
    pub fn with(id: &str, k: usize, seed: u8) -> Self {
        let v = |i: usize| (i < k).then(|| Bytes::from(vec![seed; 1000 + i]));
        Wide {
            id: id.into(),
            a: v(0),
            b: v(1),
            c: v(2),
            d: v(3),
            e: v(4),
            f: v(5),
            g: v(6),
            h: v(7),
        }
    }
}

/// A value too large to hold in memory comfortably: a `Blob` (bytes or a file)
/// beside an ordinary small large attribute.
#[derive(Model, Debug, Clone)]
#[vhs(table = "videos")]
pub struct Video {
    #[vhs(hash_key)]
    pub id: String,
    #[large(content_type = "video/mp4")]
    pub data: Option<vhs::Blob>,
    #[large]
    pub thumb: Option<Bytes>,
}

/// Large attributes kept in the item below a size (`inline_below`): a small
/// `body` stays in the item, a large one goes to S3.
#[derive(Model, Debug, Clone, PartialEq)]
#[vhs(table = "memos")]
pub struct Memo {
    #[vhs(hash_key)]
    pub id: String,
    #[large(inline_below = 1024)]
    pub body: Option<Bytes>,
    #[large(inline_below = 64, content_type = "text/plain")]
    pub title: Option<String>,
    /// Always an object.
    #[large]
    pub attachment: Option<Vec<u8>>,
    pub n: u64,
}

impl Memo {
    /// `body_len` bytes of body, a short title, no attachment.
    pub fn with(id: &str, body_len: usize, seed: u8) -> Self {
        Memo {
            id: id.into(),
            body: Some(Bytes::from(vec![seed; body_len])),
            title: Some(format!("memo {id}")),
            attachment: None,
            n: seed as u64,
        }
    }
}

/// Compressed large attributes: `text` with zstd, `data` with gzip, `blob` (from
/// memory or a file) with zstd.
#[derive(Model, Debug, Clone)]
#[vhs(table = "packed")]
pub struct Packed {
    #[vhs(hash_key)]
    pub id: String,
    #[large(compress = "zstd")]
    pub text: Option<String>,
    #[large(compress = "gzip", content_type = "application/json")]
    pub data: Option<Vec<u8>>,
    #[large(compress = "zstd")]
    pub blob: Option<vhs::Blob>,
}

/// A program of the single-table design: hash key `objectType`, range key `id`,
/// the entity as JSON in `data` (large when big), listed by name.
#[derive(Model, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[vhs(table = "single", index(name = "programName-index", keys_only))]
pub struct Program {
    #[vhs(hash_key, rename = "objectType", gsi_hash = "programName-index")]
    pub object_type: String,
    #[vhs(range_key)]
    pub id: String,
    #[vhs(rename = "programName", gsi_range = "programName-index")]
    pub program_name: String,
    #[large(inline_below = 256)]
    pub data: Option<Json<serde_json::Value>>,
}

/// An event of the same table: listed by date over all events, and per program.
#[derive(Model, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[vhs(table = "single", index(name = "programID-index", include = ["title"]))]
pub struct Event {
    #[vhs(
        hash_key,
        rename = "objectType",
        gsi_hash = "objectType-eventStart-index"
    )]
    pub object_type: String,
    #[vhs(range_key, gsi_range = "programID-index")]
    pub id: String,
    #[vhs(
        rename = "programID",
        gsi_hash = "programID-index",
        gsi_hash = "programID-eventStart-index"
    )]
    pub program_id: Option<String>,
    #[vhs(
        rename = "eventStart",
        gsi_range = "objectType-eventStart-index",
        gsi_range = "programID-eventStart-index"
    )]
    pub event_start: DateTime<chrono::FixedOffset>,
    pub seats: u32,
    pub title: String,
    #[large]
    pub data: Option<Json<serde_json::Value>>,
}

/// A view of [`Event`] with fewer attributes, for projections.
#[derive(Model, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[vhs(table = "single")]
pub struct EventTitle {
    #[vhs(hash_key, rename = "objectType")]
    pub object_type: String,
    #[vhs(range_key)]
    pub id: String,
    pub title: String,
}

/// Readings of a sensor: a numeric range key, a local index by time, and a
/// filler to make pages large.
#[derive(Model, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[vhs(table = "readings")]
pub struct Reading {
    #[vhs(hash_key)]
    pub sensor: String,
    #[vhs(range_key)]
    pub n: u32,
    #[vhs(lsi = "by-time")]
    pub at: DateTime<chrono::FixedOffset>,
    #[vhs(lsi = "by-label")]
    pub label: String,
    pub filler: String,
}

/// A note whose `updatedAt` the store sets on every write.
#[derive(Model, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[vhs(table = "notes")]
pub struct Stamped {
    #[vhs(hash_key)]
    pub pk: String,
    #[vhs(updated_at, rename = "updatedAt")]
    pub updated: Option<DateTime<Utc>>,
    pub n: u32,
    #[large]
    pub html: Option<String>,
}

/// Values uploaded by clients (presigned uploads): one attribute named by
/// SHA-256, one by MD5.
#[derive(Model, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[vhs(table = "attachments")]
pub struct Attachment {
    #[vhs(hash_key)]
    pub id: String,
    pub name: String,
    #[large(checksum = "sha256", content_type = "application/pdf")]
    pub scan: Option<Vec<u8>>,
    #[large]
    pub thumb: Option<Vec<u8>>,
}

/// Content addresses other than MD5 (`#[large(checksum = "...")]`): SHA-256
/// and CRC-64/NVME values of any size (multipart above the threshold), a
/// compressed CRC-64/NVME one, and an MD5 one beside them.
#[derive(Model, Debug, Clone)]
#[vhs(table = "digests")]
pub struct Digests {
    #[vhs(hash_key)]
    pub id: String,
    #[large(checksum = "sha256")]
    pub sha: Option<vhs::Blob>,
    #[large(checksum = "crc64nvme")]
    pub crc: Option<vhs::Blob>,
    #[large(checksum = "crc64nvme", compress = "zstd")]
    pub packed: Option<String>,
    #[large]
    pub plain: Option<Bytes>,
}
