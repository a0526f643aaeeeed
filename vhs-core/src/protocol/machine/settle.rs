//! Step 7 for a step-by-step caller's own write: whether it landed, made
//! final.
//!
//! The caller's write went through its own SDK, which may have sent it twice:
//! a failed condition (or a lost answer) then says nothing about a first copy
//! still in flight, which can land after the failure was answered (the model
//! checker found this schedule: the first copy lands once a dead placeholder
//! that failed the second is removed). So before the failure hook deletes
//! anything, [`Settle`] changes the item in a way the write's condition can no
//! longer accept: a mark write without objects (`vhs:seq` grows, a
//! placeholder's life is renewed, an absent item becomes a placeholder; see
//! L2 in the [spec](crate::protocol::spec)). Its answer tells whether the
//! write had landed before (its token is in the item's history); after it, no
//! copy can land.

use std::sync::Arc;

use super::{unknown, written_of, In, Next, Op, ROUNDS};
use crate::backend::Conditional;
use crate::error::{Error, Result};
use crate::protocol::clock::{Fix, Mine, Now, Settings};
use crate::protocol::decide;
use crate::protocol::item::{State, Target};

/// Settles a staged write (see the [module docs](self)). Reports whether it
/// landed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Settle {
    target: Arc<Target>,
    /// The staged write's token.
    token: String,
    /// What the item is believed to be.
    state: State,
    stamp: Mine,
    settings: Settings,
    rounds: u32,
    sent: bool,
    reported: bool,
}

impl Settle {
    /// Settles the write of `token` on `target`'s item, under a stamp of
    /// `stamp_token` taken at `now`.
    pub fn new(
        target: Arc<Target>,
        token: &str,
        stamp_token: &str,
        now: Now,
        settings: Settings,
    ) -> Self {
        Settle {
            target,
            token: token.to_owned(),
            state: State::Unknown,
            stamp: Mine::new(stamp_token, now),
            settings,
            rounds: 0,
            sent: false,
            reported: false,
        }
    }

    /// `true`: the write landed; `false`: it did not, and no copy of it can.
    pub fn step(&mut self, input: In, now: Now) -> Next<Result<bool>> {
        if self.reported {
            return Next::Done;
        }
        let next = self.next(input, now);
        self.reported = matches!(next, Next::Report(_));
        next
    }

    fn next(&mut self, input: In, _now: Now) -> Next<Result<bool>> {
        if self.settings.reverted(Fix::SettleStagedWrite) {
            // Taken as failed on its answer alone.
            return Next::Report(Ok(false));
        }
        if !self.sent {
            return self.send();
        }
        let landed = |item: &Option<crate::model::Item>| State::of(item.clone()).wrote(&self.token);
        match written_of(input.answers().into_iter().next()) {
            Ok(Conditional::Applied(old)) => Next::Report(Ok(landed(&old))),
            Ok(Conditional::Failed(cur)) if landed(&cur) => Next::Report(Ok(true)),
            Ok(Conditional::Failed(cur)) => {
                // Another write came between: settle on what it made.
                self.state = State::of(cur);
                self.again(|| Error::backend("vhs", "settle", true, "the item kept changing"))
            }
            Err(e) if unknown(&e) => {
                // Sent again: a copy that lands first only settles it earlier.
                let cause = e.duplicate();
                let target = self.target.clone();
                self.again(move || super::outcome_unknown(&target, "settle", &cause))
            }
            Err(e) => Next::Report(Err(e)),
        }
    }

    fn again(&mut self, error: impl FnOnce() -> Error) -> Next<Result<bool>> {
        self.rounds += 1;
        if self.rounds >= ROUNDS {
            return Next::Report(Err(error()));
        }
        self.send()
    }

    fn send(&mut self) -> Next<Result<bool>> {
        self.sent = true;
        let (write, condition) = decide::mark(
            &self.target,
            &self.state,
            &[],
            &self.stamp.stamp,
            &self.settings,
        );
        Next::Do(vec![Op::Write {
            target: self.target.clone(),
            write,
            condition,
        }])
    }
}

impl crate::protocol::engine::Continue for Settle {
    const NAME: &'static str = "settle";

    fn resume(&mut self, input: In, now: Now) -> Next<()> {
        super::unit(self.step(input, now))
    }
    fn take_cleanup(&mut self) -> crate::protocol::cleanup::Cleanup {
        crate::protocol::cleanup::Cleanup::default()
    }
}
