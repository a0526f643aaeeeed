//! The protocol as a stateright model: the world, the actors of a scenario,
//! every action the environment can take (land a request, lose its answer,
//! deliver it late or twice, drop it, let time pass, crash an actor), and the
//! properties checked in every reachable state.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use stateright::{Checker, HasDiscoveries, Model, Property};

use super::actor::{self, now_of, Actor, Kind, Outcome, Phase, Spec};
use super::world::{own_write, settings, Msg, Setup, World, NAMES, TICK};
use crate::protocol::decide::{ItemHash, Write};
use crate::protocol::item::{State as ItemState, MARK, PLACEHOLDER, SEQ, TOKENS};
use crate::protocol::machine::{Answer, Op};

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
}

impl ProtocolModel {
    pub fn new(scenario: Scenario) -> Self {
        let tokens = (0..scenario.actors.len())
            .map(|i| Actor::token(i as u8))
            .collect();
        let mut setup = Setup::new();
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
        let got = s.world.apply(&self.setup, &msg.op, &uploads);
        let applied = matches!(
            got,
            Answer::Written(crate::backend::Conditional::Applied(_))
                | Answer::Transacted(crate::backend::Transacted::Committed)
        );
        if applied && own_write(&msg.op, &self.tokens[msg.actor as usize]) {
            let live = s.world.live();
            s.world.ghost.applied.push((msg.actor, live));
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
                let mut plan = |state: &ItemState| actor::plan(setup, &kind, index, state);
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
                let mut plan =
                    |_: usize, state: &ItemState| actor::action_plan(setup, &kind, index, state);
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

fn no_dangling(m: &ProtocolModel, s: &S) -> bool {
    s.world.dangling(&m.setup).is_none()
}

fn exactly_once(m: &ProtocolModel, s: &S) -> bool {
    m.scenario.actors.iter().enumerate().all(|(i, spec)| {
        let n = ProtocolModel::applied(s, i as u8);
        if n > 1 {
            return false;
        }
        match (&s.actors[i].outcome, spec.writer()) {
            (Some(Outcome::Ok), true) => n == 1,
            (Some(Outcome::Failed(_)) | Some(Outcome::Busy), _) => n == 0,
            _ => true,
        }
    })
}

fn no_delete_undone(m: &ProtocolModel, s: &S) -> bool {
    let log = &s.world.ghost.applied;
    for (k, (d, _)) in log.iter().enumerate() {
        let kind = &m.scenario.actors[*d as usize].kind;
        if !matches!(kind, Kind::Delete | Kind::TxDelete) {
            continue;
        }
        // A write applied before this delete, applied again after it.
        for (x, _) in &log[..k] {
            if log[k + 1..].iter().any(|(y, _)| y == x) {
                return false;
            }
        }
    }
    true
}

fn writers_end(m: &ProtocolModel, s: &S) -> bool {
    (0..s.actors.len()).all(|n| {
        let a = &s.actors[n];
        if !m.scenario.actors[n].writer() || a.outcome.is_some() || a.phase == Phase::Crashed {
            return true;
        }
        let key = m.solo_key(s, n);
        if m.ends
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&key)
        {
            return true;
        }
        let ok = m.solo(s, n).is_ok();
        if ok {
            m.ends.lock().unwrap_or_else(|e| e.into_inner()).insert(key);
        }
        ok
    })
}

impl Model for ProtocolModel {
    type State = S;
    type Action = A;

    fn init_states(&self) -> Vec<S> {
        let mut objects = 0u8;
        let item = self.scenario.item.as_ref().map(|pointed| {
            for &i in pointed {
                objects |= 1 << i;
            }
            let mut item = self.setup.record(pointed, "init");
            item.insert(
                TOKENS.to_owned(),
                AttributeValue::S("00000000000000ff".into()),
            );
            ItemHash(item)
        });
        for &i in &self.scenario.orphans {
            objects |= 1 << i;
        }
        vec![S {
            world: World {
                item,
                objects,
                time: 0,
                net: Vec::new(),
                ghost: Default::default(),
            },
            actors: self.scenario.actors.iter().map(|_| Actor::new()).collect(),
            lost: self.scenario.lost,
            dup: self.scenario.dup,
            crash: self.scenario.crash,
            ticks: self.scenario.ticks,
            leaps: self.scenario.leaps,
            asleep: 0,
        }]
    }

    fn actions(&self, s: &S, actions: &mut Vec<A>) {
        // An actor's step reads nothing but its own state and its clock: it
        // commutes with every other action but time passing (and its own
        // crash). So an actor that can step either steps now, or sleeps until
        // time passes (a schedule that delays its step reaches the same states
        // as one that takes it now, or right after the next tick or leap). A
        // crash is only explored there: dying while a batch is in flight is
        // dying before the next step.
        let time_left = s.ticks > 0 || s.leaps > 0;
        if let Some(i) = s.actors.iter().enumerate().position(|(i, a)| {
            matches!(a.phase, Phase::Ready | Phase::Paused(_))
                && s.asleep & (1 << i) == 0
                && s.world.time >= self.scenario.actors[i].starts_at
        }) {
            let i = i as u8;
            actions.push(A::Step(i));
            if s.crash > 0 {
                actions.push(A::Crash(i));
            }
            if time_left {
                actions.push(A::Sleep(i));
            }
            return;
        }
        for m in &s.world.net {
            let id = m.id();
            let effectful = Self::effectful(&m.op);
            if s.world.may_land(&self.setup, m, &self.uploads(m.actor)) {
                actions.push(A::Land(id));
                if !m.answered && m.copies > 1 {
                    actions.push(A::LandSilent(id));
                }
            }
            // A request that lands while its answer is lost is a time-out
            // followed by a late landing.
            if !m.answered && s.lost > 0 {
                actions.push(A::TimeOut(id));
            }
            // DeleteObjects is sent exactly once (no SDK retry): that is
            // what lets a reservation's missing object prove its deletion.
            let once = matches!(m.op, Op::Delete { .. });
            if !m.answered && s.dup > 0 && effectful && !once && m.copies == 1 {
                actions.push(A::SdkRetry(id));
            }
            if m.answered {
                actions.push(A::Drop(id));
            }
        }
        if self.may_tick(s) {
            actions.push(A::Tick);
        }
        if s.leaps > 0 && s.world.net.is_empty() {
            actions.push(A::Leap);
        }
    }

    fn next_state(&self, s: &S, action: A) -> Option<S> {
        let mut s = s.clone();
        match action {
            A::Step(n) => self.step(&mut s, n),
            A::Sleep(n) => s.asleep |= 1 << n,
            A::Land(id) => self.land(&mut s, id, Some(true)),
            A::LandSilent(id) => self.land(&mut s, id, None),
            A::TimeOut(id) => {
                s.lost -= 1;
                let msg = self.msg(&s, id)?.clone();
                self.answer(&mut s, &msg, None);
                let at = s.world.net.iter().position(|m| m.id() == id)?;
                if Self::effectful(&msg.op) {
                    s.world.net[at].answered = true;
                } else {
                    s.world.net.remove(at);
                }
            }
            A::SdkRetry(id) => {
                s.dup -= 1;
                let at = s.world.net.iter().position(|m| m.id() == id)?;
                s.world.net[at].copies += 1;
            }
            A::Drop(id) => {
                let at = s.world.net.iter().position(|m| m.id() == id)?;
                s.world.net.remove(at);
            }
            A::Tick => {
                s.ticks -= 1;
                s.world.time += 1;
                s.asleep = 0;
            }
            A::Leap => {
                s.leaps -= 1;
                s.world.time += LEAP;
                s.asleep = 0;
            }
            A::Crash(n) => {
                s.crash -= 1;
                s.actors[n as usize].phase = Phase::Crashed;
            }
        }
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("every pointer of a live item names an existing object", no_dangling),
            Property::always(
                "a call that reported success was applied exactly once, one that reported failure not at all",
                exactly_once,
            ),
            Property::always("no delete is undone", no_delete_undone),
            Property::always(
                "when the others stop, every writer ends (no Busy) within a bounded number of its own steps",
                writers_end,
            ),
        ]
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

// ---- traces ----

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
fn trace(m: &ProtocolModel, path: Vec<(S, Option<A>)>) -> String {
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
