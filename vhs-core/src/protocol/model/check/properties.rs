//! The properties checked in every reachable state, and the state space the
//! checker explores: initial states, the environment's actions, their effects.

use aws_sdk_dynamodb::types::AttributeValue;
use stateright::{Model, Property};

use crate::protocol::decide::ItemHash;
use crate::protocol::item::{reap_at, EXPIRES, REAP_AT, TOKENS};
use crate::protocol::machine::Op;
use crate::protocol::model::actor::{Actor, Kind, Outcome, Phase};
use crate::protocol::model::world::World;

use super::{ProtocolModel, A, LEAP, S};

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
            if let Some((initial, _)) = self.scenario.ttl {
                item.insert(EXPIRES.to_owned(), AttributeValue::N(initial.to_string()));
                let settings = crate::protocol::model::world::settings();
                if let Some(at) = reap_at(&item, &settings) {
                    item.insert(REAP_AT.to_owned(), AttributeValue::N(at.to_string()));
                }
            }
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
        if self.scenario.ttl.is_some()
            && s.world
                .item()
                .is_some_and(|i| crate::protocol::model::world::Setup::reapable(i, s.world.time))
        {
            actions.push(A::Reap);
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
            A::Reap => s.world.item = None,
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
                "what a write under keep_replaced_for replaced is not deleted before its time",
                |_, s: &S| !s.world.ghost.kept_deleted,
            ),
            Property::always(
                "when the others stop, every writer ends (no Busy) within a bounded number of its own steps",
                writers_end,
            ),
        ]
    }
}
