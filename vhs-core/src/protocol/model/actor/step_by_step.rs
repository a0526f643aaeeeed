//! The step-by-step caller's actor: `put_s3`, its own write, the hook.

use crate::backend::Conditional;
use crate::protocol::clock::{Now, Settings, Tokens};
use crate::protocol::decide::{ItemHash, Write};
use crate::protocol::item::{ObjectRef, State};
use crate::protocol::machine::{Answer, In, Next, Op, Retire, Settle, Staging};
use crate::protocol::model::world::Setup;

use super::{attrs_of, map, outcome_of, update_of, Kind, Outcome, Spec, StagingHash, StepPhase};

/// The step-by-step caller: `put_s3`, its own write, the hook.
#[allow(clippy::too_many_arguments)]
pub(super) fn step_by_step(
    setup: &Setup,
    spec: &Spec,
    index: u8,
    phase: &mut StepPhase,
    input: In,
    now: Now,
    tokens: &mut Tokens,
    s: Settings,
) -> Next<Outcome> {
    let Kind::Step(indices) = &spec.kind else {
        unreachable!()
    };
    // The success hook's objects (`clean_up_after_update_succeeded`): the old
    // objects of the attributes written, not pointed to again.
    let replaced = |staging: &Staging| -> Vec<ObjectRef> {
        let old = staging.state.live().cloned().unwrap_or_default();
        let new: Vec<&str> = indices
            .iter()
            .map(|&i| setup.objects[i].uri.as_str())
            .collect();
        attrs_of(setup, indices)
            .iter()
            .filter_map(|a| setup.target.owned(a, old.get(*a)?))
            .filter(|o| !new.contains(&o.uri.as_str()))
            .collect()
    };
    // The failure hook's objects: those `put_s3` created.
    let created_objects = |created: &[bool]| -> Vec<ObjectRef> {
        indices
            .iter()
            .zip(created)
            .filter(|(_, c)| **c)
            .map(|(&i, _)| setup.objects[i].clone())
            .collect()
    };
    let (retire, outcome): (Vec<ObjectRef>, Outcome) = match phase {
        StepPhase::Staging(stage) => {
            return match stage.step(input, now) {
                Next::Report(out) => match out.result {
                    Err(e) => Next::Report(outcome_of(&e)),
                    Ok(staging) => {
                        *phase = StepPhase::Staged {
                            staging: StagingHash(staging),
                            created: out.created,
                        };
                        Next::Do(Vec::new())
                    }
                },
                Next::Done => Next::Done,
                other => map(other, |_| Outcome::Ok),
            }
        }
        StepPhase::Staged { staging, created } => {
            let staging = staging.0.clone();
            // The caller's own write, as `Staged` builds it: `Staged::condition`
            // for an UpdateItem, `put_condition` for a PutItem.
            let live = matches!(staging.state, State::Live(_));
            let condition = match live {
                true => staging.condition_at(now, &s),
                false => staging.put_condition_at(now, &s),
            };
            let write = if live {
                let mut u = update_of(setup, indices, index);
                u.set.extend(staging.update.set.iter().cloned());
                u.remove.extend(staging.update.remove.iter().cloned());
                Write::Update(u)
            } else {
                let mut item = setup.record(indices, &format!("s{index}"));
                for (k, v) in &staging.put {
                    item.entry(k.clone()).or_insert_with(|| v.clone());
                }
                Write::Put(ItemHash(item))
            };
            *phase = StepPhase::Writing {
                staging: StagingHash(staging),
                created: std::mem::take(created),
            };
            return Next::Do(vec![Op::Write {
                target: setup.target.clone(),
                write,
                condition,
            }]);
        }
        StepPhase::Writing { staging, created } => {
            let answers = input.answers();
            match answers.into_iter().next() {
                // Applied, or failed on what its first copy wrote
                // (`Staged::landed_in`): the success hook.
                Some(Ok(Answer::Written(Conditional::Applied(_)))) => {
                    (replaced(&staging.0), Outcome::Ok)
                }
                Some(Ok(Answer::Written(Conditional::Failed(Some(cur)))))
                    if staging.0.landed_in(&cur) =>
                {
                    (replaced(&staging.0), Outcome::Ok)
                }
                // Failed, or its answer lost: the failure hook, which first
                // settles whether a copy landed or still can.
                _ => {
                    let settle = Settle::new(
                        setup.target.clone(),
                        &staging.0.token,
                        &tokens.fork().next(),
                        now,
                        s,
                    );
                    *phase = StepPhase::Settling {
                        settle,
                        staging: staging.clone(),
                        created: std::mem::take(created),
                    };
                    return step_by_step(setup, spec, index, phase, In::Start, now, tokens, s);
                }
            }
        }
        StepPhase::Settling {
            settle,
            staging,
            created,
        } => match settle.step(input, now) {
            Next::Report(Ok(true)) => (replaced(&staging.0), Outcome::Ok),
            Next::Report(Ok(false)) => (
                created_objects(created),
                Outcome::Failed("condition failed".into()),
            ),
            // Unsettled: the hook deletes nothing.
            Next::Report(Err(_)) => (Vec::new(), Outcome::Unknown),
            Next::Done => return Next::Done,
            other => return map(other, |_| Outcome::Ok),
        },
        StepPhase::Hook(retire, outcome) => {
            return match retire.step(input, now) {
                Next::Do(ops) => Next::Do(ops),
                Next::Report(()) | Next::Done => {
                    let outcome = outcome.clone();
                    *phase = StepPhase::Done;
                    Next::Report(outcome)
                }
                Next::Pause { until, reason } => Next::Pause { until, reason },
            }
        }
        StepPhase::Done => return Next::Done,
    };
    if retire.is_empty() {
        *phase = StepPhase::Done;
        return Next::Report(outcome);
    }
    let mut retire_m = Retire::new(
        vec![(setup.target.clone(), retire, State::Unknown)],
        &tokens.fork().next(),
        now,
        s,
    );
    let next = retire_m.step(In::Start, now);
    *phase = StepPhase::Hook(retire_m, outcome.clone());
    match next {
        Next::Do(ops) => Next::Do(ops),
        _ => {
            *phase = StepPhase::Done;
            Next::Report(outcome)
        }
    }
}
