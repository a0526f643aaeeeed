//! The GC actor: scans the model's one item, lists objects, takes over what is dead.

use aws_sdk_dynamodb::types::AttributeValue;

use crate::protocol::clock::{Now, Settings, Tokens};
use crate::protocol::item::{ObjectRef, State, PLACEHOLDER};
use crate::protocol::machine::{Answer, In, Next, Op, Retire, TakeOver};
use crate::protocol::model::world::Setup;

use super::{map, GcPhase, Kind, Outcome, Spec};

/// The objects a listing can find.
fn listable(setup: &Setup) -> impl Iterator<Item = &ObjectRef> {
    setup
        .objects
        .iter()
        .enumerate()
        .filter(|(i, _)| setup.relevant & (1 << i) != 0)
        .map(|(_, o)| o)
}

/// GC of the model's one item: scan, list, retire the orphans, take over
/// what is dead.
pub(super) fn gc(
    setup: &Setup,
    spec: &Spec,
    phase: &mut GcPhase,
    input: In,
    now: Now,
    tokens: &mut Tokens,
    s: Settings,
) -> Next<Outcome> {
    let Kind::Gc { typed } = spec.kind else {
        unreachable!()
    };
    // The item the orphans' keys name, as a typed GC of a model that knows
    // `a` only, or an untyped one, sees it.
    let mut target = (*setup.target).clone();
    target.large = if typed { vec!["a"] } else { vec!["a", "b"] };
    let target = std::sync::Arc::new(target);
    let mut input = Some(input);
    loop {
        match phase {
            GcPhase::Scanning => match input.take().expect("an input") {
                In::Answers(mut a) => {
                    let item = match a.pop() {
                        Some(Ok(Answer::Item(i))) => i,
                        _ => return Next::Report(Outcome::Failed("scan failed".into())),
                    };
                    let scanned = State::of(item);
                    // The listing: what exists, object by object (a listing is
                    // no snapshot either), of the objects the scan did not see
                    // referenced (the others are not candidates anyway).
                    let ops = listable(setup)
                        .filter(|o| !referenced(&scanned).contains(&o.uri))
                        .map(|o| Op::Head {
                            bucket: setup.target.bucket.clone(),
                            key: o.key.clone(),
                        })
                        .collect();
                    *phase = GcPhase::Listing(scanned);
                    return Next::Do(ops);
                }
                _ => {
                    return Next::Do(vec![Op::Read {
                        target: setup.target.clone(),
                    }])
                }
            },
            GcPhase::Listing(scanned) => {
                let referenced = referenced(scanned);
                let listed: Vec<&ObjectRef> = listable(setup)
                    .filter(|o| !referenced.contains(&o.uri))
                    .collect();
                let exists: Vec<bool> = match input.take().expect("an input") {
                    In::Answers(a) => a
                        .into_iter()
                        .map(|a| matches!(a, Ok(Answer::Exists(true))))
                        .collect(),
                    _ => Vec::new(),
                };
                let orphans: Vec<ObjectRef> = listed
                    .into_iter()
                    .zip(exists)
                    .filter(|(_, e)| *e)
                    .map(|(o, _)| o.clone())
                    .collect();
                let retire = Retire::new(
                    vec![(target.clone(), orphans, State::Unknown)],
                    &tokens.fork().next(),
                    now,
                    s,
                );
                *phase = GcPhase::Retiring(retire, scanned.clone());
                input = Some(In::Start);
            }
            GcPhase::Retiring(retire, scanned) => {
                match retire.step(input.take().expect("an input"), now) {
                    Next::Do(ops) => return Next::Do(ops),
                    Next::Pause { .. } => unreachable!("a retirement never pauses"),
                    Next::Report(()) | Next::Done => {
                        if !stale(scanned, now, &s) {
                            *phase = GcPhase::Done;
                            return Next::Report(Outcome::Ok);
                        }
                        let t = TakeOver::new(
                            target.clone(),
                            scanned.clone(),
                            tokens.fork(),
                            now,
                            s,
                            s,
                        );
                        *phase = GcPhase::TakingOver(t);
                        input = Some(In::Start);
                    }
                }
            }
            GcPhase::TakingOver(t) => {
                return map(t.step(input.take().expect("an input"), now), |_| {
                    Outcome::Ok
                });
            }
            GcPhase::Done => return Next::Done,
        }
    }
}

/// What GC's scan counts as referenced: any value of a live item naming an
/// object (placeholders are left out).
fn referenced(scanned: &State) -> Vec<String> {
    scanned
        .live()
        .map(|i| {
            i.values()
                .filter_map(|v| match v {
                    AttributeValue::S(s) => Some(s.clone()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a scanned item has anything GC would take over (a mark or a
/// placeholder older than the retention).
pub(super) fn stale(state: &State, now: Now, s: &Settings) -> bool {
    state.item().is_some_and(|i| {
        i.iter().any(|(n, v)| {
            (n == PLACEHOLDER || n.starts_with(crate::protocol::item::MARK))
                && crate::protocol::clock::Stamp::parse(Some(v))
                    .is_some_and(|st| !st.is_from_future(now, s) && st.is_dead(now, s))
        })
    })
}
