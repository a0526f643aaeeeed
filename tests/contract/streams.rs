//! The change feed: a table's stream read as one typed change per user write,
//! the protocol's bookkeeping filtered, and resumed from a checkpoint.

use std::time::Duration;

use vhs::stream::{Change, ChangeKind, ChangeReader, Checkpoint, PollInterval, Start};
use vhs::BackendExt as _;
use vhs::Error;

use crate::faults::gc_now;
use crate::fixture::Fixture;
use crate::models::Document;

/// Turns on the stream of the documents table.
async fn with_stream(fx: &Fixture) {
    let table = fx.store.table_name::<Document>();
    let mut spec = fx.raw.describe_table(table).await.unwrap().expect("table");
    spec.streams = true;
    fx.store.ensure_table_spec(&spec).await.unwrap();
    assert!(fx.raw.describe_stream(table).await.unwrap().is_some());
}

fn reader(fx: &Fixture) -> ChangeReader<Document> {
    fx.store.changes::<Document>().poll_interval(PollInterval {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(100),
    })
}

/// Every change the stream has now.
async fn drain(reader: &mut ChangeReader<Document>) -> Vec<Change<Document>> {
    let mut out = Vec::new();
    while let Some(batch) = reader.poll().await.unwrap() {
        assert_eq!(&batch.checkpoint, reader.checkpoint());
        out.extend(batch.changes);
    }
    out
}

fn kinds(changes: &[Change<Document>]) -> Vec<(ChangeKind, String)> {
    changes
        .iter()
        .map(|c| (c.kind(), c.key().to_string()))
        .collect()
}

pub async fn one_change_per_create_update_and_delete(fx: Fixture) {
    with_stream(&fx).await;
    let store = &fx.store;
    let mut changes = reader(&fx);
    let key = Document::key("s1", "a");
    let doc = Document::sample("s1", "a");

    // A create: one insertion, its large values loadable.
    store.create_large(&doc).await.unwrap();
    let created = drain(&mut changes).await;
    assert_eq!(kinds(&created), [(ChangeKind::Inserted, key.to_string())]);
    let Change::Inserted(new) = &created[0] else {
        unreachable!()
    };
    assert_eq!(new.model.html, None, "large values are not loaded");
    let first_pointer = new.pointer("html").expect("a pointer").to_owned();
    let loaded = created[0].clone().load(store).await.unwrap();
    assert_eq!(loaded.new_item(), Some(&doc));

    // An update replacing a large value: the commit, then the release's
    // unmark: one modification.
    let html = Some("<html>v2</html>".to_owned());
    store
        .update_large(&key, Document::changes().set_html(html.clone()))
        .await
        .unwrap();
    store.flush().await;
    let updated = drain(&mut changes).await;
    assert_eq!(kinds(&updated), [(ChangeKind::Modified, key.to_string())]);
    let Change::Modified { old, new } = &updated[0] else {
        unreachable!()
    };
    assert_eq!(old.pointer("html"), Some(first_pointer.as_str()));
    assert_ne!(new.pointer("html"), Some(first_pointer.as_str()));
    let mut new = new.clone();
    store.load(&mut new, &["html"]).await.unwrap();
    assert_eq!(new.model.html, html);

    // A delete: the placeholder, its pointers removed: one removal.
    store.delete_large(&key).await.unwrap();
    store.flush().await;
    let deleted = drain(&mut changes).await;
    assert_eq!(
        kinds(&deleted),
        [(ChangeKind::Removed { by_ttl: false }, key.to_string())]
    );
    assert_eq!(deleted[0].old_item().map(|d| &d.html), Some(&None));
    assert!(matches!(
        deleted[0].clone().load(store).await,
        Err(Error::DanglingPointer { .. })
    ));

    // GC (placeholders, marks): bookkeeping only.
    store.gc::<Document>(&gc_now(), |_| {}).await.unwrap();
    assert!(drain(&mut changes).await.is_empty());

    // The raw records hold the bookkeeping the changes left out.
    let mut raw = store.stream_records(store.table_name::<Document>());
    let mut records = 0;
    while let Some(batch) = raw.poll().await.unwrap() {
        records += batch.records.len();
    }
    assert!(records > 3, "{records} records for 3 changes");
}

pub async fn a_checkpoint_resumes_without_duplicates_or_gaps(fx: Fixture) {
    with_stream(&fx).await;
    let store = &fx.store;
    // Written before a reader from LATEST starts: not seen by it.
    store
        .create_large(&Document::sample("r", "0"))
        .await
        .unwrap();
    let mut latest = reader(&fx).from(Start::Latest);
    assert!(drain(&mut latest).await.is_empty());

    let mut first = reader(&fx);
    for sk in ["1", "2"] {
        store
            .create_large(&Document::sample("r", sk))
            .await
            .unwrap();
    }
    let seen = drain(&mut first).await;
    assert_eq!(
        seen.iter().map(|c| c.key().to_string()).collect::<Vec<_>>(),
        [
            Document::key("r", "0").to_string(),
            Document::key("r", "1").to_string(),
            Document::key("r", "2").to_string()
        ]
    );
    // Stored by the caller as JSON, read back later.
    let saved = serde_json::to_string(first.checkpoint()).unwrap();
    drop(first);

    for sk in ["3", "4"] {
        store
            .create_large(&Document::sample("r", sk))
            .await
            .unwrap();
    }
    store
        .update_large(
            &Document::key("r", "1"),
            Document::changes().set_html(Some("<p>1</p>".into())),
        )
        .await
        .unwrap();
    let checkpoint: Checkpoint = serde_json::from_str(&saved).unwrap();
    let mut resumed = reader(&fx).resume(checkpoint);
    let after = drain(&mut resumed).await;
    assert_eq!(
        kinds(&after),
        [
            (ChangeKind::Inserted, Document::key("r", "3").to_string()),
            (ChangeKind::Inserted, Document::key("r", "4").to_string()),
            (ChangeKind::Modified, Document::key("r", "1").to_string()),
        ]
    );
    // The reader from LATEST sees what came after it started.
    assert_eq!(
        kinds(&drain(&mut latest).await),
        kinds(&seen[1..])
            .into_iter()
            .chain(kinds(&after))
            .collect::<Vec<_>>()
    );
    // Waiting for batches returns the change once it is written (batches
    // before it may hold bookkeeping only: the update's release).
    let mut waiting = reader(&fx).resume(resumed.checkpoint().clone());
    let writer = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        store.delete_large(&Document::key("r", "0")).await.unwrap();
    };
    let wait = async {
        loop {
            let batch = waiting.next_batch().await.unwrap();
            if !batch.changes.is_empty() {
                return batch.changes;
            }
        }
    };
    let (changes, ()) = tokio::join!(wait, writer);
    assert_eq!(
        kinds(&changes),
        [(
            ChangeKind::Removed { by_ttl: false },
            Document::key("r", "0").to_string()
        )]
    );
}

pub async fn a_table_without_a_stream_is_refused(fx: Fixture) {
    let e = reader(&fx).poll().await.unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }), "{e:?}");
    assert!(e.to_string().contains("has no stream"), "{e}");
}

/// With `keep_replaced_for`, what an update or a delete replaced stays
/// readable for the window: a consumer loads the old and the new values of
/// every change, and the protocol's kept stamps are bookkeeping like the rest.
pub async fn every_image_loads_within_keep_replaced_for(fx: Fixture) {
    let kind = fx.kind;
    drop(fx);
    let fx = Fixture::with(kind, |b| b.keep_replaced_for(Duration::from_secs(3600))).await;
    with_stream(&fx).await;
    let store = &fx.store;
    let mut changes = reader(&fx);
    let key = Document::key("k", "a");
    let html = |v: &str| Some(format!("<p>{v}</p>"));
    let mut doc = Document::sample("k", "a");
    doc.html = html("1");
    store.create_large(&doc).await.unwrap();
    for (field, value) in [("html", "2"), ("image", "2"), ("html", "3")] {
        let update = match field {
            "html" => Document::changes().set_html(html(value)),
            _ => Document::changes().set_image(Some(value.as_bytes().to_vec())),
        };
        store.update_large(&key, update).await.unwrap();
    }
    store.delete_large(&key).await.unwrap();
    store.flush().await;
    store.gc::<Document>(&gc_now(), |_| {}).await.unwrap();

    let seen = drain(&mut changes).await;
    assert_eq!(
        kinds(&seen).into_iter().map(|(k, _)| k).collect::<Vec<_>>(),
        [
            ChangeKind::Inserted,
            ChangeKind::Modified,
            ChangeKind::Modified,
            ChangeKind::Modified,
            ChangeKind::Removed { by_ttl: false },
        ]
    );
    let mut loaded = Vec::new();
    for change in seen {
        let change = change.load(store).await.unwrap();
        loaded.push((
            change.old_item().map(|d| (d.html.clone(), d.image.clone())),
            change.new_item().map(|d| (d.html.clone(), d.image.clone())),
        ));
    }
    let image = doc.image.clone();
    let two = Some(b"2".to_vec());
    assert_eq!(
        loaded,
        [
            (None, Some((html("1"), image.clone()))),
            (
                Some((html("1"), image.clone())),
                Some((html("2"), image.clone()))
            ),
            (
                Some((html("2"), image.clone())),
                Some((html("2"), two.clone()))
            ),
            (
                Some((html("2"), two.clone())),
                Some((html("3"), two.clone()))
            ),
            (Some((html("3"), two.clone())), None),
        ]
    );
}

/// On a table other writers (or other models) share, an item that is not a
/// `Document` is a decoding error, unless `only` tells the model's items apart.
pub async fn only_the_models_items_on_a_shared_table(fx: Fixture) {
    with_stream(&fx).await;
    let store = &fx.store;
    let table = store.table_name::<Document>();
    let s = |v: &str| vhs::types::AttributeValue::S(v.to_owned());
    let other: vhs::Item = [
        ("pk".to_owned(), s("program#1")),
        ("sk".to_owned(), s("meta")),
        ("title".to_owned(), s("not a document")),
    ]
    .into();
    fx.raw.put_item(table, other, None).await.unwrap();
    store
        .create_large(&Document::sample("doc#1", "a"))
        .await
        .unwrap();

    let e = reader(&fx).poll().await.unwrap_err();
    assert!(matches!(e, Error::Codec { .. }), "{e:?}");
    let mut documents = reader(&fx).only(|r| {
        matches!(r.keys.get("pk"), Some(vhs::types::AttributeValue::S(pk)) if pk.starts_with("doc#"))
    });
    assert_eq!(
        kinds(&drain(&mut documents).await),
        [(
            ChangeKind::Inserted,
            Document::key("doc#1", "a").to_string()
        )]
    );
}

/// A checkpoint names its stream: after the table is created again (a new
/// stream), resuming from it is refused rather than read from the wrong place.
pub async fn a_checkpoint_of_another_stream_is_refused(fx: Fixture) {
    with_stream(&fx).await;
    let store = &fx.store;
    let table = store.table_name::<Document>();
    store
        .create_large(&Document::sample("x", "1"))
        .await
        .unwrap();
    let mut first = reader(&fx);
    assert_eq!(drain(&mut first).await.len(), 1);
    let checkpoint = first.checkpoint().clone();
    assert!(checkpoint.stream_arn.is_some(), "{checkpoint:?}");

    let spec = fx.raw.describe_table(table).await.unwrap().expect("table");
    assert!(fx.raw.delete_table(table).await.unwrap());
    store.ensure_table_spec(&spec).await.unwrap();
    with_stream(&fx).await;
    let e = reader(&fx).resume(checkpoint).poll().await.unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }), "{e:?}");
    assert!(e.to_string().contains("start afresh"), "{e}");
    // A reader starting afresh reads the new stream.
    store
        .create_large(&Document::sample("x", "2"))
        .await
        .unwrap();
    assert_eq!(
        kinds(&drain(&mut reader(&fx)).await),
        [(ChangeKind::Inserted, Document::key("x", "2").to_string())]
    );
}
