//! DynamoDB Streams: a table's stream, its shards and records.

use aws_sdk_dynamodbstreams::types::ShardIteratorType;

use super::*;
use crate::backend::{RecordsPage, ShardInfo, ShardStart, StreamCalls, StreamDescription};
use crate::stream::StreamRecord;

#[async_trait]
impl StreamCalls for AwsBackend {
    async fn describe_stream(&self, table: &str) -> Result<Option<StreamDescription>> {
        const OP: &str = Op::DescribeStream.name();
        let described = self
            .dynamodb
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| self.ddb_error("DescribeTable", table, e))?;
        let Some(arn) = described
            .table()
            .and_then(|t| t.latest_stream_arn())
            .map(str::to_owned)
        else {
            return Ok(None);
        };
        let mut shards = Vec::new();
        let mut view_type = None;
        let mut start: Option<String> = None;
        loop {
            let page = self
                .streams
                .describe_stream()
                .stream_arn(&arn)
                .set_exclusive_start_shard_id(start.take())
                .send()
                .await
                .map_err(|e| self.ddb_error(OP, table, e))?;
            let Some(description) = page.stream_description() else {
                break;
            };
            view_type = description
                .stream_view_type()
                .map(|v| v.as_str().to_owned())
                .or(view_type);
            for shard in description.shards() {
                let Some(id) = shard.shard_id() else { continue };
                let range = shard.sequence_number_range();
                shards.push(ShardInfo {
                    id: id.to_owned(),
                    parent: shard.parent_shard_id().map(str::to_owned),
                    first_sequence: range
                        .and_then(|r| r.starting_sequence_number())
                        .map(str::to_owned),
                    last_sequence: range
                        .and_then(|r| r.ending_sequence_number())
                        .map(str::to_owned),
                });
            }
            match description.last_evaluated_shard_id() {
                Some(last) => start = Some(last.to_owned()),
                None => break,
            }
        }
        Ok(Some(StreamDescription {
            arn,
            view_type,
            shards,
        }))
    }

    async fn get_shard_iterator(
        &self,
        stream_arn: &str,
        shard_id: &str,
        start: &ShardStart,
    ) -> Result<String> {
        const OP: &str = Op::GetShardIterator.name();
        let (kind, sequence) = match start {
            ShardStart::TrimHorizon => (ShardIteratorType::TrimHorizon, None),
            ShardStart::Latest => (ShardIteratorType::Latest, None),
            ShardStart::After(s) => (ShardIteratorType::AfterSequenceNumber, Some(s.clone())),
            ShardStart::At(s) => (ShardIteratorType::AtSequenceNumber, Some(s.clone())),
        };
        let out = self
            .streams
            .get_shard_iterator()
            .stream_arn(stream_arn)
            .shard_id(shard_id)
            .shard_iterator_type(kind)
            .set_sequence_number(sequence)
            .send()
            .await
            .map_err(|e| classify("dynamodb", OP, Some(&self.dynamodb_endpoint), e))?;
        out.shard_iterator.ok_or_else(|| Error::Backend {
            service: "dynamodb",
            operation: OP,
            code: None,
            retryable: true,
            message: format!("no iterator returned for shard {shard_id} of {stream_arn}"),
            source: None,
        })
    }

    async fn get_records(&self, _stream_arn: &str, iterator: &str) -> Result<RecordsPage> {
        const OP: &str = Op::GetRecords.name();
        let out = self
            .streams
            .get_records()
            .shard_iterator(iterator)
            .send()
            .await
            .map_err(|e| classify("dynamodb", OP, Some(&self.dynamodb_endpoint), e))?;
        let records = out
            .records
            .unwrap_or_default()
            .into_iter()
            .map(StreamRecord::from_sdk)
            .collect::<Result<Vec<_>>>()?;
        Ok(RecordsPage {
            records,
            next_iterator: out.next_shard_iterator,
        })
    }
}
