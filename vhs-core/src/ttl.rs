//! Time to live: a model's `#[vhs(ttl)]` attribute says when an item
//! expires; every commit copies it to `vhs:exp` and sets DynamoDB's TTL
//! attribute `vhs:ttl` later still (`protocol::item::reap_at`: `2R + S` after
//! the expiry, and after every stamp on the item died), so that DynamoDB's
//! reaper never removes an item while a deletion of one of its objects may be
//! in flight (see the protocol's spec, "TTL").
//!
//! An item whose `vhs:exp` is a Number of epoch seconds at or before now is
//! *expired*. Until DynamoDB removes it, vhs treats it as absent, the way it
//! treats placeholders: reads, queries, scans and batch gets skip it, updates
//! and deletes fail with [`Error::NotFound`](crate::Error::NotFound), and a
//! create replaces it (deleting it through the protocol first). Judging by
//! `vhs:exp` needs no model: the command-line tool hides expired items too.
//!
//! An expired item still holds its pointers: GC and verify count it as a
//! live item, so its objects stay until the item itself is gone (removed by
//! DynamoDB's reaper, or replaced), after which GC collects them as orphans.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;

use crate::condition::{Cmp, Condition};
use crate::model::Item;
use crate::protocol::item::EXPIRES;

/// The attribute DynamoDB's time to live reads on a table of models with a
/// `#[vhs(ttl)]` field (`vhs:ttl`): what [`Store::ensure_table`](crate::Store::ensure_table)
/// and `vhs provision --ttl` enable it on. Commits set it, after the item's
/// expiry; nothing else should.
pub const TTL_ATTRIBUTE: &str = crate::protocol::item::REAP_AT;

/// Now, in epoch seconds: the time every expiry is judged by.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The epoch seconds a TTL attribute holds, if it is a Number (DynamoDB's
/// time to live ignores any other type).
pub(crate) fn seconds(value: &AttributeValue) -> Option<f64> {
    match value {
        AttributeValue::N(n) => n.parse::<f64>().ok().filter(|s| s.is_finite()),
        _ => None,
    }
}

/// Whether `item`'s attribute `attr` is a Number of epoch seconds at or
/// before `now`.
pub(crate) fn expired_at(item: &Item, attr: &str, now: u64) -> bool {
    item.get(attr)
        .and_then(seconds)
        .is_some_and(|at| at <= now as f64)
}

/// Whether `item` is expired now: its `vhs:exp` has passed.
pub(crate) fn is_expired(item: &Item) -> bool {
    expired_at(item, EXPIRES, now_secs())
}

/// When `item` expires, in epoch seconds (its `vhs:exp`), if it does.
pub(crate) fn expires_at(item: &Item) -> Option<f64> {
    item.get(EXPIRES).and_then(seconds)
}

/// `vhs:exp <= now`: the item is expired (false when the attribute is absent
/// or not a Number, as DynamoDB evaluates it).
pub(crate) fn expired_condition(now: u64) -> Condition {
    Condition::Compare(
        EXPIRES.to_owned(),
        Cmp::Le,
        AttributeValue::N(now.to_string()),
    )
}

/// `NOT vhs:exp <= now`: the item is not expired (true when the attribute is
/// absent or not a Number).
pub(crate) fn unexpired_condition(now: u64) -> Condition {
    !expired_condition(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(v: AttributeValue) -> Item {
        Item::from([(EXPIRES.to_owned(), v)])
    }

    #[test]
    fn ttl_types_store_epoch_seconds() {
        use crate::model::TtlType;
        use chrono::{DateTime, FixedOffset, Utc};
        let n = |s: &str| Some(AttributeValue::N(s.to_owned()));
        assert_eq!(7u64.to_ttl_value(), n("7"));
        assert_eq!(u64::from_ttl_value(n("7")).unwrap(), 7);
        assert!(u64::from_ttl_value(n("-1")).is_err());
        assert_eq!(i64::from_ttl_value(n("-1")).unwrap(), -1);
        assert_eq!(i64::from_ttl_value(n("12.7")).unwrap(), 12);
        assert!(i64::from_ttl_value(Some(AttributeValue::S("1".into()))).is_err());
        assert!(i64::from_ttl_value(None).is_err());
        assert_eq!(Option::<u64>::None.to_ttl_value(), None);
        assert_eq!(Option::<u64>::from_ttl_value(None).unwrap(), None);
        let at = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        assert_eq!(at.to_ttl_value(), n("1800000000"));
        assert_eq!(
            DateTime::<Utc>::from_ttl_value(n("1800000000")).unwrap(),
            at
        );
        // An offset is not kept: the same instant comes back in UTC.
        let east = at.with_timezone(&FixedOffset::east_opt(3600).unwrap());
        assert_eq!(east.to_ttl_value(), n("1800000000"));
        let back = DateTime::<FixedOffset>::from_ttl_value(n("1800000000")).unwrap();
        assert_eq!(back, east);
        assert_eq!(back.offset().local_minus_utc(), 0);
    }

    #[test]
    fn expiry_is_a_number_at_or_before_now() {
        let n = |s: &str| item(AttributeValue::N(s.to_owned()));
        assert!(expired_at(&n("100"), EXPIRES, 100));
        assert!(expired_at(&n("99.5"), EXPIRES, 100));
        assert!(!expired_at(&n("101"), EXPIRES, 100));
        let text = item(AttributeValue::S("1".into()));
        assert!(!expired_at(&text, EXPIRES, 100));
        assert!(!expired_at(&Item::new(), EXPIRES, 100));
        // The condition the service evaluates agrees with the local judgement.
        for (i, want) in [
            (n("100"), true),
            (n("101"), false),
            (Item::new(), false),
            (text, false),
        ] {
            assert_eq!(expired_condition(100).evaluate(Some(&i)), want);
            assert_eq!(unexpired_condition(100).evaluate(Some(&i)), !want);
        }
    }
}
