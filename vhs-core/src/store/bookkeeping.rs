//! Protocol bookkeeping shared by the operations: write tokens, versions,
//! span fields, read races and the leftovers of a cleanup.

use aws_sdk_dynamodb::types::AttributeValue;
use tracing::Span;

use super::Cleanup;
use crate::backend::{item_size, MAX_ITEM_BYTES};
use crate::changes::LargeValues;
use crate::error::{Error, Result};
use crate::model::{Item, Model};
use crate::protocol::clock::Tokens;
use crate::protocol::item::Target;
/// Records how many large values `values` hold (removals left out) and their
/// bytes in `span`'s `attrs` and `bytes` fields.
pub(crate) fn record_values<'a, M: 'a>(
    span: &Span,
    values: impl IntoIterator<Item = &'a LargeValues<M>>,
) {
    if span.is_disabled() {
        return;
    }
    let (attrs, bytes) = values
        .into_iter()
        .flat_map(|values| values.values.iter())
        .filter_map(|(_, blob)| blob.as_ref())
        .fold((0u64, 0u64), |(n, bytes), blob| (n + 1, bytes + blob.len()));
    span.record("attrs", attrs);
    span.record("bytes", bytes);
}

/// A `warn` event per object a cleanup left for GC, with the reason (in the
/// span of the operation, or of the background job, that left it); the
/// cleanup's objects deleted and left, and marks left, counted in metrics.
pub(crate) fn warn_leftovers(bucket: &str, cleanup: &Cleanup) {
    use crate::metrics::{CLEANUP_DELETED_OBJECTS, CLEANUP_LEFTOVER_OBJECTS, CLEANUP_MARKS_LEFT};
    ::metrics::counter!(CLEANUP_DELETED_OBJECTS).increment(cleanup.deleted.len() as u64);
    ::metrics::counter!(CLEANUP_LEFTOVER_OBJECTS).increment(cleanup.leftover.len() as u64);
    ::metrics::counter!(CLEANUP_MARKS_LEFT).increment(cleanup.marks_left.len() as u64);
    for (key, reason) in &cleanup.leftover {
        tracing::warn!(
            uri = %format_args!("s3://{bucket}/{key}"),
            error = %reason,
            "object not deleted: left for GC"
        );
    }
}

/// A fresh write token.
pub(crate) fn new_token() -> String {
    Tokens::random().next()
}

/// Reads that found an object deleted by a concurrent replacement are repeated
/// this many times before [`Error::Busy`] is reported.
pub(crate) const READ_RACE_RETRIES: usize = 5;
/// The [`Error::Busy`] reason of a read that lost every race to a writer
/// replacing (and deleting) the objects it was reading.
pub(crate) const READ_RACE_LOST: &str =
    "every read lost the race to a concurrent write that replaced the objects it was reading";

/// Rejects an item DynamoDB would reject for its size, before anything is written.
pub(super) fn check_item_size(target: &Target, item: &Item) -> Result<()> {
    let size = item_size(item);
    if size > MAX_ITEM_BYTES {
        return Err(Error::invalid(format!(
            "item {} is {size} bytes in DynamoDB after its large values moved to S3, above the limit of {MAX_ITEM_BYTES}; mark more fields #[large]",
            target.describe
        )));
    }
    Ok(())
}

/// The version attribute of `M` with the version the caller read (`given`): a
/// versioned model must say it (with `how`), an unversioned one cannot.
pub(crate) fn version_read<M: Model>(
    given: Option<u64>,
    how: &str,
) -> Result<Option<(&'static str, u64)>> {
    match (M::SCHEMA.version, given) {
        (Some(attr), Some(v)) => Ok(Some((attr, v))),
        (None, None) => Ok(None),
        (Some(attr), None) => Err(Error::invalid(format!(
            "table `{}` is versioned by `{attr}`: say which version you read with `{how}`",
            M::SCHEMA.table
        ))),
        (None, Some(_)) => Err(Error::invalid(format!(
            "`if_version` on table `{}`, whose model has no #[vhs(version)] attribute",
            M::SCHEMA.table
        ))),
    }
}

/// The version after `version`.
pub(crate) fn next_version(version: u64) -> Result<u64> {
    version
        .checked_add(1)
        .ok_or_else(|| Error::invalid("version overflow: the item is at u64::MAX"))
}

/// A number attribute as `u64`, if present and one.
pub(crate) fn number_attr(item: &Item, attr: &str) -> Option<u64> {
    match item.get(attr)? {
        AttributeValue::N(n) => n.parse().ok(),
        _ => None,
    }
}
