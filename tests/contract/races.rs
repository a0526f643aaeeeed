//! Data safety: the schedules that lost data before the deletion protocol, as
//! tests. Cross-table cases run sequentially; each race runs for many rounds
//! (`rounds()`: a small count by default, 300 with `VHS_SOAK=1`) with both writers
//! sending identical content where that is the danger; the interleaving explorer
//! runs every interleaving of the backend calls of two operations on one item plus
//! a GC pass, on the memory backend.

use std::time::Duration;

use vhs::maintenance::GcOptions;
use vhs::{Error, MemoryBackend, Model, RetryPolicy, SingleVersionStore, Store};

use crate::explore::{explore, ExploreOptions, ExploreReport, Gate, ParkingBackend, World};
use crate::faults::{gc_now, gc_reap};
use crate::fixture::{Fixture, Kind};
use crate::models::{Counter, Document, Note, Page};

/// Rounds per race: 300 with `VHS_SOAK=1` (what `.ci/run` sets), fewer by default
/// so that `cargo test` stays short.
pub fn rounds(kind: Kind) -> usize {
    if std::env::var("VHS_SOAK").is_ok_and(|v| v == "1") {
        300
    } else if kind == Kind::Memory {
        60
    } else {
        15
    }
}

/// The note with key `pk` reads back whole, or is absent: never a dangling pointer.
async fn readable(store: &Store, pk: &str) -> Result<Option<Note>, String> {
    match store.get_large_consistent(&Note::key(pk)).await {
        Ok(note) => Ok(Some(note)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(format!("note {pk}: {e}")),
    }
}

/// Invariants 1 and 2 for the notes table: verify finds nothing broken, and after
/// a GC that takes over everything, exactly the referenced objects remain.
async fn settled(store: &Store) -> Result<(), String> {
    let report = store
        .verify::<Note>(&crate::faults::verify_opts(), |_| {})
        .await
        .map_err(|e| e.to_string())?;
    if !report.is_clean() {
        return Err(format!("verify: {report:?}"));
    }
    store
        .gc::<Note>(&gc_reap(), |_| {})
        .await
        .map_err(|e| e.to_string())?;
    let report = store
        .verify::<Note>(&crate::faults::verify_opts(), |_| {})
        .await
        .map_err(|e| e.to_string())?;
    if !report.is_clean() || report.orphans != 0 {
        return Err(format!("after GC: {report:?}"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// 1. Tables sharing a store never share objects.
// ---------------------------------------------------------------------------------

pub async fn tables_never_share_objects(fx: Fixture) {
    let doc = Document::sample("k", "s");
    let page = Page {
        pk: "k".into(),
        sk: "s".into(),
        html: doc.html.clone(),
    };
    let staged_doc = fx.store.create_large(&doc).await.unwrap();
    let staged_page = fx.store.create_large(&page).await.unwrap();
    let (a, b) = (
        &staged_doc.object("html").unwrap().pointer,
        &staged_page.object("html").unwrap().pointer,
    );
    assert_ne!(a.key, b.key, "identical content, two tables: two objects");
    assert!(staged_page.object("html").unwrap().created);

    // Deleting in one table leaves the other whole, and its GC sees nothing of the other.
    fx.store.delete_large(&doc.primary_key()).await.unwrap();
    assert_eq!(fx.store.get_large(&page.primary_key()).await.unwrap(), page);
    let gc = fx.store.gc::<Document>(&gc_now(), |_| {}).await.unwrap();
    assert!(gc.deleted.is_empty(), "{gc:?}");
    assert_eq!(fx.store.get_large(&page.primary_key()).await.unwrap(), page);
    let gc = fx.store.gc::<Page>(&gc_now(), |_| {}).await.unwrap();
    assert!(gc.deleted.is_empty(), "{gc:?}");
    assert_eq!(fx.store.get_large(&page.primary_key()).await.unwrap(), page);
}

pub async fn shared_prefixes_are_refused_at_build(fx: Fixture) {
    let build = |f: fn(vhs::StoreBuilder) -> vhs::StoreBuilder| {
        f(Store::builder(MemoryBackend::new(), "bkt").prefix("p")).build()
    };
    let err = build(|b| b.table_prefix("a", "x").table_prefix("b", "x")).unwrap_err();
    assert!(err.to_string().contains("share the object prefix"), "{err}");
    let err = build(|b| b.table_prefix("a", "x").table_prefix("b", "x/y")).unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    // A table named like another's configured prefix.
    let err = build(|b| b.table("notes", "n").table_prefix("other", "p/n")).unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    let store = build(|b| b.table_prefix("legacy", "docs/v1")).unwrap();
    assert_eq!(store.table_prefix("legacy").unwrap(), "docs/v1");
    assert_eq!(store.table_prefix("other").unwrap(), "p/other");

    // A model pointed at another library's prefix (pynamodb_mate's layout has no
    // table segment) reads and writes there.
    let table = fx.store.table_name::<Note>().to_owned();
    let store = Store::builder(fx.faults.clone(), fx.bucket.clone())
        .table_for::<Note>(table.clone())
        .table_prefix(table, "mate/documents")
        .build()
        .unwrap();
    let staged = store.create_large(&Note::new("m", "hello")).await.unwrap();
    let key = &staged.object("html").unwrap().pointer.key;
    assert!(
        key.starts_with("mate/documents/pk=m/attr=html/md5="),
        "{key}"
    );
    assert_eq!(
        store
            .get_large(&Note::key("m"))
            .await
            .unwrap()
            .html
            .as_deref(),
        Some("hello")
    );
}

// ---------------------------------------------------------------------------------
// 2. Races with identical content.
// ---------------------------------------------------------------------------------

/// Two unversioned updates at once, one to new content Y, the other back to the
/// current content X (a retry of an earlier update does exactly this).
pub async fn race_update_new_and_back_to_old(fx: Fixture) {
    let n = rounds(fx.kind);
    for round in 0..n {
        let pk = format!("r{round}");
        fx.store.create_large(&Note::new(&pk, "X")).await.unwrap();
        let key = Note::key(&pk);
        let (a, b) = tokio::join!(
            fx.store
                .update_large(&key, Note::changes().set_html(Some("Y".into()))),
            fx.store
                .update_large(&key, Note::changes().set_html(Some("X".into()))),
        );
        a.unwrap();
        b.unwrap();
        let note = readable(&fx.store, &pk).await.unwrap().expect("present");
        assert!(matches!(note.html.as_deref(), Some("X" | "Y")));
    }
    settled(&fx.store).await.unwrap();
    println!(
        "race_update_new_and_back_to_old ({:?}): {n} rounds, 0 dangling",
        fx.kind
    );
}

/// GC (grace 0) racing a writer that re-puts the exact content of an orphan.
pub async fn race_gc_with_reput_of_orphan(fx: Fixture) {
    let fx = Fixture::with(fx.kind, |b| b.clean_up_when_failed(false)).await;
    let n = rounds(fx.kind);
    for round in 0..n {
        let pk = format!("r{round}");
        // An orphan: a create whose PutItem failed, with cleanup off.
        fx.faults
            .inject(vhs::Op::PutItem, 1, vhs::Fault::Fail { retryable: false });
        fx.store
            .create_large(&Note::new(&pk, "X"))
            .await
            .unwrap_err();
        fx.faults.reset();
        let (options, note) = (gc_now(), Note::new(&pk, "X"));
        let (gc, created) = tokio::join!(
            fx.store.gc::<Note>(&options, |_| {}),
            fx.store.create_large(&note),
        );
        gc.unwrap();
        created.unwrap();
        let note = readable(&fx.store, &pk).await.unwrap().expect("created");
        assert_eq!(note.html.as_deref(), Some("X"));
    }
    settled(&fx.store).await.unwrap();
    println!(
        "race_gc_with_reput_of_orphan ({:?}): {n} rounds, 0 dangling",
        fx.kind
    );
}

/// `delete_large` racing a re-create with identical content.
pub async fn race_delete_and_identical_recreate(fx: Fixture) {
    let fx = Fixture::with(fx.kind, |b| b.wait(fast_wait())).await;
    let n = rounds(fx.kind);
    for round in 0..n {
        let pk = format!("r{round}");
        fx.store.create_large(&Note::new(&pk, "X")).await.unwrap();
        let (key, note) = (Note::key(&pk), Note::new(&pk, "X"));
        let (deleted, created) =
            tokio::join!(fx.store.delete_large(&key), fx.store.create_large(&note),);
        deleted.unwrap();
        let present = readable(&fx.store, &pk).await.unwrap();
        match created {
            Ok(_) => assert_eq!(present, Some(Note::new(&pk, "X"))),
            Err(Error::AlreadyExists { .. }) => assert_eq!(present, None),
            Err(e) => panic!("round {round}: {e}"),
        }
    }
    settled(&fx.store).await.unwrap();
    println!(
        "race_delete_and_identical_recreate ({:?}): {n} rounds, 0 dangling",
        fx.kind
    );
}

/// Twin creates of identical content; one's PutItem fails transiently (so its
/// cleanup deletes the object it created) while the other reuses that object.
pub async fn race_twin_creates_one_failing(fx: Fixture) {
    let n = rounds(fx.kind);
    let faulty = vhs::FaultyBackend::new(fx.raw.clone());
    let table = fx.store.table_name::<Note>().to_owned();
    let failing = Store::builder(faulty.clone(), fx.bucket.clone())
        .table_for::<Note>(table)
        .build()
        .unwrap();
    for round in 0..n {
        let pk = format!("r{round}");
        faulty.reset();
        faulty.inject(vhs::Op::PutItem, 1, vhs::Fault::Fail { retryable: false });
        let note = Note::new(&pk, "X");
        let (a, b) = tokio::join!(failing.create_large(&note), fx.store.create_large(&note));
        assert!(a.is_err());
        b.unwrap();
        let note = readable(&fx.store, &pk).await.unwrap().expect("created");
        assert_eq!(note.html.as_deref(), Some("X"));
    }
    settled(&fx.store).await.unwrap();
    println!(
        "race_twin_creates_one_failing ({:?}): {n} rounds, 0 dangling",
        fx.kind
    );
}

/// A versioned `update` whose PutItem/UpdateItem response is lost applies its
/// closure once: the counter goes up by exactly one per call.
pub async fn lost_responses_apply_versioned_updates_once(fx: Fixture) {
    let s = SingleVersionStore::<Counter>::new(&fx.store, format!("{}-lost", fx.tables.0)).unwrap();
    s.ensure_table().await.unwrap();
    s.put("c", 0, &Counter::new(0)).await.unwrap();
    for (i, op) in [vhs::Op::UpdateItem, vhs::Op::GetItem, vhs::Op::PutObject]
        .into_iter()
        .enumerate()
    {
        fx.faults.reset();
        fx.faults.inject(op, 1, vhs::Fault::LoseResponse);
        let mut applied = 0;
        let w = s
            .update("c", |mut c| {
                applied += 1;
                c.state.as_mut().unwrap().0.count += 1;
                c
            })
            .await
            .unwrap();
        let latest = s.get_latest("c").await.unwrap();
        assert_eq!(latest.value.count(), i as u64 + 1, "{op:?}: counted once");
        assert_eq!(latest.version, w.version);
        assert!(applied >= 1);
    }
    // put_latest never writes one value at two versions.
    fx.faults.reset();
    fx.faults
        .inject(vhs::Op::UpdateItem, 1, vhs::Fault::LoseResponse);
    let before = s.get_latest("c").await.unwrap().version;
    let w = s.put_latest("c", &Counter::new(100)).await.unwrap();
    assert_eq!(w.version, before + 1);
    assert_eq!(s.get_latest("c").await.unwrap().version, before + 1);
}

fn fast_wait() -> RetryPolicy {
    RetryPolicy::attempts(200).delays(Duration::from_millis(1), Duration::from_millis(20))
}

// ---------------------------------------------------------------------------------
// 3. Every interleaving.
// ---------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    Create,
    UpdateNew,
    UpdateOld,
    Delete,
    Gc,
}

async fn act(store: Store, act: Act) -> Result<(), String> {
    let key = Note::key("n");
    let r = match act {
        Act::Create => store.create_large(&Note::new("n", "X")).await.map(drop),
        Act::UpdateNew => store
            .update_large(&key, Note::changes().set_html(Some("Y".into())))
            .await
            .map(drop),
        Act::UpdateOld => store
            .update_large(&key, Note::changes().set_html(Some("X".into())))
            .await
            .map(drop),
        Act::Delete => store.delete_large(&key).await.map(drop),
        Act::Gc => store.gc::<Note>(&gc_now(), |_| {}).await.map(drop),
    };
    // The bookkeeping after a delete, run in this actor.
    store.flush().await;
    match r {
        // A writer that waited its whole policy for a parked deleter gives up with
        // `Busy`: retryable, nothing written. The invariants are what is checked.
        Ok(())
        | Err(Error::NotFound { .. })
        | Err(Error::AlreadyExists { .. })
        | Err(Error::Busy { .. }) => Ok(()),
        Err(e) => Err(format!("{act:?}: {e}")),
    }
}

/// Invariant 2 restored: after a GC that takes over everything, the bucket holds
/// exactly the objects the item references (read straight from the backend).
async fn collected(store: &Store, memory: &MemoryBackend) -> Result<(), String> {
    use vhs::BackendExt as _;
    store
        .gc::<Note>(&gc_reap(), |_| {})
        .await
        .map_err(|e| e.to_string())?;
    let objects: Vec<String> = memory
        .list_objects("bkt", "", None)
        .await
        .map_err(|e| e.to_string())?
        .objects
        .into_iter()
        .map(|o| o.key)
        .filter(|k| !k.ends_with(crate::fixture::SETTINGS))
        .collect();
    let item = memory
        .get_item(store.table_name::<Note>(), &Note::key("n").to_item(), true)
        .await
        .map_err(|e| e.to_string())?;
    let referenced: Vec<String> = item
        .filter(|i| !i.contains_key("vhs:ph"))
        .and_then(|i| i.get("html").and_then(|v| v.as_s().ok()).cloned())
        .map(|uri| uri.trim_start_matches("s3://bkt/").to_owned())
        .into_iter()
        .collect();
    if objects != referenced {
        return Err(format!(
            "after GC: objects {objects:?}, referenced {referenced:?}"
        ));
    }
    Ok(())
}

/// A fresh world: memory backend, the note present (content X) or absent.
async fn world(gate: Gate, present: bool) -> (Store, MemoryBackend) {
    let memory = MemoryBackend::new();
    // Two looks at a deletion in progress, then `Busy`: each look is a call to
    // interleave, and more would only multiply the schedules.
    let zero = RetryPolicy::attempts(2).delays(Duration::ZERO, Duration::ZERO);
    // Background jobs run in `flush`, inside the actor that calls it: the
    // explorer sees (and interleaves) every call.
    let store = Store::builder(ParkingBackend::new(memory.clone(), &gate), "bkt")
        .wait(zero)
        .background(vhs::Background::OnFlush)
        .build()
        .unwrap();
    store.ensure_bucket().await.unwrap();
    store.ensure_table::<Note>().await.unwrap();
    if present {
        store.create_large(&Note::new("n", "X")).await.unwrap();
    }
    (store, memory)
}

async fn explore_pair(acts: &[Act], present: bool, options: &ExploreOptions) -> ExploreReport {
    let acts = acts.to_vec();
    explore(
        options,
        |gate| {
            let acts = acts.clone();
            async move {
                let (store, memory) = world(gate, present).await;
                let mut w = World::new((store.clone(), memory));
                for a in acts {
                    w = w.actor(act(store.clone(), a));
                }
                w
            }
        },
        |(store, memory), results: Vec<Result<(), String>>| async move {
            for r in results {
                r?;
            }
            readable(&store, "n").await?;
            collected(&store, &memory).await
        },
    )
    .await
}

/// Every interleaving of the backend calls of two operations on one item, the
/// cleanup they trigger included, for each pair of operations, with the item
/// present and absent; then each pair again with a GC pass as a third actor, under
/// a preemption bound. Prints the schedule counts.
pub async fn every_interleaving_keeps_every_pointer(fx: Fixture) {
    if fx.kind != Kind::Memory {
        return; // the explorer drives the in-memory backend
    }
    let acts = [Act::Create, Act::UpdateNew, Act::UpdateOld, Act::Delete];
    let soak = std::env::var("VHS_SOAK").is_ok_and(|v| v == "1");
    // The bound of each run: every interleaving of two operations, except the
    // largest space (two updates of a present item, ~23,000 schedules), which by
    // default gets at most two preemptions (all of them at soak scale); with a GC
    // pass as a third actor, at most one preemption, for the pairs where a GC
    // deletion meets a reuse of identical content.
    let budget = |pair: &[Act], present: bool| -> Option<Option<usize>> {
        let big = present && pair == [Act::UpdateNew, Act::UpdateOld];
        if !pair.contains(&Act::Gc) {
            return Some((big && !soak).then_some(2));
        }
        [
            [Act::Create, Act::Delete, Act::Gc],
            [Act::UpdateOld, Act::Delete, Act::Gc],
        ]
        .iter()
        .any(|p| p == pair)
        .then_some(Some(1))
    };
    let (mut total, mut lines) = (0, Vec::new());
    for (i, a) in acts.iter().enumerate() {
        for b in &acts[i..] {
            for present in [true, false] {
                for with_gc in [false, true] {
                    let mut pair = vec![*a, *b];
                    if with_gc {
                        pair.push(Act::Gc);
                    }
                    let Some(bound) = budget(&pair, present) else {
                        continue;
                    };
                    let options = ExploreOptions {
                        preemption_bound: bound,
                        max_schedules: 200_000,
                        ..ExploreOptions::default()
                    };
                    let report = explore_pair(&pair, present, &options).await;
                    report.assert_ok();
                    assert!(!report.hit_max_schedules, "{pair:?}: {report}");
                    total += report.schedules;
                    lines.push(format!(
                        "{pair:?} item {}: {} schedules ({})",
                        if present { "present" } else { "absent" },
                        report.schedules,
                        match bound {
                            None => "all".to_owned(),
                            Some(n) => format!("at most {n} preemptions"),
                        }
                    ));
                }
            }
        }
    }
    // Two read-modify-write loops of the versioned store: at most one preemption by
    // default, two at soak scale.
    let bound = if soak { 2 } else { 1 };
    let versioned = explore_versioned(bound).await;
    versioned.assert_ok();
    assert!(!versioned.hit_max_schedules, "{versioned}");
    total += versioned.schedules;
    lines.push(format!(
        "[VersionedUpdate, VersionedUpdate] item present: {} schedules (at most {bound} preemptions)",
        versioned.schedules
    ));
    println!("{}\ninterleavings explored: {total}", lines.join("\n"));
}

/// Two versioned `update`s of one id, every interleaving with at most
/// `preemptions` preemptions: the counter ends at +2 and no orphan is left.
async fn explore_versioned(preemptions: usize) -> ExploreReport {
    explore(
        &ExploreOptions {
            preemption_bound: Some(preemptions),
            max_schedules: 200_000,
            ..ExploreOptions::default()
        },
        |gate| async move {
            let (store, memory) = world(gate, false).await;
            let s = SingleVersionStore::<Counter>::new(&store, "counters")
                .unwrap()
                .retry_policy(RetryPolicy::attempts(20).delays(Duration::ZERO, Duration::ZERO));
            s.ensure_table().await.unwrap();
            s.put("c", 0, &Counter::new(0)).await.unwrap();
            let s = std::rc::Rc::new(s);
            let mut w = World::new((s.clone(), memory));
            for _ in 0..2 {
                let s = s.clone();
                w = w.actor(async move {
                    s.update("c", |mut c| {
                        c.state.as_mut().unwrap().0.count += 1;
                        c
                    })
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
                });
            }
            w
        },
        |(s, _memory), results: Vec<Result<(), String>>| async move {
            for r in results {
                r?;
            }
            let latest = s.get_latest("c").await.map_err(|e| e.to_string())?;
            if latest.value.count() != 2 || latest.version != 2 {
                return Err(format!("lost or doubled update: {latest:?}"));
            }
            let gc = s
                .gc(&GcOptions::default().grace(Duration::ZERO), |_| {})
                .await
                .map_err(|e| e.to_string())?;
            if !gc.deleted.is_empty() {
                return Err(format!("orphans left: {gc:?}"));
            }
            Ok(())
        },
    )
    .await
}

/// The fault sweep of the versioned stores: every call N of a single-version
/// `update`, a multi-version `put_latest` and `delete_version`, failed, with its
/// response lost, or as a crash. After each: the closure's effect is in the latest
/// value at most once (exactly once when the call succeeded), no value sits at two
/// versions, every pointer resolves, and GC (taking over what a crash left) leaves
/// exactly the referenced objects.
pub async fn versioned_every_failure_point(fx: Fixture) {
    use vhs::{Fault, MultiVersionStore};
    let faults = [
        ("fail", Fault::Fail { retryable: false }),
        ("lost", Fault::LoseResponse),
        ("crash", Fault::Crash),
    ];
    let mut rows = 0;
    for op in ["single-update", "multi-put-latest", "multi-delete-version"] {
        for (name, fault) in faults {
            for n in 1.. {
                let fx = Fixture::new(fx.kind).await;
                let table = format!("{}-sweep", fx.tables.0);
                let (calls, ok) = if op == "single-update" {
                    let s = SingleVersionStore::<Counter>::new(&fx.store, table).unwrap();
                    s.ensure_table().await.unwrap();
                    s.put("c", 0, &Counter::new(0)).await.unwrap();
                    fx.faults.reset();
                    fx.faults.inject_nth_call(n, fault);
                    let result = s
                        .update("c", |mut c| {
                            c.state.as_mut().unwrap().0.count += 1;
                            c
                        })
                        .await;
                    let calls = fx.faults.calls();
                    fx.faults.reset();
                    let latest = s.get_latest("c").await.unwrap();
                    let count = latest.value.count();
                    assert_eq!(
                        count, latest.version,
                        "{op} n={n} {name}: one step per version"
                    );
                    assert!(count <= 1, "{op} n={n} {name}: applied twice");
                    if result.is_ok() {
                        assert_eq!(count, 1, "{op} n={n} {name}");
                    }
                    let report = s
                        .verify(&crate::faults::verify_opts(), |_| {})
                        .await
                        .unwrap();
                    assert!(report.is_clean(), "{op} n={n} {name}: {report:?}");
                    s.gc(&gc_reap(), |_| {}).await.unwrap();
                    let report = s
                        .verify(&crate::faults::verify_opts(), |_| {})
                        .await
                        .unwrap();
                    assert_eq!(report.orphans, 0, "{op} n={n} {name}: {report:?}");
                    (calls.len(), result.is_ok())
                } else {
                    let m = MultiVersionStore::<Counter>::new(&fx.store, table).unwrap();
                    m.ensure_table().await.unwrap();
                    m.put("c", 0, &Counter::new(0)).await.unwrap();
                    m.put("c", 1, &Counter::new(1)).await.unwrap();
                    fx.faults.reset();
                    fx.faults.inject_nth_call(n, fault);
                    let result = if op == "multi-put-latest" {
                        m.put_latest("c", &Counter::new(7)).await.map(drop)
                    } else {
                        m.delete_version("c", 0).await.map(drop)
                    };
                    let calls = fx.faults.calls();
                    fx.faults.reset();
                    use futures::TryStreamExt;
                    let versions: Vec<u64> = m
                        .versions("c", vhs::Order::OldestFirst)
                        .try_collect()
                        .await
                        .unwrap();
                    if op == "multi-put-latest" {
                        let sevens = {
                            let mut k = 0;
                            for v in &versions {
                                if m.get("c", *v).await.unwrap().value.count() == 7 {
                                    k += 1;
                                }
                            }
                            k
                        };
                        assert!(sevens <= 1, "{op} n={n} {name}: one value at two versions");
                        if result.is_ok() {
                            assert_eq!(versions, vec![0, 1, 2], "{op} n={n} {name}");
                        }
                    } else if result.is_ok() {
                        assert_eq!(versions, vec![1], "{op} n={n} {name}");
                    }
                    m.get_latest("c").await.unwrap();
                    let report = m
                        .verify(&crate::faults::verify_opts(), |_| {})
                        .await
                        .unwrap();
                    assert!(report.is_clean(), "{op} n={n} {name}: {report:?}");
                    m.gc(&gc_reap(), |_| {}).await.unwrap();
                    let report = m
                        .verify(&crate::faults::verify_opts(), |_| {})
                        .await
                        .unwrap();
                    assert_eq!(report.orphans, 0, "{op} n={n} {name}: {report:?}");
                    (calls.len(), result.is_ok())
                };
                if n > calls {
                    break;
                }
                rows += 1;
                let _ = ok;
            }
        }
    }
    println!(
        "versioned fault sweep ({:?}): {rows} failure points, invariants held",
        fx.kind
    );
}
