//! Tables opened by their key schema only (`Store::open_table`, what the CLI
//! uses): they must read, verify and collect exactly as the model's own calls.

use vhs::maintenance::GcOptions;
use vhs::types::AttributeValue;
use vhs::{Error, Fault, KeyKind, Op};

use crate::faults::{gc_now, verify_opts};
use crate::fixture::{keys_of, Fixture};
use crate::models::{Blob, Document, Note};
use crate::races::rounds;

pub async fn untyped_table_reads_like_the_model(fx: Fixture) {
    for (pk, sk) in [("a", "1"), ("a", "2"), ("b/c", "x y")] {
        fx.store
            .create_large(&Document::sample(pk, sk))
            .await
            .unwrap();
    }
    let name = fx.store.table_name::<Document>().to_owned();
    let table = fx.store.open_table(&name).await.unwrap();
    assert_eq!(table.spec().hash_key, ("pk".into(), KeyKind::String));
    assert_eq!(table.spec().range_key, Some(("sk".into(), KeyKind::String)));
    assert_eq!(table.prefix(), fx.store.table_prefix(&name).unwrap());

    let (all, more) = table.list(None, None, 100).await.unwrap();
    assert_eq!((all.len(), more.is_none()), (3, true));
    let (of_a, _) = table.list(Some("a"), None, 100).await.unwrap();
    assert_eq!(of_a.len(), 2);
    // One at a time, resuming after each.
    let (first, resume) = table.list(Some("a"), None, 1).await.unwrap();
    let (second, _) = table.list(Some("a"), resume, 1).await.unwrap();
    assert_eq!(first.len() + second.len(), 2);
    assert_ne!(first[0]["sk"], second[0]["sk"]);

    let key = table.key("b/c", Some("x y")).unwrap();
    let item = table.get(&key).await.unwrap().expect("stored");
    assert_eq!(table.describe(&item), "pk=\"b/c\", sk=\"x y\"");
    let pointers = table.pointers(&item);
    let names: Vec<&str> = pointers.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(names, ["html", "image"]);
    let mut html = Vec::new();
    let n = table.download(&item, "html", &mut html).await.unwrap();
    assert_eq!(html, b"<html>b/c/x y</html>");
    assert_eq!(n, html.len() as u64);
    let size = table
        .object_info(&item, "image")
        .await
        .unwrap()
        .expect("object")
        .size;
    assert_eq!(size, 7);

    // Bad keys and attributes, refused before anything is sent.
    let calls = fx.faults.calls().len();
    for (hash, range) in [("a", None), ("", Some("1"))] {
        let err = table.key(hash, range).unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    }
    let err = table
        .download(&item, "data", &mut Vec::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    assert_eq!(fx.faults.calls().len(), calls);
    assert!(table
        .get(&table.key("a", Some("nope")).unwrap())
        .await
        .unwrap()
        .is_none());

    // A numeric hash key, and no such table.
    fx.store.create_large(&Blob::sample(7)).await.unwrap();
    let blobs = fx
        .store
        .open_table(fx.store.table_name::<Blob>())
        .await
        .unwrap();
    let err = blobs.key("seven", None).unwrap_err();
    assert!(err.to_string().contains("is a number"), "{err}");
    let err = blobs.key("7", Some("x")).unwrap_err();
    assert!(err.to_string().contains("no range key"), "{err}");
    assert!(blobs
        .get(&blobs.key("7", None).unwrap())
        .await
        .unwrap()
        .is_some());
    let err = fx.store.open_table("no-such-table").await.unwrap_err();
    assert!(
        matches!(err, Error::TableNotFound { .. }) && err.is_not_found(),
        "{err}"
    );
}

/// verify, stats and gc of the untyped table report what the model's own
/// calls report, and gc deletes only the orphans.
pub async fn untyped_gc_and_verify_match_the_typed_ones(fx: Fixture) {
    let fx = Fixture::with(fx.kind, |b| b.clean_up_when_failed(false)).await;
    let kept = fx
        .store
        .create_large(&Document::sample("live", "1"))
        .await
        .unwrap();
    let lost = fx
        .store
        .create_large(&Document::sample("live", "2"))
        .await
        .unwrap();
    let altered = fx
        .store
        .create_large(&Document::sample("live", "3"))
        .await
        .unwrap();
    // Orphans: a create whose PutItem failed, cleanup off.
    fx.faults
        .inject(Op::PutItem, 1, Fault::Fail { retryable: false });
    fx.store
        .create_large(&Document::sample("orphan", "1"))
        .await
        .unwrap_err();
    fx.faults.reset();
    fx.lose(&lost.object("html").unwrap().pointer.key).await;
    fx.tamper(&altered.object("image").unwrap().pointer.key, b"other")
        .await;

    let name = fx.store.table_name::<Document>().to_owned();
    let table = fx.store.open_table(&name).await.unwrap();
    let typed = fx
        .store
        .verify::<Document>(&verify_opts(), |_| {})
        .await
        .unwrap();
    let untyped = table.verify(&verify_opts(), |_| {}).await.unwrap();
    assert_eq!(untyped, typed);
    assert_eq!(
        (typed.dangling.len(), typed.integrity.len(), typed.orphans),
        (1, 1, 2)
    );

    let stats = table.stats(|_| {}).await.unwrap();
    assert_eq!((stats.items, stats.pointers, stats.placeholders), (3, 6, 0));
    assert_eq!((stats.objects, stats.orphans), (7, 2));
    assert_eq!(stats.by_attr["html"].objects, 3);
    assert_eq!(stats.by_attr["image"].orphans, 1);

    let dry = GcOptions::default()
        .grace(std::time::Duration::ZERO)
        .dry_run(true);
    let typed = fx.store.gc::<Document>(&dry, |_| {}).await.unwrap();
    let untyped = table.gc(&dry, |_| {}).await.unwrap();
    assert_eq!(untyped.deleted, typed.deleted);
    assert_eq!(untyped.deleted.len(), 2);
    assert!(untyped.deleted.iter().all(|k| k.contains("/pk=orphan/")));

    let report = table.gc(&gc_now(), |_| {}).await.unwrap();
    assert_eq!(report.deleted, typed.deleted);
    let left = fx.objects().await;
    for key in keys_of(&kept) {
        assert!(left.contains(&key), "gc deleted a live object {key}");
    }
    assert!(left.iter().all(|k| !k.contains("/pk=orphan/")), "{left:?}");
    let after = table.stats(|_| {}).await.unwrap();
    assert_eq!((after.objects, after.orphans), (5, 0));
    // Reading after gc: the live item is whole.
    let doc = fx
        .store
        .get_large(&Document::key("live", "1"))
        .await
        .unwrap();
    assert_eq!(doc, Document::sample("live", "1"));
    // The pointer attribute of an item can hold another kind of value: only
    // pointers into the prefix count.
    let mut item = fx.item(&Document::key("live", "1")).await.unwrap();
    item.insert("note".into(), AttributeValue::S("s3://elsewhere/x".into()));
    assert_eq!(table.pointers(&item).len(), 2);
}

/// The untyped GC (grace 0) racing a writer that re-puts the exact content of
/// an orphan: the re-put item's object is never deleted.
pub async fn race_untyped_gc_with_reput_of_orphan(fx: Fixture) {
    let fx = Fixture::with(fx.kind, |b| b.clean_up_when_failed(false)).await;
    let table = fx
        .store
        .open_table(fx.store.table_name::<Note>())
        .await
        .unwrap();
    let n = rounds(fx.kind);
    for round in 0..n {
        let pk = format!("u{round}");
        fx.faults
            .inject(Op::PutItem, 1, Fault::Fail { retryable: false });
        fx.store
            .create_large(&Note::new(&pk, "X"))
            .await
            .unwrap_err();
        fx.faults.reset();
        let (options, note) = (gc_now(), Note::new(&pk, "X"));
        let (gc, created) = tokio::join!(table.gc(&options, |_| {}), fx.store.create_large(&note));
        gc.unwrap();
        created.unwrap();
        let read = fx
            .store
            .get_large_consistent(&Note::key(&pk))
            .await
            .unwrap();
        assert_eq!(read.html.as_deref(), Some("X"), "round {round}");
    }
    let report = table.verify(&verify_opts(), |_| {}).await.unwrap();
    assert!(report.is_clean(), "{report:?}");
    println!(
        "race_untyped_gc_with_reput_of_orphan ({:?}): {n} rounds, 0 dangling",
        fx.kind
    );
}
