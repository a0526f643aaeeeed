//! The change feed: a table's DynamoDB stream as typed changes of a model.
//!
//! A table with a `NEW_AND_OLD_IMAGES` stream
//! ([`TableSpec::streams`](crate::TableSpec::streams)) records every write
//! of its items. With vhs most of those writes are the protocol's bookkeeping:
//! marks and their removal around an update, the placeholder a delete leaves,
//! its pointers then the placeholder itself removed, GC's take-overs, poisons.
//! This module turns the records into one [`Change`] per user write:
//!
//! ```no_run
//! use vhs_core::stream::{Change, Checkpoint, Start};
//! use vhs_core::{Model, Result, Store};
//!
//! async fn follow<M: Model + std::fmt::Debug>(
//!     store: &Store,
//!     saved: Option<Checkpoint>,
//! ) -> Result<()> {
//!     let mut changes = match saved {
//!         Some(checkpoint) => store.changes::<M>().resume(checkpoint),
//!         None => store.changes::<M>().from(Start::TrimHorizon),
//!     };
//!     loop {
//!         let batch = changes.next_batch().await?; // waits for records
//!         for change in batch.changes {
//!             match change.load(store).await? {
//!                 Change::Inserted(new) => println!("inserted {:?}", new.model),
//!                 Change::Modified { old, new } => println!("{:?} -> {:?}", old.model, new.model),
//!                 Change::Removed { old, by_ttl } => println!("removed {:?} ({by_ttl})", old.model),
//!             }
//!         }
//!         // Store `batch.checkpoint` (serde) once the batch is handled.
//!         let _json = serde_json::to_string(&batch.checkpoint);
//!     }
//! }
//! ```
//!
//! # Which records are changes
//!
//! An image is *live* if it exists and has no `vhs:ph` (a placeholder reads
//! as absent everywhere). A record is a user write ([`classify`]) when:
//!
//! * the new image is live and the old one is not: [`Change::Inserted`]
//!   (a create, also over a delete's placeholder). No bookkeeping write makes
//!   an item live: only a commit does.
//! * both images are live and the newest commit token of `vhs:tok` differs
//!   (every commit puts its token first; marks, unmarks and take-overs leave
//!   `vhs:tok` as it is, and a poison adds a `{token}!n` entry, skipped):
//!   [`Change::Modified`]. An update that replaces a large value is one
//!   record for the commit, then bookkeeping (the release unmarks): one change.
//! * the old image is live and the new one is not: [`Change::Removed`]. A vhs
//!   delete turns the item into a placeholder (a MODIFY record); DynamoDB's
//!   TTL or a foreign writer removes the item (a REMOVE record). The
//!   placeholder's later writes (pointers removed, the placeholder removed)
//!   are between non-live images: nothing.
//!
//! Everything else is bookkeeping and yields nothing.
//!
//! **Foreign writers** (items written without vhs, so without `vhs:tok`)
//! follow the same liveness rule; between two live images of which neither
//! has `vhs:tok`, the record is a change if any attribute outside `vhs:*`
//! differs (GC can still add bookkeeping to such an item). A foreign PutItem
//! over a vhs item (or vhs over a foreign item) changes `vhs:tok`: a change.
//!
//! A TTL removal is told by the record's `userIdentity` (type `Service`,
//! principal `dynamodb.amazonaws.com`): [`Change::Removed`]'s `by_ttl`.
//!
//! # Reading
//!
//! [`Store::changes`](crate::Store::changes) gives a [`ChangeReader`], and
//! [`Store::stream_records`](crate::Store::stream_records) a model-less
//! [`RecordReader`] of [`StreamRecord`]s. A reader follows the stream's
//! shards (a parent's records before its children's; closed shards read to
//! their end), polls an idle stream with backoff, and returns records in
//! batches, each with the [`Checkpoint`] after it: store it once the batch is
//! handled, and resume from it with neither duplicates nor gaps. Records are
//! also decoded from the AWS SDK ([`StreamRecord::from_sdk`]) and, with the
//! `lambda` feature, from a Lambda event (`StreamRecord::from_lambda`).
//!
//! Large values are not loaded: each image is a [`Stored`](crate::Stored)
//! holding the pointers, and [`Change::load`] reads them. The old image's
//! objects are deleted right after the write that replaced them, so loading
//! an old image after that is a dangling pointer.

mod change;
mod reader;
mod record;

pub use change::{classify, Change, ChangeKind};
pub use reader::{
    ChangeBatch, ChangeReader, Checkpoint, PollInterval, RecordBatch, RecordReader, ShardMark,
    Start,
};
pub use record::{EventKind, StreamRecord, TTL_PRINCIPAL};

use std::cmp::Ordering;

/// Orders two sequence numbers of one shard (decimal digits of any length).
pub fn sequence_cmp(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}
