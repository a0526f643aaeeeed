//! A deterministic interleaving explorer ("stateless model checking") for async code
//! that talks to a [`vhs::Backend`].
//!
//! A test builds a *world* per schedule: a fresh backend, wrapped in a
//! [`ParkingBackend`], whatever it builds over that (a `Store`, say), seed data, and
//! N *actors*, futures that call into the code under test. [`explore`] polls the
//! actors itself, in the task that awaits it, with a no-op waker: nothing is spawned.
//! Every backend call an actor makes is *parked* in the world's [`Gate`] until the
//! explorer releases it, so the only source of interleaving is the explorer's
//! choice of which parked call goes next. After each release it polls the actors
//! round-robin until nothing moves any more; the calls then parked are the choices
//! of the next step, in order of actor id and per-actor sequence number.
//!
//! The search is a depth-first one by re-execution: each schedule runs from a fresh
//! world, replaying the choices of the previous schedule up to the deepest step that
//! has an untried alternative, then taking that alternative and the first choice
//! at every later step. With no bound (see [`ExploreOptions`]) every interleaving of
//! backend calls is run once. After each schedule `check` judges the final state.
//!
//! Requirements on the code under test, for the search to mean anything:
//! - **No spawning.** A call from a task spawned by an actor runs outside every actor,
//!   passes straight through and races nondeterministically.
//! - **No nonzero sleeps.** A sleep's timer is never driven while an actor runs, so it
//!   never ends: configure retry policies with zero backoff
//!   (`RetryPolicy::attempts(n).delays(Duration::ZERO, Duration::ZERO)`, which
//!   retries without sleeping). An actor left Pending without a backend call for
//!   [`ExploreOptions::stuck_rounds`] rounds is reported as [`FailureKind::Stuck`].
//! - **Determinism apart from the schedule**: the same choices must lead to the same
//!   calls (no randomness or clock that changes which calls are made). A replay that
//!   diverges is reported as [`FailureKind::Nondeterministic`] and ends the search.
//!
//! Calls made outside any actor (in `setup` and in `check`) pass straight through,
//! so setup can seed data and the check can read state through the same backend.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use futures::FutureExt;
use vhs::types::AttributeValue;
use vhs::BackendExt as _;
use vhs::{Backend, Condition, Conditional, Item, Op, Reply, TableSpec, TransactWrite};

tokio::task_local! {
    /// The id of the actor being polled; unset outside the explorer's actors.
    static ACTOR: usize;
}

/// A call's identity: actor id and the actor's sequence number for it.
type CallId = (usize, usize);

/// One backend call made by an actor, as parked and released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The actor that made it (its index in [`World::actor`] order).
    pub actor: usize,
    /// Its number among the actor's calls, from 0.
    pub seq: usize,
    /// The kind of call.
    pub op: Op,
    /// What it is about: table and key, bucket and key, ...
    pub what: String,
}

impl Call {
    fn id(&self) -> CallId {
        (self.actor, self.seq)
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a{}.{} {:?} {}",
            self.actor, self.seq, self.op, self.what
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the explorer.
    Parked,
    /// Released, not yet picked up by its future.
    Released,
    /// Forwarded to the inner backend.
    Running,
}

#[derive(Debug)]
struct Entry {
    op: Op,
    what: String,
    phase: Phase,
    waker: Option<Waker>,
}

#[derive(Debug, Default)]
struct GateState {
    next_seq: HashMap<usize, usize>,
    /// Calls registered and not finished (or dropped), by id.
    calls: BTreeMap<CallId, Entry>,
    /// Bumped on every registration, pick-up after release, and end of a call.
    activity: u64,
}

/// Where the [`ParkingBackend`]s of one world park their calls for the explorer.
/// [`explore`] makes one per schedule and hands it to `setup`.
#[derive(Debug, Clone, Default)]
pub struct Gate(Arc<Mutex<GateState>>);

impl Gate {
    fn lock(&self) -> MutexGuard<'_, GateState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn register(&self, actor: usize, op: Op, what: String) -> CallId {
        let mut s = self.lock();
        let seq = s.next_seq.entry(actor).or_default();
        let id = (actor, *seq);
        *seq += 1;
        s.calls.insert(
            id,
            Entry {
                op,
                what,
                phase: Phase::Parked,
                waker: None,
            },
        );
        s.activity += 1;
        id
    }

    fn call(id: CallId, e: &Entry) -> Call {
        Call {
            actor: id.0,
            seq: id.1,
            op: e.op,
            what: e.what.clone(),
        }
    }

    /// The parked calls, by actor id then sequence number.
    fn parked(&self) -> Vec<Call> {
        self.lock()
            .calls
            .iter()
            .filter(|(_, e)| e.phase == Phase::Parked)
            .map(|(id, e)| Self::call(*id, e))
            .collect()
    }

    /// A released call that has not finished yet, if any.
    fn in_flight(&self) -> Option<Call> {
        self.lock()
            .calls
            .iter()
            .find(|(_, e)| e.phase != Phase::Parked)
            .map(|(id, e)| Self::call(*id, e))
    }

    /// Whether `actor` has a call parked or in flight.
    fn has_open_call(&self, actor: usize) -> bool {
        self.lock()
            .calls
            .range((actor, 0)..=(actor, usize::MAX))
            .next()
            .is_some()
    }

    fn activity(&self) -> u64 {
        self.lock().activity
    }

    fn release(&self, id: CallId) {
        let waker = {
            let mut s = self.lock();
            let e = s.calls.get_mut(&id).expect("a released call is parked");
            e.phase = Phase::Released;
            e.waker.take()
        };
        // Combinators such as `buffer_unordered` poll a child only once woken.
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn finish(&self, id: CallId) {
        let mut s = self.lock();
        if s.calls.remove(&id).is_some() {
            s.activity += 1;
        }
    }
}

/// A registered call; unregisters it when the call ends or is dropped.
struct Registration {
    gate: Gate,
    id: CallId,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.gate.finish(self.id);
    }
}

/// Pending until the explorer releases the call.
struct Release<'a>(&'a Registration);

impl Future for Release<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.0.gate.lock();
        let GateState {
            calls, activity, ..
        } = &mut *s;
        let Some(e) = calls.get_mut(&self.0.id) else {
            return Poll::Ready(());
        };
        match e.phase {
            Phase::Parked => {
                e.waker = Some(cx.waker().clone());
                Poll::Pending
            }
            Phase::Released => {
                e.phase = Phase::Running;
                *activity += 1;
                Poll::Ready(())
            }
            Phase::Running => Poll::Ready(()),
        }
    }
}

/// A [`Backend`] wrapper that parks every call an actor makes in a [`Gate`] until
/// the explorer releases it, then forwards it to the inner backend. Calls made
/// outside any actor (setup, checks) pass straight through. Clones share the gate.
#[derive(Debug, Clone)]
pub struct ParkingBackend<B> {
    inner: B,
    gate: Gate,
    /// Key attribute names per table, learnt from `create_table` and key arguments,
    /// to describe `put_item` calls by their key.
    keys: Arc<Mutex<HashMap<String, Vec<String>>>>,
}

impl<B: Backend> ParkingBackend<B> {
    /// Wraps `inner`, parking actors' calls in `gate`.
    pub fn new(inner: B, gate: &Gate) -> Self {
        ParkingBackend {
            inner,
            gate: gate.clone(),
            keys: Arc::default(),
        }
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    async fn park<T>(
        &self,
        op: Op,
        what: String,
        call: impl Future<Output = vhs::Result<T>>,
    ) -> vhs::Result<T> {
        let Ok(actor) = ACTOR.try_with(|a| *a) else {
            return call.await;
        };
        let registration = Registration {
            id: self.gate.register(actor, op, what),
            gate: self.gate.clone(),
        };
        Release(&registration).await;
        let out = call.await;
        drop(registration);
        out
    }

    fn key_names(&self) -> MutexGuard<'_, HashMap<String, Vec<String>>> {
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `table[name=value,...]` for a key argument (which holds exactly the key).
    fn describe_key(&self, table: &str, key: &Item) -> String {
        let mut names: Vec<String> = key.keys().cloned().collect();
        names.sort();
        let names = self
            .key_names()
            .entry(table.to_owned())
            .or_insert(names)
            .clone();
        format!("{table}[{}]", key_text(key, &names))
    }

    /// `table[name=value,...]` for a whole item, by the key names if known.
    fn describe_item(&self, table: &str, item: &Item) -> String {
        match self.key_names().get(table) {
            Some(names) => format!("{table}[{}]", key_text(item, names)),
            None => format!("{table}[{} attributes]", item.len()),
        }
    }
}

fn key_text(item: &Item, names: &[String]) -> String {
    names
        .iter()
        .filter_map(|n| Some(format!("{n}={}", show(item.get(n)?))))
        .collect::<Vec<_>>()
        .join(",")
}

fn show(v: &AttributeValue) -> String {
    match v {
        AttributeValue::S(s) if s.chars().count() > 40 => {
            format!("{}…", s.chars().take(39).collect::<String>())
        }
        AttributeValue::S(s) | AttributeValue::N(s) => s.clone(),
        AttributeValue::B(b) => format!("<{} bytes>", b.as_ref().len()),
        other => format!("{other:?}").chars().take(40).collect(),
    }
}

fn conditional(condition: Option<&Condition>) -> &'static str {
    if condition.is_some() {
        " (conditional)"
    } else {
        ""
    }
}

fn continued<T>(start: &Option<T>) -> &'static str {
    if start.is_some() {
        " (continued)"
    } else {
        ""
    }
}

#[async_trait::async_trait]
impl<B: Backend> Backend for ParkingBackend<B> {
    async fn send(&self, call: vhs::Call<'_>) -> vhs::Result<Reply> {
        let what = match &call {
            vhs::Call::CreateTable { spec } => {
                let names = std::iter::once(&spec.hash_key)
                    .chain(spec.range_key.as_ref())
                    .map(|(n, _)| n.clone())
                    .collect();
                self.key_names().insert(spec.name.clone(), names);
                spec.name.clone()
            }
            vhs::Call::GetItem { table, key, .. } => self.describe_key(table, key),
            vhs::Call::PutItem {
                table,
                item,
                condition,
            } => self.describe_item(table, item) + conditional(*condition),
            vhs::Call::UpdateItem {
                table,
                key,
                condition,
                ..
            }
            | vhs::Call::DeleteItem {
                table,
                key,
                condition,
            } => self.describe_key(table, key) + conditional(*condition),
            vhs::Call::Query(request) => {
                let (name, value) = &request.hash_key;
                format!(
                    "{}[{name}={}]{}",
                    request.table,
                    show(value),
                    continued(&request.start)
                )
            }
            vhs::Call::Scan(request) => {
                let segment = request
                    .segment
                    .map(|(i, n)| format!(" segment {i}/{n}"))
                    .unwrap_or_default();
                format!("{}{segment}{}", request.table, continued(&request.start))
            }
            vhs::Call::TransactWrite { actions, .. } => {
                let tables: Vec<&str> = actions.iter().map(TransactWrite::table).collect();
                format!("{} actions on {tables:?}", actions.len())
            }
            vhs::Call::CreateBucket { bucket } => bucket.to_string(),
            vhs::Call::PutObject(request) => {
                // An upload gated on a read is not a choice before the read answered.
                // (A server may answer 412 earlier; the store trusts no such 412.)
                request.complete_after.wait().await;
                format!(
                    "{}/{}{}",
                    request.bucket,
                    request.key,
                    if request.if_none_match {
                        " (if-none-match)"
                    } else {
                        ""
                    }
                )
            }
            vhs::Call::GetObject { bucket, key } | vhs::Call::HeadObject { bucket, key } => {
                format!("{bucket}/{key}")
            }
            vhs::Call::DeleteObjects { bucket, keys, .. } => {
                let mut listed = keys.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
                if keys.len() > 3 {
                    listed += &format!(", +{} more", keys.len() - 3);
                }
                format!("{bucket} [{listed}]")
            }
            vhs::Call::ListObjects {
                bucket,
                prefix,
                continuation,
            } => format!("{bucket}/{prefix}*{}", continued(continuation)),
            // Not a choice the explorer makes: provisioning, ranges, batches,
            // multipart, presigning pass straight through.
            _ => return self.inner.send(call).await,
        };
        self.park(call.op(), what, self.inner.send(call)).await
    }
}

/// What one schedule runs: the state `check` needs, and the actors.
pub struct World<W, R> {
    state: W,
    actors: Vec<Pin<Box<dyn Future<Output = R>>>>,
}

impl<W, R> World<W, R> {
    /// A world with no actors yet; `state` goes to `check` after the schedule.
    pub fn new(state: W) -> Self {
        World {
            state,
            actors: Vec::new(),
        }
    }

    /// Adds an actor; actors get ids 0, 1, ... in the order they are added.
    pub fn actor(mut self, actor: impl Future<Output = R> + 'static) -> Self {
        self.actors.push(Box::pin(actor));
        self
    }
}

/// Bounds of a search.
#[derive(Debug, Clone)]
pub struct ExploreOptions {
    /// Stop after this many schedules (completed and cut), setting
    /// [`ExploreReport::hit_max_schedules`] if any were left. Default 100 000.
    pub max_schedules: usize,
    /// Cut a schedule that would release more calls than this (actors may poll in
    /// loops); cut schedules are counted in [`ExploreReport::cut_by_max_steps`] and
    /// not checked. Default 1 000.
    pub max_steps: usize,
    /// CHESS-style bound: a preemption is releasing a call of another actor while
    /// the actor whose call was released last still has a call parked; schedules
    /// with more preemptions than this are not explored. `None` (the default)
    /// explores every interleaving.
    pub preemption_bound: Option<usize>,
    /// Stop after this many failed schedules (at least 1). Default 1.
    pub max_failures: usize,
    /// An actor Pending without a call parked or in flight for this many
    /// consecutive polling rounds is stuck, and so is a released call unfinished
    /// after this many rounds; with nothing parked and an actor unfinished, the
    /// explorer polls this many more rounds before calling it a deadlock.
    /// Default 1 000.
    pub stuck_rounds: usize,
}

impl Default for ExploreOptions {
    fn default() -> Self {
        ExploreOptions {
            max_schedules: 100_000,
            max_steps: 1_000,
            preemption_bound: None,
            max_failures: 1,
            stuck_rounds: 1_000,
        }
    }
}

/// Why a schedule failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// `check` returned an error or panicked.
    Check,
    /// An actor panicked.
    Panic,
    /// No call was parked, yet some actor never finished.
    Deadlock,
    /// An actor stayed Pending without a backend call (a nonzero sleep?), or a
    /// released call never finished.
    Stuck,
    /// Replaying a prefix of choices led elsewhere than before: the code under test
    /// is not deterministic apart from the schedule. Ends the search.
    Nondeterministic,
}

/// A failed schedule.
#[derive(Debug, Clone)]
pub struct Failure {
    /// Why it failed.
    pub kind: FailureKind,
    /// The message of the check, panic or explorer.
    pub message: String,
    /// The calls released, in order, up to the failure.
    pub schedule: Vec<Call>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:?}: {}", self.kind, self.message)?;
        write!(f, "schedule ({} calls released):", self.schedule.len())?;
        for (i, call) in self.schedule.iter().enumerate() {
            write!(f, "\n  {:>3}. {call}", i + 1)?;
        }
        Ok(())
    }
}

/// What a search did and found.
#[derive(Debug, Clone, Default)]
pub struct ExploreReport {
    /// Schedules run to their end (checked, or failed on the way).
    pub schedules: usize,
    /// Schedules cut at [`ExploreOptions::max_steps`], not checked.
    pub cut_by_max_steps: usize,
    /// The most calls released in one schedule.
    pub longest: usize,
    /// [`ExploreOptions::max_schedules`] ended the search with schedules left.
    pub hit_max_schedules: bool,
    /// Choices skipped because of [`ExploreOptions::preemption_bound`].
    pub pruned_by_preemption_bound: usize,
    /// The search ran out of schedules (within the bounds): it was not ended by
    /// `max_schedules`, `max_failures` or nondeterminism.
    pub complete: bool,
    /// The failed schedules, in the order found.
    pub failures: Vec<Failure>,
}

impl ExploreReport {
    /// Whether every interleaving was run: complete, and no bound cut anything.
    pub fn exhaustive(&self) -> bool {
        self.complete && self.cut_by_max_steps == 0 && self.pruned_by_preemption_bound == 0
    }

    /// Panics with the report if a schedule failed.
    pub fn assert_ok(&self) {
        assert!(self.failures.is_empty(), "{self}");
    }
}

impl fmt::Display for ExploreReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} schedules explored, {} cut at max_steps, longest {} calls, {} choices pruned \
             by the preemption bound; {}; {} failed",
            self.schedules,
            self.cut_by_max_steps,
            self.longest,
            self.pruned_by_preemption_bound,
            if self.complete {
                "search complete"
            } else if self.hit_max_schedules {
                "stopped at max_schedules"
            } else {
                "search stopped early"
            },
            self.failures.len(),
        )?;
        for (i, failure) in self.failures.iter().enumerate() {
            write!(f, "\nfailure {}: {failure}", i + 1)?;
        }
        Ok(())
    }
}

/// One step of the DFS path: the choices it had and the one taken.
struct Step {
    choice: usize,
    allowed: Vec<(usize, usize, Op)>,
}

/// Why a schedule stopped before all actors finished.
struct Stop {
    kind: FailureKind,
    message: String,
}

enum RunEnd {
    Completed,
    Cut,
    Failed(Failure),
    Diverged(Failure),
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(non-string panic payload)".to_owned())
}

/// The actors of one schedule, polled by hand.
struct Actors<R> {
    futures: Vec<Option<Pin<Box<dyn Future<Output = R>>>>>,
    results: Vec<Option<R>>,
    /// Consecutive rounds each actor was Pending without a call parked or in flight.
    idle: Vec<usize>,
}

impl<R: 'static> Actors<R> {
    fn new(actors: Vec<Pin<Box<dyn Future<Output = R>>>>) -> Self {
        let n = actors.len();
        Actors {
            futures: actors
                .into_iter()
                .enumerate()
                .map(|(i, f)| {
                    // Unconstrained: the whole search runs inside one poll of the
                    // explorer's task, whose coop budget must not run out.
                    let f = tokio::task::coop::unconstrained(ACTOR.scope(i, f));
                    Some(Box::pin(f) as Pin<Box<dyn Future<Output = R>>>)
                })
                .collect(),
            results: (0..n).map(|_| None).collect(),
            idle: vec![0; n],
        }
    }

    fn unfinished(&self) -> Vec<usize> {
        (0..self.futures.len())
            .filter(|&i| self.futures[i].is_some())
            .collect()
    }

    /// Polls every unfinished actor once; true if one finished.
    fn round(&mut self, gate: &Gate, stuck_rounds: Option<usize>) -> Result<bool, Stop> {
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut finished = false;
        for (i, slot) in self.futures.iter_mut().enumerate() {
            let Some(future) = slot.as_mut() else {
                continue;
            };
            match std::panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx))) {
                Ok(Poll::Ready(r)) => {
                    self.results[i] = Some(r);
                    *slot = None;
                    finished = true;
                }
                Ok(Poll::Pending) if gate.has_open_call(i) => self.idle[i] = 0,
                Ok(Poll::Pending) => {
                    self.idle[i] += 1;
                    if stuck_rounds.is_some_and(|limit| self.idle[i] >= limit) {
                        return Err(Stop {
                            kind: FailureKind::Stuck,
                            message: format!(
                                "actor {i} stayed Pending without a backend call for {} rounds \
                                 (a nonzero sleep? the code under test must use zero backoff)",
                                self.idle[i]
                            ),
                        });
                    }
                }
                Err(payload) => {
                    return Err(Stop {
                        kind: FailureKind::Panic,
                        message: format!("actor {i} panicked: {}", panic_message(&*payload)),
                    })
                }
            }
        }
        Ok(finished)
    }

    /// Polls round-robin until quiescent: no call in flight, and for two rounds in
    /// a row no actor finished and no call was registered, picked up or ended.
    async fn settle(&mut self, gate: &Gate, stuck_rounds: usize) -> Result<(), Stop> {
        let mut quiet = 0;
        let mut busy = 0;
        while quiet < 2 {
            // Lets the runtime run deferred wake-ups (`yield_now` inside a
            // `FuturesUnordered` child) and timers, so every round sees the same.
            tokio::task::yield_now().await;
            let before = gate.activity();
            let finished = self.round(gate, Some(stuck_rounds))?;
            let in_flight = gate.in_flight();
            if let Some(call) = &in_flight {
                busy += 1;
                if busy >= stuck_rounds {
                    return Err(Stop {
                        kind: FailureKind::Stuck,
                        message: format!(
                            "call {call} was released {busy} rounds ago and has not finished"
                        ),
                    });
                }
            } else {
                busy = 0;
            }
            if finished || in_flight.is_some() || gate.activity() != before {
                quiet = 0;
            } else {
                quiet += 1;
            }
        }
        Ok(())
    }

    /// With nothing parked: polls up to `rounds` more rounds; true if anything moved.
    async fn wait_out(&mut self, gate: &Gate, rounds: usize) -> Result<bool, Stop> {
        for _ in 0..rounds {
            tokio::task::yield_now().await;
            let before = gate.activity();
            if self.round(gate, None)? || gate.activity() != before {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Runs one schedule: replays `path`, extends it with first choices, checks.
async fn run_schedule<W, R, S, SF, C, CF>(
    options: &ExploreOptions,
    setup: &mut S,
    check: &mut C,
    path: &mut Vec<Step>,
    report: &mut ExploreReport,
) -> RunEnd
where
    R: 'static,
    S: FnMut(Gate) -> SF,
    SF: Future<Output = World<W, R>>,
    C: FnMut(W, Vec<R>) -> CF,
    CF: Future<Output = Result<(), String>>,
{
    let gate = Gate::default();
    let World { state, actors } = setup(gate.clone()).await;
    let mut actors = Actors::new(actors);
    let mut trace: Vec<Call> = Vec::new();
    let mut last_actor: Option<usize> = None;
    let mut preemptions = 0;
    let ended = loop {
        if let Err(stop) = actors.settle(&gate, options.stuck_rounds).await {
            break Err(stop);
        }
        let unfinished = actors.unfinished();
        if unfinished.is_empty() {
            break Ok(());
        }
        let parked = gate.parked();
        if parked.is_empty() {
            match actors.wait_out(&gate, options.stuck_rounds).await {
                Ok(true) => continue,
                Ok(false) => {
                    break Err(Stop {
                        kind: FailureKind::Deadlock,
                        message: format!(
                            "no backend call is parked, but actors {unfinished:?} have not \
                             finished (waiting on each other, or on something outside the backend)"
                        ),
                    })
                }
                Err(stop) => break Err(stop),
            }
        }
        if trace.len() >= options.max_steps {
            report.longest = report.longest.max(trace.len());
            return RunEnd::Cut;
        }
        let last_has_parked = last_actor.is_some_and(|a| parked.iter().any(|c| c.actor == a));
        let preempts = |c: &Call| last_has_parked && Some(c.actor) != last_actor;
        let allowed: Vec<&Call> = parked
            .iter()
            .filter(|c| {
                options
                    .preemption_bound
                    .is_none_or(|bound| preemptions + usize::from(preempts(c)) <= bound)
            })
            .collect();
        let ids: Vec<(usize, usize, Op)> = allowed.iter().map(|c| (c.actor, c.seq, c.op)).collect();
        let depth = trace.len();
        if depth == path.len() {
            report.pruned_by_preemption_bound += parked.len() - allowed.len();
            path.push(Step {
                choice: 0,
                allowed: ids,
            });
        } else if path[depth].allowed != ids {
            return RunEnd::Diverged(Failure {
                kind: FailureKind::Nondeterministic,
                message: format!(
                    "at step {}, replaying the same choices, the choices were {:?} before and \
                     are {ids:?} now",
                    depth + 1,
                    path[depth].allowed
                ),
                schedule: trace,
            });
        }
        let chosen = allowed[path[depth].choice].clone();
        if preempts(&chosen) {
            preemptions += 1;
        }
        last_actor = Some(chosen.actor);
        gate.release(chosen.id());
        trace.push(chosen);
    };
    report.longest = report.longest.max(trace.len());
    if trace.len() < path.len() {
        return RunEnd::Diverged(Failure {
            kind: FailureKind::Nondeterministic,
            message: format!(
                "replaying the same choices ended after {} calls, before ended after {}",
                trace.len(),
                path.len()
            ),
            schedule: trace,
        });
    }
    let failed = |kind, message| {
        RunEnd::Failed(Failure {
            kind,
            message,
            schedule: trace.clone(),
        })
    };
    match ended {
        Err(stop) => failed(stop.kind, stop.message),
        Ok(()) => {
            let results = actors
                .results
                .into_iter()
                .map(|r| r.expect("every actor finished"))
                .collect();
            match AssertUnwindSafe(check(state, results)).catch_unwind().await {
                Ok(Ok(())) => RunEnd::Completed,
                Ok(Err(message)) => failed(FailureKind::Check, message),
                Err(payload) => failed(
                    FailureKind::Check,
                    format!("check panicked: {}", panic_message(&*payload)),
                ),
            }
        }
    }
}

/// Moves `path` to the next schedule in DFS order; false when there is none.
fn backtrack(path: &mut Vec<Step>) -> bool {
    while let Some(last) = path.last_mut() {
        if last.choice + 1 < last.allowed.len() {
            last.choice += 1;
            return true;
        }
        path.pop();
    }
    false
}

/// Runs every schedule of the actors `setup` builds (within `options`' bounds),
/// each from a fresh world, and `check`s the outcome of each.
///
/// `setup` gets the schedule's [`Gate`] (for its [`ParkingBackend`]s) and returns
/// the [`World`]; calls it makes pass straight through. After all actors finish,
/// `check` gets the world's state and the actors' results in actor order, and
/// returns `Err` (or panics) if an invariant is violated. Must be awaited inside
/// a Tokio runtime (any flavour).
pub async fn explore<W, R, S, SF, C, CF>(
    options: &ExploreOptions,
    mut setup: S,
    mut check: C,
) -> ExploreReport
where
    R: 'static,
    S: FnMut(Gate) -> SF,
    SF: Future<Output = World<W, R>>,
    C: FnMut(W, Vec<R>) -> CF,
    CF: Future<Output = Result<(), String>>,
{
    let mut report = ExploreReport::default();
    let mut path = Vec::new();
    loop {
        if report.schedules + report.cut_by_max_steps >= options.max_schedules {
            report.hit_max_schedules = true;
            break;
        }
        match run_schedule(options, &mut setup, &mut check, &mut path, &mut report).await {
            RunEnd::Completed => report.schedules += 1,
            RunEnd::Cut => report.cut_by_max_steps += 1,
            RunEnd::Failed(failure) => {
                report.schedules += 1;
                report.failures.push(failure);
            }
            RunEnd::Diverged(failure) => {
                report.schedules += 1;
                report.failures.push(failure);
                break;
            }
        }
        if !backtrack(&mut path) {
            report.complete = true;
            break;
        }
        if report.failures.len() >= options.max_failures.max(1) {
            break;
        }
    }
    report
}

// ---------------------------------------------------------------------------
// Self-tests.
// ---------------------------------------------------------------------------

use crate::fixture::put_raw;
use futures::StreamExt;
use vhs::{KeyKind, MemoryBackend};

const BUCKET: &str = "explore";
const COUNTERS: &str = "counters";

/// A memory backend with the bucket and the counter table (counter `c` at 0),
/// behind a parking backend; set up without parking.
async fn counter_world(gate: &Gate) -> ParkingBackend<MemoryBackend> {
    let backend = ParkingBackend::new(MemoryBackend::new(), gate);
    backend.create_bucket(BUCKET).await.expect("bucket");
    backend
        .create_table(&TableSpec {
            name: COUNTERS.into(),
            hash_key: ("pk".into(), KeyKind::String),
            range_key: None,
            indexes: Vec::new(),
            streams: false,
            point_in_time_recovery: false,
            time_to_live: None,
        })
        .await
        .expect("table");
    let mut item = counter_key();
    item.insert("n".into(), AttributeValue::N("0".into()));
    backend.put_item(COUNTERS, item, None).await.expect("seed");
    backend
}

fn counter_key() -> Item {
    Item::from([("pk".to_owned(), AttributeValue::S("c".into()))])
}

async fn counter(backend: &impl Backend) -> i64 {
    let item = backend
        .get_item(COUNTERS, &counter_key(), true)
        .await
        .expect("get")
        .expect("counter");
    match &item["n"] {
        AttributeValue::N(n) => n.parse().expect("number"),
        other => panic!("counter is {other:?}"),
    }
}

/// Read, add one, write back: unconditionally (racy), or conditional on the value
/// read, retrying on a lost race.
async fn increment(backend: ParkingBackend<MemoryBackend>, conditional: bool) {
    loop {
        let n = counter(&backend).await;
        let mut item = counter_key();
        item.insert("n".into(), AttributeValue::N((n + 1).to_string()));
        let condition = Condition::eq("n", AttributeValue::N(n.to_string()));
        let condition = conditional.then_some(&condition);
        match backend.put_item(COUNTERS, item, condition).await {
            Ok(Conditional::Applied(_)) => return,
            Ok(Conditional::Failed(_)) => continue,
            Err(e) => panic!("put: {e}"),
        }
    }
}

/// Two actors each putting `k` objects, one after the other.
async fn two_writers(k: usize, options: &ExploreOptions) -> ExploreReport {
    explore(
        options,
        |gate| async move {
            let backend = ParkingBackend::new(MemoryBackend::new(), &gate);
            backend.create_bucket(BUCKET).await.expect("bucket");
            let mut world = World::new(backend.clone());
            for actor in 0..2 {
                let backend = backend.clone();
                world = world.actor(async move {
                    for i in 0..k {
                        put_raw(&backend, BUCKET, &format!("a{actor}-{i}"), b"x").await;
                    }
                });
            }
            world
        },
        move |backend, _| async move {
            let page = backend.list_objects(BUCKET, "", None).await.expect("list");
            if page.objects.len() == 2 * k {
                Ok(())
            } else {
                Err(format!("{} objects, not {}", page.objects.len(), 2 * k))
            }
        },
    )
    .await
}

#[tokio::test]
async fn two_sequential_actors_give_binomial_counts() {
    for (k, expected) in [(1, 2), (2, 6), (3, 20)] {
        let report = two_writers(k, &ExploreOptions::default()).await;
        report.assert_ok();
        assert!(report.exhaustive(), "{report}");
        assert_eq!(report.schedules, expected, "k = {k}: {report}");
        assert_eq!(report.longest, 2 * k);
    }
}

#[tokio::test]
async fn concurrent_calls_within_one_actor() {
    // Actor 0 joins two reads, actor 1 makes one: all three are parked at once, and
    // each release leaves the other two parked, so every order runs: 3! = 6.
    // With `then_put`, actor 0 writes after both reads: its reads come in 2 orders
    // before the write, and actor 1's call goes in any of 4 places: 2 * 4 = 8.
    // `buffer_unordered` (which polls a child only when woken, as the store's
    // uploads do) must give the same counts as `join!`.
    for (buffered, then_put, expected) in [
        (false, false, 6),
        (true, false, 6),
        (false, true, 8),
        (true, true, 8),
    ] {
        let report = explore(
            &ExploreOptions::default(),
            |gate| async move {
                let backend = ParkingBackend::new(MemoryBackend::new(), &gate);
                backend.create_bucket(BUCKET).await.expect("bucket");
                let (b0, b1) = (backend.clone(), backend.clone());
                World::new(())
                    .actor(async move {
                        if buffered {
                            let reads = futures::stream::iter(["x", "y"])
                                .map(|key| b0.get_object(BUCKET, key))
                                .buffer_unordered(2)
                                .collect::<Vec<_>>()
                                .await;
                            assert_eq!(reads.len(), 2);
                        } else {
                            let (x, y) = futures::join!(
                                b0.get_object(BUCKET, "x"),
                                b0.get_object(BUCKET, "y")
                            );
                            assert!(x.expect("x").is_none() && y.expect("y").is_none());
                        }
                        if then_put {
                            put_raw(&b0, BUCKET, "z", b"z").await;
                        }
                    })
                    .actor(async move {
                        b1.head_object(BUCKET, "z").await.expect("head");
                    })
            },
            |(), _| async { Ok(()) },
        )
        .await;
        report.assert_ok();
        assert!(report.exhaustive(), "{report}");
        assert_eq!(
            report.schedules, expected,
            "buffered {buffered}, then_put {then_put}: {report}"
        );
    }
}

/// Two actors incrementing the counter; the check wants it at 2.
async fn two_increments(conditional: bool, max_failures: usize) -> ExploreReport {
    let options = ExploreOptions {
        max_failures,
        ..ExploreOptions::default()
    };
    explore(
        &options,
        |gate| async move {
            let backend = counter_world(&gate).await;
            World::new(backend.clone())
                .actor(increment(backend.clone(), conditional))
                .actor(increment(backend, conditional))
        },
        |backend, _| async move {
            match counter(backend.inner()).await {
                2 => Ok(()),
                n => Err(format!("counter is {n} after two increments")),
            }
        },
    )
    .await
}

#[tokio::test]
async fn lost_update_is_found() {
    // DFS order: a0 a0 a1 a1 passes; the second schedule reads twice, then writes.
    let report = two_increments(false, 1).await;
    assert_eq!(report.failures.len(), 1, "{report}");
    assert!(!report.complete);
    let failure = &report.failures[0];
    assert_eq!(failure.kind, FailureKind::Check);
    assert_eq!(failure.message, "counter is 1 after two increments");
    let steps: Vec<(usize, Op)> = failure.schedule.iter().map(|c| (c.actor, c.op)).collect();
    assert_eq!(
        steps,
        [
            (0, Op::GetItem),
            (1, Op::GetItem),
            (0, Op::PutItem),
            (1, Op::PutItem)
        ]
    );
    let text = report.to_string();
    assert!(text.contains("a1.0 GetItem counters[pk=c]"), "{text}");
    assert!(text.contains("a0.1 PutItem counters[pk=c]"), "{text}");

    // Of the C(4, 2) = 6 schedules, the 4 with both reads before both writes lose one.
    let all = two_increments(false, usize::MAX).await;
    assert!(all.complete, "{all}");
    assert_eq!((all.schedules, all.failures.len()), (6, 4), "{all}");
}

#[tokio::test]
async fn conditional_put_loses_nothing() {
    // Say a0 writes first. If a1 read before that write (2 orders of the reads), its
    // write fails and it reads and writes again; else a1 runs after a0: 3
    // schedules, 6 with a1 first. The retries make the longest schedule 6 calls.
    let report = two_increments(true, 1).await;
    report.assert_ok();
    assert!(report.exhaustive(), "{report}");
    assert_eq!((report.schedules, report.longest), (6, 6), "{report}");
}

#[tokio::test]
async fn preemption_bound() {
    // Two actors of two calls: AABB and BBAA have no preemption, ABBA and BAAB
    // one, ABAB and BABA two.
    for (bound, expected) in [(Some(0), 2), (Some(1), 4), (None, 6)] {
        let options = ExploreOptions {
            preemption_bound: bound,
            ..ExploreOptions::default()
        };
        let report = two_writers(2, &options).await;
        report.assert_ok();
        assert!(report.complete);
        assert_eq!(report.schedules, expected, "bound {bound:?}: {report}");
        assert_eq!(report.exhaustive(), bound.is_none(), "{report}");
    }
}

#[tokio::test]
async fn bounds_cut_the_search() {
    let options = ExploreOptions {
        max_schedules: 5,
        ..ExploreOptions::default()
    };
    let report = two_writers(3, &options).await;
    assert!(report.hit_max_schedules && !report.complete, "{report}");
    assert_eq!(report.schedules, 5);

    // Every 3-call prefix of the 6 schedules of two 2-call actors is distinct.
    let options = ExploreOptions {
        max_steps: 3,
        ..ExploreOptions::default()
    };
    let report = two_writers(2, &options).await;
    assert!(report.complete && !report.exhaustive(), "{report}");
    assert_eq!((report.schedules, report.cut_by_max_steps), (0, 6));
}

#[tokio::test]
async fn deadlocks_stuck_actors_and_panics_are_failures() {
    let options = ExploreOptions {
        stuck_rounds: 50,
        ..ExploreOptions::default()
    };
    // Actor 1 waits for a message no one sends, and so does actor 0 after its calls.
    for (calls, kind) in [(0, FailureKind::Deadlock), (40, FailureKind::Stuck)] {
        let report = explore(
            &options,
            |gate| async move {
                let backend = ParkingBackend::new(MemoryBackend::new(), &gate);
                backend.create_bucket(BUCKET).await.expect("bucket");
                let (tx, rx) = futures::channel::oneshot::channel::<()>();
                World::new(tx)
                    .actor(async move {
                        for _ in 0..calls {
                            backend.head_object(BUCKET, "k").await.expect("head");
                        }
                    })
                    .actor(async move {
                        let _ = rx.await;
                    })
            },
            |_tx, _| async { Ok(()) },
        )
        .await;
        assert_eq!(report.failures.len(), 1, "{report}");
        assert_eq!(report.failures[0].kind, kind, "{report}");
        assert!(report.complete, "{report}");
    }

    let report = explore(
        &options,
        |gate| async move {
            let backend = ParkingBackend::new(MemoryBackend::new(), &gate);
            World::new(()).actor(async move {
                backend.create_bucket(BUCKET).await.expect("bucket");
                panic!("boom");
            })
        },
        |(), _: Vec<()>| async { Ok(()) },
    )
    .await;
    let failure = &report.failures[0];
    assert_eq!(failure.kind, FailureKind::Panic, "{report}");
    assert_eq!(failure.message, "actor 0 panicked: boom");
    assert_eq!(failure.schedule.len(), 1);
    assert_eq!(failure.schedule[0].to_string(), "a0.0 CreateBucket explore");
}
