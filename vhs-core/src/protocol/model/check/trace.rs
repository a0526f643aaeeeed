//! Traces: a violation's path as readable lines (operations, items, objects).

use aws_sdk_dynamodb::types::AttributeValue;
use stateright::Model;

use crate::protocol::decide::Write;
use crate::protocol::item::{State as ItemState, MARK, PLACEHOLDER, SEQ, TOKENS};
use crate::protocol::machine::{Answer, Op};
use crate::protocol::model::actor::{Kind, Phase};
use crate::protocol::model::world::{World, NAMES, TICK};

use super::{Id, ProtocolModel, A, S};

fn object_name(m: &ProtocolModel, key: &str) -> String {
    m.setup
        .index(key)
        .map(|i| NAMES[i].to_owned())
        .unwrap_or_else(|| key.to_owned())
}

fn value_text(m: &ProtocolModel, v: &AttributeValue) -> String {
    match v {
        AttributeValue::S(s) if s.starts_with("s3://") => {
            object_name(m, s.trim_start_matches("s3://b/"))
        }
        AttributeValue::S(s) => s.chars().take(24).collect(),
        AttributeValue::N(n) => n.clone(),
        other => format!("{other:?}"),
    }
}

/// The item in a line: absent, a placeholder or live, its pointers and marks.
fn item_text(m: &ProtocolModel, item: Option<&crate::model::Item>) -> String {
    let Some(item) = item else {
        return "absent".to_owned();
    };
    let state = ItemState::of(Some(item.clone()));
    let kind = if state.is_placeholder() {
        "placeholder"
    } else {
        "live"
    };
    let mut parts = Vec::new();
    for a in ["a", "b"] {
        if let Some(v) = item.get(a) {
            parts.push(format!("{a}={}", value_text(m, v)));
        }
    }
    for (name, value) in state.marks() {
        let what = m
            .setup
            .target
            .marked_object(name)
            .map(|o| object_name(m, &o.key))
            .unwrap_or_else(|| name.to_owned());
        parts.push(format!("mark({what})={}", value_text(m, value)));
    }
    for n in [PLACEHOLDER, SEQ, TOKENS] {
        if let Some(v) = item.get(n) {
            parts.push(format!("{n}={}", value_text(m, v)));
        }
    }
    format!("{kind}{{{}}}", parts.join(" "))
}

fn op_text(m: &ProtocolModel, actor: u8, op: &Op) -> String {
    match op {
        Op::Read { .. } => "GetItem".to_owned(),
        Op::Write { write, .. } => match write {
            Write::Put(i) => format!("PutItem {}", item_text(m, Some(&i.0))),
            Write::Update(u) => {
                let set: Vec<String> = u
                    .set
                    .iter()
                    .map(|(n, v)| {
                        let n = match n.strip_prefix(MARK) {
                            Some(_) => m
                                .setup
                                .target
                                .marked_object(n)
                                .map(|o| format!("mark({})", object_name(m, &o.key)))
                                .unwrap_or_else(|| n.clone()),
                            None => n.clone(),
                        };
                        format!("{n}={}", value_text(m, v))
                    })
                    .collect();
                let remove: Vec<String> = u
                    .remove
                    .iter()
                    .map(|n| {
                        m.setup
                            .target
                            .marked_object(n)
                            .map(|o| format!("mark({})", object_name(m, &o.key)))
                            .unwrap_or_else(|| n.clone())
                    })
                    .collect();
                let add: Vec<String> = u
                    .add
                    .iter()
                    .map(|(n, by)| format!(" add[{n}+{by}]"))
                    .collect();
                format!(
                    "UpdateItem set[{}] remove[{}]{}",
                    set.join(" "),
                    remove.join(" "),
                    add.join("")
                )
            }
            Write::Delete => "DeleteItem".to_owned(),
            Write::Check => "ConditionCheck".to_owned(),
        },
        Op::Transact { actions, .. } => {
            let inner: Vec<String> = actions
                .iter()
                .map(|(t, w, c)| {
                    op_text(
                        m,
                        actor,
                        &Op::Write {
                            target: t.clone(),
                            write: w.clone(),
                            condition: c.clone(),
                        },
                    )
                })
                .collect();
            format!("TransactWriteItems[{}]", inner.join("; "))
        }
        Op::Head { key, .. } => format!("HeadObject {}", object_name(m, key)),
        Op::Put { upload, .. } => format!("PutObject {}", NAMES[m.uploads(actor)[*upload]]),
        Op::Delete { keys, .. } => format!(
            "DeleteObjects [{}]",
            keys.iter()
                .map(|k| object_name(m, k))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

fn actor_text(m: &ProtocolModel, n: u8) -> String {
    let spec = &m.scenario.actors[n as usize];
    let name = |o: &Vec<usize>| o.iter().map(|i| NAMES[*i]).collect::<Vec<_>>().join(",");
    let kind = match &spec.kind {
        Kind::Create(o) => format!("create({})", name(o)),
        Kind::Update(o) => format!("update({})", name(o)),
        Kind::CreateUploaded(o) => format!("create-from-upload({})", name(o)),
        Kind::UpdateUploaded(o) => format!("update-from-upload({})", name(o)),
        Kind::Delete => "delete".to_owned(),
        Kind::TxCreate(o) => format!("tx-create({})", name(o)),
        Kind::TxUpdate(o) => format!("tx-update({})", name(o)),
        Kind::TxDelete => "tx-delete".to_owned(),
        Kind::Step(o) => format!("put_s3+own-write({})", name(o)),
        Kind::Gc { typed: true } => "gc(typed)".to_owned(),
        Kind::Gc { typed: false } => "gc(untyped)".to_owned(),
    };
    let defer = if spec.defer { ",deferred" } else { "" };
    let ahead = if spec.ahead > 0 {
        format!(",clock+{}", spec.ahead)
    } else {
        String::new()
    };
    format!("#{n} {kind}{defer}{ahead}")
}

fn objects_text(world: &World) -> String {
    let names: Vec<&str> = (0..4)
        .filter(|i| world.exists(*i))
        .map(|i| NAMES[i])
        .collect();
    format!("{{{}}}", names.join(" "))
}

/// A readable trace: each step, what it did, and the item and objects after.
pub(super) fn trace(m: &ProtocolModel, path: Vec<(S, Option<A>)>) -> String {
    let mut out = String::new();
    let mut lines = Vec::new();
    for (before, action) in &path {
        let Some(action) = action else { continue };
        let after = m.next_state(before, action.clone()).expect("a step");
        // "actor's request", for a message in flight before the step.
        let request = |id: &Id| {
            let msg = m.msg(before, *id).expect("in flight");
            format!("{}'s {}", actor_text(m, id.0), op_text(m, id.0, &msg.op))
        };
        let what = match action {
            A::Step(n) => {
                let sent: Vec<String> = after
                    .world
                    .net
                    .iter()
                    .filter(|x| x.actor == *n && !before.world.net.iter().any(|y| y.id() == x.id()))
                    .map(|x| op_text(m, *n, &x.op))
                    .collect();
                let a = &after.actors[*n as usize];
                let extra = match (&before.actors[*n as usize].outcome, &a.outcome) {
                    (None, Some(o)) => format!(" REPORTS {o:?}"),
                    _ => String::new(),
                };
                let status = match &a.phase {
                    Phase::Paused(until) => format!(
                        " pauses (a deletion in progress{})",
                        until
                            .map(|u| format!(", dead at t={}", u / TICK))
                            .unwrap_or_default()
                    ),
                    Phase::Finished => " finishes".to_owned(),
                    _ => String::new(),
                };
                let sends = if sent.is_empty() {
                    String::new()
                } else {
                    format!(" sends {}", sent.join(" + "))
                };
                format!("{} steps{sends}{status}{extra}", actor_text(m, *n))
            }
            A::Land(id) | A::LandSilent(id) => {
                let msg = m.msg(before, *id).expect("in flight");
                let how = match action {
                    A::Land(_) if msg.answered => " (late: its answer was given up on)",
                    A::Land(_) => "",
                    _ => " (one of two copies; its actor gets the other's answer)",
                };
                let mut w = before.world.clone();
                let result = match w.apply(&m.setup, &msg.op, &m.uploads(id.0)) {
                    Answer::Written(crate::backend::Conditional::Applied(_))
                    | Answer::Transacted(crate::backend::Transacted::Committed) => ": applied",
                    Answer::Written(_) | Answer::Transacted(_) => ": its condition fails",
                    Answer::Put(crate::backend::PutOutcome::Created) => ": created",
                    Answer::Put(_) => ": 412, already there",
                    Answer::Exists(true) => ": found",
                    Answer::Exists(false) => ": not found",
                    _ => "",
                };
                format!("{} lands{how}{result}", request(id))
            }
            A::TimeOut(id) => {
                let msg = m.msg(before, *id).expect("in flight");
                format!(
                    "{} times out on {} (still in flight)",
                    actor_text(m, id.0),
                    op_text(m, id.0, &msg.op)
                )
            }
            A::SdkRetry(id) => format!("the SDK sends {} again", request(id)),
            A::Drop(id) => format!("{} never lands", request(id)),
            A::Sleep(n) => format!(
                "{} waits for time to pass before its next step",
                actor_text(m, *n)
            ),
            A::Tick => format!(
                "time passes: t={} (a tick is a quarter of the retention)",
                after.world.time
            ),
            A::Leap => format!(
                "the retention and the skew bound pass: t={}",
                after.world.time
            ),
            A::Crash(n) => format!("{} crashes", actor_text(m, *n)),
            A::Reap => "DynamoDB's TTL removes the item, marks and all".to_owned(),
        };
        lines.push(format!(
            "  {what}\n      item: {}  objects: {}",
            item_text(m, after.world.item()),
            objects_text(&after.world)
        ));
    }
    out.push_str(&format!(
        "actors: {}\n",
        (0..m.scenario.actors.len())
            .map(|n| actor_text(m, n as u8))
            .collect::<Vec<_>>()
            .join("; ")
    ));
    out.push_str(&lines.join("\n"));
    if let Some((last, _)) = path.last() {
        if let Some(why) = last.world.dangling(&m.setup) {
            out.push_str(&format!("\n  => {why}"));
        }
        for n in 0..last.actors.len() {
            let a = &last.actors[n];
            if m.scenario.actors[n].writer() && a.outcome.is_none() && a.phase != Phase::Crashed {
                if let Err(why) = m.solo(last, n) {
                    out.push_str(&format!(
                        "\n  => run alone, {}: {why}",
                        actor_text(m, n as u8)
                    ));
                }
            }
            let applied = ProtocolModel::applied(last, n as u8);
            if applied > 0 || a.outcome.is_some() {
                out.push_str(&format!(
                    "\n  => {}: reported {:?}, its own write applied {applied} time(s)",
                    actor_text(m, n as u8),
                    a.outcome
                ));
            }
        }
    }
    out
}
