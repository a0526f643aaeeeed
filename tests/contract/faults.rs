//! Every failure point of every operation, with the cleanup flags on and off,
//! asserting the exact objects left in the bucket and the item state.
//!
//! Faults are injected by wrapping the backend (`FaultyBackend`); uploads run one at
//! a time here so that "the second PutObject" is a well-defined call.

use vhs::BackendExt as _;
use vhs::{Error, Fault, Model, Op};

use crate::fixture::{keys_of, sorted, Fixture};
use crate::models::Document;

const FAIL: Fault = Fault::Fail { retryable: false };

async fn fixture(fx: &Fixture, on_failure: bool, on_success: bool) -> Fixture {
    Fixture::with(fx.kind, |b| {
        b.max_concurrency(1)
            .clean_up_when_failed(on_failure)
            .clean_up_when_succeeded(on_success)
    })
    .await
}

fn flags() -> [(bool, bool); 4] {
    [(true, true), (true, false), (false, true), (false, false)]
}

fn two_new_values() -> vhs::Changes<Document> {
    Document::changes()
        .set_html(Some("html v2".into()))
        .set_image(Some(vec![9, 9, 9]))
        .into()
}

pub async fn create_fails_at_second_upload(fx: Fixture) {
    for (f, s) in flags() {
        let fx = fixture(&fx, f, s).await;
        fx.faults.inject(Op::PutObject, 2, FAIL);
        let doc = Document::sample("p", "s");
        let err = fx.store.create_large(&doc).await.unwrap_err();
        assert!(matches!(err, Error::Backend { .. }), "{err}");
        // The first upload succeeded; it is always removed: no item can reference it.
        assert!(fx.objects().await.is_empty(), "flags {f} {s}");
        assert!(fx.item(&doc.primary_key()).await.is_none());
        // The created object is marked on the absent item (a placeholder),
        // deleted, unmarked.
        assert_eq!(
            fx.faults.calls(),
            vec![
                Op::PutObject,
                Op::PutObject,
                Op::UpdateItem,
                Op::DeleteObjects,
                Op::UpdateItem
            ]
        );
    }
}

pub async fn create_fails_at_put_item(fx: Fixture) {
    for (f, s) in flags() {
        let fx = fixture(&fx, f, s).await;
        fx.faults.inject(Op::PutItem, 1, FAIL);
        let doc = Document::sample("p", "s");
        let err = fx.store.create_large(&doc).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::Backend {
                    retryable: false,
                    ..
                }
            ),
            "{err}"
        );
        assert!(fx.item(&doc.primary_key()).await.is_none());
        let left = fx.objects().await;
        if f {
            assert!(left.is_empty(), "{left:?}");
        } else {
            assert_eq!(left.len(), 2, "orphans left for GC when cleanup is off");
        }
    }
}

/// The PutItem is applied but its response is lost: the outcome is resolved to
/// what happened, and nothing the item references is deleted.
pub async fn create_put_item_response_lost(fx: Fixture) {
    let fx = fixture(&fx, true, true).await;
    fx.faults.inject(Op::PutItem, 1, Fault::LoseResponse);
    let doc = Document::sample("p", "s");
    // The PutItem is sent again; it fails its condition and returns the stored
    // item, whose token is ours: the create reports what happened, success.
    fx.store.create_large(&doc).await.unwrap();
    assert_eq!(fx.objects().await.len(), 2);
    assert_eq!(fx.store.get_large(&doc.primary_key()).await.unwrap(), doc);
}

pub async fn create_cleanup_fails(fx: Fixture) {
    let fx = fixture(&fx, true, true).await;
    fx.faults.inject(Op::PutItem, 1, FAIL);
    fx.faults.inject(Op::DeleteObjects, 1, FAIL);
    let doc = Document::sample("p", "s");
    let err = fx.store.create_large(&doc).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Backend {
                operation: "PutItem",
                ..
            }
        ),
        "the original error: {err}"
    );
    assert_eq!(fx.objects().await.len(), 2, "left for GC");
    assert!(fx.item(&doc.primary_key()).await.is_none());
}

pub async fn update_fails_at_second_upload(fx: Fixture) {
    for (f, s) in flags() {
        let fx = fixture(&fx, f, s).await;
        let doc = Document::sample("p", "s");
        let created = fx.store.create_large(&doc).await.unwrap();
        fx.faults.inject(Op::PutObject, 2, FAIL);
        let err = fx
            .store
            .update_large(&doc.primary_key(), two_new_values())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Backend { .. }), "{err}");
        assert_eq!(fx.objects().await, keys_of(&created), "flags {f} {s}");
        assert_eq!(fx.store.get_large(&doc.primary_key()).await.unwrap(), doc);
    }
}

pub async fn update_fails_at_update_item(fx: Fixture) {
    for (f, s) in flags() {
        let fx = fixture(&fx, f, s).await;
        let doc = Document::sample("p", "s");
        let created = fx.store.create_large(&doc).await.unwrap();
        fx.faults.inject(Op::UpdateItem, 1, FAIL);
        let err = fx
            .store
            .update_large(&doc.primary_key(), two_new_values())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Backend { .. }), "{err}");
        assert_eq!(
            fx.store.get_large(&doc.primary_key()).await.unwrap(),
            doc,
            "old state"
        );
        let left = fx.objects().await;
        if f {
            assert_eq!(left, keys_of(&created));
        } else {
            assert_eq!(left.len(), 4, "new objects stay as orphans: {left:?}");
        }
    }
}

/// The UpdateItem is applied but the response is lost: sent again, it fails its
/// condition and returns the stored item, whose token history holds ours. The
/// update reports success, and deletes the old objects its write had marked.
pub async fn update_item_response_lost(fx: Fixture) {
    let fx = fixture(&fx, true, true).await;
    let doc = Document::sample("p", "s");
    let created = fx.store.create_large(&doc).await.unwrap();
    fx.faults.inject(Op::UpdateItem, 1, Fault::LoseResponse);
    let updated = fx
        .store
        .update_large(&doc.primary_key(), two_new_values())
        .await
        .unwrap();
    assert_eq!(sorted(updated.cleanup.deleted.clone()), keys_of(&created));
    assert!(
        updated.old.contains_key("html"),
        "the state the write replaced"
    );
    let got = fx.store.get_large(&doc.primary_key()).await.unwrap();
    assert_eq!(got.html.as_deref(), Some("html v2"), "new state, complete");
    assert_eq!(got.image, Some(vec![9, 9, 9]));
    assert_eq!(fx.objects().await, keys_of(&updated.staged));
}

/// Known failure mode (2): the post-success cleanup fails. The update still
/// succeeds, the new objects are untouched, and the leftovers are reported.
pub async fn update_post_success_cleanup_fails(fx: Fixture) {
    {
        let fault_op = Op::DeleteObjects;
        let fx = fixture(&fx, true, true).await;
        let doc = Document::sample("p", "s");
        let created = fx.store.create_large(&doc).await.unwrap();
        // The one reserved attempt, then the retried delete after the
        // reservations became ordinary marks.
        fx.faults.inject(fault_op, 1, FAIL);
        fx.faults.inject(fault_op, 2, FAIL);
        let updated = fx
            .store
            .update_large(&doc.primary_key(), two_new_values())
            .await
            .unwrap();
        assert!(updated.cleanup.deleted.is_empty());
        let leftover: Vec<String> = updated
            .cleanup
            .leftover
            .iter()
            .map(|(k, _)| k.clone())
            .collect();
        assert_eq!(sorted(leftover), keys_of(&created), "{fault_op:?}");
        let mut all = keys_of(&created);
        all.extend(keys_of(&updated.staged));
        assert_eq!(fx.objects().await, sorted(all));
        let got = fx.store.get_large(&doc.primary_key()).await.unwrap();
        assert_eq!(got.html.as_deref(), Some("html v2"));
    }
    // The unmark after the delete fails: the objects are gone, the reservation
    // marks stay (reported by `flush`). A write of identical content uploads
    // beside its read and cannot tell whether its new objects came after the
    // reservations' one delete or before it (then that delete removed them): it
    // waits for the reservations to end, and reports `Busy` when its waiting
    // budget runs out. GC takes them over (here at once; by default once they
    // are dead), leaving tombstones; the write then proves its objects and
    // succeeds.
    let fx = Fixture::with(fx.kind, |b| {
        b.max_concurrency(1)
            .clean_up_when_failed(true)
            .clean_up_when_succeeded(true)
            .wait(vhs::RetryPolicy::attempts(3).delays(
                std::time::Duration::from_millis(10),
                std::time::Duration::from_millis(20),
            ))
    })
    .await;
    let doc = Document::sample("p", "s");
    let created = fx.store.create_large(&doc).await.unwrap();
    for nth in 2..=5 {
        // The unmark and every resend of it.
        fx.faults.inject(Op::UpdateItem, nth, FAIL);
    }
    let updated = fx
        .store
        .update_large(&doc.primary_key(), two_new_values())
        .await
        .unwrap();
    assert_eq!(sorted(updated.cleanup.deleted.clone()), keys_of(&created));
    let background = fx.store.flush().await;
    assert_eq!(sorted(background.marks_left.clone()), keys_of(&created));
    assert_eq!(fx.objects().await, keys_of(&updated.staged));
    fx.faults.reset();
    let key = doc.primary_key();
    let back = || {
        fx.store.update_large(
            &key,
            Document::changes()
                .set_html(doc.html.clone())
                .set_image(doc.image.clone()),
        )
    };
    let err = back().await.unwrap_err();
    assert!(matches!(err, Error::Busy { .. }), "{err}");
    let gc = fx.store.gc::<Document>(&gc_reap(), |_| {}).await.unwrap();
    assert_eq!(gc.marks_taken_over, 2, "{gc:?}");
    back().await.unwrap();
    assert_eq!(fx.store.get_large(&doc.primary_key()).await.unwrap(), doc);
    fx.store.flush().await;
    let stored = fx.raw_item(&doc.primary_key()).await.expect("the item");
    assert!(
        !stored.keys().any(|k| k.starts_with("vhs:del:")),
        "{stored:?}"
    );
    assert!(
        stored.keys().any(|k| k.starts_with("vhs:gone:")),
        "GC's unmark leaves tombstones: {stored:?}"
    );
}

/// The one reserved delete attempt fails, and the response to the write that
/// turns the reservations into ordinary marks is lost: the resend finds its own
/// marks, so the objects are still deleted and unmarked.
/// The one delete attempt of an update's reservations fails and the objects
/// are still there: they stay reserved (the attempt could land late for all
/// the caller knows), nothing deletes them again, and once the reservation is
/// dead GC takes it over and deletes them.
pub async fn reserved_delete_fails_and_stays_reserved_for_gc(fx: Fixture) {
    let fx = fixture(&fx, true, true).await;
    let doc = Document::sample("p", "s");
    let created = fx.store.create_large(&doc).await.unwrap();
    fx.faults
        .inject(Op::DeleteObjects, 1, Fault::Fail { retryable: true });
    let updated = fx
        .store
        .update_large(&doc.primary_key(), two_new_values())
        .await
        .unwrap();
    assert!(updated.cleanup.deleted.is_empty(), "{:?}", updated.cleanup);
    assert_eq!(sorted(updated.cleanup.leftover_keys()), keys_of(&created));
    assert_eq!(
        sorted(updated.cleanup.marks_left.clone()),
        keys_of(&created)
    );
    let background = fx.store.flush().await;
    assert!(background.deleted.is_empty(), "{background:?}");
    let marks = |item: &vhs::Item| item.keys().filter(|k| k.starts_with("vhs:del:")).count();
    let stored = fx.raw_item(&doc.primary_key()).await.expect("the item");
    assert_eq!(marks(&stored), 2, "{stored:?}");
    // Only one DeleteObjects was ever sent.
    assert_eq!(
        fx.faults
            .calls()
            .iter()
            .filter(|c| **c == Op::DeleteObjects)
            .count(),
        1
    );
    // Dead (the override stands for the retention passing): GC takes over.
    let report = fx
        .store
        .gc::<Document>(&gc_now().take_over_after(std::time::Duration::ZERO), |_| {})
        .await
        .unwrap();
    assert_eq!(report.marks_taken_over, 2, "{report:?}");
    assert_eq!(fx.objects().await, keys_of(&updated.staged));
    let stored = fx.raw_item(&doc.primary_key()).await.expect("the item");
    assert_eq!(marks(&stored), 0, "{stored:?}");
}

pub async fn delete_fails_at_delete_item(fx: Fixture) {
    let fx = fixture(&fx, true, true).await;
    let doc = Document::sample("p", "s");
    let created = fx.store.create_large(&doc).await.unwrap();
    fx.faults.inject(Op::UpdateItem, 1, FAIL);
    let err = fx.store.delete_large(&doc.primary_key()).await.unwrap_err();
    assert!(matches!(err, Error::Backend { .. }), "{err}");
    assert_eq!(fx.objects().await, keys_of(&created));
    assert_eq!(fx.store.get_large(&doc.primary_key()).await.unwrap(), doc);
}

pub async fn delete_object_cleanup_fails(fx: Fixture) {
    let fx = fixture(&fx, true, true).await;
    let doc = Document::sample("p", "s");
    let created = fx.store.create_large(&doc).await.unwrap();
    // The one reserved attempt fails: nothing deletes them again.
    fx.faults.inject(Op::DeleteObjects, 1, FAIL);
    let deleted = fx.store.delete_large(&doc.primary_key()).await.unwrap();
    let leftover: Vec<String> = deleted
        .cleanup
        .leftover
        .iter()
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(sorted(leftover), keys_of(&created));
    assert!(
        fx.item(&doc.primary_key()).await.is_none(),
        "the item is gone either way"
    );
    assert_eq!(fx.objects().await, keys_of(&created));
}

/// DeleteObjects succeeds as a request but refuses each key: every per-key error
/// is checked and reported.
pub async fn delete_per_key_errors_are_reported(fx: Fixture) {
    let fx = fixture(&fx, true, true).await;
    let doc = Document::sample("p", "s");
    let created = fx.store.create_large(&doc).await.unwrap();
    fx.faults.inject(Op::DeleteObjects, 1, Fault::KeyErrors);
    let deleted = fx.store.delete_large(&doc.primary_key()).await.unwrap();
    assert!(deleted.cleanup.deleted.is_empty());
    let leftover: Vec<String> = deleted
        .cleanup
        .leftover
        .iter()
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(sorted(leftover), keys_of(&created));
    assert!(deleted
        .cleanup
        .leftover
        .iter()
        .all(|(_, why)| why.contains("AccessDenied")));
    assert_eq!(fx.objects().await, keys_of(&created));
}

/// The calls of each operation, pinned phase by phase: a regression in the number
/// of requests or of round trips shows up here. Calls within one phase run
/// concurrently, so their order is free; the phases follow one another.
pub async fn call_sequences(fx: Fixture) {
    use Op::*;
    // Background jobs run only in `flush`: the calls before it are the call's own.
    let fx = Fixture::with(fx.kind, |b| {
        b.max_concurrency(1).background(vhs::Background::OnFlush)
    })
    .await;
    let doc = Document::sample("p", "s");
    fx.store.create_large(&doc).await.unwrap();
    assert_phases(fx.faults.calls(), &[&[PutObject, PutObject], &[PutItem]]);
    fx.faults.reset();
    fx.store.get_large(&doc.primary_key()).await.unwrap();
    assert_phases(fx.faults.calls(), &[&[GetItem], &[GetObject, GetObject]]);
    fx.faults.reset();
    fx.store
        .update_large(&doc.primary_key(), two_new_values())
        .await
        .unwrap();
    assert_phases(
        fx.faults.calls(),
        &[
            // The uploads and the consistent read of the item it updates (the
            // uploads complete after the read).
            &[PutObject, PutObject, GetItem],
            // The commit, with the deletion marks of the replaced objects.
            &[UpdateItem],
            // The deletion of the replaced ones (one attempt).
            &[DeleteObjects],
        ],
    );
    fx.faults.reset();
    // In the background: the reservation marks removed.
    fx.store.flush().await;
    assert_phases(fx.faults.calls(), &[&[UpdateItem]]);
    fx.faults.reset();
    fx.store.delete_large(&doc.primary_key()).await.unwrap();
    assert_phases(fx.faults.calls(), &[&[UpdateItem], &[DeleteObjects]]);
    fx.faults.reset();
    // In the background: the placeholder's pointers removed.
    fx.store.flush().await;
    assert_phases(fx.faults.calls(), &[&[UpdateItem]]);
}

/// `calls` is `phases` one after the other, each in any order.
fn assert_phases(calls: Vec<Op>, phases: &[&[Op]]) {
    let mut rest = calls.as_slice();
    for (i, phase) in phases.iter().enumerate() {
        let n = phase.len().min(rest.len());
        let (got, tail) = rest.split_at(n);
        let key = |ops: &[Op]| sorted(ops.iter().map(|o| format!("{o:?}")).collect());
        assert_eq!(
            key(got),
            key(phase),
            "phase {i} of {phases:?}; all calls: {calls:?}"
        );
        rest = tail;
    }
    assert!(rest.is_empty(), "calls after the last phase: {calls:?}");
}

/// The step-by-step create of the README: put_s3, our own conditional PutItem,
/// the cleanup hook on failure.
async fn step_create(fx: &Fixture, doc: &Document) -> Result<(), Error> {
    let staged = fx
        .store
        .put_s3(&doc.primary_key(), vhs::LargeValues::of(doc)?)
        .await?;
    let mut item = doc.to_item()?;
    item.extend(staged.to_put_attributes());
    let condition = vhs::Condition::not_exists("pk");
    let table = fx.store.table_name::<Document>();
    match fx
        .store
        .backend()
        .put_item(table, item, Some(&condition))
        .await
    {
        Ok(vhs::Conditional::Applied(_)) => Ok(()),
        Ok(vhs::Conditional::Failed(_)) => {
            fx.store.clean_up_after_create_failed(&staged).await;
            Err(Error::AlreadyExists {
                table: table.to_owned(),
                key: "step".into(),
            })
        }
        Err(e) => {
            fx.store.clean_up_after_create_failed(&staged).await;
            Err(e)
        }
    }
}

/// GC with no grace period: every orphan goes.
pub fn gc_now() -> vhs::maintenance::GcOptions {
    vhs::maintenance::GcOptions::default().grace(std::time::Duration::ZERO)
}

/// GC now, taking over every deletion mark and placeholder at once: what GC does
/// after a crash once the retention has passed.
pub fn gc_reap() -> vhs::maintenance::GcOptions {
    gc_now().take_over_after(std::time::Duration::ZERO)
}

/// Verify with re-hashing.
pub fn verify_opts() -> vhs::maintenance::VerifyOptions {
    vhs::maintenance::VerifyOptions::default().rehash(true)
}

/// What a sweep observed after one faulted call.
async fn check_state(
    fx: &Fixture,
    key: &vhs::Key<Document>,
    old: Option<&Document>,
    new: Option<&Document>,
) -> String {
    // Never dangling, never a mix: the item reads back whole, as its old or its new state.
    let state = match fx.store.get_large_consistent(key).await {
        Ok(doc) => {
            assert!(
                Some(&doc) == old || Some(&doc) == new,
                "item is neither old nor new: {doc:?}"
            );
            if Some(&doc) == old {
                "old"
            } else {
                "new"
            }
        }
        Err(e) if e.is_not_found() => {
            assert!(old.is_none() || new.is_none(), "item vanished");
            if old.is_none() {
                "old"
            } else {
                "new"
            }
        }
        Err(e) => panic!("invariant broken: {e}"),
    };
    state.to_owned()
}

/// Objects the stored item references.
async fn referenced(fx: &Fixture, key: &vhs::Key<Document>) -> Vec<String> {
    let prefix = format!("s3://{}/", fx.bucket);
    let mut keys: Vec<String> = match fx.item(key).await {
        Some(item) => item
            .values()
            .filter_map(|v| v.as_s().ok()?.strip_prefix(&prefix).map(str::to_owned))
            .collect(),
        None => Vec::new(),
    };
    keys.sort();
    keys
}

/// Every failure point of every operation: for each call N of the operation and each
/// kind of fault, run the operation with call N faulted, then check that the item is
/// exactly its old or its new state with every pointer resolving, and, where the
/// fault hit a write that was not applied, that the bucket holds exactly the objects
/// the item references. Prints the table of operations × failure points.
pub async fn every_failure_point(fx: Fixture) {
    let faults = [
        ("fail", Fault::Fail { retryable: false }),
        ("lost", Fault::LoseResponse),
        ("crash", Fault::Crash),
    ];
    let old = Document::sample("p", "s");
    let mut new = old.clone();
    new.html = Some("html v2".into());
    new.image = Some(vec![9, 9, 9]);
    let key = old.primary_key();
    let mut table = vec![format!(
        "{:<12} {:>2} {:<14} {:<5} {:<6} {}",
        "op", "n", "call", "fault", "result", "state"
    )];
    let mut plain = old.clone();
    plain.data = serde_json::json!({"v": 2});
    for op in ["create", "update", "update-attrs", "delete", "step-create"] {
        for (fault_name, fault) in faults {
            for n in 1.. {
                let fx = fixture(&fx, true, true).await;
                let (before, after) = match op {
                    "create" | "step-create" => (None, Some(&old)),
                    "update" => (Some(&old), Some(&new)),
                    "update-attrs" => (Some(&old), Some(&plain)),
                    _ => (Some(&old), None),
                };
                if before.is_some() {
                    fx.store.create_large(&old).await.unwrap();
                }
                fx.faults.reset();
                fx.faults.inject_nth_call(n, fault);
                let result = match op {
                    "create" => fx.store.create_large(&old).await.map(|_| ()),
                    "update" => fx
                        .store
                        .update_large(&key, two_new_values())
                        .await
                        .map(|_| ()),
                    "update-attrs" => fx
                        .store
                        .update_large(&key, Document::changes().set_data(plain.data.clone()))
                        .await
                        .map(|_| ()),
                    "step-create" => step_create(&fx, &old).await,
                    _ => fx.store.delete_large(&key).await.map(|_| ()),
                };
                let calls = fx.faults.calls();
                if n > calls.len() {
                    break; // every call of this operation has been faulted once
                }
                let faulted = calls[n - 1];
                // A crash leaves every later call failing: the process is gone.
                // Restart (no faults) before looking at what it left behind.
                fx.faults.reset();
                let state = check_state(&fx, &key, before, after).await;
                let objects = fx.objects().await;
                let refs = referenced(&fx, &key).await;
                for r in &refs {
                    assert!(objects.contains(r), "{op} n={n}: dangling {r}");
                }
                let write_not_applied = fault_name == "fail"
                    && result.is_err()
                    && matches!(
                        faulted,
                        Op::PutObject | Op::PutItem | Op::UpdateItem | Op::DeleteItem
                    );
                if write_not_applied {
                    assert_eq!(
                        objects, refs,
                        "{op} n={n} {faulted:?}: orphans after a failed write"
                    );
                    assert_eq!(state, "old", "{op} n={n}: a failed write changed the item");
                }
                if result.is_ok() {
                    assert_eq!(state, "new");
                }
                // Invariant 1 by the checker, then GC restores invariant 2.
                let orphans = objects.len() - refs.len();
                let report = fx
                    .store
                    .verify::<Document>(&verify_opts(), |_| {})
                    .await
                    .unwrap();
                assert!(report.is_clean(), "{op} n={n}: {report:?}");
                assert_eq!(report.orphans as usize, orphans);
                // A crash can leave marks and placeholders behind: GC takes them over
                // once they are older than the retention (here at once).
                let gc = fx.store.gc::<Document>(&gc_reap(), |_| {}).await.unwrap();
                assert_eq!(gc.deleted.len(), orphans, "{op} n={n}: {gc:?}");
                assert_eq!(fx.objects().await, refs, "{op} n={n}: GC left orphans");
                check_state(&fx, &key, before, after).await;
                table.push(format!(
                    "{op:<12} {n:>2} {:<14} {fault_name:<5} {:<6} {state:<4} {orphans} orphans, GC removed {}",
                    format!("{faulted:?}"),
                    if result.is_ok() { "ok" } else { "error" },
                    gc.deleted.len(),
                ));
            }
        }
    }
    println!("{}", table.join("\n"));
    assert!(table.len() > 20, "the sweep ran: {}", table.len());
}
