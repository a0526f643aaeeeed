//! The request and answer types of the DynamoDB Streams calls
//! ([`StreamCalls`](super::StreamCalls)).

pub use crate::stream::StreamRecord;

/// A table's latest stream, as DescribeStream reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamDescription {
    /// The stream's ARN (`LatestStreamArn` of the table).
    pub arn: String,
    /// What its records hold (`StreamViewType`): `NEW_AND_OLD_IMAGES`,
    /// `NEW_IMAGE`, `OLD_IMAGE` or `KEYS_ONLY`; `None` if not reported.
    pub view_type: Option<String>,
    /// Every shard the stream still holds records of, parents listed before
    /// or after their children (the service gives no order).
    pub shards: Vec<ShardInfo>,
}

/// The stream view type the change feed needs: both images of every write.
pub(crate) const NEW_AND_OLD_IMAGES: &str = "NEW_AND_OLD_IMAGES";

/// One shard of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    /// The shard id.
    pub id: String,
    /// The shard this one was split from, if any: its records come first.
    pub parent: Option<String>,
    /// The sequence number of the shard's first record, if known.
    pub first_sequence: Option<String>,
    /// The sequence number of the shard's last record: `Some` once the shard
    /// is closed (no record will be added), `None` while it is open.
    pub last_sequence: Option<String>,
}

impl ShardInfo {
    /// Whether the shard is closed: it has all the records it will ever have.
    pub fn is_closed(&self) -> bool {
        self.last_sequence.is_some()
    }
}

/// Where a shard iterator starts (`ShardIteratorType` and `SequenceNumber`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardStart {
    /// `TRIM_HORIZON`: the oldest record the shard still holds (24 hours on AWS).
    TrimHorizon,
    /// `LATEST`: after the newest record: only records written from now on.
    Latest,
    /// `AFTER_SEQUENCE_NUMBER`: right after the record with this sequence number.
    After(String),
    /// `AT_SEQUENCE_NUMBER`: at the record with this sequence number.
    At(String),
}

/// One page of GetRecords.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordsPage {
    /// The records, in the shard's order (possibly none, even on an open
    /// shard that has more: poll again with `next_iterator`).
    pub records: Vec<StreamRecord>,
    /// Where the next page starts; `None` once a closed shard has been read to
    /// its end.
    pub next_iterator: Option<String>,
}
