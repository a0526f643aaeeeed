//! A table's stream in memory: one shard, never closed, holding every record
//! (`NEW_AND_OLD_IMAGES`) since the stream was turned on.

use std::time::SystemTime;

use super::*;
use crate::backend::{RecordsPage, ShardInfo, ShardStart, StreamCalls, StreamDescription};
use crate::stream::{EventKind, StreamRecord};

/// The one shard of every memory stream.
const SHARD: &str = "shardId-00000001-memory";

/// The records of a table's stream.
#[derive(Debug)]
pub(super) struct MemStream {
    arn: String,
    records: Vec<StreamRecord>,
    next_sequence: u64,
}

impl MemStream {
    pub(super) fn new(table: &str) -> Self {
        // A label of its own, as DynamoDB gives each stream: a checkpoint of a
        // table's earlier stream is told from one of the current stream.
        static LABELS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let label = LABELS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        MemStream {
            arn: format!("arn:aws:dynamodb:memory:000000000000:table/{table}/stream/{label:08}"),
            records: Vec::new(),
            next_sequence: 1,
        }
    }

    /// Records a change from `old` to `new` of the item with `keys`: nothing if
    /// they are equal (a write that changes nothing has no record).
    pub(super) fn record(
        &mut self,
        keys: Item,
        old: Option<&Item>,
        new: Option<&Item>,
        by_ttl: bool,
    ) {
        let event = match (old, new) {
            (None, None) => return,
            (Some(o), Some(n)) if o == n => return,
            (None, Some(_)) => EventKind::Insert,
            (Some(_), Some(_)) => EventKind::Modify,
            (Some(_), None) => EventKind::Remove,
        };
        // Fixed width: sequence numbers order as strings too.
        let sequence_number = format!("{:021}", self.next_sequence);
        self.next_sequence += 1;
        self.records.push(StreamRecord {
            event,
            keys,
            old_image: old.cloned(),
            new_image: new.cloned(),
            sequence_number,
            created: Some(SystemTime::now()),
            by_ttl,
        });
    }

    /// The index of the first record at or after `start`.
    fn position(&self, start: &ShardStart) -> usize {
        match start {
            ShardStart::TrimHorizon => 0,
            ShardStart::Latest => self.records.len(),
            ShardStart::After(s) => self
                .records
                .partition_point(|r| r.sequence_number.as_str() <= s.as_str()),
            ShardStart::At(s) => self
                .records
                .partition_point(|r| r.sequence_number.as_str() < s.as_str()),
        }
    }
}

/// The most records one GetRecords returns (as on AWS).
const MAX_RECORDS: usize = 1000;

fn stream_error(operation: &'static str, code: &str, message: impl Into<String>) -> Error {
    Error::Backend {
        service: "memory",
        operation,
        code: Some(code.into()),
        retryable: false,
        message: message.into(),
        source: None,
    }
}

impl State {
    /// The stream whose ARN is `arn`, if its table still has it.
    fn stream_by_arn(&mut self, arn: &str, operation: &'static str) -> Result<&mut MemStream> {
        self.tables
            .values_mut()
            .filter_map(|t| t.stream.as_mut())
            .find(|s| s.arn == arn)
            .ok_or_else(|| {
                stream_error(
                    operation,
                    "ResourceNotFoundException",
                    format!("stream {arn} does not exist"),
                )
            })
    }
}

#[async_trait]
impl StreamCalls for MemoryBackend {
    async fn describe_stream(&self, table: &str) -> Result<Option<StreamDescription>> {
        yield_now().await;
        let mut state = self.lock();
        let t = state.table(table, Op::DescribeStream.name())?;
        if !t.spec.streams {
            return Ok(None);
        }
        let stream = t.stream.get_or_insert_with(|| MemStream::new(table));
        Ok(Some(StreamDescription {
            arn: stream.arn.clone(),
            view_type: Some(crate::backend::NEW_AND_OLD_IMAGES.to_owned()),
            shards: vec![ShardInfo {
                id: SHARD.to_owned(),
                parent: None,
                first_sequence: stream.records.first().map(|r| r.sequence_number.clone()),
                last_sequence: None,
            }],
        }))
    }

    async fn get_shard_iterator(
        &self,
        stream_arn: &str,
        shard_id: &str,
        start: &ShardStart,
    ) -> Result<String> {
        const OP: &str = Op::GetShardIterator.name();
        yield_now().await;
        let mut state = self.lock();
        let stream = state.stream_by_arn(stream_arn, OP)?;
        if shard_id != SHARD {
            return Err(stream_error(
                OP,
                "ResourceNotFoundException",
                format!("shard {shard_id} of {stream_arn} does not exist"),
            ));
        }
        Ok(format!("{stream_arn}|{}", stream.position(start)))
    }

    async fn get_records(&self, stream_arn: &str, iterator: &str) -> Result<RecordsPage> {
        const OP: &str = Op::GetRecords.name();
        yield_now().await;
        let mut state = self.lock();
        let invalid = || stream_error(OP, "ValidationException", "invalid shard iterator");
        let (arn, position) = iterator.rsplit_once('|').ok_or_else(invalid)?;
        let position: usize = position.parse().map_err(|_| invalid())?;
        if arn != stream_arn {
            return Err(invalid());
        }
        let stream = state.stream_by_arn(arn, OP)?;
        let start = position.min(stream.records.len());
        let end = (start + MAX_RECORDS).min(stream.records.len());
        Ok(RecordsPage {
            records: stream.records[start..end].to_vec(),
            next_iterator: Some(format!("{arn}|{end}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::AttributeValue;

    use crate::backend::{BackendExt as _, ShardStart, TableSpec};
    use crate::memory::MemoryBackend;
    use crate::model::{Item, KeyKind, KeyValue};
    use crate::stream::{classify, ChangeKind, EventKind};

    fn item(pk: &str, n: &str) -> Item {
        [
            ("pk".to_owned(), AttributeValue::S(pk.into())),
            ("n".to_owned(), AttributeValue::N(n.into())),
        ]
        .into()
    }

    #[tokio::test]
    async fn every_change_is_recorded_once_and_a_ttl_removal_as_the_service() {
        let backend = MemoryBackend::new();
        let mut spec = TableSpec::new("t", ("pk", KeyKind::String));
        spec.streams = true;
        backend.create_table(&spec).await.unwrap();
        backend.put_item("t", item("a", "1"), None).await.unwrap();
        // The same item again: no change, no record.
        backend.put_item("t", item("a", "1"), None).await.unwrap();
        backend.put_item("t", item("a", "2"), None).await.unwrap();
        backend
            .delete_item("t", &item("b", "0"), None)
            .await
            .unwrap();
        // The reaper's removal.
        let key = {
            let mut state = backend.lock();
            let table = state.table("t", "test").unwrap();
            let key = (KeyValue::String("a".into()), None);
            table.write(key, None, true)
        };
        assert_eq!(key, Some(item("a", "2")));

        let stream = backend.describe_stream("t").await.unwrap().unwrap();
        assert_eq!(stream.shards.len(), 1);
        let shard = &stream.shards[0];
        let it = backend
            .get_shard_iterator(&stream.arn, &shard.id, &ShardStart::TrimHorizon)
            .await
            .unwrap();
        let page = backend.get_records(&stream.arn, &it).await.unwrap();
        let events: Vec<_> = page.records.iter().map(|r| (r.event, r.by_ttl)).collect();
        assert_eq!(
            events,
            [
                (EventKind::Insert, false),
                (EventKind::Modify, false),
                (EventKind::Remove, true)
            ]
        );
        let seqs: Vec<&str> = page
            .records
            .iter()
            .map(|r| r.sequence_number.as_str())
            .collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
        assert_eq!(
            classify(&page.records[2]),
            Some(ChangeKind::Removed { by_ttl: true })
        );
        assert_eq!(
            page.records[2].keys,
            [("pk".to_owned(), AttributeValue::S("a".into()))].into()
        );

        // After the first record; at the last; from now on.
        let after = ShardStart::After(seqs[0].to_owned());
        let it = backend
            .get_shard_iterator(&stream.arn, &shard.id, &after)
            .await
            .unwrap();
        assert_eq!(
            backend
                .get_records(&stream.arn, &it)
                .await
                .unwrap()
                .records
                .len(),
            2
        );
        let at = ShardStart::At(seqs[2].to_owned());
        let it = backend
            .get_shard_iterator(&stream.arn, &shard.id, &at)
            .await
            .unwrap();
        assert_eq!(
            backend
                .get_records(&stream.arn, &it)
                .await
                .unwrap()
                .records
                .len(),
            1
        );
        let it = backend
            .get_shard_iterator(&stream.arn, &shard.id, &ShardStart::Latest)
            .await
            .unwrap();
        let page = backend.get_records(&stream.arn, &it).await.unwrap();
        assert!(page.records.is_empty());
        backend.put_item("t", item("c", "1"), None).await.unwrap();
        let next = page.next_iterator.unwrap();
        assert_eq!(
            backend
                .get_records(&stream.arn, &next)
                .await
                .unwrap()
                .records
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn a_table_without_a_stream_has_none() {
        let backend = MemoryBackend::new();
        backend
            .create_table(&TableSpec::new("t", ("pk", KeyKind::String)))
            .await
            .unwrap();
        backend.put_item("t", item("a", "1"), None).await.unwrap();
        assert_eq!(backend.describe_stream("t").await.unwrap(), None);
    }
}
