//! The tables GC and verify walk (typed, or known by key schema only) and
//! the pointers their items hold.

use std::collections::HashSet;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::error::Result;
use crate::layout::ObjectKey;
use crate::model::{Item, KeyKind, Model};
use crate::protocol::item::Target;
use crate::store::Store;

/// The key values of `item` as text (hash, then range).
pub(crate) fn key_texts(table: &TableRef, item: &Item) -> Vec<String> {
    std::iter::once(table.keys.0)
        .chain(table.keys.1)
        .map(|n| match item.get(n) {
            Some(AttributeValue::S(s)) | Some(AttributeValue::N(s)) => s.clone(),
            other => display(other),
        })
        .collect()
}

/// The target of the item an object key names, if it can name one.
pub(crate) type TargetOf = Box<dyn Fn(&ObjectKey) -> Option<Target> + Send + Sync>;

/// What GC and verify need to know about a table.
pub(crate) struct TableRef {
    pub table: String,
    /// The table's object prefix.
    pub prefix: String,
    /// The large attribute names (pointer attributes).
    pub large: Vec<&'static str>,
    /// The hash and range key attribute names.
    pub keys: (&'static str, Option<&'static str>),
    /// The item an object key names, if it can name one.
    pub target_of: TargetOf,
    /// A human-readable key of an item.
    pub describe: Box<dyn Fn(&Item) -> String + Send + Sync>,
    /// For a table known only by its key schema ([`TableRef::untyped`]): the
    /// attributes seen holding a pointer into the table's prefix, which are its
    /// large attributes (`large` is then empty).
    pub discovered: Option<Discovered>,
}

/// The pointer attributes of an untyped table, as the scan finds them.
pub(crate) type Discovered =
    std::sync::Arc<std::sync::Mutex<std::collections::BTreeSet<&'static str>>>;

/// One `&'static str` per distinct name, for attribute names that are only
/// known at run time (untyped tables): each distinct name is allocated once per
/// process.
pub(crate) fn intern(name: &str) -> &'static str {
    static NAMES: std::sync::Mutex<Option<HashSet<&'static str>>> = std::sync::Mutex::new(None);
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    let names = names.get_or_insert_with(HashSet::new);
    if let Some(n) = names.get(name) {
        return n;
    }
    let n: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(n);
    n
}

impl TableRef {
    /// The pointers `item` holds: `(attribute, value)` for every large
    /// attribute it has (a value other than a string is rendered, so verify can
    /// report it), and the number of values kept inline (binary). For an untyped
    /// table, the string attributes holding `s3://{bucket}/{prefix}/...`, which
    /// are recorded as discovered.
    pub(crate) fn pointers(&self, bucket: &str, item: &Item) -> (Vec<(&'static str, String)>, u64) {
        let mut out = Vec::new();
        let mut inline = 0;
        match &self.discovered {
            None => {
                for attr in &self.large {
                    match item.get(*attr) {
                        Some(AttributeValue::S(uri)) => out.push((*attr, uri.clone())),
                        Some(AttributeValue::B(_)) => inline += 1,
                        Some(other) => out.push((*attr, format!("{other:?}"))),
                        None => {}
                    }
                }
            }
            Some(found) => {
                let start = format!("s3://{bucket}/{}", self.object_prefix());
                let mut found = found.lock().unwrap_or_else(|e| e.into_inner());
                for (name, value) in item {
                    if name.starts_with("vhs:") {
                        continue;
                    }
                    if let AttributeValue::S(uri) = value {
                        if uri.starts_with(&start) {
                            let name = intern(name);
                            found.insert(name);
                            out.push((name, uri.clone()));
                        }
                    }
                }
                out.sort();
            }
        }
        (out, inline)
    }

    /// Values of `item` that look like pointers but lie outside `bucket` or
    /// the table's prefix: `(attribute, value)`, sorted. For a model, its
    /// large attributes only (other attributes may hold any `s3://` text); for
    /// an untyped table, every attribute but vhs's own.
    pub(crate) fn foreign_pointers(
        &self,
        bucket: &str,
        item: &Item,
    ) -> Vec<(&'static str, String)> {
        let home = format!("s3://{bucket}/{}", self.object_prefix());
        let foreign = |value: Option<&AttributeValue>| match value {
            Some(AttributeValue::S(uri)) if uri.starts_with("s3://") && !uri.starts_with(&home) => {
                Some(uri.clone())
            }
            _ => None,
        };
        let mut out: Vec<(&'static str, String)> = match &self.discovered {
            None => self
                .large
                .iter()
                .filter_map(|a| Some((*a, foreign(item.get(*a))?)))
                .collect(),
            Some(_) => item
                .iter()
                .filter(|(name, _)| !name.starts_with("vhs:"))
                .filter_map(|(name, value)| Some((intern(name), foreign(Some(value))?)))
                .collect(),
        };
        out.sort();
        out
    }

    /// A table known only by its key schema: the CLI's view of any table vhs
    /// (or pynamodb_mate, whose layout vhs shares) wrote. Pointers are
    /// recognised by their value (see [`TableRef::pointers`]); an object's item
    /// is named by its key's `pk=`/`sk=` segments.
    pub fn untyped(store: &Store, spec: &crate::backend::TableSpec) -> Result<TableRef> {
        let table = spec.name.clone();
        let prefix = store.table_prefix(&table)?;
        let hash = (intern(&spec.hash_key.0), spec.hash_key.1);
        let range = spec.range_key.as_ref().map(|(n, k)| (intern(n), *k));
        let discovered: Discovered = Default::default();
        let (t, p, found) = (table.clone(), prefix.clone(), discovered.clone());
        let bucket = store.bucket().to_owned();
        Ok(TableRef {
            table,
            prefix,
            large: Vec::new(),
            keys: (hash.0, range.map(|r| r.0)),
            target_of: Box::new(move |k: &ObjectKey| {
                let mut key = Item::new();
                key.insert(hash.0.to_owned(), key_part(hash.1, &k.hash)?.to_attribute());
                let range_text = match (range, &k.range) {
                    (Some((name, kind)), Some(r)) => {
                        key.insert(name.to_owned(), key_part(kind, r)?.to_attribute());
                        Some(r.clone())
                    }
                    (None, None) => None,
                    _ => return None,
                };
                let mut large: Vec<&'static str> = found
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .copied()
                    .collect();
                let attr = intern(&k.attr);
                if !large.contains(&attr) {
                    large.push(attr);
                }
                let describe = std::iter::once(format!("{}={:?}", hash.0, k.hash))
                    .chain(
                        range
                            .zip(range_text.as_ref())
                            .map(|((n, _), r)| format!("{n}={r:?}")),
                    )
                    .collect::<Vec<_>>()
                    .join(", ");
                Some(Target {
                    table: t.clone(),
                    bucket: bucket.clone(),
                    prefix: p.clone(),
                    key,
                    hash_attr: hash.0,
                    hash: k.hash.clone(),
                    range: range_text,
                    large,
                    plain: Vec::new(),
                    ttl: None,
                    describe,
                })
            }),
            describe: Box::new(move |item: &Item| {
                std::iter::once(hash.0)
                    .chain(range.map(|r| r.0))
                    .map(|n| format!("{n}={}", display(item.get(n))))
                    .collect::<Vec<_>>()
                    .join(", ")
            }),
            discovered: Some(discovered),
        })
    }

    /// The prefix its objects are listed under: `{prefix}/`, or everything.
    pub(crate) fn object_prefix(&self) -> String {
        if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        }
    }
}

impl TableRef {
    /// The table of model `M`.
    pub fn of<M: Model>(store: &Store) -> Result<TableRef> {
        let schema = M::SCHEMA;
        let table = store.table_name::<M>().to_owned();
        let store2 = store.clone();
        Ok(TableRef {
            prefix: store.table_prefix(&table)?,
            table,
            large: schema.large.iter().map(|a| a.name).collect(),
            keys: (schema.hash_key.name, schema.range_key.map(|r| r.name)),
            target_of: Box::new(move |k: &ObjectKey| {
                let hash = key_part(schema.hash_key.kind, &k.hash)?;
                let range = match (schema.range_key, &k.range) {
                    (Some(def), Some(r)) => Some(key_part(def.kind, r)?),
                    (None, None) => None,
                    _ => return None,
                };
                store2
                    .target(&crate::model::Key::<M>::from_parts(hash, range))
                    .ok()
            }),
            describe: Box::new(move |item: &Item| {
                std::iter::once(schema.hash_key.name)
                    .chain(schema.range_key.map(|r| r.name))
                    .map(|n| format!("{n}={}", display(item.get(n))))
                    .collect::<Vec<_>>()
                    .join(", ")
            }),
            discovered: None,
        })
    }
}

/// A key value from the text of an object key's `pk=`/`sk=` segment; `None`
/// for a number key whose text is not an integer (no item of vhs's has it).
fn key_part(kind: KeyKind, text: &str) -> Option<crate::model::KeyValue> {
    use crate::model::KeyValue;
    match kind {
        KeyKind::String => Some(KeyValue::String(text.to_owned())),
        KeyKind::Number => text
            .parse::<i128>()
            .is_ok()
            .then(|| KeyValue::Number(text.to_owned())),
    }
}

/// A key attribute for messages.
pub(crate) fn display(value: Option<&AttributeValue>) -> String {
    match value {
        Some(AttributeValue::S(s)) => format!("{s:?}"),
        Some(AttributeValue::N(n)) => n.clone(),
        Some(other) => format!("{other:?}"),
        None => "?".to_owned(),
    }
}

/// The target of a scanned item.
pub(crate) fn item_target(table: &TableRef, item: &Item) -> Option<Target> {
    let text = |name: &str| match item.get(name)? {
        AttributeValue::S(s) | AttributeValue::N(s) => Some(s.clone()),
        _ => None,
    };
    let key = ObjectKey {
        hash: text(table.keys.0)?,
        range: match table.keys.1 {
            Some(r) => Some(text(r)?),
            None => None,
        },
        attr: String::new(),
        encoding: None,
        // Unused: only the key parts name the target.
        checksum: crate::checksum::ChecksumAlgorithm::Md5.digest(b""),
    };
    (table.target_of)(&key)
}
