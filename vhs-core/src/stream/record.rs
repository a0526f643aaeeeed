//! [`StreamRecord`]: one record of a table's stream, in the crate's types.

use std::collections::HashMap;
use std::time::SystemTime;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodbstreams::types as streams;

use crate::error::{Error, Result};
use crate::model::Item;

/// What a stream record says happened to its item (`eventName`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// `INSERT`: the item did not exist.
    Insert,
    /// `MODIFY`: the item existed and was replaced or updated.
    Modify,
    /// `REMOVE`: the item was deleted (by a caller, or by TTL).
    Remove,
}

impl EventKind {
    /// `INSERT`, `MODIFY` or `REMOVE`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Insert => "INSERT",
            EventKind::Modify => "MODIFY",
            EventKind::Remove => "REMOVE",
        }
    }

    /// Parses an `eventName`.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "INSERT" => Ok(EventKind::Insert),
            "MODIFY" => Ok(EventKind::Modify),
            "REMOVE" => Ok(EventKind::Remove),
            other => Err(bad_record(
                "eventName",
                format!("`{other}` is not INSERT, MODIFY or REMOVE"),
            )),
        }
    }
}

/// The `userIdentity` of a removal made by DynamoDB's TTL: type `Service`,
/// principal `dynamodb.amazonaws.com`.
pub const TTL_PRINCIPAL: &str = "dynamodb.amazonaws.com";

/// One record of a table's stream (`NEW_AND_OLD_IMAGES`), in the crate's
/// types: what [`get_records`](crate::BackendExt::get_records) returns, and
/// what [`StreamRecord::from_sdk`] (a `GetRecords` record of the AWS SDK) and,
/// with the `lambda` feature, `StreamRecord::from_lambda` (a Lambda event
/// record) decode.
///
/// The images are raw items, `vhs:*` bookkeeping included: see
/// [`Change`](super::Change) for what a record means to a model.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRecord {
    /// INSERT, MODIFY or REMOVE.
    pub event: EventKind,
    /// The item's key attributes.
    pub keys: Item,
    /// The item before the write; `None` for an INSERT (or a stream that does
    /// not record old images).
    pub old_image: Option<Item>,
    /// The item after the write; `None` for a REMOVE (or a stream that does
    /// not record new images).
    pub new_image: Option<Item>,
    /// The record's sequence number in its shard (decimal digits; compare
    /// with [`sequence_cmp`](super::sequence_cmp)).
    pub sequence_number: String,
    /// When the write happened, approximately (to the second on AWS).
    pub created: Option<SystemTime>,
    /// Whether DynamoDB's TTL removed the item (`userIdentity` type `Service`,
    /// principal [`TTL_PRINCIPAL`]), not a caller.
    pub by_ttl: bool,
}

impl StreamRecord {
    /// Decodes a record of the AWS SDK's `GetRecords`. A record without
    /// `dynamodb`, a sequence number or a known `eventName` is an
    /// [`Error::Codec`].
    pub fn from_sdk(record: streams::Record) -> Result<Self> {
        let event = EventKind::parse(
            record
                .event_name()
                .map(|n| n.as_str())
                .ok_or_else(|| bad_record("eventName", "missing"))?,
        )?;
        let by_ttl = record
            .user_identity()
            .is_some_and(|u| is_ttl_identity(u.r#type(), u.principal_id()));
        let change = record
            .dynamodb
            .ok_or_else(|| bad_record("dynamodb", "missing"))?;
        let sequence_number = change
            .sequence_number
            .ok_or_else(|| bad_record("SequenceNumber", "missing"))?;
        let created = change
            .approximate_creation_date_time
            .and_then(|t| SystemTime::try_from(t).ok());
        Ok(StreamRecord {
            event,
            keys: change.keys.map(from_stream_item).unwrap_or_default(),
            old_image: change.old_image.map(from_stream_item),
            new_image: change.new_image.map(from_stream_item),
            sequence_number,
            created,
            by_ttl,
        })
    }

    /// Decodes a DynamoDB record of a Lambda event (`aws_lambda_events`'
    /// `dynamodb::EventRecord`). An empty image (the event's serialization
    /// of an absent one) is `None`.
    #[cfg(feature = "lambda")]
    pub fn from_lambda(record: aws_lambda_events::event::dynamodb::EventRecord) -> Result<Self> {
        let event = EventKind::parse(&record.event_name)?;
        let by_ttl = record
            .user_identity
            .as_ref()
            .is_some_and(|u| is_ttl_identity(Some(&u.type_), Some(&u.principal_id)));
        let change = record.change;
        let image = |item: serde_dynamo::Item| -> Option<Item> {
            let item: Item = item.into();
            (!item.is_empty()).then_some(item)
        };
        let sequence_number = change
            .sequence_number
            .ok_or_else(|| bad_record("SequenceNumber", "missing"))?;
        Ok(StreamRecord {
            event,
            keys: change.keys.into(),
            old_image: image(change.old_image),
            new_image: image(change.new_image),
            sequence_number,
            created: Some(change.approximate_creation_date_time.into()),
            by_ttl,
        })
    }
}

/// Whether a `userIdentity` is DynamoDB's TTL service.
pub(crate) fn is_ttl_identity(kind: Option<&str>, principal: Option<&str>) -> bool {
    kind == Some("Service") && principal == Some(TTL_PRINCIPAL)
}

/// A malformed stream record: one line, naming the field.
pub(crate) fn bad_record(field: &str, why: impl Into<String>) -> Error {
    Error::Codec {
        direction: "decode",
        attr: format!("{field} of a stream record"),
        source: why.into().into(),
    }
}

/// A DynamoDB Streams item as a DynamoDB item (the two SDK crates have their
/// own, identical, `AttributeValue` types).
pub(crate) fn from_stream_item(item: HashMap<String, streams::AttributeValue>) -> Item {
    item.into_iter()
        .map(|(k, v)| (k, from_stream_value(v)))
        .collect()
}

fn from_stream_value(value: streams::AttributeValue) -> AttributeValue {
    use streams::AttributeValue as S;
    match value {
        S::S(s) => AttributeValue::S(s),
        S::N(n) => AttributeValue::N(n),
        S::B(b) => AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(b.into_inner())),
        S::Bool(b) => AttributeValue::Bool(b),
        S::Null(n) => AttributeValue::Null(n),
        S::Ss(v) => AttributeValue::Ss(v),
        S::Ns(v) => AttributeValue::Ns(v),
        S::Bs(v) => AttributeValue::Bs(
            v.into_iter()
                .map(|b| aws_sdk_dynamodb::primitives::Blob::new(b.into_inner()))
                .collect(),
        ),
        S::L(v) => AttributeValue::L(v.into_iter().map(from_stream_value).collect()),
        S::M(m) => AttributeValue::M(from_stream_item(m)),
        // A type added to the SDK after this crate: kept visible, never a
        // silent loss of the attribute.
        other => AttributeValue::S(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sdk_record(event: &str, identity: Option<(&str, &str)>) -> streams::Record {
        let key: HashMap<String, streams::AttributeValue> =
            [("pk".to_owned(), streams::AttributeValue::S("a".into()))].into();
        let mut old = key.clone();
        old.insert(
            "tags".into(),
            streams::AttributeValue::L(vec![streams::AttributeValue::N("1".into())]),
        );
        let change = streams::StreamRecord::builder()
            .set_keys(Some(key))
            .set_old_image(Some(old))
            .sequence_number("000000000000000000042")
            .build();
        let mut record = streams::Record::builder()
            .event_name(streams::OperationType::from(event))
            .dynamodb(change);
        if let Some((kind, principal)) = identity {
            record = record.user_identity(
                streams::Identity::builder()
                    .r#type(kind)
                    .principal_id(principal)
                    .build(),
            );
        }
        record.build()
    }

    #[test]
    fn a_ttl_removal_is_told_by_its_service_identity() {
        let r = StreamRecord::from_sdk(sdk_record(
            "REMOVE",
            Some(("Service", "dynamodb.amazonaws.com")),
        ))
        .unwrap();
        assert_eq!(r.event, EventKind::Remove);
        assert!(r.by_ttl);
        assert_eq!(r.sequence_number, "000000000000000000042");
        assert_eq!(r.new_image, None);
        assert_eq!(
            r.old_image.unwrap()["tags"],
            AttributeValue::L(vec![AttributeValue::N("1".into())])
        );
        let user = StreamRecord::from_sdk(sdk_record("REMOVE", None)).unwrap();
        assert!(!user.by_ttl);
        let other = StreamRecord::from_sdk(sdk_record(
            "REMOVE",
            Some(("Service", "lambda.amazonaws.com")),
        ))
        .unwrap();
        assert!(!other.by_ttl);
    }

    #[cfg(feature = "lambda")]
    #[test]
    fn a_lambda_event_record_decodes_with_its_ttl_identity() {
        let json = serde_json::json!({
            "eventID": "1",
            "eventName": "REMOVE",
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"},
            "dynamodb": {
                "ApproximateCreationDateTime": 1700000000,
                "Keys": {"pk": {"S": "a"}},
                "OldImage": {"pk": {"S": "a"}, "n": {"N": "3"}},
                "SequenceNumber": "4421584500000000017450439091",
                "SizeBytes": 26,
                "StreamViewType": "NEW_AND_OLD_IMAGES"
            },
            "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2024"
        });
        let event: aws_lambda_events::event::dynamodb::EventRecord =
            serde_json::from_value(json).unwrap();
        let r = StreamRecord::from_lambda(event).unwrap();
        assert_eq!(r.event, EventKind::Remove);
        assert!(r.by_ttl);
        assert_eq!(r.new_image, None);
        assert_eq!(r.old_image.unwrap()["n"], AttributeValue::N("3".into()));
        assert_eq!(r.keys["pk"], AttributeValue::S("a".into()));
        assert_eq!(r.sequence_number, "4421584500000000017450439091");
    }

    #[test]
    fn an_unknown_event_name_is_a_one_line_codec_error() {
        let e = StreamRecord::from_sdk(sdk_record("TRUNCATE", None)).unwrap_err();
        assert!(matches!(e, Error::Codec { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "cannot decode attribute `eventName of a stream record`: `TRUNCATE` is not INSERT, MODIFY or REMOVE"
        );
    }
}
