//! Queries and scans: paginated streams of models, of a table or of one of its
//! secondary indexes.

mod builder;
mod listing;

pub use builder::{QueryBuilder, ScanBuilder};

use std::fmt;
use std::str::FromStr;

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;

use super::Stored;
use crate::error::{Error, Result};
use crate::model::Item;

/// Where a listing stopped: pass it to `start_after` to resume after the last
/// item returned. Its text form (`to_string()` / `parse()`) is URL-safe, to hand
/// to a client as a page token. It holds key values in clear: treat it as the
/// keys it names.
#[derive(Clone, PartialEq)]
pub struct Cursor(Item);

impl Cursor {
    /// The key attributes of the last item read: the table's keys, and the
    /// index's keys when an index is listed.
    pub fn key(&self) -> &Item {
        &self.0
    }
}

impl fmt::Debug for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cursor({self})")
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = serde_json::Map::new();
        let mut names: Vec<&String> = self.0.keys().collect();
        names.sort();
        for name in names {
            let (kind, value) = match &self.0[name] {
                AttributeValue::S(s) => ("S", s.clone()),
                AttributeValue::N(n) => ("N", n.clone()),
                AttributeValue::B(b) => (
                    "B",
                    base64::engine::general_purpose::STANDARD.encode(b.as_ref()),
                ),
                _ => continue,
            };
            let mut typed = serde_json::Map::new();
            typed.insert(kind.to_owned(), serde_json::Value::String(value));
            map.insert(name.clone(), serde_json::Value::Object(typed));
        }
        let json = serde_json::Value::Object(map).to_string();
        f.write_str(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json))
    }
}

impl FromStr for Cursor {
    type Err = Error;

    fn from_str(s: &str) -> Result<Cursor> {
        let bad = || Error::invalid(format!("{s:?} is not a vhs cursor"));
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| bad())?;
        let value: serde_json::Value = serde_json::from_slice(&json).map_err(|_| bad())?;
        let mut item = Item::new();
        for (name, typed) in value.as_object().ok_or_else(bad)? {
            let (kind, v) = typed
                .as_object()
                .filter(|t| t.len() == 1)
                .and_then(|t| t.iter().next())
                .ok_or_else(bad)?;
            let v = v.as_str().ok_or_else(bad)?.to_owned();
            let value = match kind.as_str() {
                "S" => AttributeValue::S(v),
                "N" => AttributeValue::N(v),
                "B" => AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(
                    base64::engine::general_purpose::STANDARD
                        .decode(v)
                        .map_err(|_| bad())?,
                )),
                _ => return Err(bad()),
            };
            item.insert(name.clone(), value);
        }
        if item.is_empty() {
            return Err(bad());
        }
        Ok(Cursor(item))
    }
}

/// One page of a listing: the items, the items that could not be read, and
/// where to resume after them.
#[derive(Debug)]
pub struct Page<T> {
    /// The items, in the listing's order.
    pub items: Vec<T>,
    /// The items of this page that could not be read (a dangling pointer, an
    /// object whose bytes fail their checksum, an attribute that does not decode):
    /// one each, so one bad item never costs the page's good ones.
    pub failed: Vec<ItemFailure>,
    /// Resumes after the last item read (which may come after the last one
    /// returned, when a filter left items out); `None` when the listing is done.
    pub cursor: Option<Cursor>,
}

/// An item a listing read but could not load: its key, and why.
#[derive(Debug)]
pub struct ItemFailure {
    /// The item's key, as errors write it (`pk="a", sk="b"`).
    pub key: String,
    /// What went wrong: [`Error::DanglingPointer`], [`Error::Integrity`],
    /// [`Error::BadPointer`], [`Error::Codec`], or [`Error::Busy`] for an item
    /// rewritten faster than it could be read.
    pub error: Error,
}

impl std::fmt::Display for ItemFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "item {}: {}", self.key, self.error)
    }
}

/// An item of a page as loaded: the item, or why it could not be.
type Entry<T> = std::result::Result<Stored<T>, Box<ItemFailure>>;
