//! What tells the two versioned tables apart: one item per id
//! ([`SingleVersion`]) or one item per id and version ([`MultiVersion`]).

use aws_sdk_dynamodb::types::AttributeValue;

use super::{ID, VALUE, VERSION};
use crate::backend::TableSpec;
use crate::model::{Item, KeyKind};
use crate::protocol::item::Target;

mod sealed {
    /// Keeps [`Layout`](super::Layout) to the two layouts of this module.
    pub trait Sealed {}
}

/// How a [`VersionedStore`](super::VersionedStore) keys its table:
/// [`SingleVersion`] or [`MultiVersion`], the only two (the trait is sealed).
pub trait Layout: sealed::Sealed + Send + Sync + 'static {
    /// Whether every version is an item of its own, keyed by `id` and `version`
    /// (`true`), or the table holds one item per `id`, its newest version (`false`).
    const MULTI: bool;
    /// The `store` field of the store's spans: `"single"` or `"multi"`.
    const NAME: &'static str;
}

/// The layout of [`SingleVersionStore`](super::SingleVersionStore): hash key
/// `id` (S), one item per id holding its newest version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SingleVersion;

/// The layout of [`MultiVersionStore`](super::MultiVersionStore): hash key `id`
/// (S), range key `version` (N), one item per version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct MultiVersion;

impl sealed::Sealed for SingleVersion {}
impl sealed::Sealed for MultiVersion {}

impl Layout for SingleVersion {
    const MULTI: bool = false;
    const NAME: &'static str = "single";
}

impl Layout for MultiVersion {
    const MULTI: bool = true;
    const NAME: &'static str = "multi";
}

/// The range key attribute of `L`'s table, if it has one.
pub(super) fn range_attr<L: Layout>() -> Option<&'static str> {
    L::MULTI.then_some(VERSION)
}

/// The table `L` keeps its versions in.
pub(super) fn table_spec<L: Layout>(table: &str) -> TableSpec {
    TableSpec {
        name: table.to_owned(),
        hash_key: (ID.to_owned(), KeyKind::String),
        range_key: range_attr::<L>().map(|r| (r.to_owned(), KeyKind::Number)),
        indexes: Vec::new(),
        streams: false,
        point_in_time_recovery: false,
        time_to_live: None,
    }
}

/// The DynamoDB key of `id` (at `version` in the multi-version table).
pub(super) fn key<L: Layout>(id: &str, version: u64) -> Item {
    let mut key = Item::new();
    key.insert(ID.to_owned(), AttributeValue::S(id.to_owned()));
    if L::MULTI {
        key.insert(VERSION.to_owned(), AttributeValue::N(version.to_string()));
    }
    key
}

/// The target of `id` (at `version` in a multi-version table; the
/// single-version table ignores `version`).
pub(super) fn target_of<L: Layout>(
    table: &str,
    bucket: &str,
    prefix: &str,
    large: Vec<&'static str>,
    id: &str,
    version: u64,
) -> Target {
    let (range, describe) = if L::MULTI {
        (
            Some(version.to_string()),
            format!("id={id:?}, version={version}"),
        )
    } else {
        (None, format!("id={id:?}"))
    };
    Target {
        table: table.to_owned(),
        bucket: bucket.to_owned(),
        prefix: prefix.to_owned(),
        key: key::<L>(id, version),
        hash_attr: ID,
        hash: id.to_owned(),
        range,
        large,
        plain: if L::MULTI {
            vec![VALUE]
        } else {
            vec![VERSION, VALUE]
        },
        ttl: None,
        describe,
    }
}
