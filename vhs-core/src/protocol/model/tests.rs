//! The scenarios, each checked exhaustively (`model_*`): every interleaving of
//! the actors' requests, with the faults the scenario allows, each property
//! checked in every reachable state. `VHS_SOAK=1` raises the bounds (more
//! faults, more time). Each prints the states explored and the time
//! (`cargo test -p vhs-core model_ -- --nocapture`).

use super::actor::{Kind, Spec};
use super::check::{check, Checked, Scenario};

const A1: usize = 0;
const A2: usize = 1;
const B1: usize = 2;

fn soak() -> bool {
    std::env::var("VHS_SOAK").is_ok_and(|v| v == "1")
}

/// A scenario with no fault and no time passing.
fn scenario(name: &'static str, item: Option<Vec<usize>>, actors: Vec<Spec>) -> Scenario {
    Scenario {
        name,
        item,
        orphans: Vec::new(),
        actors,
        lost: 0,
        dup: 0,
        crash: 0,
        ticks: 0,
        leaps: 0,
        revert: None,
        ttl: None,
    }
}

trait Bounds {
    fn faults(self, lost: u8, dup: u8, crash: u8) -> Self;
    fn time(self, ticks: u8, leaps: u8) -> Self;
    fn orphans(self, orphans: Vec<usize>) -> Self;
}

impl Bounds for Scenario {
    fn faults(mut self, lost: u8, dup: u8, crash: u8) -> Self {
        (self.lost, self.dup, self.crash) = (lost, dup, crash);
        self
    }
    fn time(mut self, ticks: u8, leaps: u8) -> Self {
        (self.ticks, self.leaps) = (ticks, leaps);
        self
    }
    fn orphans(mut self, orphans: Vec<usize>) -> Self {
        self.orphans = orphans;
        self
    }
}

/// Checks `s` at `bounds` (lost, dup, crash, ticks, leaps), or at `soak`
/// with `VHS_SOAK=1`. The bounds keep each scenario to a few seconds by
/// default and about a minute at most at soak scale (measured in
/// `BENCHMARKS.md`).
fn at(s: Scenario, bounds: [u8; 5], soak_bounds: [u8; 5]) -> Checked {
    let [lost, dup, crash, ticks, leaps] = if soak() { soak_bounds } else { bounds };
    run(s.faults(lost, dup, crash).time(ticks, leaps))
}

pub(super) fn run(s: Scenario) -> Checked {
    let checked = check(s);
    println!("{checked}");
    assert!(checked.violation.is_none(), "{checked}");
    checked
}

/// One scenario at chosen bounds, for measuring (`BENCHMARKS.md`):
/// `VHS_MODEL_NAME=step_by_step_beside_gc_over_time VHS_MODEL_PROBE=0,1,0,0,2
/// cargo test -p vhs-core --lib model_probe -- --ignored --nocapture` (lost,
/// dup, crash, ticks, leaps). A tool, not a test: ignored unless asked for.
#[test]
#[ignore = "a measuring tool: set VHS_MODEL_NAME and VHS_MODEL_PROBE, run with --ignored"]
fn model_probe() {
    let probe =
        std::env::var("VHS_MODEL_PROBE").expect("VHS_MODEL_PROBE=lost,dup,crash,ticks,leaps");
    let p: Vec<u8> = probe.split(',').map(|x| x.parse().unwrap()).collect();
    let name = std::env::var("VHS_MODEL_NAME").unwrap_or_default();
    let s = scenarios()
        .into_iter()
        .find(|s| s.name == name)
        .expect("a scenario");
    run(s.faults(p[0], p[1], p[2]).time(p[3], p[4]));
}

/// Every scenario, at no bound.
pub(super) fn scenarios() -> Vec<Scenario> {
    vec![
        scenario(
            "delete_and_identical_recreate",
            Some(vec![A1, B1]),
            vec![
                Spec::new(Kind::Delete),
                Spec::new(Kind::Create(vec![A1, B1])),
                Spec::new(Kind::Gc { typed: true }).ahead(1),
            ],
        ),
        scenario(
            "updates_flipping_identical_content",
            Some(vec![A1]),
            vec![
                Spec::new(Kind::Update(vec![A2])),
                Spec::new(Kind::Update(vec![A1])),
                Spec::new(Kind::Gc { typed: false }).ahead(1),
            ],
        ),
        scenario(
            "transaction_step_by_step_and_delete",
            Some(vec![A1]),
            vec![
                Spec::new(Kind::TxUpdate(vec![A2])),
                Spec::new(Kind::Step(vec![A1])),
                Spec::new(Kind::TxDelete).deferred(),
            ],
        ),
        scenario(
            "reviewed_schedule_delete_transaction_delete_create",
            Some(vec![A1]),
            vec![
                Spec::new(Kind::Delete),
                Spec::new(Kind::TxCreate(vec![A1])),
                Spec::new(Kind::Delete).deferred(),
                Spec::new(Kind::Create(vec![A1])),
            ],
        ),
        scenario(
            "untyped_gc_beside_a_create_of_its_orphans",
            None,
            vec![
                Spec::new(Kind::Gc { typed: false }),
                Spec::new(Kind::Create(vec![A1, B1])),
            ],
        )
        .orphans(vec![A1, B1]),
        scenario(
            "typed_gc_of_a_two_model_table",
            Some(vec![A1]),
            vec![
                Spec::new(Kind::Gc { typed: true }),
                Spec::new(Kind::Update(vec![B1])),
            ],
        )
        .orphans(vec![B1]),
        scenario(
            "lost_answers_around_a_delete",
            None,
            vec![
                Spec::new(Kind::Create(vec![A1])),
                Spec::new(Kind::Delete),
                Spec::new(Kind::TxCreate(vec![A1])),
            ],
        ),
        scenario(
            "step_by_step_beside_gc_over_time",
            None,
            vec![
                Spec::new(Kind::Step(vec![A1])),
                Spec::new(Kind::Gc { typed: false }),
                Spec::new(Kind::Gc { typed: false }),
            ],
        ),
        scenario(
            "create_from_upload_beside_gc",
            None,
            vec![
                Spec::new(Kind::CreateUploaded(vec![A1, B1])),
                Spec::new(Kind::Gc { typed: false }),
            ],
        )
        .orphans(vec![A1, B1]),
        scenario(
            "update_from_upload_beside_delete_and_gc",
            Some(vec![A2]),
            vec![
                Spec::new(Kind::UpdateUploaded(vec![A1])),
                Spec::new(Kind::Delete),
                Spec::new(Kind::Gc { typed: true }),
            ],
        )
        .orphans(vec![A1]),
        scenario(
            // A client uploads the content the item points to now (its PUT
            // gets 412: the object is there) while an update replaces it and
            // deletes it: the commit must not point to it once it is gone.
            "upload_of_identical_content_being_replaced",
            Some(vec![A1]),
            vec![
                Spec::new(Kind::UpdateUploaded(vec![A1])),
                Spec::new(Kind::Update(vec![A2])),
            ],
        ),
        scenario(
            // The client never uploaded (or GC collected it long ago), and
            // another writer creates the item meanwhile.
            "create_from_an_upload_never_made",
            None,
            vec![
                Spec::new(Kind::CreateUploaded(vec![A1])),
                Spec::new(Kind::Create(vec![A2])),
            ],
        ),
        scenario(
            // Under keep_replaced_for (one tick here, against a retention of
            // four): an update replaces a1, another writes a1 back (ending
            // the kept reservation without waiting), GC takes over what is
            // kept once it is dead. Nothing kept is deleted before its time.
            "kept_values_beside_identical_rewrite_and_gc",
            Some(vec![A1]),
            vec![
                Spec::new(Kind::Update(vec![A2])).keeping(1),
                Spec::new(Kind::Update(vec![A1])).keeping(1),
                Spec::new(Kind::Gc { typed: false }),
            ],
        ),
        scenario(
            // A delete under keep_replaced_for, a create of the same
            // content over its placeholder, and GC.
            "kept_delete_beside_recreate_and_gc",
            Some(vec![A1]),
            vec![
                Spec::new(Kind::Delete).keeping(1),
                Spec::new(Kind::Create(vec![A1])).keeping(1),
                Spec::new(Kind::Gc { typed: false }),
            ],
        ),
        Scenario {
            // The item expires at t=0 (DynamoDB may reap it from t=9, its
            // vhs:ttl: 2R + S later) pointing to a1, beside its orphan a2;
            // an update extends it (to t=40) while GC collects the orphan and
            // a create of a2's content waits for the item to be gone.
            ttl: Some((0, 40)),
            ..scenario(
                "ttl_reaping_beside_extension_gc_and_recreate",
                Some(vec![A1]),
                vec![
                    Spec::new(Kind::Update(vec![A1])),
                    Spec::new(Kind::Gc { typed: false }),
                    Spec::new(Kind::Create(vec![A2])),
                ],
            )
            .orphans(vec![A2])
        },
        scenario(
            "dead_deleter_and_identical_recreate",
            Some(vec![A1]),
            vec![
                Spec::new(Kind::Delete).deferred(),
                Spec::new(Kind::Create(vec![A1])),
                Spec::new(Kind::Update(vec![A2])),
            ],
        ),
    ]
}

/// `s` with the faults the conformance walks draw from.
pub(super) fn with_faults(s: Scenario) -> Scenario {
    s.faults(2, 1, 1).time(2, 2)
}

fn named(name: &str) -> Scenario {
    scenarios()
        .into_iter()
        .find(|s| s.name == name)
        .expect("a scenario")
}

#[test]
fn model_delete_and_identical_recreate() {
    at(
        named("delete_and_identical_recreate"),
        [1, 0, 0, 0, 0],
        [1, 0, 1, 0, 0],
    );
}

#[test]
fn model_updates_flipping_identical_content() {
    at(
        named("updates_flipping_identical_content"),
        [0, 0, 1, 0, 1],
        [1, 0, 1, 0, 1],
    );
}

#[test]
fn model_transaction_step_by_step_and_delete() {
    at(
        named("transaction_step_by_step_and_delete"),
        [0, 0, 1, 0, 0],
        [1, 0, 0, 0, 0],
    );
}

#[test]
fn model_reviewed_schedule_delete_transaction_delete_create() {
    at(
        named("reviewed_schedule_delete_transaction_delete_create"),
        [0, 0, 0, 0, 0],
        [0, 0, 1, 0, 0],
    );
}

#[test]
fn model_untyped_gc_beside_a_create_of_its_orphans() {
    at(
        named("untyped_gc_beside_a_create_of_its_orphans"),
        [0, 1, 0, 1, 1],
        [1, 0, 1, 1, 1],
    );
}

#[test]
fn model_typed_gc_of_a_two_model_table() {
    at(
        named("typed_gc_of_a_two_model_table"),
        [1, 0, 1, 1, 1],
        [1, 1, 1, 1, 1],
    );
}

#[test]
fn model_lost_answers_around_a_delete() {
    at(
        named("lost_answers_around_a_delete"),
        [1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
    );
}

#[test]
fn model_step_by_step_beside_gc_over_time() {
    at(
        named("step_by_step_beside_gc_over_time"),
        [0, 0, 1, 0, 1],
        [0, 1, 1, 0, 1],
    );
}

#[test]
fn model_dead_deleter_and_identical_recreate() {
    at(
        named("dead_deleter_and_identical_recreate"),
        [0, 0, 1, 0, 1],
        [0, 0, 1, 0, 2],
    );
}

#[test]
fn model_create_from_upload_beside_gc() {
    at(
        named("create_from_upload_beside_gc"),
        [1, 0, 1, 1, 1],
        [1, 1, 1, 1, 1],
    );
}

#[test]
fn model_update_from_upload_beside_delete_and_gc() {
    at(
        named("update_from_upload_beside_delete_and_gc"),
        [0, 0, 1, 0, 1],
        [0, 0, 1, 1, 1],
    );
}

#[test]
fn model_upload_of_identical_content_being_replaced() {
    at(
        named("upload_of_identical_content_being_replaced"),
        [1, 0, 1, 1, 1],
        [1, 1, 1, 1, 1],
    );
}

#[test]
fn model_kept_values_beside_identical_rewrite_and_gc() {
    at(
        named("kept_values_beside_identical_rewrite_and_gc"),
        [0, 0, 0, 1, 1],
        [0, 0, 1, 1, 1],
    );
}

#[test]
fn model_kept_delete_beside_recreate_and_gc() {
    at(
        named("kept_delete_beside_recreate_and_gc"),
        [0, 0, 1, 1, 1],
        [1, 0, 1, 1, 2],
    );
}

#[test]
fn model_ttl_reaping_beside_extension_gc_and_recreate() {
    at(
        named("ttl_reaping_beside_extension_gc_and_recreate"),
        // Two leaps reach the reap (`vhs:exp + 2R + S`); the tick between
        // them, at soak scale only since uploads run beside reads (3.5x the
        // states).
        [0, 0, 0, 0, 2],
        [0, 0, 1, 1, 2],
    );
}

#[test]
fn model_create_from_an_upload_never_made() {
    let checked = at(
        named("create_from_an_upload_never_made"),
        [1, 1, 1, 1, 1],
        [2, 1, 1, 1, 2],
    );
    assert!(checked.states > 1, "{checked}");
}

// ---- each fix undone: the checker must find the hole it closes ----

use crate::protocol::clock::Fix;

/// Checks `s` with `fix` undone: a property must fail, with a trace.
fn finds(mut s: Scenario, fix: Fix) -> Checked {
    s.revert = Some(fix);
    let checked = check(s);
    println!("{checked}");
    assert!(
        checked.violation.is_some(),
        "undoing {fix:?} went unnoticed: {checked}"
    );
    checked
}

/// Review item 1: a delete's late pointer removal strips a newer delete's
/// reservation.
#[test]
fn model_finds_a_pointer_removal_of_another_delete() {
    finds(
        named("reviewed_schedule_delete_transaction_delete_create"),
        Fix::OwnedPointerRemoval,
    );
}

/// Review item 2: GC marks with the condition of its model's attributes.
#[test]
fn model_finds_a_mark_by_the_model_s_attributes() {
    finds(
        named("typed_gc_of_a_two_model_table"),
        Fix::MarkByOwnAttribute,
    );
}

/// Review items 4 and 7: the history reset by a delete, and a delete's send
/// that applies to a newer item.
#[test]
fn model_finds_a_delete_applied_to_a_newer_item() {
    finds(
        named("lost_answers_around_a_delete").faults(1, 1, 0),
        Fix::DeleteHistory,
    );
}

/// Review item 8: a mark removed while its DeleteObjects may still land.
#[test]
fn model_finds_an_unmark_after_an_unknown_delete() {
    finds(
        named("untyped_gc_beside_a_create_of_its_orphans").faults(1, 0, 0),
        Fix::KeepMarksOnUnknownDelete,
    );
}

/// Review item 9: a reservation's send window counted from the answer.
#[test]
fn model_finds_a_send_window_counted_from_the_answer() {
    finds(
        named("updates_flipping_identical_content").time(0, 1),
        Fix::WindowFromStamp,
    );
}

/// Review item 3: a staged write without a deadline.
#[test]
fn model_finds_a_staged_write_without_a_deadline() {
    finds(
        named("step_by_step_beside_gc_over_time").time(0, 2),
        Fix::StagedDeadline,
    );
}

/// Review item 5: writers that wait for a dead deleter.
#[test]
fn model_finds_writers_waiting_for_a_dead_deleter() {
    finds(
        named("dead_deleter_and_identical_recreate")
            .faults(0, 0, 1)
            .time(0, 1),
        Fix::WritersEndDeadMarks,
    );
}

/// Found by the checker: a step-by-step caller's write whose SDK sent it
/// twice lands after the failure hook reported it failed.
#[test]
fn model_finds_a_staged_write_landing_after_its_failure() {
    // The second GC starts once the first one's placeholder is dead
    // (`2R + S`: two leaps), which narrows the search to the schedule's shape.
    let mut s = named("step_by_step_beside_gc_over_time")
        .faults(0, 1, 0)
        .time(0, 2);
    s.actors[2] = s.actors[2].clone().starting_at(10);
    finds(s, Fix::SettleStagedWrite);
}

/// Issue 23: a commit of a presigned upload on an absent item that trusts
/// the upload's age (as a create may trust its own) points to an object that
/// was never uploaded, or that GC collected before the read.
#[test]
fn model_finds_a_commit_of_an_upload_never_proven() {
    finds(
        named("create_from_an_upload_never_made"),
        Fix::UploadsProvenWhenAbsent,
    );
}

/// Issue 24: a writer under `keep_replaced_for` that deletes what it
/// replaced right away breaks the promise a change feed's consumer relies on.
#[test]
fn model_finds_a_kept_value_deleted_by_its_writer() {
    let s = scenario(
        "kept_value_deleted_by_its_writer",
        Some(vec![A1]),
        vec![Spec::new(Kind::Update(vec![A2])).keeping(1)],
    );
    finds(s, Fix::KeptNotReleased);
}

/// Issue 24: GC marks an orphan of an expired item, DynamoDB's TTL removes
/// the item (its mark with it), and a create of the same content commits on
/// the absent item before GC's delete lands.
#[test]
fn model_finds_a_mark_on_an_expired_item() {
    finds(
        named("ttl_reaping_beside_extension_gc_and_recreate")
            .faults(0, 0, 0)
            .time(1, 2),
        Fix::NoMarksOnExpired,
    );
}

/// Issue 22: an update whose upload runs beside its read, and that counts a
/// created object as made after the read, points to it after a release of
/// the same content deleted it between its creation and its read (the mark
/// gone before the read: only the tombstone tells).
#[test]
fn model_finds_an_upload_beside_its_read_deleted_before_it() {
    finds(
        named("updates_flipping_identical_content").faults(0, 0, 0),
        Fix::Tombstones,
    );
}
