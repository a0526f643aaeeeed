//! Versioned stores, over every backend.

use std::sync::Arc;

use futures::TryStreamExt;
use vhs::BackendExt as _;
use vhs::{Error, MultiVersionStore, Order, SingleVersionStore};

use crate::fixture::{local, Fixture};
use crate::models::{Counter, Document, VDoc};

fn single(fx: &Fixture) -> SingleVersionStore<Document> {
    SingleVersionStore::new(&fx.store, format!("{}-single", fx.tables.0)).unwrap()
}

fn multi(fx: &Fixture) -> MultiVersionStore<Document> {
    MultiVersionStore::new(&fx.store, format!("{}-multi", fx.tables.0)).unwrap()
}

fn doc(n: u32) -> Document {
    let mut d = Document::sample("p", "s");
    d.html = Some(format!("<p>version {n}</p>"));
    d.data = serde_json::json!({ "n": n });
    d
}

pub async fn single_version_put_rules(fx: Fixture) {
    let s = single(&fx);
    s.ensure_table().await.unwrap();
    let w = s.put("a", 0, &doc(0)).await.unwrap();
    assert_eq!((w.version, w.attempts), (0, 1));
    // The identical value at the same version: idempotent.
    s.put("a", 0, &doc(0)).await.unwrap();
    let err = s.put("a", 0, &doc(1)).await.unwrap_err();
    assert!(
        matches!(err, Error::VersionAlreadyExists { version: 0, .. }),
        "{err}"
    );
    // Versions may skip; lower ones are refused.
    s.put("a", 2, &doc(2)).await.unwrap();
    let err = s.put("a", 1, &doc(1)).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::HigherVersionExists {
                version: 1,
                found: 2,
                ..
            }
        ),
        "{err}"
    );
    let latest = s.get_latest("a").await.unwrap();
    assert_eq!((latest.version, latest.value), (2, doc(2)));
    // Only version 2's objects remain: the refused puts cleaned up, the accepted
    // one removed version 0's.
    let objects: Vec<String> = fx.objects().await.iter().map(|k| local(k)).collect();
    assert_eq!(objects.len(), 2, "{objects:?}");
    assert!(
        objects.iter().all(|k| k.starts_with("pk=a/attr=")),
        "{objects:?}"
    );
    assert!(w.cleanup.leftover.is_empty());
}

pub async fn single_version_put_latest_and_start(fx: Fixture) {
    let s = single(&fx).start_version(5);
    s.ensure_table().await.unwrap();
    let err = s.get_latest("x").await.unwrap_err();
    assert!(matches!(err, Error::NoVersionExists { .. }), "{err}");
    assert_eq!(s.put_latest("x", &doc(0)).await.unwrap().version, 5);
    assert_eq!(s.put_latest("x", &doc(1)).await.unwrap().version, 6);
    assert_eq!(s.get_latest("x").await.unwrap().value, doc(1));
    let w = s
        .update("x", |mut d| {
            d.data = serde_json::json!("updated");
            d
        })
        .await
        .unwrap();
    assert_eq!(w.version, 7);
    assert_eq!(s.get_latest("x").await.unwrap().value.data, "updated");
    let err = s.update("nobody", |d| d).await.unwrap_err();
    assert!(matches!(err, Error::NoVersionExists { .. }), "{err}");
    let w = s.upsert("new", || doc(9), |d| d).await.unwrap();
    assert_eq!(w.version, 5);

    let err = s.delete_version("x", 6).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    let cleanup = s.delete_version("x", 7).await.unwrap();
    assert_eq!(cleanup.deleted.len(), 2);
    assert!(matches!(
        s.get_latest("x").await.unwrap_err(),
        Error::NoVersionExists { .. }
    ));
}

pub async fn multi_version_put_get_versions(fx: Fixture) {
    let m = multi(&fx);
    m.ensure_table().await.unwrap();
    assert!(matches!(
        m.get_latest("a").await.unwrap_err(),
        Error::NoVersionExists { .. }
    ));
    for n in 0..3 {
        assert_eq!(m.put_latest("a", &doc(n)).await.unwrap().version, n as u64);
    }
    m.put("a", 10, &doc(10)).await.unwrap();
    m.put("a", 10, &doc(10)).await.unwrap(); // identical: idempotent
    let err = m.put("a", 1, &doc(99)).await.unwrap_err();
    assert!(
        matches!(err, Error::VersionAlreadyExists { version: 1, .. }),
        "{err}"
    );
    assert_eq!(m.get("a", 1).await.unwrap().value, doc(1));
    assert!(m.get("a", 5).await.unwrap_err().is_not_found());
    let latest = m.get_latest("a").await.unwrap();
    assert_eq!((latest.version, latest.value), (10, doc(10)));
    let newest: Vec<u64> = m
        .versions("a", Order::NewestFirst)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(newest, vec![10, 2, 1, 0]);
    let oldest: Vec<u64> = m
        .versions("a", Order::OldestFirst)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(oldest, vec![0, 1, 2, 10]);
    // Every version has its own objects, even with identical content.
    m.put("a", 11, &doc(10)).await.unwrap();
    let objects: Vec<String> = fx.objects().await.iter().map(|k| local(k)).collect();
    assert_eq!(objects.len(), 10, "5 versions x 2 attributes: {objects:?}");
    assert!(objects
        .iter()
        .any(|k| k.starts_with("pk=a/sk=11/attr=html/")));
    assert!(objects
        .iter()
        .any(|k| k.starts_with("pk=a/sk=10/attr=html/")));
}

pub async fn multi_version_pagination(fx: Fixture) {
    let m = multi(&fx);
    m.ensure_table().await.unwrap();
    let mut d = doc(0);
    d.html = None;
    d.image = None;
    for v in 0..1203u64 {
        // Written around the store to keep the test fast: an envelope of a value
        // without large attributes.
        let mut item = vhs::Item::new();
        item.insert("id".into(), vhs::types::AttributeValue::S("p".into()));
        item.insert(
            "version".into(),
            vhs::types::AttributeValue::N(v.to_string()),
        );
        item.insert(
            "value".into(),
            vhs::types::AttributeValue::M(vhs::Model::to_item(&d).unwrap()),
        );
        fx.raw.put_item(m.table(), item, None).await.unwrap();
    }
    let all: Vec<u64> = m
        .versions("p", Order::OldestFirst)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all, (0..1203).collect::<Vec<_>>());
    let newest: Vec<u64> = m
        .versions("p", Order::NewestFirst)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(newest.len(), 1203);
    assert_eq!(newest[0], 1202);
    assert_eq!(m.get_latest("p").await.unwrap().version, 1202);
}

pub async fn multi_version_delete_and_prune(fx: Fixture) {
    let m = multi(&fx);
    m.ensure_table().await.unwrap();
    for n in 0..5 {
        m.put_latest("a", &doc(n)).await.unwrap();
    }
    let mut other = doc(0);
    other.html = Some("other".into());
    m.put_latest("b", &other).await.unwrap();
    let cleanup = m.delete_version("a", 1).await.unwrap();
    assert_eq!(cleanup.deleted.len(), 2);
    assert!(m.delete_version("a", 1).await.unwrap_err().is_not_found());
    let pruned = m.prune("a", 2).await.unwrap();
    assert_eq!(pruned.versions, vec![2, 0]);
    assert_eq!(pruned.cleanup.deleted.len(), 4);
    let left: Vec<u64> = m
        .versions("a", Order::NewestFirst)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(left, vec![4, 3]);
    let objects: Vec<String> = fx.objects().await.iter().map(|k| local(k)).collect();
    assert_eq!(objects.len(), 6, "a@4, a@3, b@0: {objects:?}");
    assert!(objects.iter().all(|k| k.starts_with("pk=a/sk=4/")
        || k.starts_with("pk=a/sk=3/")
        || k.starts_with("pk=b/")));
    assert_eq!(m.get_latest("b").await.unwrap().value, other);
}

pub async fn dangling_latest_is_not_no_version(fx: Fixture) {
    for multi_store in [false, true] {
        let fx = Fixture::new(fx.kind).await;
        let written = if multi_store {
            let m = multi(&fx);
            m.ensure_table().await.unwrap();
            m.put_latest("a", &doc(0)).await.unwrap();
            m.get_latest("a").await.map(|_| ())
        } else {
            let s = single(&fx);
            s.ensure_table().await.unwrap();
            s.put_latest("a", &doc(0)).await.unwrap();
            s.get_latest("a").await.map(|_| ())
        };
        written.unwrap();
        let html = fx
            .objects()
            .await
            .into_iter()
            .find(|k| k.contains("attr=html"))
            .unwrap();
        fx.lose(&html).await;
        let err = if multi_store {
            multi(&fx).get_latest("a").await.unwrap_err()
        } else {
            single(&fx).get_latest("a").await.unwrap_err()
        };
        assert!(matches!(err, Error::DanglingPointer { .. }), "{err}");
    }
}

pub async fn clashing_large_attribute_is_rejected(fx: Fixture) {
    #[derive(vhs::Model, Debug)]
    struct Clash {
        #[vhs(hash_key)]
        k: String,
        #[large]
        value: Option<String>,
    }
    let err = SingleVersionStore::<Clash>::new(&fx.store, "t").unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    let err = single(&fx).put("", 0, &doc(0)).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
}

/// Two writers race to create the same item with identical content: exactly one
/// wins, and the loser's cleanup never deletes the winner's object (same content,
/// same key). Repeated to vary the interleaving.
pub async fn racing_identical_creates(fx: Fixture) {
    for round in 0..10 {
        let mut d = Document::sample("race", &round.to_string());
        d.html = Some("identical".into());
        let (a, b) = tokio::join!(fx.store.create_large(&d), fx.store.create_large(&d));
        let wins = [a.is_ok(), b.is_ok()].iter().filter(|w| **w).count();
        assert_eq!(wins, 1, "round {round}: {a:?} {b:?}");
        let loser = if a.is_ok() { b } else { a }.unwrap_err();
        assert!(matches!(loser, Error::AlreadyExists { .. }), "{loser}");
        assert_eq!(
            fx.store
                .get_large(&vhs::Model::primary_key(&d))
                .await
                .unwrap(),
            d
        );
    }
    assert_eq!(fx.objects().await.len(), 20);
}

/// Tasks and updates per task of the concurrency tests: the full size on the
/// in-memory backend and ministack; moto (a third of ministack's speed) runs the
/// same test with fewer updates per task as the cross-check.
fn contention(kind: crate::fixture::Kind) -> (u32, u32) {
    let soak = std::env::var("VHS_SOAK").is_ok_and(|v| v == "1");
    if kind == crate::fixture::Kind::Memory {
        (16, 100)
    } else if !soak {
        // Soak scale (VHS_SOAK=1) runs the full contention on the emulators.
        (4, 10)
    } else if std::env::var("VHS_TEST_EMULATOR").as_deref() == Ok("moto") {
        (16, 15)
    } else {
        (16, 100)
    }
}

/// 16 tasks each doing 100 `update`s of one id, each incrementing a counter
/// inside a large JSON attribute: no update is lost.
pub async fn concurrent_updates_lose_nothing(fx: Fixture) {
    let (tasks, per_task) = contention(fx.kind);
    let s = Arc::new(
        SingleVersionStore::<Counter>::new(&fx.store, format!("{}-ctr", fx.tables.0)).unwrap(),
    );
    s.ensure_table().await.unwrap();
    s.put("c", 0, &Counter::new(0)).await.unwrap();
    let started = std::time::Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let s = s.clone();
            tokio::spawn(async move {
                let (mut ok, mut attempts, mut leftovers) = (0u64, 0u64, Vec::new());
                for _ in 0..per_task {
                    let w = s
                        .update("c", |mut c| {
                            let state = c.state.as_mut().unwrap();
                            state.0.count += 1;
                            state.0.writers.push(t);
                            c.label = format!("count {}", state.0.count);
                            c
                        })
                        .await
                        .expect("update under contention eventually wins");
                    ok += 1;
                    attempts += w.attempts as u64;
                    leftovers.extend(w.cleanup.leftover_keys());
                }
                (ok, attempts, leftovers)
            })
        })
        .collect();
    let (mut ok, mut attempts, mut leftovers) = (0, 0, Vec::new());
    for h in handles {
        let (o, a, l) = h.await.unwrap();
        ok += o;
        attempts += a;
        leftovers.extend(l);
    }
    let latest = s.get_latest("c").await.unwrap();
    assert_eq!(latest.value.count(), ok, "no lost update");
    assert_eq!(latest.version, ok, "versions contiguous from 0");
    assert_eq!(ok, (tasks * per_task) as u64);
    let state = latest.value.state.unwrap().0;
    for t in 0..tasks {
        assert_eq!(
            state.writers.iter().filter(|w| **w == t).count() as u32,
            per_task
        );
    }
    // Only the latest objects remain, plus whatever the results reported.
    let mut expected: Vec<String> = fx.objects().await;
    expected.retain(|k| !leftovers.contains(k));
    assert_eq!(expected.len(), 1, "{expected:?}");
    println!(
        "concurrent update ({kind:?}): {tasks} tasks x {per_task} updates = {ok} updates, {attempts} attempts, {} retries after version conflicts, in {:.1} s",
        attempts - ok,
        started.elapsed().as_secs_f64(),
        kind = fx.kind,
    );
}

/// 16 tasks each doing 100 `put_latest`s in the multi-version store: every version
/// appears exactly once.
pub async fn concurrent_put_latest_writes_each_version_once(fx: Fixture) {
    let (tasks, per_task) = contention(fx.kind);
    let m = Arc::new(
        MultiVersionStore::<Counter>::new(&fx.store, format!("{}-mv", fx.tables.0)).unwrap(),
    );
    m.ensure_table().await.unwrap();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let m = m.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                let mut attempts = 0u64;
                for i in 0..per_task {
                    let mut c = Counter::new((t * 1000 + i) as u64);
                    c.label = format!("{t}/{i}");
                    let w = m
                        .put_latest("c", &c)
                        .await
                        .expect("put_latest eventually wins");
                    attempts += w.attempts as u64;
                    mine.push(w.version);
                }
                (mine, attempts)
            })
        })
        .collect();
    let mut versions = Vec::new();
    let mut attempts = 0;
    for h in handles {
        let (v, a) = h.await.unwrap();
        versions.extend(v);
        attempts += a;
    }
    versions.sort();
    let n = (tasks * per_task) as u64;
    assert_eq!(
        versions,
        (0..n).collect::<Vec<_>>(),
        "every version exactly once"
    );
    let stored: Vec<u64> = m
        .versions("c", Order::OldestFirst)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(stored, versions);
    // Each version holds what its writer wrote.
    for v in [0, n / 2, n - 1] {
        let got = m.get("c", v).await.unwrap();
        let c = got.value.count();
        assert_eq!(got.value.label, format!("{}/{}", c / 1000, c % 1000));
    }
    assert_eq!(
        fx.objects().await.len() as u64,
        n,
        "one object per version, none orphaned"
    );
    println!(
        "concurrent put_latest ({:?}): {tasks} tasks x {per_task} = {n} versions, {attempts} attempts, {} retries",
        fx.kind,
        attempts - n
    );
}

/// `#[vhs(version)]`: optimistic locking for the transactional API. A stale
/// writer's update fails with `VersionConflict` (retryable, carrying the version it
/// found) and leaves the stored item and all its objects untouched.
pub async fn stale_writer_gets_version_conflict(fx: Fixture) {
    let v0 = VDoc {
        id: "d".into(),
        version: 0,
        body: Some("body 0".into()),
        title: "t0".into(),
    };
    VDoc::create_large(&fx.store, &v0).await.unwrap();
    let key = VDoc::key("d");

    let err = VDoc::update_large(&fx.store, &key, VDoc::changes().set_title("x"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput { .. }),
        "must say which version: {err}"
    );

    // A and B both read version 0; B writes first.
    let read_by_a = VDoc::get_large(&fx.store, &key).await.unwrap();
    let b = VDoc::changes()
        .set_body(Some("body by B".into()))
        .if_version(read_by_a.version);
    VDoc::update_large(&fx.store, &key, b).await.unwrap();
    let after_b = VDoc::get_large_consistent(&fx.store, &key).await.unwrap();
    assert_eq!(
        (after_b.version, after_b.body.as_deref()),
        (1, Some("body by B"))
    );
    let objects = fx.objects().await;
    let item = fx.item(&key).await.unwrap();

    let a = VDoc::changes()
        .set_body(Some("body by A".into()))
        .set_title("A")
        .if_version(read_by_a.version);
    let err = VDoc::update_large(&fx.store, &key, a).await.unwrap_err();
    match &err {
        Error::VersionConflict {
            expected, found, ..
        } => assert_eq!((*expected, *found), (0, Some(1))),
        other => panic!("{other}"),
    }
    assert!(err.is_retryable());
    assert_eq!(fx.item(&key).await.unwrap(), item, "item untouched");
    assert_eq!(
        fx.objects().await,
        objects,
        "objects untouched, A's removed"
    );

    // Retrying from a fresh read succeeds.
    let fresh = VDoc::get_large_consistent(&fx.store, &key).await.unwrap();
    let a = VDoc::changes()
        .set_body(Some("body by A".into()))
        .if_version(fresh.version);
    VDoc::update_large(&fx.store, &key, a).await.unwrap();
    let last = VDoc::get_large_consistent(&fx.store, &key).await.unwrap();
    assert_eq!((last.version, last.body.as_deref()), (2, Some("body by A")));
    assert_eq!(fx.objects().await.len(), 1);
}

/// A read-modify-write sends only the large values it changed: the others are
/// already the objects the item it read points to.
pub async fn single_version_update_sends_only_changed_values(fx: Fixture) {
    let s = single(&fx);
    s.ensure_table().await.unwrap();
    s.put("u", 0, &doc(0)).await.unwrap();
    let before = fx.objects().await;
    let puts = |fx: &Fixture| {
        fx.faults
            .calls()
            .iter()
            .filter(|c| **c == vhs::Op::PutObject)
            .count()
    };

    fx.faults.reset();
    let w = s
        .update("u", |mut d| {
            d.data = serde_json::json!({ "n": 99 });
            d
        })
        .await
        .unwrap();
    assert_eq!(w.version, 1);
    assert_eq!(puts(&fx), 0, "{:?}", fx.faults.calls());
    assert_eq!(fx.objects().await, before, "no object written or deleted");
    let latest = s.get_latest("u").await.unwrap();
    assert_eq!(latest.value.data, serde_json::json!({ "n": 99 }));
    assert_eq!(latest.value.html, doc(0).html);

    fx.faults.reset();
    s.update("u", |mut d| {
        d.html = Some("<p>changed</p>".into());
        d
    })
    .await
    .unwrap();
    assert_eq!(puts(&fx), 1, "only html: {:?}", fx.faults.calls());
    let latest = s.get_latest("u").await.unwrap();
    assert_eq!(latest.value.html.as_deref(), Some("<p>changed</p>"));
    assert_eq!(latest.value.image, doc(0).image);
}

/// Values kept in the item (`#[large(inline_below = N)]`) in both versioned
/// stores: nothing in S3 for them, read back whole.
pub async fn versioned_stores_keep_small_values_inline(fx: Fixture) {
    use crate::models::Memo;
    let s = SingleVersionStore::<Memo>::new(&fx.store, format!("{}-memo-s", fx.tables.0)).unwrap();
    let m = MultiVersionStore::<Memo>::new(&fx.store, format!("{}-memo-m", fx.tables.0)).unwrap();
    s.ensure_table().await.unwrap();
    m.ensure_table().await.unwrap();
    let small = Memo::with("a", 10, 1);
    s.put("a", 0, &small).await.unwrap();
    m.put("a", 0, &small).await.unwrap();
    assert_eq!(fx.objects().await, Vec::<String>::new());
    assert_eq!(s.get_latest("a").await.unwrap().value, small);
    assert_eq!(m.get("a", 0).await.unwrap().value, small);
    let big = Memo::with("a", 5000, 2);
    s.put("a", 1, &big).await.unwrap();
    m.put("a", 1, &big).await.unwrap();
    assert_eq!(fx.objects().await.len(), 2, "one body object per store");
    assert_eq!(s.get_latest("a").await.unwrap().value, big);
    assert_eq!(m.get("a", 1).await.unwrap().value, big);
    assert_eq!(m.get("a", 0).await.unwrap().value, small);
}

/// A versioned update that loses its first attempt to another writer reads
/// again, but downloads only the values that changed: bodies are kept by key
/// (keys name their content) for the whole call.
pub async fn update_retry_downloads_only_changed_values(fx: Fixture) {
    let s = single(&fx);
    s.ensure_table().await.unwrap();
    s.put("a", 0, &doc(0)).await.unwrap();
    let rival = single(&fx);
    let handle = tokio::runtime::Handle::current();
    let mut calls = 0;
    fx.faults.reset();
    let written = s
        .update("a", |mut d| {
            calls += 1;
            if calls == 1 {
                // Another writer takes the next version first, changing only
                // `html`: this attempt fails, the next one reads version 1.
                tokio::task::block_in_place(|| {
                    handle.block_on(rival.update("a", |mut d| {
                        d.html = Some("<p>rival</p>".into());
                        d
                    }))
                })
                .unwrap();
            }
            d.data = serde_json::json!({ "calls": calls });
            d
        })
        .await
        .unwrap();
    assert_eq!((written.version, written.attempts, calls), (2, 2, 2));
    let latest = s.get_latest("a").await.unwrap().value;
    assert_eq!(latest.html.as_deref(), Some("<p>rival</p>"));
    // Ours: html + image on the first attempt, html alone on the second; the
    // rival's own read: html + image.
    let gets = fx
        .faults
        .calls()
        .iter()
        .filter(|c| **c == vhs::Op::GetObject)
        .count();
    assert_eq!(gets, 2 + 1 + 2 + 2, "the last read was get_latest");
}
