//! The [`Model`] trait that `#[derive(Model)]` implements, and the types it is made of.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;

use aws_sdk_dynamodb::types::AttributeValue;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::blob::Blob;
use crate::error::{Error, Result};

/// A DynamoDB item: attribute name to value.
pub type Item = HashMap<String, AttributeValue>;

/// The DynamoDB type of a key attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// String (`S`).
    String,
    /// Number (`N`).
    Number,
}

/// One key attribute's value, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyValue {
    /// A string key.
    String(String),
    /// A number key in its canonical decimal form.
    Number(String),
}

impl KeyValue {
    /// The text written into S3 keys (before escaping).
    pub fn as_str(&self) -> &str {
        match self {
            KeyValue::String(s) | KeyValue::Number(s) => s,
        }
    }

    /// The value as a DynamoDB attribute.
    pub fn to_attribute(&self) -> AttributeValue {
        match self {
            KeyValue::String(s) => AttributeValue::S(s.clone()),
            KeyValue::Number(n) => AttributeValue::N(n.clone()),
        }
    }
}

impl fmt::Display for KeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyValue::String(s) => write!(f, "{s:?}"),
            KeyValue::Number(n) => f.write_str(n),
        }
    }
}

/// A Rust type that can be a hash or range key, of the table or of an index:
/// `String`, an integer type, or a `chrono` `DateTime<Utc>` or
/// `DateTime<FixedOffset>` (stored as canonical UTC text, see
/// [`canonical_time`]).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a vhs key attribute",
    label = "key attributes must be `String`, an integer type or a `chrono::DateTime`",
    note = "DynamoDB keys are strings, numbers or binary; vhs supports `String`, the integer types and `DateTime<Utc>` / `DateTime<FixedOffset>`"
)]
pub trait KeyType {
    /// The DynamoDB type of the attribute.
    const KIND: KeyKind;
    /// The value as stored.
    fn to_key_value(&self) -> KeyValue;
}

impl KeyType for String {
    const KIND: KeyKind = KeyKind::String;
    fn to_key_value(&self) -> KeyValue {
        KeyValue::String(self.clone())
    }
}

macro_rules! number_key {
    ($($t:ty),*) => {$(
        impl KeyType for $t {
            const KIND: KeyKind = KeyKind::Number;
            fn to_key_value(&self) -> KeyValue {
                KeyValue::Number(self.to_string())
            }
        }
    )*};
}
number_key!(i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize);

impl KeyType for str {
    const KIND: KeyKind = KeyKind::String;
    fn to_key_value(&self) -> KeyValue {
        KeyValue::String(self.to_owned())
    }
}

/// The text a timestamp key is stored as: UTC, a fixed width, nanoseconds, `Z`
/// (`2026-11-23T07:00:00.000000000Z`), so that text order is time order
/// whatever offset the value had. (chrono's own serde form drops zero
/// fractions and keeps the offset, so `...:00Z` would sort after `...:00.5Z`,
/// and `10:00+02:00` after `09:00Z`.) Years 0 to 9999.
///
/// ```
/// use chrono::DateTime;
/// let t = DateTime::parse_from_rfc3339("2026-11-23T09:00:00+02:00").unwrap();
/// assert_eq!(vhs_core::canonical_time(&t), "2026-11-23T07:00:00.000000000Z");
/// ```
pub fn canonical_time<Tz: chrono::TimeZone>(time: &chrono::DateTime<Tz>) -> String {
    time.with_timezone(&chrono::Utc)
        .format("%Y-%m-%dT%H:%M:%S%.9fZ")
        .to_string()
}

impl KeyType for chrono::DateTime<chrono::Utc> {
    const KIND: KeyKind = KeyKind::String;
    fn to_key_value(&self) -> KeyValue {
        KeyValue::String(canonical_time(self))
    }
}

impl KeyType for chrono::DateTime<chrono::FixedOffset> {
    const KIND: KeyKind = KeyKind::String;
    fn to_key_value(&self) -> KeyValue {
        KeyValue::String(canonical_time(self))
    }
}

/// The type of a field that is a key of a secondary index: a [`KeyType`], or an
/// `Option` of one (`None`: no attribute, so the item is not in the index).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a vhs index key attribute",
    label = "index keys must be `String`, an integer type or a `chrono::DateTime`, or an `Option` of one",
    note = "an `Option` index key that is `None` leaves the item out of the index"
)]
pub trait IndexKeyType {
    /// The DynamoDB type of the attribute.
    const KIND: KeyKind;
    /// The value as stored; `None` for no attribute.
    fn to_index_value(&self) -> Option<KeyValue>;
}

impl<T: KeyType + ?Sized> IndexKeyType for T {
    const KIND: KeyKind = T::KIND;
    fn to_index_value(&self) -> Option<KeyValue> {
        Some(self.to_key_value())
    }
}

impl<T: KeyType> IndexKeyType for Option<T> {
    const KIND: KeyKind = T::KIND;
    fn to_index_value(&self) -> Option<KeyValue> {
        self.as_ref().map(KeyType::to_key_value)
    }
}

/// A key attribute of a model's key schema.
#[derive(Debug, Clone, Copy)]
pub struct KeyDef {
    /// Attribute name.
    pub name: &'static str,
    /// Attribute type.
    pub kind: KeyKind,
}

/// A `#[large]` attribute: stored in S3, pointed to from DynamoDB.
#[derive(Debug, Clone, Copy)]
pub struct LargeAttr {
    /// Attribute name (holds the `s3://` pointer in DynamoDB).
    pub name: &'static str,
    /// Content-Type of the S3 object.
    pub content_type: &'static str,
    /// Values shorter than this many bytes are kept in the item itself, as a
    /// binary attribute, instead of in an object (`#[large(inline_below = N)]`);
    /// 0: never.
    pub inline_below: u64,
    /// Values stored as objects are compressed with this codec
    /// (`#[large(compress = "zstd")]`); values kept in the item never are.
    pub compress: Option<crate::layout::Encoding>,
    /// The algorithm of its objects' content addresses
    /// (`#[large(checksum = "sha256")]`; MD5 by default).
    pub checksum: crate::checksum::ChecksumAlgorithm,
    /// The S3 storage class its objects are written in
    /// (`#[large(storage_class = "STANDARD_IA")]`); `None`: the store's default
    /// (`StoreBuilder::storage_class`), else the bucket's (STANDARD).
    pub storage_class: Option<&'static str>,
    /// The field's type takes a value read into a temporary file
    /// ([`LargeValue::SPOOLS`]: a [`Blob`]): a read larger than one download
    /// range is spooled to disk instead of held in memory.
    pub spool: bool,
}

/// Global or local secondary index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexKind {
    /// A global secondary index: any hash key, eventually consistent reads only,
    /// can be added to an existing table.
    Global,
    /// A local secondary index: the table's hash key and another range key,
    /// created with the table only.
    Local,
}

/// Which attributes a secondary index holds, beside the keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Projection {
    /// Every attribute.
    All,
    /// The table's and the index's keys only.
    KeysOnly,
    /// The keys and these attributes.
    Include(Vec<String>),
}

/// A secondary index declared on a model (`#[vhs(gsi_hash = "...")]`,
/// `#[vhs(gsi_range = "...")]`, `#[vhs(lsi = "...")]`).
#[derive(Debug, Clone, Copy)]
pub struct IndexDef {
    /// Index name.
    pub name: &'static str,
    /// Global or local.
    pub kind: IndexKind,
    /// The index's hash key (for a local index, the table's).
    pub hash_key: KeyDef,
    /// The index's range key, if any.
    pub range_key: Option<KeyDef>,
    /// `Some(attrs)`: the index holds the keys and these attributes
    /// (`#[vhs(index(name = "...", include = "a, b"))]`, `keys_only` for none);
    /// `None`: every attribute (the default).
    pub include: Option<&'static [&'static str]>,
}

impl IndexDef {
    /// The index's projection.
    pub fn projection(&self) -> Projection {
        match self.include {
            None => Projection::All,
            Some([]) => Projection::KeysOnly,
            Some(attrs) => Projection::Include(attrs.iter().map(|a| (*a).to_owned()).collect()),
        }
    }
}

/// What `#[derive(Model)]` knows about a struct: table, keys, large attributes.
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    /// Default table name (`#[vhs(table = "...")]`, else the struct name); a
    /// [`Store`](crate::Store) can map it to another name at run time.
    pub table: &'static str,
    /// The hash (partition) key.
    pub hash_key: KeyDef,
    /// The range (sort) key, if the model has one.
    pub range_key: Option<KeyDef>,
    /// The large attributes, in field order.
    pub large: &'static [LargeAttr],
    /// The ordinary (non-key, non-large) attribute names, the version included.
    pub attributes: &'static [&'static str],
    /// The `#[vhs(version)]` attribute, if the model has one: optimistic locking
    /// for every write of the transactional API.
    pub version: Option<&'static str>,
    /// The secondary indexes, in declaration order.
    pub indexes: &'static [IndexDef],
    /// The `#[vhs(updated_at)]` attribute, if any: every create and update
    /// sets it to the time of the write (canonical UTC text).
    pub updated_at: Option<&'static str>,
    /// The `#[vhs(ttl)]` attribute, if any: a Number of epoch seconds after
    /// which the item is expired. Reads treat an expired item as absent, and
    /// [`Store::ensure_table`](crate::Store::ensure_table) enables DynamoDB's
    /// time to live on it (see the README's "TTL").
    pub ttl: Option<&'static str>,
}

impl Schema {
    /// The secondary index named `name`.
    pub fn index(&self, name: &str) -> Option<&'static IndexDef> {
        self.indexes.iter().find(|i| i.name == name)
    }

    /// Position of a large attribute by name.
    pub fn large_index(&self, name: &str) -> Option<usize> {
        self.large.iter().position(|a| a.name == name)
    }

    /// [`Schema::large_index`], or the error for a name that is not a large
    /// attribute of this table.
    pub(crate) fn require_large(&self, name: &str) -> Result<usize> {
        self.large_index(name).ok_or_else(|| {
            Error::invalid(format!(
                "`{name}` is not a large attribute of table `{}`",
                self.table
            ))
        })
    }
}

/// A struct stored as one DynamoDB item whose `#[large]` fields live in S3.
///
/// Implemented by `#[derive(Model)]`; implementing it by hand is possible but the
/// derive keeps the pieces consistent.
pub trait Model: Sized + Send + Sync + 'static {
    /// Table, key schema and large attributes.
    const SCHEMA: Schema;

    /// This item's primary key. (The derive also generates an associated
    /// `key(..)` constructor taking the key values.)
    fn primary_key(&self) -> Key<Self>;

    /// Every attribute that is not large, key attributes included. A value
    /// that serializes to null (`None`) is left out: no attribute.
    fn to_item(&self) -> Result<Item>;

    /// Builds the struct from an item; large fields are left `None`.
    fn from_item(item: Item) -> Result<Self>;

    /// The large values encoded, in [`Schema::large`] order.
    fn encode_large(&self) -> Result<Vec<Option<Blob>>>;

    /// Sets the large field number `index` from its stored bytes.
    fn decode_large(&mut self, index: usize, bytes: Bytes) -> Result<()>;

    /// Sets the large field number `index` from a value that may be held in a
    /// temporary file (only for fields whose [`LargeAttr::spool`] is set; the
    /// store passes values in memory to [`Model::decode_large`]). The derive
    /// generates it; the default takes values in memory only.
    fn decode_large_blob(&mut self, index: usize, value: Blob) -> Result<()> {
        match value.as_bytes() {
            Some(bytes) => self.decode_large(index, bytes.clone()),
            None => Err(Error::invalid(format!(
                "large field number {index} cannot take a value read into a file"
            ))),
        }
    }
}

/// The primary key of an item of model `M`.
pub struct Key<M> {
    hash: KeyValue,
    range: Option<KeyValue>,
    _model: PhantomData<fn() -> M>,
}

impl<M> Key<M> {
    /// Builds a key from its parts. Prefer the generated `Model::key(..)` constructor,
    /// which is typed.
    pub fn from_parts(hash: KeyValue, range: Option<KeyValue>) -> Self {
        Key {
            hash,
            range,
            _model: PhantomData,
        }
    }

    /// The hash key value.
    pub fn hash(&self) -> &KeyValue {
        &self.hash
    }

    /// The range key value, if the model has a range key.
    pub fn range(&self) -> Option<&KeyValue> {
        self.range.as_ref()
    }
}

impl<M: Model> Key<M> {
    /// The key as a DynamoDB key item.
    pub fn to_item(&self) -> Item {
        let schema = M::SCHEMA;
        let mut item = Item::with_capacity(2);
        item.insert(schema.hash_key.name.to_owned(), self.hash.to_attribute());
        if let (Some(def), Some(v)) = (schema.range_key, &self.range) {
            item.insert(def.name.to_owned(), v.to_attribute());
        }
        item
    }

    /// Checks the key against the schema: present range key iff the model has one,
    /// matching types, non-empty strings.
    pub(crate) fn validate(&self) -> Result<()> {
        let schema = M::SCHEMA;
        check_key_part(schema.hash_key, &self.hash)?;
        match (schema.range_key, &self.range) {
            (Some(def), Some(v)) => check_key_part(def, v),
            (None, None) => Ok(()),
            (Some(def), None) => Err(Error::invalid(format!(
                "the key has no value for range key `{}`",
                def.name
            ))),
            (None, Some(_)) => Err(Error::invalid(format!(
                "model of table `{}` has no range key, but the key has a range value",
                schema.table
            ))),
        }
    }
}

fn check_key_part(def: KeyDef, value: &KeyValue) -> Result<()> {
    match (def.kind, value) {
        (KeyKind::String, KeyValue::String(s)) if s.is_empty() => Err(Error::invalid(format!(
            "key attribute `{}` is empty; DynamoDB key strings must be non-empty",
            def.name
        ))),
        (KeyKind::String, KeyValue::String(_)) | (KeyKind::Number, KeyValue::Number(_)) => Ok(()),
        _ => Err(Error::invalid(format!(
            "key attribute `{}` has the wrong type",
            def.name
        ))),
    }
}

impl<M> Clone for Key<M> {
    fn clone(&self) -> Self {
        Key::from_parts(self.hash.clone(), self.range.clone())
    }
}

impl<M> PartialEq for Key<M> {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.range == other.range
    }
}

impl<M> Eq for Key<M> {}

impl<M: Model> fmt::Display for Key<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let schema = M::SCHEMA;
        write!(f, "{}={}", schema.hash_key.name, self.hash)?;
        if let (Some(def), Some(v)) = (schema.range_key, &self.range) {
            write!(f, ", {}={}", def.name, v)?;
        }
        Ok(())
    }
}

impl<M: Model> fmt::Debug for Key<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({self})")
    }
}

/// A type a `#[vhs(updated_at)]` field can have: `DateTime<Utc>`,
/// `DateTime<FixedOffset>`, or an `Option` of one.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a vhs `updated_at` attribute",
    label = "`updated_at` fields are `chrono::DateTime<Utc>` or `DateTime<FixedOffset>`, or an `Option` of one",
    note = "the store writes the time of every write into it, as canonical UTC text"
)]
pub trait TimestampType {}

impl TimestampType for chrono::DateTime<chrono::Utc> {}
impl TimestampType for chrono::DateTime<chrono::FixedOffset> {}
impl<T: TimestampType> TimestampType for Option<T> {}

/// Sets `M`'s `#[vhs(updated_at)]` attribute of `item` to now, if it has one.
pub(crate) fn stamp_updated_at<M: Model>(item: &mut Item) {
    if let Some((attr, now)) = updated_now::<M>() {
        item.insert(attr.to_owned(), now);
    }
}

/// `M`'s `#[vhs(updated_at)]` attribute and the time now, as stored.
pub(crate) fn updated_now<M: Model>() -> Option<(&'static str, AttributeValue)> {
    let attr = M::SCHEMA.updated_at?;
    let now = chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now());
    Some((attr, AttributeValue::S(canonical_time(&now))))
}

/// A type a `#[vhs(ttl)]` field can have: `u64` or `i64` epoch seconds,
/// `DateTime<Utc>` or `DateTime<FixedOffset>`, or an `Option` of one. Stored
/// as a DynamoDB Number of epoch seconds (what DynamoDB's time to live reads);
/// a time's fraction of a second and its offset are not kept.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a vhs `ttl` attribute",
    label = "`ttl` fields are `u64` or `i64` epoch seconds, `chrono::DateTime<Utc>` or `DateTime<FixedOffset>`, or an `Option` of one",
    note = "DynamoDB's time to live reads a Number of epoch seconds"
)]
pub trait TtlType: Sized {
    /// The value as stored: a Number of epoch seconds; `None` leaves the
    /// attribute out (the item never expires).
    fn to_ttl_value(&self) -> Option<AttributeValue>;
    /// The value from the stored attribute (`None`: no attribute).
    fn from_ttl_value(value: Option<AttributeValue>) -> Result<Self, crate::error::BoxError>;
}

/// The epoch seconds a stored TTL attribute holds, if it is a Number.
fn ttl_seconds(value: Option<AttributeValue>) -> Result<i64, crate::error::BoxError> {
    match value {
        Some(AttributeValue::N(n)) => match n.parse::<i64>() {
            Ok(secs) => Ok(secs),
            Err(_) => Ok(n.parse::<f64>().map_err(|e| format!("{n:?}: {e}"))?.floor() as i64),
        },
        Some(other) => {
            Err(format!("a TTL attribute is a Number of epoch seconds, not {other:?}").into())
        }
        None => Err("no TTL attribute: make the field an `Option` if items may have none".into()),
    }
}

impl TtlType for u64 {
    fn to_ttl_value(&self) -> Option<AttributeValue> {
        Some(AttributeValue::N(self.to_string()))
    }
    fn from_ttl_value(value: Option<AttributeValue>) -> Result<Self, crate::error::BoxError> {
        Ok(u64::try_from(ttl_seconds(value)?)?)
    }
}

impl TtlType for i64 {
    fn to_ttl_value(&self) -> Option<AttributeValue> {
        Some(AttributeValue::N(self.to_string()))
    }
    fn from_ttl_value(value: Option<AttributeValue>) -> Result<Self, crate::error::BoxError> {
        ttl_seconds(value)
    }
}

impl TtlType for chrono::DateTime<chrono::Utc> {
    fn to_ttl_value(&self) -> Option<AttributeValue> {
        Some(AttributeValue::N(self.timestamp().to_string()))
    }
    fn from_ttl_value(value: Option<AttributeValue>) -> Result<Self, crate::error::BoxError> {
        let secs = ttl_seconds(value)?;
        chrono::DateTime::from_timestamp(secs, 0)
            .ok_or_else(|| format!("{secs} epoch seconds is out of range").into())
    }
}

impl TtlType for chrono::DateTime<chrono::FixedOffset> {
    fn to_ttl_value(&self) -> Option<AttributeValue> {
        Some(AttributeValue::N(self.timestamp().to_string()))
    }
    fn from_ttl_value(value: Option<AttributeValue>) -> Result<Self, crate::error::BoxError> {
        Ok(chrono::DateTime::<chrono::Utc>::from_ttl_value(value)?.fixed_offset())
    }
}

impl<T: TtlType> TtlType for Option<T> {
    fn to_ttl_value(&self) -> Option<AttributeValue> {
        self.as_ref().and_then(T::to_ttl_value)
    }
    fn from_ttl_value(value: Option<AttributeValue>) -> Result<Self, crate::error::BoxError> {
        match value {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            v => T::from_ttl_value(v).map(Some),
        }
    }
}

/// A type a `#[vhs(version)]` field can have: an integer type.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a vhs version attribute",
    label = "version attributes must be an integer type",
    note = "a version counts writes: use `u64` (or another integer type)"
)]
pub trait VersionType {}

macro_rules! version_type {
    ($($t:ty),*) => {$( impl VersionType for $t {} )*};
}
version_type!(i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize);

/// A type a `#[large]` field can hold (inside its `Option`).
///
/// Implemented for `Vec<u8>`, [`bytes::Bytes`], `String`, [`Blob`] (bytes in
/// memory or in a file, of any size), and [`Json<T>`] for any serde type.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored in a #[large] field",
    label = "large fields hold `Vec<u8>`, `bytes::Bytes`, `String`, `vhs::Blob` or `vhs::Json<T>`",
    note = "wrap any serde type in `vhs::Json<T>` to store it as a JSON object"
)]
pub trait LargeValue: Sized {
    /// Content-Type used when `#[large(content_type = "...")]` does not say.
    const CONTENT_TYPE: &'static str;
    /// The bytes to store.
    fn encode(&self) -> Result<Blob, crate::error::BoxError>;
    /// The value from stored bytes.
    fn decode(bytes: Bytes) -> Result<Self, crate::error::BoxError>;

    /// Whether a value read back may stay in a temporary file rather than in
    /// memory ([`Blob`] only): a read of more than one download range
    /// ([`Options::part_size`](crate::Options::part_size)) is then spooled to
    /// disk and handed to [`LargeValue::decode_blob`].
    const SPOOLS: bool = false;

    /// The value from a [`Blob`] read back, in memory or (when
    /// [`LargeValue::SPOOLS`]) in a temporary file. The default decodes the
    /// bytes in memory.
    fn decode_blob(value: Blob) -> Result<Self, crate::error::BoxError> {
        match value.as_bytes() {
            Some(bytes) => Self::decode(bytes.clone()),
            None => Err("this type reads its value from memory, not from a file".into()),
        }
    }
}

impl LargeValue for Vec<u8> {
    const CONTENT_TYPE: &'static str = "application/octet-stream";
    fn encode(&self) -> Result<Blob, crate::error::BoxError> {
        Ok(Blob::from_bytes(Bytes::copy_from_slice(self)))
    }
    fn decode(bytes: Bytes) -> Result<Self, crate::error::BoxError> {
        Ok(bytes.into())
    }
}

impl LargeValue for Bytes {
    const CONTENT_TYPE: &'static str = "application/octet-stream";
    fn encode(&self) -> Result<Blob, crate::error::BoxError> {
        Ok(Blob::from_bytes(self.clone()))
    }
    fn decode(bytes: Bytes) -> Result<Self, crate::error::BoxError> {
        Ok(bytes)
    }
}

impl LargeValue for String {
    const CONTENT_TYPE: &'static str = "text/plain; charset=utf-8";
    fn encode(&self) -> Result<Blob, crate::error::BoxError> {
        Ok(Blob::from_bytes(Bytes::copy_from_slice(self.as_bytes())))
    }
    fn decode(bytes: Bytes) -> Result<Self, crate::error::BoxError> {
        Ok(String::from_utf8(bytes.into())?)
    }
}

impl LargeValue for Blob {
    const CONTENT_TYPE: &'static str = "application/octet-stream";
    fn encode(&self) -> Result<Blob, crate::error::BoxError> {
        Ok(self.clone())
    }
    fn decode(bytes: Bytes) -> Result<Self, crate::error::BoxError> {
        Ok(Blob::from_bytes(bytes))
    }
    const SPOOLS: bool = true;
    fn decode_blob(value: Blob) -> Result<Self, crate::error::BoxError> {
        Ok(value)
    }
}

/// Stores any serde type in a `#[large]` field as a JSON object.
///
/// ```
/// use vhs_core::Json;
/// let v: Json<Vec<u32>> = Json(vec![1, 2, 3]);
/// assert_eq!(v.0.len(), 3);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Json<T>(pub T);

impl<T: Serialize + DeserializeOwned> LargeValue for Json<T> {
    const CONTENT_TYPE: &'static str = "application/json";
    fn encode(&self) -> Result<Blob, crate::error::BoxError> {
        Ok(Blob::from_bytes(serde_json::to_vec(&self.0)?))
    }
    fn decode(bytes: Bytes) -> Result<Self, crate::error::BoxError> {
        Ok(Json(serde_json::from_slice(&bytes)?))
    }
}

/// Helpers called by the code `#[derive(Model)]` generates. Not a stable API.
#[doc(hidden)]
pub mod derive_support {
    use super::*;

    /// Serializes a field into the item; a null value is left out.
    pub fn put_attr<T: Serialize + ?Sized>(item: &mut Item, name: &str, value: &T) -> Result<()> {
        match serde_dynamo::aws_sdk_dynamodb_1::to_attribute_value(value) {
            Ok(AttributeValue::Null(_)) => Ok(()),
            Ok(v) => {
                item.insert(name.to_owned(), v);
                Ok(())
            }
            Err(e) => Err(Error::encode(name, e)),
        }
    }

    /// Serializes a field into an attribute value (`Null` for none).
    pub fn to_attr<T: Serialize + ?Sized>(name: &str, value: &T) -> Result<AttributeValue> {
        serde_dynamo::aws_sdk_dynamodb_1::to_attribute_value(value)
            .map_err(|e| Error::encode(name, e))
    }

    /// Deserializes a field from the item; a missing attribute reads as null.
    pub fn take_attr<T: DeserializeOwned>(item: &mut Item, name: &str) -> Result<T> {
        let v = item.remove(name).unwrap_or(AttributeValue::Null(true));
        serde_dynamo::aws_sdk_dynamodb_1::from_attribute_value(v)
            .map_err(|e| Error::decode(name, e))
    }

    /// Encodes an optional large value.
    pub fn encode_large<T: LargeValue>(name: &str, value: &Option<T>) -> Result<Option<Blob>> {
        value
            .as_ref()
            .map(|v| v.encode().map_err(|e| Error::encode(name, e)))
            .transpose()
    }

    /// Decodes a large value.
    pub fn decode_large<T: LargeValue>(name: &str, bytes: Bytes) -> Result<Option<T>> {
        T::decode(bytes)
            .map(Some)
            .map_err(|e| Error::decode(name, e))
    }

    /// A key part from a field.
    pub fn key_value<T: KeyType + ?Sized>(value: &T) -> KeyValue {
        value.to_key_value()
    }

    /// Writes an index key field into the item in its key form (canonical
    /// text for a timestamp); `None` leaves it out.
    pub fn put_index_attr<T: IndexKeyType + ?Sized>(item: &mut Item, name: &str, value: &T) {
        if let Some(v) = value.to_index_value() {
            item.insert(name.to_owned(), v.to_attribute());
        }
    }

    /// A key-typed value as an attribute value, for [`Attr`](crate::Attr) conditions.
    pub fn key_attr_value<T: KeyType + ?Sized>(value: &T) -> Result<AttributeValue> {
        Ok(value.to_key_value().to_attribute())
    }

    /// A serde value as an attribute value, for [`Attr`](crate::Attr) conditions.
    pub fn serde_attr_value<T: Serialize + ?Sized>(value: &T) -> Result<AttributeValue> {
        to_attr("value", value)
    }

    /// The kind of an index key type, for the schema constant.
    pub const fn index_key_kind<T: IndexKeyType + ?Sized>() -> KeyKind {
        T::KIND
    }

    /// The kind of a key type, for the schema constant.
    pub const fn key_kind<T: KeyType + ?Sized>() -> KeyKind {
        T::KIND
    }

    /// Checks an `updated_at` field's type, for the schema constant.
    pub const fn updated_at_attr<T: TimestampType + ?Sized>(name: &'static str) -> &'static str {
        name
    }

    /// Checks a `ttl` field's type, for the schema constant.
    pub const fn ttl_attr<T: TtlType>(name: &'static str) -> &'static str {
        name
    }

    /// Writes a `ttl` field into the item as a Number of epoch seconds; `None`
    /// leaves it out.
    pub fn put_ttl_attr<T: TtlType>(item: &mut Item, name: &str, value: &T) {
        if let Some(v) = value.to_ttl_value() {
            item.insert(name.to_owned(), v);
        }
    }

    /// Reads a `ttl` field from the item.
    pub fn take_ttl_attr<T: TtlType>(item: &mut Item, name: &str) -> Result<T> {
        T::from_ttl_value(item.remove(name)).map_err(|e| Error::decode(name, e))
    }

    /// A `ttl` value as an attribute value, for [`Attr`](crate::Attr) conditions.
    pub fn ttl_attr_value<T: TtlType>(value: &T) -> Result<AttributeValue> {
        Ok(value.to_ttl_value().unwrap_or(AttributeValue::Null(true)))
    }

    /// Checks a version field's type, for the schema constant.
    pub const fn version_attr<T: VersionType + ?Sized>(name: &'static str) -> &'static str {
        name
    }

    /// The default content type of a large type, for the schema constant.
    pub const fn content_type<T: LargeValue>() -> &'static str {
        T::CONTENT_TYPE
    }

    /// Whether a large type takes values spooled to a file, for the schema
    /// constant.
    pub const fn spools<T: LargeValue>() -> bool {
        T::SPOOLS
    }

    /// Decodes a large value that may be held in a file.
    pub fn decode_large_blob<T: LargeValue>(name: &str, value: Blob) -> Result<Option<T>> {
        T::decode_blob(value)
            .map(Some)
            .map_err(|e| Error::decode(name, e))
    }
}
