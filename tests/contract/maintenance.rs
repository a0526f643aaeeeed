//! Garbage collection and verification, over every backend.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use md5::Digest;
use vhs::maintenance::{GcOptions, Progress, VerifyOptions};
use vhs::types::AttributeValue;
use vhs::BackendExt as _;
use vhs::{Error, Fault, Model, Op};

use crate::faults::{gc_now, verify_opts};
use crate::fixture::{keys_of, put_raw, Fixture};
use crate::models::Document;

/// Orphans left by a create whose PutItem fails (`fx` has cleanup off).
async fn orphans(fx: &Fixture) -> Vec<String> {
    let doc = Document::sample("orphan", "s");
    fx.faults
        .inject(Op::PutItem, 1, Fault::Fail { retryable: false });
    let err = fx.store.create_large(&doc).await.unwrap_err();
    assert!(matches!(err, Error::Backend { .. }), "{err}");
    fx.faults.reset();
    fx.objects()
        .await
        .into_iter()
        .filter(|k| k.starts_with(&format!("{}pk=orphan/", fx.prefix::<Document>())))
        .collect()
}

pub async fn gc_respects_grace_dry_run_and_foreign_keys(fx: Fixture) {
    let fx = Fixture::with(fx.kind, |b| b.clean_up_when_failed(false)).await;
    let live = Document::sample("live", "s");
    let staged = fx.store.create_large(&live).await.unwrap();
    let orphaned = orphans(&fx).await;
    assert_eq!(orphaned.len(), 2);
    let foreign = format!("{}not-our-layout/file.txt", fx.prefix::<Document>());
    put_raw(&*fx.raw, &fx.bucket, &foreign, b"x").await;

    // Default grace (1 hour): the fresh orphans may belong to a write in flight.
    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = events.clone();
    let report = fx
        .store
        .gc::<Document>(&GcOptions::default(), move |p| seen.lock().unwrap().push(p))
        .await
        .unwrap();
    assert_eq!((report.items, report.objects), (1, 5));
    assert_eq!(
        (report.unreferenced, report.too_young, report.foreign),
        (3, 2, 1)
    );
    assert!(report.deleted.is_empty());
    let events = events.lock().unwrap().clone();
    assert!(events.contains(&Progress::ItemsScanned(1)), "{events:?}");
    assert!(events.contains(&Progress::ObjectsListed(5)), "{events:?}");

    // Dry run: reports, deletes nothing.
    let report = fx
        .store
        .gc::<Document>(&gc_now().dry_run(true), |_| {})
        .await
        .unwrap();
    let mut would = report.deleted.clone();
    would.sort();
    assert_eq!(would, orphaned);
    assert!(report.deleted_bytes > 0);
    assert_eq!(fx.objects().await.len(), 5);

    // For real: only the orphans go; live objects and foreign keys stay.
    let report = fx.store.gc::<Document>(&gc_now(), |_| {}).await.unwrap();
    assert_eq!(report.deleted.len(), 2);
    let mut left = keys_of(&staged);
    left.push(foreign);
    left.sort();
    assert_eq!(fx.objects().await, left);
    assert_eq!(fx.store.get_large(&live.primary_key()).await.unwrap(), live);
}

pub async fn verify_reports_every_broken_pointer(fx: Fixture) {
    let fx = Fixture::with(fx.kind, |b| b.clean_up_when_failed(false)).await;
    let docs: Vec<Document> = (0..4)
        .map(|i| Document::sample("v", &i.to_string()))
        .collect();
    for d in &docs {
        fx.store.create_large(d).await.unwrap();
    }
    let report = fx
        .store
        .verify::<Document>(&verify_opts(), |_| {})
        .await
        .unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!((report.items, report.pointers, report.orphans), (4, 8, 0));

    let html = |i: usize| {
        let doc = &docs[i];
        let md5 = format!(
            "{:x}",
            md5::Md5::digest(doc.html.as_ref().unwrap().as_bytes())
        );
        format!("{}pk=v/sk={i}/attr=html/md5={md5}", fx.prefix::<Document>())
    };
    fx.lose(&html(0)).await;
    fx.tamper(&html(1), b"tampered").await;
    let mut item = fx.item(&docs[2].primary_key()).await.unwrap();
    item.insert("image".into(), AttributeValue::S("s3://elsewhere/x".into()));
    fx.raw.put_item(&fx.tables.0, item, None).await.unwrap();
    let orphaned = orphans(&fx).await;

    // Without re-hashing, the tampered object exists: only the lost one is found.
    let quick = fx
        .store
        .verify::<Document>(&VerifyOptions::default(), |_| {})
        .await
        .unwrap();
    assert_eq!(quick.dangling.len(), 1);
    assert!(quick.integrity.is_empty());
    let report = fx
        .store
        .verify::<Document>(&verify_opts(), |_| {})
        .await
        .unwrap();
    assert!(!report.is_clean());
    assert_eq!(report.dangling.len(), 1);
    assert_eq!(report.dangling[0].item, "pk=\"v\", sk=\"0\"");
    assert_eq!(report.dangling[0].attr, "html");
    assert_eq!(report.integrity.len(), 1);
    assert_eq!(report.integrity[0].item, "pk=\"v\", sk=\"1\"");
    assert_eq!(report.bad_pointers.len(), 1);
    assert_eq!(report.bad_pointers[0].attr, "image");
    // The orphans of the failed create, and doc 2's replaced image.
    assert_eq!(report.orphans as usize, orphaned.len() + 1);
    assert!(report.orphan_bytes > 0);
}

/// GC (with a grace period longer than one write) runs in a loop while writers
/// create, update and delete, and collects the old objects the writers leave
/// (post-success cleanup is off here, so there is garbage to collect while they
/// run): nothing referenced is ever deleted.
pub async fn gc_is_safe_while_writers_run(fx: Fixture) {
    let fx = Fixture::with(fx.kind, |b| b.clean_up_when_succeeded(false)).await;
    gc_beside_writers(fx, GcOptions::default()).await;
}

/// [`gc_is_safe_while_writers_run`] with GC run by `options` (its grace set
/// to 1 s here): also run with the Athena engine (`athena.rs`). The store
/// must not clean up after its own writes.
pub async fn gc_beside_writers(fx: Fixture, options: GcOptions) {
    let options = options.grace(Duration::from_secs(1));
    let (writers, rounds) = (4, 40);
    let stop = Arc::new(AtomicBool::new(false));
    let runs = Arc::new(AtomicU64::new(0));
    let deleted = Arc::new(AtomicU64::new(0));
    let store = fx.store.clone();
    let gc = {
        let (stop, runs, deleted) = (stop.clone(), runs.clone(), deleted.clone());
        let options = options.clone();
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let report = store.gc::<Document>(&options, |_| {}).await.expect("gc");
                runs.fetch_add(1, Ordering::Relaxed);
                deleted.fetch_add(report.deleted.len() as u64, Ordering::Relaxed);
            }
        })
    };
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let store = fx.store.clone();
            tokio::spawn(async move {
                for r in 0..rounds {
                    let mut doc = Document::sample(&format!("w{w}"), &format!("{}", r % 3));
                    doc.html = Some(format!("writer {w} round {r}"));
                    let key = doc.primary_key();
                    match store.create_large(&doc).await {
                        Ok(_) => {}
                        Err(Error::AlreadyExists { .. }) => {
                            let changes = Document::changes().set_html(doc.html.clone());
                            store.update_large(&key, changes).await.expect("update");
                        }
                        Err(e) => panic!("{e}"),
                    }
                    assert_eq!(
                        store.get_large(&key).await.expect("read back").html,
                        doc.html
                    );
                    if r % 5 == 4 {
                        store.delete_large(&key).await.expect("delete");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    gc.await.unwrap();
    assert!(runs.load(Ordering::Relaxed) > 0);
    assert!(
        deleted.load(Ordering::Relaxed) > 0,
        "GC collected while writers ran"
    );
    // What is left is collected now; then nothing dangles and nothing is orphaned.
    fx.store.gc::<Document>(&gc_now(), |_| {}).await.unwrap();
    let report = fx
        .store
        .verify::<Document>(&verify_opts(), |_| {})
        .await
        .unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.orphans, 0, "{report:?}");
    println!(
        "gc during writes ({:?}): {writers} writers x {rounds} rounds, {} gc runs, {} deleted, verify clean over {} items",
        fx.kind,
        runs.load(Ordering::Relaxed),
        deleted.load(Ordering::Relaxed),
        report.items
    );
}
