//! The protocol as a stateright model: the world, the actors of a scenario,
//! every action the environment can take (land a request, lose its answer,
//! deliver it late or twice, drop it, let time pass, crash an actor), and the
//! properties checked in every reachable state.

mod properties;
mod trace;

use std::time::{Duration, Instant};

use stateright::{Checker, HasDiscoveries, Model};

use super::actor::{self, now_of, Actor, Outcome, Phase, Spec};
use super::world::{own_write, settings, Msg, Setup, World, TICK};
use crate::protocol::item::State as ItemState;
use crate::protocol::machine::{Answer, Op};

use trace::trace;

/// A bounded model: the item's start, the actors, and how many faults the
/// environment may inject.
#[derive(Debug, Clone)]
pub(super) struct Scenario {
    pub name: &'static str,
    /// The item at the start: live, pointing to these objects; or absent.
    pub item: Option<Vec<usize>>,
    /// Objects there at the start that no item points to (orphans).
    pub orphans: Vec<usize>,
    pub actors: Vec<Spec>,
    /// Answers that may be lost (a request timing out, landed or not).
    pub lost: u8,
    /// Requests an SDK may send twice.
    pub dup: u8,
    /// Actors that may crash (at any step, their background work included).
    pub crash: u8,
    /// Times the clock may advance by a tick (a quarter of the retention,
    /// the longest a request may take to land).
    pub ticks: u8,
    /// Times the clock may leap by the retention plus the skew bound (with no
    /// request in flight): whatever was stamped before is dead after it.
    pub leaps: u8,
    /// A fix of the protocol undone (`model_finds_*`).
    pub revert: Option<crate::protocol::clock::Fix>,
    /// A TTL: the initial item expires at the first tick given, every
    /// create and update writes the second, and DynamoDB's reaper may remove
    /// the item once its `vhs:ttl` is past.
    pub ttl: Option<(u8, u8)>,
}

/// What a check found.
#[derive(Debug)]
pub(super) struct Checked {
    pub name: &'static str,
    pub states: usize,
    pub unique: usize,
    pub depth: usize,
    pub elapsed: Duration,
    /// The first violated property and its trace.
    pub violation: Option<(&'static str, String)>,
}

impl std::fmt::Display for Checked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "model {}: {} states ({} unique), depth {}, {:.1} s",
            self.name,
            self.states,
            self.unique,
            self.depth,
            self.elapsed.as_secs_f64()
        )?;
        if let Some((property, trace)) = &self.violation {
            write!(f, "\nVIOLATED: {property}\n{trace}")?;
        }
        Ok(())
    }
}

/// The model of one scenario.
pub(super) struct ProtocolModel {
    pub setup: Setup,
    pub scenario: Scenario,
    /// Each actor's own write token.
    pub tokens: Vec<String>,
    /// Solo runs known to end well, by what they depend on (see
    /// [`ProtocolModel::solo_key`]).
    ends: std::sync::Mutex<std::collections::HashSet<u64>>,
}

/// The state: the world, the actors, the faults left.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct S {
    pub world: World,
    pub actors: Vec<Actor>,
    pub lost: u8,
    pub dup: u8,
    pub crash: u8,
    pub ticks: u8,
    pub leaps: u8,
    /// Actors that chose to take their next step only after time passes
    /// (bit per actor; cleared by a tick or a leap).
    pub asleep: u8,
}

type Id = (u8, u16, u8);

/// A leap of the clock: the retention plus the skew bound, in ticks.
const LEAP: u8 = 5;

/// What the environment does next.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum A {
    /// Actor `n` takes its next step.
    Step(u8),
    /// Actor `n` takes its next step only after time passes.
    Sleep(u8),
    /// A request lands; its answer reaches its actor (if still waiting).
    Land(Id),
    /// One copy of a request sent twice lands; its answer is not the one the
    /// actor gets.
    LandSilent(Id),
    /// The actor times out; the request stays in flight (it may land later).
    TimeOut(Id),
    /// The SDK sends the request again (its first attempt may still land).
    SdkRetry(Id),
    /// A request in flight never lands.
    Drop(Id),
    /// A quarter of the retention passes.
    Tick,
    /// The retention and the skew bound pass.
    Leap,
    /// Actor `n` dies here (its background work never runs).
    Crash(u8),
    /// DynamoDB's TTL removes the item (its `vhs:ttl` is past).
    Reap,
}

impl ProtocolModel {
    pub fn new(scenario: Scenario) -> Self {
        let tokens = (0..scenario.actors.len())
            .map(|i| Actor::token(i as u8))
            .collect();
        let mut setup = Setup::new();
        setup.expires = scenario.ttl.map(|(_, extended)| extended);
        setup.relevant = scenario
            .item
            .iter()
            .flatten()
            .chain(&scenario.orphans)
            .copied()
            .chain(scenario.actors.iter().flat_map(Spec::uploads))
            .fold(0, |mask, i| mask | 1 << i);
        ProtocolModel {
            setup,
            scenario,
            tokens,
            ends: Default::default(),
        }
    }

    fn uploads(&self, actor: u8) -> Vec<usize> {
        self.scenario.actors[actor as usize].uploads()
    }

    fn msg<'a>(&self, s: &'a S, id: Id) -> Option<&'a Msg> {
        s.world.net.iter().find(|m| m.id() == id)
    }

    /// Whether a request changes the world when it lands (later or twice).
    fn effectful(op: &Op) -> bool {
        !matches!(op, Op::Read { .. } | Op::Head { .. })
    }

    /// Applies one landing of `id` (answering its actor with `answer`:
    /// `Some(true)` the real one, `Some(false)` a lost one, `None` nothing).
    fn land(&self, s: &mut S, id: Id, answer: Option<bool>) {
        let Some(at) = s.world.net.iter().position(|m| m.id() == id) else {
            return;
        };
        let msg = s.world.net[at].clone();
        let uploads = self.uploads(msg.actor);
        let before = s.world.item().filter(|_| s.world.live()).cloned();
        if let Op::Delete { keys, .. } = &msg.op {
            for k in keys {
                if let Some(i) = self.setup.index(k) {
                    if s.world.exists(i) && s.world.time < s.world.ghost.kept_until[i] {
                        s.world.ghost.kept_deleted = true;
                    }
                }
            }
        }
        let got = s.world.apply(&self.setup, &msg.op, &uploads);
        let applied = matches!(
            got,
            Answer::Written(crate::backend::Conditional::Applied(_))
                | Answer::Transacted(crate::backend::Transacted::Committed)
        );
        if applied && own_write(&msg.op, &self.tokens[msg.actor as usize]) {
            let live = s.world.live();
            s.world.ghost.applied.push((msg.actor, live));
            // What it stopped pointing to must stay `keep` ticks.
            if let (Some(keep), Some(before)) =
                (self.scenario.actors[msg.actor as usize].keep, before)
            {
                let after = s.world.item().filter(|_| live).cloned();
                for o in self.setup.target.owned_in(&before) {
                    let still = after.as_ref().is_some_and(|a| {
                        matches!(a.get(&o.attr), Some(aws_sdk_dynamodb::types::AttributeValue::S(u)) if *u == o.uri)
                    });
                    if let (false, Some(i)) = (still, self.setup.index(&o.key)) {
                        let until = s.world.time.saturating_add(keep);
                        let k = &mut s.world.ghost.kept_until[i];
                        *k = (*k).max(until);
                    }
                }
            }
        }
        if let Some(real) = answer {
            self.answer(s, &msg, real.then_some(got));
            s.world.net[at].answered = true;
        }
        let m = &mut s.world.net[at];
        m.copies -= 1;
        if m.copies == 0 || !Self::effectful(&m.op) {
            s.world.net.remove(at);
        }
    }

    fn answer(&self, s: &mut S, msg: &Msg, got: Option<Answer>) {
        if msg.answered {
            return;
        }
        let actor = &mut s.actors[msg.actor as usize];
        if actor.phase != Phase::Waiting || actor.batch != msg.batch {
            return;
        }
        actor.answers[msg.slot as usize] = Some(got);
        if actor.answers.iter().all(Option::is_some) {
            actor.phase = Phase::Ready;
        }
    }

    /// Whether the clock may advance: no request is overdue (one sent a tick
    /// ago must land, or be dropped, first).
    fn may_tick(&self, s: &S) -> bool {
        s.ticks > 0 && s.world.net.iter().all(|m| m.sent_at >= s.world.time)
    }

    /// Runs actor `n` alone, every other actor stopped and their requests
    /// lost, its own answered at once, the clock advancing when it waits:
    /// it must report (and not `Busy`) within a bounded number of steps.
    pub fn solo(&self, s: &S, n: usize) -> Result<(), String> {
        let mut s = s.clone();
        for (i, a) in s.actors.iter_mut().enumerate() {
            if i != n {
                a.phase = Phase::Crashed;
            }
        }
        s.world.net.retain(|m| m.actor as usize == n && !m.answered);
        let spec = &self.scenario.actors[n];
        for _ in 0..200 {
            if let Some(outcome) = &s.actors[n].outcome {
                return match outcome {
                    Outcome::Busy => Err("it gave up waiting (Busy)".into()),
                    _ => Ok(()),
                };
            }
            match s.actors[n].phase.clone() {
                Phase::Ready => self.step(&mut s, n as u8),
                Phase::Paused(until) => {
                    let now = now_of(&s.world, spec).wall_ms;
                    let ticks = match until {
                        Some(until) if until > now => (until - now).div_ceil(TICK),
                        _ => 1,
                    };
                    s.world.time = s.world.time.saturating_add(ticks.min(250) as u8);
                    self.step(&mut s, n as u8);
                }
                Phase::Waiting => {
                    // Reads first (uploads may wait for them), then the rest.
                    let ids: Vec<Id> = {
                        let mut mine: Vec<&Msg> = s
                            .world
                            .net
                            .iter()
                            .filter(|m| m.actor as usize == n && !m.answered)
                            .collect();
                        mine.sort_by_key(|m| (!matches!(m.op, Op::Read { .. }), m.slot));
                        mine.iter().map(|m| m.id()).collect()
                    };
                    for id in ids {
                        self.land(&mut s, id, Some(true));
                    }
                }
                Phase::Finished => return Err("it finished without reporting".into()),
                Phase::Crashed => return Ok(()),
            }
        }
        Err("it did not report within 200 steps of its own".into())
    }

    /// Runs actor `n` alone (as [`ProtocolModel::solo`]) to its end,
    /// background work included: what it reported, and the world it left.
    pub fn solo_world(&self, s: &S, n: usize) -> (Option<Outcome>, World) {
        let mut s = s.clone();
        for (i, a) in s.actors.iter_mut().enumerate() {
            if i != n {
                a.phase = Phase::Crashed;
            }
        }
        s.world.net.retain(|m| m.actor as usize == n && !m.answered);
        for _ in 0..400 {
            match s.actors[n].phase.clone() {
                Phase::Ready | Phase::Paused(_) => self.step(&mut s, n as u8),
                Phase::Waiting => {
                    let mut mine: Vec<Msg> = s
                        .world
                        .net
                        .iter()
                        .filter(|m| m.actor as usize == n && !m.answered)
                        .cloned()
                        .collect();
                    mine.sort_by_key(|m| (!matches!(m.op, Op::Read { .. }), m.slot));
                    for m in mine {
                        self.land(&mut s, m.id(), Some(true));
                    }
                }
                Phase::Finished | Phase::Crashed => break,
            }
        }
        (s.actors[n].outcome.clone(), s.world)
    }

    /// Runs actor `n`'s machine through the real engine (`drive`), from the
    /// scenario's start: what it reports.
    pub async fn run_with_engine<E: crate::protocol::engine::Env>(
        &self,
        n: usize,
        env: &E,
        uploads: &dyn crate::protocol::engine::Uploads,
    ) -> Outcome {
        use crate::protocol::engine::drive;
        let spec = &self.scenario.actors[n];
        let index = n as u8;
        let now = crate::protocol::clock::Now::system();
        let setup = &self.setup;
        match actor::body(setup, spec, index, now, settings()) {
            actor::Body::Commit(m) => {
                let kind = spec.kind.clone();
                let mut plan = |state: &ItemState| {
                    actor::plan(
                        setup,
                        &kind,
                        index,
                        state,
                        crate::protocol::clock::Now::system(),
                    )
                };
                let out = drive(env, uploads, m, |m, i, now| m.step(i, now, &mut plan)).await;
                match out.result {
                    Ok(_) => Outcome::Ok,
                    Err(e) => actor::outcome(&e),
                }
            }
            actor::Body::Delete(m) => {
                let out = drive(env, uploads, m, |m, i, now| m.step(i, now)).await;
                match out.result {
                    Ok(_) => Outcome::Ok,
                    Err(e) => actor::outcome(&e),
                }
            }
            actor::Body::Transact(m) => {
                let kind = spec.kind.clone();
                let mut plan = |_: usize, state: &ItemState| {
                    let now = crate::protocol::clock::Now::system();
                    actor::action_plan(setup, &kind, index, state, now)
                };
                let out = drive(env, uploads, m, |m, i, now| m.step(i, now, &mut plan)).await;
                match out.result {
                    Ok(()) => Outcome::Ok,
                    Err(e) => actor::outcome(&e),
                }
            }
            other => unreachable!("not run through the engine: {other:?}"),
        }
    }

    /// What a solo run of actor `n` depends on: the item, the objects, the
    /// time, the actor, and its requests still waiting for an answer.
    fn solo_key(&self, s: &S, n: usize) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        n.hash(&mut h);
        s.world.item.hash(&mut h);
        s.world.objects.hash(&mut h);
        s.world.time.hash(&mut h);
        s.actors[n].hash(&mut h);
        for m in s
            .world
            .net
            .iter()
            .filter(|m| m.actor as usize == n && !m.answered)
        {
            m.hash(&mut h);
        }
        h.finish()
    }

    fn step(&self, s: &mut S, n: u8) {
        let spec = &self.scenario.actors[n as usize];
        let S { world, actors, .. } = s;
        let mut settings = settings();
        settings.revert = self.scenario.revert;
        actor::step(
            &self.setup,
            spec,
            n,
            &mut actors[n as usize],
            world,
            settings,
        );
    }

    /// How many times actor `n`'s own write was applied.
    fn applied(s: &S, n: u8) -> usize {
        s.world
            .ghost
            .applied
            .iter()
            .filter(|(a, _)| *a == n)
            .count()
    }
}

/// Checks `scenario` exhaustively.
pub(super) fn check(scenario: Scenario) -> Checked {
    let name = scenario.name;
    let started = Instant::now();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4);
    let checker = ProtocolModel::new(scenario)
        .checker()
        .threads(threads)
        .finish_when(HasDiscoveries::Any)
        .spawn_dfs()
        .join();
    let violation = checker
        .discoveries()
        .into_iter()
        .next()
        .map(|(property, path)| {
            let model = checker.model();
            (property, trace(model, path.into_vec()))
        });
    Checked {
        name,
        states: checker.state_count(),
        unique: checker.unique_state_count(),
        depth: checker.max_depth(),
        elapsed: started.elapsed(),
        violation,
    }
}
