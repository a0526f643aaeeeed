//! Reading a table's stream: shards in order, iterators, polling, checkpoints.

use std::collections::{BTreeMap, HashMap};
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use serde::{Deserialize, Serialize};

use super::change::Change;
use super::record::StreamRecord;
use crate::backend::{Backend, BackendExt, ShardInfo, ShardStart, NEW_AND_OLD_IMAGES};
use crate::error::{Error, Result};
use crate::model::Model;
use crate::store::Store;

/// Where a reader starts in shards its checkpoint does not name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Start {
    /// The oldest record each shard still holds (24 hours on AWS).
    #[default]
    TrimHorizon,
    /// Records written from now on only. Shards that appear later (children)
    /// are read from their start.
    Latest,
}

/// How far a reader has read one shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShardMark {
    /// Every record up to and including this sequence number was delivered.
    After(String),
    /// Started at `LATEST`, no record delivered yet: resuming starts at
    /// `LATEST` again (what was written in between is not read).
    Latest,
    /// The shard is closed and was read to its end.
    Finished,
}

/// A reader's position in a table's stream, per shard: what a consumer
/// stores after handling a batch, and resumes from
/// ([`RecordReader::resume`]) with neither duplicates nor gaps. Serde: store
/// it as JSON (or anything else).
///
/// A checkpoint of another stream (the table's stream was turned off and on,
/// or the table re-created) is refused when resuming; one older than the
/// stream keeps records (24 hours on AWS) fails with the service's
/// `TrimmedDataAccessException`: the records in between are lost, start
/// afresh.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The stream's ARN; `None` before the reader saw the stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_arn: Option<String>,
    /// Shard id → how far it was read. A shard not named was not read yet.
    #[serde(default)]
    pub shards: BTreeMap<String, ShardMark>,
}

/// What one GetRecords page delivered, and the checkpoint after it.
#[derive(Debug, Clone)]
pub struct RecordBatch {
    /// The shard the records come from.
    pub shard: String,
    /// The records, in order (never empty).
    pub records: Vec<StreamRecord>,
    /// The position after these records: store it once they are handled.
    pub checkpoint: Checkpoint,
}

/// How long a reader waits between polls of an idle stream: `initial`,
/// doubled after each empty poll up to `max`, back to `initial` after records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollInterval {
    /// The wait after the first empty poll.
    pub initial: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Default for PollInterval {
    /// 1 second, up to 10.
    fn default() -> Self {
        PollInterval {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(10),
        }
    }
}

/// A reader of a table's stream records, model-less: follows the shards
/// (a parent's records before its children's, closed shards to their end),
/// and keeps a [`Checkpoint`].
///
/// [`next_batch`](Self::next_batch) waits for records, polling with backoff;
/// [`poll`](Self::poll) reads what is there now; [`into_stream`](Self::into_stream)
/// is a `futures::Stream` of batches.
pub struct RecordReader {
    backend: Arc<dyn Backend>,
    table: String,
    start: Start,
    checkpoint: Checkpoint,
    poll_interval: PollInterval,
    /// The shards last described, and whether `start` was applied to them.
    shards: Vec<ShardInfo>,
    described: bool,
    /// Open iterators, by shard.
    iterators: HashMap<String, String>,
    /// Round-robin position over the readable shards.
    turn: usize,
    delay: Option<Duration>,
}

impl std::fmt::Debug for RecordReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordReader")
            .field("table", &self.table)
            .field("checkpoint", &self.checkpoint)
            .finish_non_exhaustive()
    }
}

impl RecordReader {
    /// A reader of `table`'s stream through `backend`, from the oldest record.
    pub fn new(backend: Arc<dyn Backend>, table: impl Into<String>) -> Self {
        RecordReader {
            backend,
            table: table.into(),
            start: Start::TrimHorizon,
            checkpoint: Checkpoint::default(),
            poll_interval: PollInterval::default(),
            shards: Vec::new(),
            described: false,
            iterators: HashMap::new(),
            turn: 0,
            delay: None,
        }
    }

    /// Where to start in shards the checkpoint does not name.
    pub fn from(mut self, start: Start) -> Self {
        self.start = start;
        self
    }

    /// Resumes after `checkpoint`: each shard it names continues after its
    /// last record; shards it does not name start from their first record.
    pub fn resume(mut self, checkpoint: Checkpoint) -> Self {
        self.checkpoint = checkpoint;
        self.start = Start::TrimHorizon;
        self
    }

    /// How long to wait between polls of an idle stream (default 1 s, up to 10 s).
    pub fn poll_interval(mut self, interval: PollInterval) -> Self {
        self.poll_interval = interval;
        self
    }

    /// The position after every batch returned so far.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// The table read.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Describes the stream again: new shards, closed shards.
    async fn describe(&mut self) -> Result<()> {
        let Some(description) = self.backend.describe_stream(&self.table).await? else {
            return Err(Error::invalid(format!(
                "table {} has no stream: enable one (NEW_AND_OLD_IMAGES) to read its changes",
                self.table
            )));
        };
        if let Some(view) = description
            .view_type
            .as_deref()
            .filter(|v| *v != NEW_AND_OLD_IMAGES)
        {
            return Err(Error::invalid(format!(
                "table {}'s stream records {view}, not {NEW_AND_OLD_IMAGES}: a change cannot be told from bookkeeping without both images",
                self.table
            )));
        }
        match &self.checkpoint.stream_arn {
            Some(arn) if *arn != description.arn => {
                return Err(Error::invalid(format!(
                    "the checkpoint is of stream {arn}, not of table {}'s stream {}: start afresh",
                    self.table, description.arn
                )));
            }
            Some(_) => {}
            None => self.checkpoint.stream_arn = Some(description.arn.clone()),
        }
        if !self.described && self.start == Start::Latest {
            for shard in &description.shards {
                if self.checkpoint.shards.contains_key(&shard.id) {
                    continue;
                }
                let mark = if shard.is_closed() {
                    ShardMark::Finished
                } else {
                    ShardMark::Latest
                };
                self.checkpoint.shards.insert(shard.id.clone(), mark);
            }
        }
        // Shards trimmed away are forgotten: they will not be listed again.
        let listed: Vec<&str> = description.shards.iter().map(|s| s.id.as_str()).collect();
        self.checkpoint
            .shards
            .retain(|id, _| listed.contains(&id.as_str()));
        self.iterators.retain(|id, _| listed.contains(&id.as_str()));
        self.shards = description.shards;
        self.described = true;
        Ok(())
    }

    /// The shards to read now: not finished, and whose parent is finished or
    /// gone.
    fn readable(&self) -> Vec<ShardInfo> {
        let finished =
            |id: &str| matches!(self.checkpoint.shards.get(id), Some(ShardMark::Finished));
        self.shards
            .iter()
            .filter(|s| !finished(&s.id))
            .filter(|s| match &s.parent {
                None => true,
                Some(p) => finished(p) || !self.shards.iter().any(|o| o.id == *p),
            })
            .cloned()
            .collect()
    }

    /// One GetRecords of `shard`: its records, the checkpoint moved past them.
    async fn read_shard(&mut self, shard: &ShardInfo) -> Result<Vec<StreamRecord>> {
        let arn = self.checkpoint.stream_arn.clone().unwrap_or_default();
        let iterator = match self.iterators.remove(&shard.id) {
            Some(it) => it,
            None => {
                let start = match self.checkpoint.shards.get(&shard.id) {
                    Some(ShardMark::After(seq)) => ShardStart::After(seq.clone()),
                    Some(ShardMark::Latest) => ShardStart::Latest,
                    Some(ShardMark::Finished) => return Ok(Vec::new()),
                    None => ShardStart::TrimHorizon,
                };
                self.backend
                    .get_shard_iterator(&arn, &shard.id, &start)
                    .await?
            }
        };
        let page = match self.backend.get_records(&arn, &iterator).await {
            Ok(page) => page,
            // Unused for too long: the next round asks for a new one from the
            // checkpoint.
            Err(Error::Backend { code: Some(c), .. }) if c == "ExpiredIteratorException" => {
                return Ok(Vec::new())
            }
            Err(e) => return Err(e),
        };
        if let Some(last) = page.records.last() {
            self.checkpoint.shards.insert(
                shard.id.clone(),
                ShardMark::After(last.sequence_number.clone()),
            );
        }
        match page.next_iterator {
            Some(next) => {
                self.iterators.insert(shard.id.clone(), next);
            }
            None => {
                self.checkpoint
                    .shards
                    .insert(shard.id.clone(), ShardMark::Finished);
            }
        }
        Ok(page.records)
    }

    /// Reads what the stream has now: the next batch of one shard, or `None`
    /// when every readable shard answered no record (the stream is idle, as
    /// far as one GetRecords per shard tells: on AWS an open shard can answer
    /// empty pages before records, so `None` there is a hint, not a proof).
    pub async fn poll(&mut self) -> Result<Option<RecordBatch>> {
        if !self.described {
            self.describe().await?;
        }
        let mut described_again = false;
        loop {
            let shards = self.readable();
            let mut finished_one = false;
            for i in 0..shards.len() {
                let shard = &shards[(self.turn + i) % shards.len()];
                let records = self.read_shard(shard).await?;
                finished_one |= matches!(
                    self.checkpoint.shards.get(&shard.id),
                    Some(ShardMark::Finished)
                );
                if !records.is_empty() {
                    self.turn = (self.turn + i + 1) % shards.len().max(1);
                    return Ok(Some(RecordBatch {
                        shard: shard.id.clone(),
                        records,
                        checkpoint: self.checkpoint.clone(),
                    }));
                }
            }
            // A finished shard may have children to read now; new shards may
            // have appeared.
            if described_again && !finished_one {
                return Ok(None);
            }
            self.describe().await?;
            described_again = true;
        }
    }

    /// Waits for the next batch of records, polling an idle stream with
    /// backoff ([`poll_interval`](Self::poll_interval)).
    pub async fn next_batch(&mut self) -> Result<RecordBatch> {
        loop {
            if let Some(batch) = self.poll().await? {
                self.delay = None;
                return Ok(batch);
            }
            let delay = match self.delay {
                None => self.poll_interval.initial,
                Some(d) => (d * 2).min(self.poll_interval.max),
            };
            self.delay = Some(delay);
            tokio::time::sleep(delay).await;
        }
    }

    /// The batches as a `futures::Stream`, endless: an error is yielded and
    /// reading goes on (after the poll interval) if polled again.
    pub fn into_stream(self) -> impl Stream<Item = Result<RecordBatch>> + Send {
        futures_util::stream::unfold(self, |mut reader| async move {
            let next = reader.next_batch().await;
            if next.is_err() {
                tokio::time::sleep(reader.poll_interval.initial).await;
            }
            Some((next, reader))
        })
    }
}

/// The changes one batch of records showed, and the checkpoint after it.
#[derive(Debug, Clone)]
pub struct ChangeBatch<M> {
    /// The shard the records came from.
    pub shard: String,
    /// The user writes, in order: possibly none, when every record was
    /// bookkeeping (store the checkpoint all the same).
    pub changes: Vec<Change<M>>,
    /// The position after these records.
    pub checkpoint: Checkpoint,
}

/// Which records are items of the model: see [`ChangeReader::only`].
type RecordFilter = Arc<dyn Fn(&StreamRecord) -> bool + Send + Sync>;

/// A reader of the typed [`Change`]s of a model's table
/// ([`Store::changes`]): a [`RecordReader`] whose records are classified and
/// decoded.
///
/// Every item of the table is decoded as `M`: on a table several models
/// share (a single-table design), tell `M`'s items apart with
/// [`only`](Self::only), or an item of another model is a decoding error.
pub struct ChangeReader<M> {
    records: RecordReader,
    filter: Option<RecordFilter>,
    _model: PhantomData<fn() -> M>,
}

impl<M> std::fmt::Debug for ChangeReader<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.records.fmt(f)
    }
}

impl<M: Model> ChangeReader<M> {
    /// Where to start in shards the checkpoint does not name.
    pub fn from(mut self, start: Start) -> Self {
        self.records = self.records.from(start);
        self
    }

    /// Resumes after `checkpoint` (see [`RecordReader::resume`]).
    pub fn resume(mut self, checkpoint: Checkpoint) -> Self {
        self.records = self.records.resume(checkpoint);
        self
    }

    /// How long to wait between polls of an idle stream.
    pub fn poll_interval(mut self, interval: PollInterval) -> Self {
        self.records = self.records.poll_interval(interval);
        self
    }

    /// The position after every batch returned so far.
    pub fn checkpoint(&self) -> &Checkpoint {
        self.records.checkpoint()
    }

    /// Reads only the records `keep` accepts (the others are skipped, the
    /// checkpoint moving past them): on a table several models share, those
    /// of `M`'s items, e.g. by their key (`record.keys`) or an attribute of
    /// their images.
    pub fn only(mut self, keep: impl Fn(&StreamRecord) -> bool + Send + Sync + 'static) -> Self {
        self.filter = Some(Arc::new(keep));
        self
    }

    /// The record reader underneath.
    pub fn into_records(self) -> RecordReader {
        self.records
    }

    fn decode(filter: Option<&RecordFilter>, batch: RecordBatch) -> Result<ChangeBatch<M>> {
        let mut changes = Vec::new();
        for record in &batch.records {
            if filter.is_some_and(|keep| !keep(record)) {
                continue;
            }
            changes.extend(Change::from_record(record)?);
        }
        Ok(ChangeBatch {
            shard: batch.shard,
            changes,
            checkpoint: batch.checkpoint,
        })
    }

    /// [`RecordReader::poll`], decoded.
    pub async fn poll(&mut self) -> Result<Option<ChangeBatch<M>>> {
        let batch = self.records.poll().await?;
        batch
            .map(|b| Self::decode(self.filter.as_ref(), b))
            .transpose()
    }

    /// [`RecordReader::next_batch`], decoded.
    pub async fn next_batch(&mut self) -> Result<ChangeBatch<M>> {
        let batch = self.records.next_batch().await?;
        Self::decode(self.filter.as_ref(), batch)
    }

    /// [`RecordReader::into_stream`], decoded.
    pub fn into_stream(self) -> impl Stream<Item = Result<ChangeBatch<M>>> + Send
    where
        M: Send + 'static,
    {
        let filter = self.filter;
        futures_util::StreamExt::map(self.records.into_stream(), move |b| {
            b.and_then(|b| Self::decode(filter.as_ref(), b))
        })
    }
}

impl Store {
    /// A reader of the [`Change`]s of `M`'s table, from the oldest record
    /// of its stream (see [`ChangeReader`]; the table needs a
    /// `NEW_AND_OLD_IMAGES` stream).
    pub fn changes<M: Model>(&self) -> ChangeReader<M> {
        ChangeReader {
            records: self.stream_records(self.table_name::<M>()),
            filter: None,
            _model: PhantomData,
        }
    }

    /// A reader of the raw records of `table`'s stream, for consumers without
    /// a model (see [`RecordReader`]).
    pub fn stream_records(&self, table: &str) -> RecordReader {
        RecordReader::new(self.backend().clone(), table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Call, Reply, ShardInfo, StreamDescription};

    /// A backend whose table has a stream of `view_type`, one open shard.
    #[derive(Debug)]
    struct Described(&'static str);

    #[async_trait::async_trait]
    impl Backend for Described {
        async fn send(&self, call: Call<'_>) -> Result<Reply> {
            match call {
                Call::DescribeStream { .. } => Ok(Reply::Stream(Some(StreamDescription {
                    arn: "arn:stream".into(),
                    view_type: Some(self.0.into()),
                    shards: Vec::new(),
                }))),
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_stream_without_both_images_is_refused() {
        let mut reader = RecordReader::new(Arc::new(Described("NEW_IMAGE")), "t");
        let e = reader.poll().await.unwrap_err();
        assert!(matches!(e, Error::InvalidInput { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "invalid input: table t's stream records NEW_IMAGE, not NEW_AND_OLD_IMAGES: a change cannot be told from bookkeeping without both images"
        );
        let mut reader = RecordReader::new(Arc::new(Described("NEW_AND_OLD_IMAGES")), "t");
        assert!(reader.poll().await.unwrap().is_none());
        assert_eq!(
            reader.checkpoint().stream_arn.as_deref(),
            Some("arn:stream")
        );
    }

    /// A stream of two shards: `parent`, closed, then `child`, open, each
    /// record on a page of its own.
    #[derive(Debug)]
    struct Split;

    fn record(seq: &str) -> StreamRecord {
        StreamRecord {
            event: super::super::EventKind::Insert,
            keys: crate::model::Item::new(),
            old_image: None,
            new_image: Some(crate::model::Item::new()),
            sequence_number: seq.to_owned(),
            created: None,
            by_ttl: false,
        }
    }

    impl Split {
        fn shard(id: &str) -> (&'static [&'static str], bool) {
            match id {
                "parent" => (&["01", "02"], true),
                _ => (&["03", "04"], false),
            }
        }
    }

    #[async_trait::async_trait]
    impl Backend for Split {
        async fn send(&self, call: Call<'_>) -> Result<Reply> {
            Ok(match call {
                Call::DescribeStream { .. } => Reply::Stream(Some(StreamDescription {
                    arn: "arn:split".into(),
                    view_type: None,
                    // The child first: the service gives no order.
                    shards: vec![
                        ShardInfo {
                            id: "child".into(),
                            parent: Some("parent".into()),
                            first_sequence: Some("03".into()),
                            last_sequence: None,
                        },
                        ShardInfo {
                            id: "parent".into(),
                            parent: None,
                            first_sequence: Some("01".into()),
                            last_sequence: Some("02".into()),
                        },
                    ],
                })),
                Call::GetShardIterator {
                    shard_id, start, ..
                } => {
                    let (seqs, _) = Split::shard(shard_id);
                    let at = match start {
                        ShardStart::TrimHorizon => 0,
                        ShardStart::Latest => seqs.len(),
                        ShardStart::After(s) => {
                            seqs.iter().take_while(|q| **q <= s.as_str()).count()
                        }
                        ShardStart::At(s) => seqs.iter().take_while(|q| **q < s.as_str()).count(),
                    };
                    Reply::Text(format!("{shard_id}:{at}"))
                }
                Call::GetRecords { iterator, .. } => {
                    let (id, at) = iterator.split_once(':').unwrap();
                    let at: usize = at.parse().unwrap();
                    let (seqs, closed) = Split::shard(id);
                    let records: Vec<_> = seqs.get(at).map(|s| record(s)).into_iter().collect();
                    let next = at + records.len();
                    Reply::Records(crate::backend::RecordsPage {
                        records,
                        next_iterator: (!(closed && next == seqs.len()))
                            .then(|| format!("{id}:{next}")),
                    })
                }
                other => panic!("unexpected {other:?}"),
            })
        }
    }

    async fn read_all(reader: &mut RecordReader) -> Vec<String> {
        let mut seen = Vec::new();
        while let Some(batch) = reader.poll().await.unwrap() {
            seen.extend(batch.records.into_iter().map(|r| r.sequence_number));
        }
        seen
    }

    #[tokio::test]
    async fn a_parent_shard_is_read_to_its_end_before_its_child() {
        let mut reader = RecordReader::new(Arc::new(Split), "t");
        assert_eq!(read_all(&mut reader).await, ["01", "02", "03", "04"]);
        let checkpoint = reader.checkpoint().clone();
        assert_eq!(checkpoint.shards["parent"], ShardMark::Finished);
        assert_eq!(checkpoint.shards["child"], ShardMark::After("04".into()));

        // Resumed half way through the parent: the rest, once each.
        let mut half = Checkpoint {
            stream_arn: Some("arn:split".into()),
            ..Checkpoint::default()
        };
        half.shards
            .insert("parent".into(), ShardMark::After("01".into()));
        let mut resumed = RecordReader::new(Arc::new(Split), "t").resume(half);
        assert_eq!(read_all(&mut resumed).await, ["02", "03", "04"]);
        assert_eq!(resumed.checkpoint(), &checkpoint);

        // From LATEST: the closed parent is done, the open child read from its end.
        let mut latest = RecordReader::new(Arc::new(Split), "t").from(Start::Latest);
        assert!(read_all(&mut latest).await.is_empty());
        assert_eq!(latest.checkpoint().shards["parent"], ShardMark::Finished);
        assert_eq!(latest.checkpoint().shards["child"], ShardMark::Latest);
    }

    #[test]
    fn a_checkpoint_reads_back_from_json() {
        let mut checkpoint = Checkpoint {
            stream_arn: Some("arn".into()),
            ..Checkpoint::default()
        };
        checkpoint
            .shards
            .insert("s1".into(), ShardMark::After("0042".into()));
        checkpoint.shards.insert("s0".into(), ShardMark::Finished);
        checkpoint.shards.insert("s2".into(), ShardMark::Latest);
        let json = serde_json::to_string(&checkpoint).unwrap();
        assert_eq!(
            json,
            r#"{"stream_arn":"arn","shards":{"s0":"finished","s1":{"after":"0042"},"s2":"latest"}}"#
        );
        assert_eq!(
            serde_json::from_str::<Checkpoint>(&json).unwrap(),
            checkpoint
        );
    }
}
