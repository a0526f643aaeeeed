//! Storage classes and object tags: what a store writes its objects with.
//!
//! Tags are opt-in ([`StoreBuilder::tag_objects`](crate::StoreBuilder::tag_objects)):
//! every object then carries `vhs-table` and `vhs-attr` (which lifecycle rules
//! per attribute filter by) and the caller's own tags, checked against S3's
//! limits before anything is written.

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::backend::{BucketSpec, Transition};
use crate::error::{Error, Result};
use crate::model::Item;
use crate::store::Store;

/// The tag naming an object's table.
pub const TABLE_TAG: &str = "vhs-table";
/// The tag naming an object's attribute.
pub const ATTR_TAG: &str = "vhs-attr";

/// S3's limit on tags per object.
pub const MAX_TAGS: usize = 10;
/// S3's limit on a tag key, in characters.
pub const MAX_TAG_KEY: usize = 128;
/// S3's limit on a tag value, in characters.
pub const MAX_TAG_VALUE: usize = 256;

/// The storage classes a store writes objects in: those whose objects
/// GetObject reads without a restore (the classes `#[large(storage_class)]`
/// accepts).
pub const STORAGE_CLASSES: [&str; 5] = [
    "STANDARD",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER_IR",
];

/// What the closure of
/// [`StoreBuilder::tag_objects`](crate::StoreBuilder::tag_objects) is told about
/// the object it tags.
#[derive(Debug, Clone, Copy)]
pub struct TagContext<'a> {
    table: &'a str,
    attribute: &'a str,
    key: &'a Item,
}

impl<'a> TagContext<'a> {
    /// The table the item is stored in (after any mapping of the store).
    pub fn table(&self) -> &'a str {
        self.table
    }

    /// The large attribute the object holds a value of.
    pub fn attribute(&self) -> &'a str {
        self.attribute
    }

    /// The item's key attributes, as DynamoDB holds them.
    pub fn key(&self) -> &'a Item {
        self.key
    }

    /// The key attribute `name` as text (a string, or a number's digits);
    /// `None` if the key has no such attribute.
    pub fn key_value(&self, name: &str) -> Option<&'a str> {
        match self.key.get(name)? {
            AttributeValue::S(s) | AttributeValue::N(s) => Some(s),
            _ => None,
        }
    }
}

/// A store's tagging: the caller's tags for an object, beside vhs's own.
pub(crate) type TagFn = Arc<dyn Fn(&TagContext<'_>) -> Vec<(String, String)> + Send + Sync>;

/// The tags of an object of `attribute` of the item `key` in `table`:
/// `vhs-table`, `vhs-attr`, then `user`'s. [`Error::InvalidTags`] when they
/// break one of S3's rules (at most [`MAX_TAGS`], keys of 1 to
/// [`MAX_TAG_KEY`] characters, values up to [`MAX_TAG_VALUE`], no key twice)
/// or a tag of the caller's uses the reserved prefix `vhs-`.
pub(crate) fn object_tags(
    user: &TagFn,
    table: &str,
    attribute: &str,
    key: &Item,
) -> Result<Vec<(String, String)>> {
    let invalid = |reason: String| Error::InvalidTags {
        table: table.to_owned(),
        attr: attribute.to_owned(),
        reason,
    };
    let theirs = user(&TagContext {
        table,
        attribute,
        key,
    });
    let mut tags = vec![
        (TABLE_TAG.to_owned(), table.to_owned()),
        (ATTR_TAG.to_owned(), attribute.to_owned()),
    ];
    for (k, _) in &theirs {
        if k.starts_with("vhs-") {
            return Err(invalid(format!(
                "tag key {k:?} uses the prefix `vhs-`, reserved for vhs's own tags"
            )));
        }
    }
    tags.extend(theirs);
    if tags.len() > MAX_TAGS {
        return Err(invalid(format!(
            "{} tags ({} of yours and vhs-table, vhs-attr), above S3's {MAX_TAGS} per object",
            tags.len(),
            tags.len() - 2
        )));
    }
    for (i, (k, v)) in tags.iter().enumerate() {
        let chars = k.chars().count();
        if chars == 0 || chars > MAX_TAG_KEY {
            return Err(invalid(format!(
                "tag key {k:?} is {chars} characters; S3 takes 1 to {MAX_TAG_KEY}"
            )));
        }
        let chars = v.chars().count();
        if chars > MAX_TAG_VALUE {
            return Err(invalid(format!(
                "the value of tag {k:?} is {chars} characters, above S3's {MAX_TAG_VALUE}"
            )));
        }
        if tags[..i].iter().any(|(earlier, _)| earlier == k) {
            return Err(invalid(format!("tag key {k:?} appears twice")));
        }
    }
    Ok(tags)
}

impl Store {
    /// Whether the store tags the objects it writes
    /// ([`StoreBuilder::tag_objects`](crate::StoreBuilder::tag_objects)).
    pub fn tags_objects(&self) -> bool {
        self.inner.tagging.is_some()
    }

    /// A lifecycle rule for [`BucketSpec::transitions`]: the objects of `attr`
    /// of `table` (the table name as stored) move to `storage_class` `days`
    /// after they were written. [`Error::InvalidInput`] for no days, a class
    /// S3 cannot transition to (`STANDARD`, or a name it does not know), fewer
    /// than 30 days for `STANDARD_IA` and `ONEZONE_IA` (S3's minimum), and on
    /// a store that does not tag objects (the rule finds them by their tags).
    pub fn transition(
        &self,
        table: &str,
        attr: &str,
        days: u32,
        storage_class: &str,
    ) -> Result<Transition> {
        let t = Transition {
            table: table.to_owned(),
            prefix: self.table_prefix(table)?,
            attr: attr.to_owned(),
            days,
            storage_class: storage_class.to_owned(),
        };
        self.check_transition(&t)?;
        Ok(t)
    }

    /// [`Store::transition`]'s checks, for every transition of `spec`.
    pub(crate) fn check_transitions(&self, spec: &BucketSpec) -> Result<()> {
        spec.transitions
            .iter()
            .try_for_each(|t| self.check_transition(t))
    }

    fn check_transition(&self, t: &Transition) -> Result<()> {
        let what = format!("the transition of `{}` of table {}", t.attr, t.table);
        if !self.tags_objects() {
            return Err(Error::invalid(format!(
                "{what} needs tagged objects: a lifecycle rule cannot tell attributes apart by key prefix, so it filters by the tags {TABLE_TAG} and {ATTR_TAG}, which this store does not write; turn tagging on (StoreBuilder::tag_objects or tag_objects_with_names; `--tagged-objects` for the CLI) in every writer first"
            )));
        }
        const TARGETS: [&str; 6] = [
            "STANDARD_IA",
            "ONEZONE_IA",
            "INTELLIGENT_TIERING",
            "GLACIER_IR",
            "GLACIER",
            "DEEP_ARCHIVE",
        ];
        if !TARGETS.contains(&t.storage_class.as_str()) {
            return Err(Error::invalid(format!(
                "{what}: S3 cannot transition objects to {:?}; use one of {}",
                t.storage_class,
                TARGETS.join(", ")
            )));
        }
        if t.days == 0 {
            return Err(Error::invalid(format!("{what}: days must be at least 1")));
        }
        if t.days < 30 && t.storage_class.ends_with("_IA") {
            return Err(Error::invalid(format!(
                "{what}: S3 moves objects to {} only 30 days or more after they were written, not {}",
                t.storage_class, t.days
            )));
        }
        Ok(())
    }
}

/// Checks a store-wide storage class: one of [`STORAGE_CLASSES`].
pub(crate) fn check_storage_class(class: &str) -> Result<()> {
    match class {
        "GLACIER" | "DEEP_ARCHIVE" => Err(Error::invalid(format!(
            "storage class {class}: its objects cannot be read without a restore; write them in a readable class ({}) and move them with a lifecycle rule",
            STORAGE_CLASSES.join(", ")
        ))),
        c if STORAGE_CLASSES.contains(&c) => Ok(()),
        other => Err(Error::invalid(format!(
            "storage class {other:?} is not one vhs writes in; use one of {}",
            STORAGE_CLASSES.join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Item {
        Item::from([
            ("tenant".to_owned(), AttributeValue::S("acme".into())),
            ("n".to_owned(), AttributeValue::N("7".into())),
        ])
    }

    fn tags_of(
        f: impl Fn(&TagContext<'_>) -> Vec<(String, String)> + Send + Sync + 'static,
    ) -> Result<Vec<(String, String)>> {
        let f: TagFn = Arc::new(f);
        object_tags(&f, "docs", "body", &key())
    }

    #[test]
    fn vhs_tags_come_first_then_the_callers_from_the_key() {
        let tags = tags_of(|c| {
            vec![(
                "tenant".into(),
                format!(
                    "{}/{}",
                    c.key_value("tenant").unwrap(),
                    c.key_value("n").unwrap()
                ),
            )]
        })
        .unwrap();
        assert_eq!(
            tags,
            [
                ("vhs-table".to_owned(), "docs".to_owned()),
                ("vhs-attr".to_owned(), "body".to_owned()),
                ("tenant".to_owned(), "acme/7".to_owned()),
            ]
        );
    }

    #[test]
    fn every_s3_rule_is_checked_with_a_clear_non_retryable_error() {
        let cases: Vec<(Vec<(String, String)>, &str)> = vec![
            (
                (0..9).map(|i| (format!("k{i}"), String::new())).collect(),
                "11 tags (9 of yours and vhs-table, vhs-attr), above S3's 10 per object",
            ),
            (
                vec![("k".repeat(129), "v".into())],
                "is 129 characters; S3 takes 1 to 128",
            ),
            (vec![(String::new(), "v".into())], "is 0 characters"),
            (
                vec![("k".into(), "v".repeat(257))],
                "257 characters, above S3's 256",
            ),
            (
                vec![("k".into(), "1".into()), ("k".into(), "2".into())],
                "tag key \"k\" appears twice",
            ),
            (
                vec![("vhs-tenant".into(), "x".into())],
                "reserved for vhs's own tags",
            ),
        ];
        for (tags, expected) in cases {
            let e = tags_of(move |_| tags.clone()).unwrap_err();
            assert!(matches!(e, Error::InvalidTags { .. }), "{e:?}");
            assert!(!e.is_retryable());
            let text = e.to_string();
            assert!(
                text.starts_with("invalid tags for objects of `body` in table docs: "),
                "{text}"
            );
            assert!(text.contains(expected), "{text} lacks {expected}");
        }
        // Ten in all, at the limits, pass.
        let ok = tags_of(|_| {
            (0..8)
                .map(|i| (format!("{i}{}", "k".repeat(127)), "v".repeat(256)))
                .collect()
        })
        .unwrap();
        assert_eq!(ok.len(), 10);
    }

    #[test]
    fn storage_classes_outside_the_readable_set_are_refused() {
        for c in STORAGE_CLASSES {
            check_storage_class(c).unwrap();
        }
        let e = check_storage_class("GLACIER").unwrap_err().to_string();
        assert!(e.contains("cannot be read without a restore"), "{e}");
        let e = check_storage_class("standard_ia").unwrap_err().to_string();
        assert!(
            e.contains(
                "\"standard_ia\" is not one vhs writes in; use one of STANDARD, STANDARD_IA"
            ),
            "{e}"
        );
    }
}
