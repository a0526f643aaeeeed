//! Sharded GC and verify (`GcOptions::shard`, `VerifyOptions::shard`), over
//! every backend: the shards' reports add up to one run's, a shard stopped
//! midway resumes from its checkpoint, and writers running beside sharded
//! GC lose nothing.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::{self, StreamExt};
use md5::Digest;
use vhs::maintenance::{GcOptions, GcReport, Shard, VerifyOptions, VerifyReport};
use vhs::{Error, Fault, Model, Op};

use crate::faults::{gc_now, verify_opts};
use crate::fixture::{put_raw, Fixture};
use crate::models::{Document, Note};

/// Keys whose first characters spread over (and beyond) the printable range,
/// escaped or not.
const ODD: [&str; 12] = [
    "%", "/lead", "~tilde", " space", "0", "Zed", "é", "日本", "a%2Fb", "-", "\u{7f}", "zz",
];

fn shard(i: u32, n: u32) -> Shard {
    Shard::new(i, n).unwrap()
}

/// `n` shards of verify, merged.
async fn verify_sharded(fx: &Fixture, n: u32) -> VerifyReport {
    let mut merged = VerifyReport::default();
    for i in 0..n {
        let options = verify_opts().shard(shard(i, n));
        let report = fx.store.verify::<Document>(&options, |_| {}).await.unwrap();
        merged.merge(report);
    }
    merged
}

/// `n` shards of GC with `options`, merged.
async fn gc_sharded(fx: &Fixture, options: &GcOptions, n: u32) -> GcReport {
    let mut merged = GcReport::default();
    for i in 0..n {
        let options = options.clone().shard(shard(i, n));
        let report = fx.store.gc::<Document>(&options, |_| {}).await.unwrap();
        merged.merge(report);
    }
    merged
}

/// Orphans (failed creates), a dangling pointer, a tampered object and a
/// foreign key, over items whose keys start with odd characters: N shards
/// of verify and GC report together exactly what one run reports, and GC
/// deletes each orphan once.
pub async fn sharded_runs_add_up_to_one_run(fx: Fixture) {
    let fx = Fixture::with(fx.kind, |b| b.clean_up_when_failed(false)).await;
    for (i, pk) in ODD.iter().enumerate() {
        fx.store
            .create_large(&Document::sample(pk, &i.to_string()))
            .await
            .unwrap();
        if i % 3 == 0 {
            // An orphan pair: a create whose PutItem fails.
            fx.faults
                .inject(Op::PutItem, 1, Fault::Fail { retryable: false });
            let doc = Document::sample(pk, &format!("orphan {i}"));
            fx.store.create_large(&doc).await.unwrap_err();
            fx.faults.reset();
        }
    }
    let html = |pk: &str, sk: &str| {
        let doc = Document::sample(pk, sk);
        let md5 = md5::Md5::digest(doc.html.as_ref().unwrap().as_bytes());
        let (pk, sk) = (vhs::escape(pk), vhs::escape(sk));
        format!(
            "{}pk={pk}/sk={sk}/attr=html/md5={md5:x}",
            fx.prefix::<Document>()
        )
    };
    fx.lose(&html(ODD[1], "1")).await;
    fx.tamper(&html(ODD[5], "5"), b"tampered").await;
    let foreign = format!("{}not-our-layout/file.txt", fx.prefix::<Document>());
    put_raw(&*fx.raw, &fx.bucket, &foreign, b"x").await;

    let whole = fx
        .store
        .verify::<Document>(&verify_opts(), |_| {})
        .await
        .unwrap();
    assert_eq!(whole.dangling.len(), 1, "{whole:?}");
    assert_eq!(whole.integrity.len(), 1, "{whole:?}");
    assert_eq!((whole.orphans, whole.foreign), (8, 1), "{whole:?}");
    for n in [1, 4, 5] {
        assert_eq!(verify_sharded(&fx, n).await, whole, "{n} shards");
    }

    let dry = gc_now().dry_run(true);
    let whole = fx.store.gc::<Document>(&dry, |_| {}).await.unwrap();
    assert_eq!(whole.deleted.len(), 8, "{whole:?}");
    for n in [1, 3, 4] {
        assert_eq!(gc_sharded(&fx, &dry, n).await, whole, "{n} shards");
    }

    // For real, in four shards: each orphan deleted once, nothing else.
    let before = fx.objects().await;
    let done = gc_sharded(&fx, &gc_now(), 4).await;
    assert_eq!(done.deleted, whole.deleted);
    assert_eq!(done.deleted_bytes, whole.deleted_bytes);
    assert!(done.failed.is_empty(), "{done:?}");
    let after = fx.objects().await;
    let expected: Vec<String> = before
        .into_iter()
        .filter(|k| !whole.deleted.contains(k))
        .collect();
    assert_eq!(after, expected);
    let again = gc_sharded(&fx, &gc_now(), 4).await;
    assert!(again.deleted.is_empty(), "{again:?}");
    for (i, pk) in ODD.iter().enumerate().filter(|(i, _)| *i != 1 && *i != 5) {
        let doc = Document::sample(pk, &i.to_string());
        assert_eq!(
            fx.store.get_large(&doc.primary_key()).await.unwrap(),
            doc,
            "{pk}"
        );
    }
}

/// A bad shard is an input error; a checkpoint needs a shard.
pub async fn bad_shards_and_checkpoints_are_refused(fx: Fixture) {
    for bad in ["3/3", "0/0", "x/2", "1"] {
        let err = bad.parse::<Shard>().unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{bad}: {err}");
    }
    let err = fx
        .store
        .gc::<Document>(&gc_now().resume_after("k"), |_| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("needs a shard"), "{err}");
    let options = VerifyOptions::default().resume_after("k");
    let err = fx.store.verify::<Note>(&options, |_| {}).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
}

/// More than one page of orphans (1,000 keys a page); shard 0 of 2 fails on
/// its second page, is resumed from the checkpoint it reported, and shard 1
/// runs whole: every orphan is deleted exactly once, the live items keep
/// their objects.
pub async fn a_sharded_run_resumes_from_its_checkpoint(fx: Fixture) {
    let planted = 1100;
    let prefix = fx.prefix::<Note>();
    let orphans: Vec<String> = stream::iter(0..planted)
        .map(|i| {
            let (fx, prefix) = (&fx, &prefix);
            async move {
                let body = format!("orphan {i}");
                let md5 = md5::Md5::digest(body.as_bytes());
                let key = format!("{prefix}pk=o{i:04}/attr=html/md5={md5:x}");
                put_raw(&*fx.raw, &fx.bucket, &key, body.as_bytes()).await;
                key
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let live: Vec<Note> = ["o0500", "o1050", "p"]
        .iter()
        .map(|pk| Note::new(pk, &format!("live {pk}")))
        .collect();
    for note in &live {
        fx.store.create_large(note).await.unwrap();
    }

    let checkpoints = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = checkpoints.clone();
    let first = gc_now()
        .shard(shard(0, 2))
        .on_checkpoint(move |k| seen.lock().unwrap().push(k.to_owned()));
    // The second page of the listing fails: the run stops midway.
    fx.faults
        .inject(Op::ListObjects, 2, Fault::Fail { retryable: false });
    let err = fx.store.gc::<Note>(&first, |_| {}).await.unwrap_err();
    assert!(matches!(err, Error::Backend { .. }), "{err}");
    fx.faults.reset();
    let checkpoint = checkpoints.lock().unwrap().last().cloned().expect("one");
    let mut left = fx.objects().await;
    left.retain(|k| k.starts_with(&prefix));
    let gone: Vec<&String> = orphans.iter().filter(|k| !left.contains(k)).collect();
    assert!(!gone.is_empty(), "the first page was collected");
    assert!(gone.iter().all(|k| **k <= checkpoint), "{checkpoint}");

    let resumed = gc_now().shard(shard(0, 2)).resume_after(checkpoint.clone());
    let second = fx.store.gc::<Note>(&resumed, |_| {}).await.unwrap();
    assert!(second.deleted.iter().all(|k| *k > checkpoint));
    assert!(second.failed.is_empty(), "{second:?}");
    let other = gc_now().shard(shard(1, 2));
    let third = fx.store.gc::<Note>(&other, |_| {}).await.unwrap();
    let mut deleted: Vec<String> = gone.into_iter().cloned().collect();
    deleted.extend(second.deleted);
    deleted.extend(third.deleted);
    deleted.sort();
    let mut expected = orphans.clone();
    expected.sort();
    assert_eq!(deleted, expected, "each orphan deleted once");
    for note in &live {
        assert_eq!(
            fx.store.get_large(&note.primary_key()).await.unwrap(),
            *note
        );
    }
    let report = fx
        .store
        .verify::<Note>(&verify_opts(), |_| {})
        .await
        .unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!((report.orphans, report.pointers), (0, 3), "{report:?}");
}

/// Sharded GC (grace 1 s, the shards in turn) in a loop while writers
/// create, update and delete with post-success cleanup off, and a re-put
/// of an orphan's exact content racing a sharded GC: nothing referenced is
/// ever deleted, and what is left is collected.
pub async fn sharded_gc_is_safe_while_writers_run(fx: Fixture) {
    let fx = Fixture::with(fx.kind, |b| {
        b.clean_up_when_succeeded(false).clean_up_when_failed(false)
    })
    .await;
    let (writers, rounds) = (4, 30);
    let stop = Arc::new(AtomicBool::new(false));
    let runs = Arc::new(AtomicU64::new(0));
    let deleted = Arc::new(AtomicU64::new(0));
    let store = fx.store.clone();
    let gc = {
        let (stop, runs, deleted) = (stop.clone(), runs.clone(), deleted.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let options = GcOptions::default()
                    .grace(Duration::from_secs(1))
                    .shard(shard(i % 3, 3));
                let report = store.gc::<Document>(&options, |_| {}).await.expect("gc");
                i += 1;
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
        "sharded GC collected while writers ran"
    );

    // A re-put of an orphan's exact content racing a sharded GC.
    for round in 0..5 {
        let doc = Document::sample("reput", &round.to_string());
        fx.faults
            .inject(Op::PutItem, 1, Fault::Fail { retryable: false });
        fx.store.create_large(&doc).await.unwrap_err();
        fx.faults.reset();
        let options = gc_now().shard(shard(round % 2, 2));
        let options2 = gc_now().shard(shard(1 - round % 2, 2));
        let (a, b, created) = tokio::join!(
            fx.store.gc::<Document>(&options, |_| {}),
            fx.store.gc::<Document>(&options2, |_| {}),
            fx.store.create_large(&doc),
        );
        a.unwrap();
        b.unwrap();
        created.unwrap();
        assert_eq!(
            fx.store
                .get_large_consistent(&doc.primary_key())
                .await
                .unwrap(),
            doc
        );
    }

    // What is left is collected now; then nothing dangles and nothing is orphaned.
    gc_sharded(&fx, &gc_now(), 3).await;
    let report = fx
        .store
        .verify::<Document>(&verify_opts(), |_| {})
        .await
        .unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.orphans, 0, "{report:?}");
    println!(
        "sharded gc during writes ({:?}): {writers} writers x {rounds} rounds, {} gc runs, {} deleted, verify clean over {} items",
        fx.kind,
        runs.load(Ordering::Relaxed),
        deleted.load(Ordering::Relaxed),
        report.items
    );
}
