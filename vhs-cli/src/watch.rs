//! `vhs watch`: the table's change feed, one line per user write.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{json, Value};
use vhs::stream::{
    classify, ChangeKind, Checkpoint, PollInterval, RecordReader, ShardMark, Start, StreamRecord,
};
use vhs::{BackendExt as _, Error, Item, TableSpec};

use super::{invalid, store, table_name, Result};
use crate::cli::{Global, Output, Watch, WatchFrom};
use crate::output::{self, attribute_json, item_json};

/// Follows the stream until `--max` changes were printed, the stream is idle
/// (`--until-idle`), or forever.
pub(super) async fn watch(g: &Global, args: &Watch) -> Result<u8> {
    let name = table_name(g)?;
    let store = store(g).await?;
    let spec = store
        .backend()
        .describe_table(name)
        .await?
        .ok_or_else(|| Error::TableNotFound {
            table: name.to_owned(),
        })?;
    let mut reader = RecordReader::new(store.backend().clone(), name)
        .from(match args.from {
            WatchFrom::TrimHorizon => Start::TrimHorizon,
            WatchFrom::Latest => Start::Latest,
        })
        .poll_interval(PollInterval {
            initial: args.poll_interval,
            max: args.poll_interval * 10,
        });
    if let Some(path) = &args.checkpoint {
        if let Some(checkpoint) = read_checkpoint(path).await? {
            reader = reader.resume(checkpoint).from(match args.from {
                WatchFrom::TrimHorizon => Start::TrimHorizon,
                WatchFrom::Latest => Start::Latest,
            });
        }
    }
    let mut printed = 0u64;
    loop {
        if args.max.is_some_and(|max| printed >= max) {
            return Ok(0);
        }
        let batch = if args.until_idle {
            match reader.poll().await? {
                Some(batch) => batch,
                None => return Ok(0),
            }
        } else {
            reader.next_batch().await?
        };
        let mut checkpoint = batch.checkpoint;
        for record in &batch.records {
            let Some(kind) = classify(record) else {
                continue;
            };
            print_change(g.output, &spec, kind, record);
            printed += 1;
            if args.max.is_some_and(|max| printed >= max) {
                // Stopped inside the batch: the next run starts right after
                // the last change printed, not after the whole batch.
                checkpoint.shards.insert(
                    batch.shard.clone(),
                    ShardMark::After(record.sequence_number.clone()),
                );
                break;
            }
        }
        if let Some(path) = &args.checkpoint {
            write_checkpoint(path, &checkpoint).await?;
        }
    }
}

/// The item's key as `vhs ls` prints it.
fn key_text(spec: &TableSpec, keys: &Item) -> String {
    output::format_key(
        keys,
        &spec.hash_key.0,
        spec.range_key.as_ref().map(|r| r.0.as_str()),
    )
}

/// The attributes (outside `vhs:*`) whose value differs between the images.
fn changed(old: Option<&Item>, new: Option<&Item>) -> Vec<String> {
    let empty = Item::new();
    let (old, new) = (old.unwrap_or(&empty), new.unwrap_or(&empty));
    let names: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    names
        .into_iter()
        .filter(|n| !n.starts_with("vhs:") && old.get(*n) != new.get(*n))
        .cloned()
        .collect()
}

fn print_change(format: Output, spec: &TableSpec, kind: ChangeKind, record: &StreamRecord) {
    let key = key_text(spec, &record.keys);
    let (old, new) = match kind {
        // Over a placeholder the old image is bookkeeping: the item was absent.
        ChangeKind::Inserted => (None, record.new_image.as_ref()),
        ChangeKind::Modified => (record.old_image.as_ref(), record.new_image.as_ref()),
        ChangeKind::Removed { .. } => (record.old_image.as_ref(), None),
    };
    let changed = changed(old, new);
    let by_ttl = matches!(kind, ChangeKind::Removed { by_ttl: true });
    match format {
        Output::Json => {
            let image = |i: Option<&Item>| {
                i.map_or(Value::Null, |i| item_json(&output::without_bookkeeping(i)))
            };
            let line = json!({
                "kind": kind.as_str(),
                "key": key,
                "sequence_number": record.sequence_number,
                "by_ttl": by_ttl,
                "changed": changed,
                "old": image(old),
                "new": image(new),
            });
            crate::say!("{line}");
        }
        Output::Text => {
            // Each changed attribute, with its new value when it is a pointer
            // (the old one for a removal).
            let shown: Vec<String> = changed
                .iter()
                .map(|name| {
                    let value = new.or(old).and_then(|i| i.get(name));
                    match value.map(attribute_json) {
                        Some(Value::String(s)) if s.starts_with("s3://") => format!("{name}={s}"),
                        _ => name.clone(),
                    }
                })
                .collect();
            let ttl = if by_ttl { " (time to live)" } else { "" };
            crate::say!("{:<8} {key}{ttl}  {}", kind.as_str(), shown.join(" "));
        }
    }
}

async fn read_checkpoint(path: &Path) -> Result<Option<Checkpoint>> {
    let text = match tokio::fs::read_to_string(path).await {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::Io {
                action: format!("read the checkpoint {}", path.display()),
                source: e,
            })
        }
    };
    serde_json::from_str(&text).map(Some).map_err(|e| {
        invalid(format!(
            "{} is not a checkpoint of `vhs watch`: {e}",
            path.display()
        ))
    })
}

/// Written beside, then renamed over `path`: a crash leaves the old or the new.
async fn write_checkpoint(path: &Path, checkpoint: &Checkpoint) -> Result<()> {
    let io = |action: &str, e| Error::Io {
        action: format!("{action} the checkpoint {}", path.display()),
        source: e,
    };
    let text = serde_json::to_string(checkpoint).map_err(|e| invalid(e.to_string()))?;
    let partial = path.with_extension("partial");
    tokio::fs::write(&partial, text)
        .await
        .map_err(|e| io("write", e))?;
    tokio::fs::rename(&partial, path)
        .await
        .map_err(|e| io("replace", e))
}
