//! What `#[derive(Model)]` generates, checked through the `vhs` facade without a
//! store.
#![deny(missing_docs)]

use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use vhs::types::AttributeValue;
use vhs::{Changes, Condition, Json, KeyKind, KeyValue, Model};

/// A document with every kind of field.
#[derive(Model, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[vhs(table = "documents")]
pub struct Document {
    #[vhs(hash_key)]
    pk: String,
    #[vhs(range_key)]
    sk: String,
    #[vhs(rename = "updateAt")]
    update_at: DateTime<Utc>,
    #[large]
    html: Option<String>,
    #[large(content_type = "image/png")]
    image: Option<Vec<u8>>,
    data: serde_json::Value,
    note: Option<String>,
}

/// A model with a number hash key and no range key; default table name. The
/// derive needs no serde impl on the struct itself.
#[derive(Model, Debug, Clone, PartialEq)]
pub struct Counter {
    #[vhs(hash_key)]
    id: u64,
    count: i32,
    #[large]
    raw: Option<Bytes>,
    #[large]
    blob: Option<Vec<u8>>,
    #[large]
    meta: Option<Json<Meta>>,
}

/// JSON stored in S3.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Meta {
    tags: Vec<String>,
}

/// Raw identifiers, a number range key, no large field.
#[derive(Model, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct r#Event {
    #[vhs(hash_key)]
    r#type: String,
    #[vhs(range_key)]
    r#at: i64,
    r#match: bool,
}

/// Optimistic locking: a `u64` version field.
#[derive(Model, Debug, Clone, PartialEq)]
pub struct Versioned {
    #[vhs(hash_key)]
    id: String,
    #[vhs(version)]
    version: u64,
    #[large]
    body: Option<String>,
    title: String,
}

/// A renamed version field of another integer type.
#[derive(Model, Debug, Clone, PartialEq)]
pub struct Revised {
    #[vhs(hash_key)]
    id: u32,
    #[vhs(rename = "rev", version)]
    revision: i32,
}

mod reexport {
    pub use vhs as renamed;
}

/// The crate path overridden.
#[derive(Model, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[vhs(crate = "crate::reexport::renamed", table = "other")]
pub struct Overridden {
    #[vhs(hash_key, rename = "PK")]
    pk: String,
}

fn document() -> Document {
    Document {
        pk: "doc#1".into(),
        sk: "v1".into(),
        update_at: Utc.with_ymd_and_hms(2024, 5, 6, 7, 8, 9).unwrap(),
        html: Some("<p>hello</p>".into()),
        image: Some(vec![0x89, b'P', b'N', b'G']),
        data: serde_json::json!({"a": [1, 2]}),
        note: None,
    }
}

#[test]
fn schema_with_range_key_and_overrides() {
    let schema = Document::SCHEMA;
    assert_eq!(schema.table, "documents");
    assert_eq!(schema.hash_key.name, "pk");
    assert_eq!(schema.hash_key.kind, KeyKind::String);
    let range = schema.range_key.expect("range key");
    assert_eq!(range.name, "sk");
    assert_eq!(range.kind, KeyKind::String);
    let large: Vec<_> = schema
        .large
        .iter()
        .map(|a| (a.name, a.content_type))
        .collect();
    assert_eq!(
        large,
        [
            ("html", "text/plain; charset=utf-8"),
            ("image", "image/png")
        ]
    );
    assert_eq!(schema.large_index("image"), Some(1));
}

#[test]
fn schema_defaults() {
    let schema = Counter::SCHEMA;
    assert_eq!(schema.table, "Counter");
    assert_eq!(schema.hash_key.name, "id");
    assert_eq!(schema.hash_key.kind, KeyKind::Number);
    assert!(schema.range_key.is_none());
    let large: Vec<_> = schema
        .large
        .iter()
        .map(|a| (a.name, a.content_type))
        .collect();
    assert_eq!(
        large,
        [
            ("raw", "application/octet-stream"),
            ("blob", "application/octet-stream"),
            ("meta", "application/json"),
        ]
    );
}

#[test]
fn schema_raw_identifiers() {
    let schema = Event::SCHEMA;
    assert_eq!(schema.table, "Event");
    assert_eq!(schema.hash_key.name, "type");
    assert_eq!(schema.hash_key.kind, KeyKind::String);
    let range = schema.range_key.expect("range key");
    assert_eq!(range.name, "at");
    assert_eq!(range.kind, KeyKind::Number);
    assert!(schema.large.is_empty());
}

#[test]
fn schema_crate_override() {
    let schema = Overridden::SCHEMA;
    assert_eq!(schema.table, "other");
    assert_eq!(schema.hash_key.name, "PK");
    let item = Overridden { pk: "x".into() }.to_item().unwrap();
    assert_eq!(item.get("PK"), Some(&AttributeValue::S("x".into())));
    assert_eq!(
        Overridden::key("x"),
        Overridden { pk: "x".into() }.primary_key()
    );
}

#[test]
fn to_item_leaves_out_large_and_none_fields() {
    let doc = document();
    let item = doc.to_item().unwrap();
    let mut names: Vec<&str> = item.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["data", "pk", "sk", "updateAt"]);
    assert_eq!(item["pk"], AttributeValue::S("doc#1".into()));
    assert_eq!(item["sk"], AttributeValue::S("v1".into()));
    assert!(matches!(item["updateAt"], AttributeValue::S(_)));
    assert!(matches!(item["data"], AttributeValue::M(_)));

    let with_note = Document {
        note: Some("n".into()),
        ..document()
    };
    let item = with_note.to_item().unwrap();
    assert_eq!(item["note"], AttributeValue::S("n".into()));
}

#[test]
fn from_item_round_trip_without_large_values() {
    let doc = Document {
        note: Some("n".into()),
        ..document()
    };
    let back = Document::from_item(doc.to_item().unwrap()).unwrap();
    assert_eq!(
        back,
        Document {
            html: None,
            image: None,
            ..doc.clone()
        }
    );

    let doc = document();
    let back = Document::from_item(doc.to_item().unwrap()).unwrap();
    assert_eq!(back.note, None);
    assert_eq!(back.update_at, doc.update_at);
}

#[test]
fn from_item_reports_the_attribute() {
    let mut item = document().to_item().unwrap();
    item.insert("updateAt".into(), AttributeValue::Bool(true));
    let error = Document::from_item(item).unwrap_err();
    assert!(error.to_string().contains("updateAt"), "{error}");
}

#[test]
fn round_trip_number_keys_and_raw_identifiers() {
    let counter = Counter {
        id: 7,
        count: -3,
        raw: None,
        blob: None,
        meta: None,
    };
    let item = counter.to_item().unwrap();
    assert_eq!(item["id"], AttributeValue::N("7".into()));
    assert_eq!(item.len(), 2);
    assert_eq!(Counter::from_item(item).unwrap(), counter);

    let event = Event {
        r#type: "click".into(),
        r#at: 42,
        r#match: true,
    };
    let item = event.to_item().unwrap();
    assert_eq!(item["type"], AttributeValue::S("click".into()));
    assert_eq!(item["at"], AttributeValue::N("42".into()));
    assert_eq!(item["match"], AttributeValue::Bool(true));
    assert_eq!(Event::from_item(item).unwrap(), event);
}

/// Encoded values, each held in memory.
fn in_memory(encoded: Vec<Option<vhs::Blob>>) -> Vec<Option<Bytes>> {
    encoded
        .into_iter()
        .map(|b| b.map(|b| b.as_bytes().cloned().expect("held in memory")))
        .collect()
}

#[test]
fn encode_and_decode_large() {
    let doc = document();
    let encoded = in_memory(doc.encode_large().unwrap());
    assert_eq!(
        encoded,
        [
            Some(Bytes::from_static(b"<p>hello</p>")),
            Some(Bytes::from_static(&[0x89, b'P', b'N', b'G'])),
        ]
    );

    let mut back = Document::from_item(doc.to_item().unwrap()).unwrap();
    for (index, bytes) in encoded.into_iter().enumerate() {
        back.decode_large(index, bytes.unwrap()).unwrap();
    }
    // An index out of range does nothing.
    back.decode_large(2, Bytes::from_static(b"ignored"))
        .unwrap();
    assert_eq!(back, doc);

    let empty = Document {
        html: None,
        image: None,
        ..document()
    };
    assert_eq!(in_memory(empty.encode_large().unwrap()), [None, None]);
}

#[test]
fn encode_and_decode_json_large() {
    let meta = Meta {
        tags: vec!["a".into(), "b".into()],
    };
    let counter = Counter {
        id: 1,
        count: 0,
        raw: Some(Bytes::from_static(b"raw")),
        blob: None,
        meta: Some(Json(meta.clone())),
    };
    let encoded = in_memory(counter.encode_large().unwrap());
    assert_eq!(encoded[0], Some(Bytes::from_static(b"raw")));
    assert_eq!(encoded[1], None);
    assert_eq!(
        encoded[2],
        Some(Bytes::from_static(br#"{"tags":["a","b"]}"#))
    );

    let mut back = Counter::from_item(counter.to_item().unwrap()).unwrap();
    back.decode_large(2, encoded[2].clone().unwrap()).unwrap();
    assert_eq!(back.meta, Some(Json(meta)));

    let error = back
        .decode_large(2, Bytes::from_static(b"not json"))
        .unwrap_err();
    assert!(error.to_string().contains("meta"), "{error}");
}

#[test]
fn no_large_fields() {
    let event = Event {
        r#type: "t".into(),
        r#at: 1,
        r#match: false,
    };
    assert!(event.encode_large().unwrap().is_empty());
    let mut event2 = event.clone();
    event2.decode_large(0, Bytes::new()).unwrap();
    assert_eq!(event2, event);
}

#[test]
fn keys() {
    let doc = document();
    let key = Document::key("doc#1", String::from("v1"));
    assert_eq!(key, doc.primary_key());
    assert_eq!(key.hash(), &KeyValue::String("doc#1".into()));
    assert_eq!(key.range(), Some(&KeyValue::String("v1".into())));
    assert_eq!(key.to_string(), r#"pk="doc#1", sk="v1""#);

    let key = Counter::key(5);
    assert_eq!(key.hash(), &KeyValue::Number("5".into()));
    assert_eq!(key.range(), None);
    assert_eq!(key.to_item().len(), 1);

    let key = Event::key("click", -2);
    assert_eq!(key.hash(), &KeyValue::String("click".into()));
    assert_eq!(key.range(), Some(&KeyValue::Number("-2".into())));
    assert_eq!(
        key,
        Event {
            r#type: "click".into(),
            r#at: -2,
            r#match: true
        }
        .primary_key()
    );
}

#[test]
fn update_builder() {
    let update = Document::changes();
    assert!(Changes::from(update).is_empty());

    let update = Document::changes()
        .set_html(Some("<p>new</p>".into()))
        .set_image(None)
        .set_update_at(Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap())
        .set_note(None)
        .set_data(serde_json::json!(1))
        .condition(Condition::exists("pk"));
    let debug = format!("{update:?}");
    assert!(debug.contains(r#""html": Some(10)"#), "{debug}");
    assert!(debug.contains(r#""image": None"#), "{debug}");
    assert!(debug.contains(r#"set: ["updateAt", "data"]"#), "{debug}");
    assert!(debug.contains(r#"remove: ["note"]"#), "{debug}");
    assert!(debug.contains("condition: Some("), "{debug}");

    let changes: Changes<Document> = update.into();
    assert!(!changes.is_empty());
    assert!(!changes.large_values().is_empty());
    assert_eq!(
        format!("{:?}", changes.large_values()),
        r#"{"html": Some(10), "image": None}"#
    );
}

#[test]
fn update_builder_large_index_follows_schema() {
    let changes: Changes<Counter> = Counter::changes()
        .set_meta(Some(Json(Meta { tags: vec![] })))
        .set_count(3)
        .into();
    assert_eq!(
        format!("{:?}", changes.large_values()),
        r#"{"meta": Some(11)}"#
    );

    let update = EventUpdate::default().set_match(true);
    assert!(format!("{update:?}").contains(r#"set: ["match"]"#));
    let changes: Changes<Event> = EventUpdate::new().into();
    assert!(changes.is_empty());
}

#[test]
fn schema_version() {
    assert_eq!(Versioned::SCHEMA.version, Some("version"));
    assert_eq!(Revised::SCHEMA.version, Some("rev"));
    assert_eq!(Document::SCHEMA.version, None);
    assert_eq!(Counter::SCHEMA.version, None);
    assert_eq!(Event::SCHEMA.version, None);
    // Neither a key nor a large attribute.
    assert_eq!(Versioned::SCHEMA.hash_key.name, "id");
    let large: Vec<_> = Versioned::SCHEMA.large.iter().map(|a| a.name).collect();
    assert_eq!(large, ["body"]);
}

#[test]
fn version_is_an_ordinary_attribute() {
    let doc = Versioned {
        id: "a".into(),
        version: 3,
        body: Some("big".into()),
        title: "t".into(),
    };
    let item = doc.to_item().unwrap();
    assert_eq!(item["version"], AttributeValue::N("3".into()));
    assert_eq!(item.len(), 3);
    assert_eq!(
        Versioned::from_item(item).unwrap(),
        Versioned { body: None, ..doc }
    );

    let revised = Revised {
        id: 1,
        revision: -2,
    };
    let item = revised.to_item().unwrap();
    assert_eq!(item["rev"], AttributeValue::N("-2".into()));
    assert!(!item.contains_key("revision"));
    assert_eq!(Revised::from_item(item).unwrap(), revised);
}

/// Method resolution prefers an inherent method to a trait method, so
/// `update.set_version(..)` below resolves to this trait, and returns `Absent`,
/// only if the derive generated no `set_version`; likewise for `if_version` on a
/// model without a version field.
trait Fallback: Sized {
    fn set_version(self, _version: u64) -> Absent {
        Absent
    }
    fn set_revision(self, _revision: i32) -> Absent {
        Absent
    }
    fn if_version(self, _version: u64) -> Absent {
        Absent
    }
}

#[derive(Debug, PartialEq)]
struct Absent;

impl Fallback for VersionedUpdate {}
impl Fallback for RevisedUpdate {}
impl Fallback for DocumentUpdate {}

#[test]
fn update_builder_with_version() {
    let update = Versioned::changes()
        .if_version(3)
        .set_title("new")
        .set_body(None);
    let debug = format!("{update:?}");
    assert!(debug.contains(r#"set: ["title"]"#), "{debug}");
    let changes: Changes<Versioned> = update.into();
    assert!(!changes.is_empty());

    // `if_version` alone changes no attribute.
    let changes: Changes<Revised> = Revised::changes().if_version(0).into();
    assert!(changes.is_empty());

    // No setter for the version field, and no `if_version` without one.
    assert_eq!(Versioned::changes().set_version(4), Absent);
    assert_eq!(Revised::changes().set_revision(4), Absent);
    assert_eq!(Document::changes().if_version(1), Absent);
}

/// `update_large` takes the builder as is.
#[allow(dead_code)]
async fn update_takes_the_builder(store: &vhs::Store) -> vhs::Result<()> {
    let key = Document::key("a", "b");
    Document::update_large(store, &key, Document::changes().set_note(None)).await?;
    Document::update_large(store, &key, Changes::new()).await?;
    let doc = Document::get_large(store, &key).await?;
    Document::get_large_consistent(store, &key).await?;
    Document::create_large(store, &doc).await?;
    Document::delete_large(store, &key).await?;
    Ok(())
}

#[test]
fn private_model_in_a_function() {
    // No warning for generated items the test does not use.
    #[derive(Model)]
    struct Local {
        #[vhs(hash_key)]
        id: u8,
        #[large]
        body: Option<String>,
    }
    assert_eq!(Local::SCHEMA.table, "Local");
    let local = Local { id: 1, body: None };
    assert_eq!(local.to_item().unwrap().len(), 1);
}

mod visibility {
    use vhs::Model;

    /// Visible in the crate only, like its update builder.
    #[derive(Model)]
    pub(crate) struct Restricted {
        #[vhs(hash_key)]
        pub(crate) id: String,
        pub(crate) flag: bool,
    }
}

#[test]
fn restricted_visibility() {
    let changes: Changes<visibility::Restricted> =
        visibility::RestrictedUpdate::new().set_flag(true).into();
    assert!(!changes.is_empty());
    let model = visibility::Restricted {
        id: "a".into(),
        flag: false,
    };
    assert_eq!(model.primary_key(), visibility::Restricted::key("a"));
}

/// Setters take `impl Into<T>` for a plain field (`&str` for a `String`), the
/// exact type for an `Option<T>` field (so `Some("x".into())` and `None`
/// infer) and for a number (so a literal infers); and the atomic operations
/// generated where the field's type fits.
#[derive(Model, Debug, Clone, PartialEq)]
pub struct Post {
    #[vhs(hash_key)]
    id: String,
    title: String,
    subtitle: Option<String>,
    views: u64,
    score: Option<f64>,
    tags: Vec<String>,
    links: Option<Vec<String>>,
    #[large]
    body: Option<String>,
}

#[test]
fn setters_take_into_and_atomic_operations() {
    let title = String::from("owned");
    let changes: Changes<Post> = Post::changes()
        .set_title("borrowed")
        .set_title(title)
        .set_subtitle(Some("s".into()))
        .set_views(5)
        .set_score(Some(1.5))
        .set_tags(vec!["a".to_owned()])
        .set_body(Some("<p>".into()))
        .into();
    let debug = format!("{changes:?}");
    assert!(
        debug.contains(r#"set: ["title", "subtitle", "views", "score", "tags"]"#),
        "{debug}"
    );
    assert!(!Changes::from(Post::changes().set_body(None))
        .large_values()
        .is_empty());

    let changes: Changes<Post> = Post::changes()
        .add_views(2)
        .append_tags(["x".to_owned()])
        .append_links(vec!["l".to_owned()])
        .set_title_if_not_exists("first")
        .set_views_if_not_exists(0)
        .into();
    let debug = format!("{changes:?}");
    // The later `set_views_if_not_exists` replaced `add_views`: one
    // operation per attribute.
    assert!(
        debug.contains(r#"set_expr: ["tags", "links", "title", "views"]"#),
        "{debug}"
    );
    assert!(debug.contains("add: []"), "{debug}");
    let changes: Changes<Post> = Post::changes().add_views(1).add_score(-0.5).into();
    assert!(
        format!("{changes:?}").contains(r#"add: ["views", "score"]"#),
        "{changes:?}"
    );
}

/// `put_large`, `put_large_if` and `exists` are generated beside `create_large`.
#[allow(dead_code)]
async fn put_and_exists_are_generated(store: &vhs::Store, post: &Post) -> vhs::Result<bool> {
    let put: vhs::Put<Post> = Post::put_large(store, post).await?;
    let _ = put.replaced();
    Post::put_large_if(store, post, Condition::not_exists("id")).await?;
    Post::exists(store, &Post::key("a")).await
}

/// A model whose large attributes choose their checksum and storage class.
#[derive(Model, Debug, Clone, PartialEq)]
pub struct Archived {
    #[vhs(hash_key)]
    id: String,
    #[large(checksum = "sha256", storage_class = "STANDARD_IA")]
    scan: Option<Vec<u8>>,
    #[large(
        checksum = "crc64nvme",
        storage_class = "INTELLIGENT_TIERING",
        compress = "zstd"
    )]
    log: Option<String>,
    #[large(checksum = "md5")]
    thumb: Option<Vec<u8>>,
    #[large]
    plain: Option<Vec<u8>>,
}

#[test]
fn checksum_and_storage_class_reach_the_schema() {
    use vhs::ChecksumAlgorithm;
    let large = Archived::SCHEMA.large;
    assert_eq!(large[0].checksum, ChecksumAlgorithm::Sha256);
    assert_eq!(large[0].storage_class, Some("STANDARD_IA"));
    assert_eq!(large[1].checksum, ChecksumAlgorithm::Crc64Nvme);
    assert_eq!(large[1].storage_class, Some("INTELLIGENT_TIERING"));
    assert_eq!(large[2].checksum, ChecksumAlgorithm::Md5);
    assert_eq!(large[2].storage_class, None);
    assert_eq!(large[3].checksum, ChecksumAlgorithm::Md5);
}
