//! The upload planner: how the large values of one write are stored (inline,
//! or as objects named by their checksum), the object writes and staged result of
//! a plan, and the write of one item through the protocol's commit machine.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use aws_sdk_dynamodb::types::AttributeValue;
use bytes::Bytes;
use futures_util::future::{join_all, BoxFuture};

use super::{
    new_token, warn_leftovers, Cleanup, ObjectPut, Staged, StagedAttr, StagedObject, Store,
    UploadOrder,
};
use crate::backend::{PutOutcome, Signal, MAX_KEY_BYTES, MAX_OBJECT_BYTES};
use crate::blob::{checksum_of, checksum_of_blob, Blob};
use crate::changes::LargeValues;
use crate::checksum::Checksum;
use crate::error::{Error, Result};
use crate::layout::{escape, object_id, Encoding, Pointer};
use crate::model::Model;
use crate::protocol::clock::Tokens;
use crate::protocol::decide::Plan;
use crate::protocol::engine::{self, Uploads};
use crate::protocol::item::{ObjectRef, State, Target};
use crate::protocol::machine::{Commit as CommitMachine, CommitConfig, Committed};
/// An upload planned and validated, not yet done.
pub(crate) struct Upload {
    index: usize,
    pub(super) attr: &'static str,
    /// The object to write; `None` for a removal or an inline value.
    target: Option<(String, Checksum, Blob)>,
    /// A value kept in the item (`#[large(inline_below = N)]`).
    inline: Option<Bytes>,
    /// How the object's bytes encode the value.
    encoding: Option<Encoding>,
    /// The object's tags (none unless the store tags objects).
    tags: Vec<(String, String)>,
    /// The size of an object a client uploaded (a presigned upload), whose
    /// bytes the store does not hold: its `Blob` is empty and never sent.
    uploaded: Option<u64>,
}

/// How [`Store::plan`] stores one value.
enum Planned {
    /// In the item.
    Inline(Bytes),
    /// As an object with this checksum (in the attribute's algorithm).
    Object(Checksum, Blob),
}

impl Upload {
    /// The object `key` a client uploaded (a presigned upload) for large
    /// attribute `index`, `size` bytes with `checksum`: committed, never sent.
    pub(super) fn uploaded(
        index: usize,
        attr: &'static str,
        key: String,
        checksum: Checksum,
        size: u64,
    ) -> Upload {
        Upload {
            index,
            attr,
            target: Some((key, checksum, Blob::from_bytes(Bytes::new()))),
            inline: None,
            encoding: None,
            tags: Vec::new(),
            uploaded: Some(size),
        }
    }

    /// Which large attribute of the model.
    pub(super) fn index(&self) -> usize {
        self.index
    }

    /// What the attribute will hold in the item: the `s3://` URI of the object,
    /// the inline value, or `None` for a removal.
    pub(super) fn stored(&self, bucket: &str) -> Option<AttributeValue> {
        if let Some(bytes) = &self.inline {
            return Some(AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(
                bytes.to_vec(),
            )));
        }
        let (key, _, _) = self.target.as_ref()?;
        Some(AttributeValue::S(
            Pointer {
                bucket: bucket.to_owned(),
                key: key.clone(),
            }
            .uri(),
        ))
    }
}

/// What [`Store::write`] did: the staged values, the commit, and what its
/// deletions came to so far.
pub(crate) struct Written<M> {
    pub staged: Staged<M>,
    pub committed: Committed,
    pub cleanup: Cleanup,
}

/// The object writes of one call, as the protocol's engine sends them.
pub(crate) struct Puts<'a> {
    pub store: &'a Store,
    pub puts: Vec<ObjectPut>,
}

impl Uploads for Puts<'_> {
    fn put<'b>(&'b self, upload: usize, after: &'b Signal) -> BoxFuture<'b, Result<PutOutcome>> {
        Box::pin(self.store.put_object(&self.puts[upload], after))
    }
}

fn now_iso8601() -> String {
    aws_sdk_dynamodb::primitives::DateTime::from(SystemTime::now())
        .fmt(aws_sdk_dynamodb::primitives::DateTimeFormat::DateTime)
        .unwrap_or_default()
}

impl Store {
    /// Validates large values and computes their keys, before any write. Values
    /// are hashed concurrently, off the executor's worker threads.
    pub(crate) async fn plan<M: Model>(
        &self,
        target: &Target,
        values: &LargeValues<M>,
    ) -> Result<Vec<Upload>> {
        // Every check that needs no hash first, so bad input costs no hashing.
        for (index, blob) in &values.values {
            let attr = M::SCHEMA.large[*index].name;
            let Some(b) = blob else { continue };
            if b.len() > MAX_OBJECT_BYTES {
                return Err(Error::invalid(format!(
                    "large attribute `{attr}` is {} bytes, above S3's 5 TiB object limit ({MAX_OBJECT_BYTES} bytes)",
                    b.len()
                )));
            }
            // The key's length depends on the checksum's algorithm, not on its digits.
            let id = object_id(
                M::SCHEMA.large[*index].compress,
                &M::SCHEMA.large[*index].checksum.digest(b""),
            );
            let key_len = target.render_key(attr, &id).len();
            if key_len > MAX_KEY_BYTES {
                return Err(Error::invalid(format!(
                    "the S3 key for attribute `{attr}` of item {} would be {key_len} bytes, above S3's limit of {MAX_KEY_BYTES}; use shorter keys or a shorter prefix",
                    target.describe,
                )));
            }
        }
        // Tags too: a value the store would tag wrongly costs no hashing.
        let mut tags = Vec::with_capacity(values.values.len());
        for (index, blob) in &values.values {
            tags.push(match (&self.inner.tagging, blob) {
                (Some(f), Some(_)) => crate::store::tags::object_tags(
                    f,
                    &target.table,
                    M::SCHEMA.large[*index].name,
                    &target.key,
                )?,
                _ => Vec::new(),
            });
        }
        let threshold = self.inner.options.multipart_threshold;
        let hashes = values.values.iter().map(|(index, blob)| async move {
            let inline_below = M::SCHEMA.large[*index].inline_below;
            match blob {
                None => Ok(None),
                Some(blob) if blob.len() < inline_below => {
                    let bytes = blob.to_bytes().await?;
                    if bytes.len() as u64 != blob.len() {
                        return Err(crate::blob::changed(
                            blob.path().unwrap_or_else(|| std::path::Path::new("?")),
                        ));
                    }
                    Ok(Some(Planned::Inline(bytes)))
                }
                Some(blob) => {
                    let algorithm = M::SCHEMA.large[*index].checksum;
                    // Compressed first: the object holds, and its checksum names,
                    // the compressed bytes.
                    let compressed;
                    let blob = match M::SCHEMA.large[*index].compress {
                        Some(encoding) => {
                            compressed =
                                crate::compress::compress(blob, encoding, algorithm).await?;
                            &compressed
                        }
                        None => blob,
                    };
                    // A file small enough for one PutObject is read now, and
                    // hashed from the very bytes that will be sent.
                    let blob = match blob.path() {
                        Some(_) if blob.len() <= threshold => {
                            let bytes = blob.to_bytes().await?;
                            if bytes.len() as u64 != blob.len() {
                                return Err(crate::blob::changed(
                                    blob.path().unwrap_or_else(|| std::path::Path::new("?")),
                                ));
                            }
                            Blob::from_bytes(bytes)
                        }
                        _ => blob.clone(),
                    };
                    let checksum = match blob.as_bytes() {
                        Some(b) => checksum_of(b, algorithm).await,
                        None => checksum_of_blob(&blob, algorithm).await?,
                    };
                    Ok(Some(Planned::Object(checksum, blob)))
                }
            }
        });
        let hashed = join_all(hashes).await;
        let mut uploads = Vec::with_capacity(values.values.len());
        for (((index, _), hashed), tags) in values.values.iter().zip(hashed).zip(tags) {
            let attr = M::SCHEMA.large[*index].name;
            let encoding = M::SCHEMA.large[*index].compress;
            let (object, inline) = match hashed? {
                None => (None, None),
                Some(Planned::Inline(bytes)) => (None, Some(bytes)),
                Some(Planned::Object(checksum, blob)) => {
                    let id = object_id(encoding, &checksum);
                    (Some((target.render_key(attr, &id), checksum, blob)), None)
                }
            };
            uploads.push(Upload {
                index: *index,
                attr,
                target: object,
                inline,
                encoding,
                tags,
                uploaded: None,
            });
        }
        uploads.sort_by_key(|u| u.index);
        Ok(uploads)
    }

    /// The object writes of planned uploads.
    pub(crate) fn requests<M: Model>(&self, target: &Target, uploads: &[Upload]) -> Vec<ObjectPut> {
        let mut metadata = HashMap::new();
        metadata.insert("pk".to_owned(), escape(&target.hash));
        if let Some(r) = &target.range {
            metadata.insert("sk".to_owned(), escape(r));
        }
        metadata.insert("updated_at".to_owned(), now_iso8601());
        uploads
            .iter()
            .filter_map(|u| {
                let (object_key, checksum, body) = u.target.as_ref()?;
                let mut metadata = metadata.clone();
                metadata.insert("attr".to_owned(), escape(u.attr));
                Some(ObjectPut {
                    bucket: self.inner.bucket.clone(),
                    key: object_key.clone(),
                    body: body.clone(),
                    checksum: checksum.clone(),
                    content_type: M::SCHEMA.large[u.index].content_type.to_owned(),
                    metadata,
                    storage_class: M::SCHEMA.large[u.index]
                        .storage_class
                        .map(str::to_owned)
                        .or_else(|| self.inner.options.storage_class.clone()),
                    tags: u.tags.clone(),
                })
            })
            .collect()
    }

    /// The objects planned uploads write, one per upload with an object, in
    /// the order of [`Store::requests`].
    pub(crate) fn objects_of(&self, target: &Target, uploads: &[Upload]) -> Vec<ObjectRef> {
        uploads
            .iter()
            .filter_map(|u| {
                let (_, checksum, _) = u.target.as_ref()?;
                Some(target.object(u.attr, &object_id(u.encoding, checksum)))
            })
            .collect()
    }

    /// The staged result of planned uploads, `created` telling, per object,
    /// whether this call created it.
    pub(crate) fn staged_of<M: Model>(
        &self,
        target: &Target,
        uploads: &[Upload],
        created: &[bool],
    ) -> Staged<M> {
        let mut created = created.iter();
        let attrs = uploads
            .iter()
            .map(|u| StagedAttr {
                attr: u.attr,
                inline: u.inline.clone(),
                object: u.target.as_ref().map(|(key, checksum, body)| StagedObject {
                    pointer: self.pointer_to(key.clone()),
                    encoding: u.encoding,
                    checksum: checksum.clone(),
                    size: u.uploaded.unwrap_or(body.len()),
                    created: created.next().copied().unwrap_or(false),
                }),
            })
            .collect();
        Staged::new(target.clone(), attrs)
    }

    /// A write of one item through the protocol (the commit machine):
    /// `uploads` sent as `order` says, then the write `plan` wants on the
    /// state read, deciding again on every state a failed condition returns;
    /// then the release of what it replaced in `changed` attributes.
    pub(crate) async fn write<M: Model>(
        &self,
        target: &Target,
        uploads: Vec<Upload>,
        order: UploadOrder,
        changed: Vec<&'static str>,
        plan: impl FnMut(&State) -> Plan + Send,
    ) -> Result<Written<M>> {
        self.write_with_token(target, uploads, order, changed, new_token(), plan)
            .await
    }

    /// [`Store::write`] whose write carries `token` (in the item's history once
    /// it landed).
    pub(crate) async fn write_with_token<M: Model>(
        &self,
        target: &Target,
        uploads: Vec<Upload>,
        order: UploadOrder,
        changed: Vec<&'static str>,
        token: String,
        mut plan: impl FnMut(&State) -> Plan + Send,
    ) -> Result<Written<M>> {
        let settings = self.settings_for(target).await?;
        let puts = Puts {
            store: self,
            puts: self.requests::<M>(target, &uploads),
        };
        let options = &self.inner.options;
        let config = CommitConfig {
            target: Arc::new(target.clone()),
            objects: self.objects_of(target, &uploads),
            order,
            changed,
            clean_up_when_failed: options.clean_up_when_failed,
            clean_up_when_succeeded: options.clean_up_when_succeeded,
            defer_cleanup: options.defer_cleanup,
            keep_ms: options.keep_ms(),
            settings,
        };
        let machine = CommitMachine::new(config, token, Tokens::random());
        let out = engine::drive(self, &puts, machine, |m, input, now| {
            m.step(input, now, &mut plan)
        })
        .await;
        warn_leftovers(&self.inner.bucket, &out.cleanup);
        let committed = out.result?;
        Ok(Written {
            staged: self.staged_of(target, &uploads, &out.created),
            committed,
            cleanup: out.cleanup,
        })
    }
}
