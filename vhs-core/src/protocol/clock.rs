//! Time in the protocol: the agreed bounds ([`Settings`]), a caller's view of
//! the time ([`Now`]), the stamps written into items ([`Stamp`]), and the
//! write tokens that name every request ([`Tokens`]).
//!
//! Every time bound is measured from a stamp that the other side sees: a
//! deleter's send window from the stamp its reservation carries, a taker's
//! deadline from that same stamp. A caller measures its own elapsed time both
//! by the wall clock and by its monotonic clock and takes the larger, so a
//! clock step on that host can only make it give up earlier.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;

/// The protocol's time bounds, agreed per table: every process that writes,
/// deletes or collects a table's objects uses the same values, recorded with
/// the table's objects, see [`Store::protocol_settings`](crate::Store::protocol_settings)).
///
/// With retention `R` and clock skew bound `S`:
/// - every request lands within `R/4` of being sent, or never (assumed);
/// - the clocks of any two hosts differ by at most `S` (assumed);
/// - a writer commits within `R/2` of the start of its uploads, else uploads
///   again;
/// - a deleter sends its one DeleteObjects attempt within `R/4` of the stamp of
///   its mark or reservation, else leaves the object to GC;
/// - a mark or reservation whose stamp is `R + S` old is dead: GC and writers
///   take it over;
/// - a placeholder is removed once it holds nothing and its newest stamp is
///   `2R + S` old.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Settings {
    /// The retention `R`.
    pub retention: Duration,
    /// The clock skew bound `S`.
    pub max_skew: Duration,
    /// In this crate's tests only: a fix of the protocol undone, to show that
    /// the model checker finds the hole it closes.
    #[cfg(test)]
    pub(crate) revert: Option<Fix>,
}

/// The fixes of the protocol that the model checker's tests undo one at a
/// time (each must then yield a counterexample).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) enum Fix {
    /// A delete's pointer removal requires its own placeholder (`vhs:ph` is
    /// its stamp), not any placeholder holding the pointer.
    OwnedPointerRemoval,
    /// A mark requires that the object's own attribute does not point to it,
    /// not only the attributes the marker's model knows.
    MarkByOwnAttribute,
    /// A blind delete is conditioned on its token not being in the history,
    /// which survives placeholders; it poisons before reporting a refusal.
    DeleteHistory,
    /// A DeleteObjects whose outcome is unknown keeps its marks.
    KeepMarksOnUnknownDelete,
    /// A reservation's send window counts from its stamp, not from when the
    /// commit's answer arrived.
    WindowFromStamp,
    /// A staged write must land before its deadline.
    StagedDeadline,
    /// A writer ends a dead reservation or mark itself.
    WritersEndDeadMarks,
    /// The step-by-step failure hooks settle whether the caller's write
    /// landed before deleting anything (found by the checker, not the review).
    SettleStagedWrite,
    /// A commit of presigned uploads proves each object exists after its
    /// read even on an absent item (whose creates otherwise rely on the age
    /// of their own uploads, which a client's upload does not have).
    UploadsProvenWhenAbsent,
    /// A writer under `keep_replaced_for` sends no DeleteObjects for what it
    /// replaced or deleted (its release ends nothing either).
    KeptNotReleased,
    /// No mark or take-over applies to an expired item (which DynamoDB's
    /// TTL may remove, marks and all, at any time).
    NoMarksOnExpired,
    /// The end of a deletion leaves a tombstone on the item, and a writer
    /// whose upload ran beside its read proves the object again when one is
    /// recent (else it counts its upload as made after the read).
    Tombstones,
}

impl Default for Settings {
    fn default() -> Self {
        Settings::new(Duration::from_secs(3600), Duration::from_secs(120))
    }
}

impl Settings {
    /// Retention `retention`, clock skew bound `max_skew`.
    pub fn new(retention: Duration, max_skew: Duration) -> Self {
        Settings {
            retention,
            max_skew,
            #[cfg(test)]
            revert: None,
        }
    }

    /// Whether `fix` is undone (only ever in this crate's tests).
    #[inline]
    pub(crate) fn reverted(&self, fix: Fix) -> bool {
        #[cfg(test)]
        {
            self.revert == Some(fix)
        }
        #[cfg(not(test))]
        {
            let _ = fix;
            false
        }
    }

    fn ms(d: Duration) -> u64 {
        d.as_millis().min(u64::MAX as u128) as u64
    }

    /// `R` in milliseconds.
    pub fn retention_ms(&self) -> u64 {
        Self::ms(self.retention)
    }

    /// `S` in milliseconds.
    pub fn skew_ms(&self) -> u64 {
        Self::ms(self.max_skew)
    }

    /// How long after the start of its uploads a writer may still send its
    /// commit: `R/2`.
    pub fn upload_window_ms(&self) -> u64 {
        self.retention_ms() / 2
    }

    /// How long after the stamp of its mark or reservation a deleter may still
    /// send its DeleteObjects: `R/4`.
    pub fn send_window_ms(&self) -> u64 {
        self.retention_ms() / 4
    }

    /// How old a stamp must be, by the reader's clock, before what it marks is
    /// dead: `R + S`.
    pub fn dead_after_ms(&self) -> u64 {
        self.retention_ms().saturating_add(self.skew_ms())
    }

    /// How old the newest stamp of an empty placeholder must be before it is
    /// removed: `2R + S`.
    pub fn placeholder_after_ms(&self) -> u64 {
        self.retention_ms()
            .saturating_mul(2)
            .saturating_add(self.skew_ms())
    }

    /// Whether the bounds make sense together: a skew bound below half the
    /// retention (else no stamp could ever be judged).
    pub fn check(&self) -> crate::error::Result<()> {
        if self.retention.is_zero() {
            return Err(crate::error::Error::invalid(
                "the retention must be above zero",
            ));
        }
        if self.max_skew.saturating_mul(2) >= self.retention {
            return Err(crate::error::Error::invalid(format!(
                "the clock skew bound ({:?}) must be below half the retention ({:?})",
                self.max_skew, self.retention
            )));
        }
        Ok(())
    }
}

/// A caller's view of the time: its wall clock (milliseconds since the Unix
/// epoch, what stamps hold) and its monotonic clock (milliseconds since a
/// fixed point of this process, immune to clock steps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Now {
    /// Wall clock, Unix milliseconds.
    pub wall_ms: u64,
    /// Monotonic clock, milliseconds.
    pub mono_ms: u64,
}

impl Now {
    /// This process's clocks.
    pub fn system() -> Now {
        static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        let origin = *ORIGIN.get_or_init(Instant::now);
        Now {
            wall_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            mono_ms: origin.elapsed().as_millis() as u64,
        }
    }
}

/// Who did something to an item, and when: `{unix ms} {token}`, with ` once`
/// appended for a reservation (a mark whose object is deleted by at most one
/// DeleteObjects attempt), and ` keep={unix ms}` for what a writer under
/// [`Options::keep_replaced_for`](crate::Options::keep_replaced_for) replaced
/// or deleted: its writer never deletes it, and it is dead only `R + S` after
/// that time.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Stamp {
    /// Wall clock of its writer when it was taken (before the request carrying
    /// it was sent), Unix milliseconds.
    pub at_ms: u64,
    /// Its writer's token.
    pub token: String,
    /// A reservation.
    pub once: bool,
    /// Kept: what it marks stays until this time (Unix milliseconds), and
    /// its writer sends no DeleteObjects for it.
    pub keep_until: Option<u64>,
}

impl Stamp {
    /// The same stamp as a reservation.
    pub fn reserving(&self) -> Stamp {
        Stamp {
            once: true,
            ..self.clone()
        }
    }

    /// As stored.
    pub fn value(&self) -> AttributeValue {
        AttributeValue::S(self.text())
    }

    /// The same stamp, keeping what it marks `keep_ms` past its time.
    pub fn keeping(&self, keep_ms: Option<u64>) -> Stamp {
        Stamp {
            keep_until: keep_ms.map(|k| self.at_ms.saturating_add(k)),
            ..self.clone()
        }
    }

    /// As stored, as text.
    pub fn text(&self) -> String {
        let once = if self.once { " once" } else { "" };
        let keep = match self.keep_until {
            Some(until) => format!(" keep={until}"),
            None => String::new(),
        };
        format!("{} {}{once}{keep}", self.at_ms, self.token)
    }

    /// A stored stamp; `None` for anything else (a generation written by an
    /// earlier version is a bare token: it has no time).
    pub fn parse(value: Option<&AttributeValue>) -> Option<Stamp> {
        let AttributeValue::S(s) = value? else {
            return None;
        };
        let mut words = s.split(' ');
        let at_ms = words.next()?.parse().ok()?;
        let token = words.next()?.to_owned();
        let mut once = false;
        let mut keep_until = None;
        // In this order only: anything else is not a stamp this version
        // understands (never judged dead, never ended).
        let mut rest = words.peekable();
        if rest.peek() == Some(&"once") {
            once = true;
            rest.next();
        }
        if let Some(word) = rest.next() {
            keep_until = Some(word.strip_prefix("keep=")?.parse().ok()?);
        }
        if rest.next().is_some() || token.is_empty() {
            return None;
        }
        Some(Stamp {
            at_ms,
            token,
            once,
            keep_until,
        })
    }

    /// Whether what this stamp marks is dead at `now` (`R + S` old by the
    /// reader's wall clock, counted from its keep time if later): its writer
    /// will send nothing more for it, and anything it sent has landed.
    pub fn is_dead(&self, now: Now, settings: &Settings) -> bool {
        now.wall_ms >= self.dies_at(settings)
    }

    /// When it dies, by the reader's wall clock.
    pub fn dies_at(&self, settings: &Settings) -> u64 {
        self.at_ms
            .max(self.keep_until.unwrap_or(0))
            .saturating_add(settings.dead_after_ms())
    }

    /// Whether it is from the future: more than `S` ahead of the reader's
    /// clock. One host's clock is wrong; nothing is judged dead from it.
    pub fn is_from_future(&self, now: Now, settings: &Settings) -> bool {
        self.at_ms > now.wall_ms.saturating_add(settings.skew_ms())
    }
}

/// A stamp this caller took, with its monotonic clock at that moment, so its
/// age can be measured by both clocks.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mine {
    /// The stamp, as written.
    pub stamp: Stamp,
    /// This caller's monotonic clock when it was taken.
    pub mono_ms: u64,
}

impl Mine {
    /// A stamp of `token` taken at `now`.
    pub fn new(token: &str, now: Now) -> Mine {
        Mine {
            stamp: Stamp {
                at_ms: now.wall_ms,
                token: token.to_owned(),
                once: false,
                keep_until: None,
            },
            mono_ms: now.mono_ms,
        }
    }

    /// The same stamp, keeping what it reserves `keep_ms` past its time
    /// ([`Stamp::keeping`]).
    pub fn keeping(self, keep_ms: Option<u64>) -> Mine {
        Mine {
            stamp: self.stamp.keeping(keep_ms),
            ..self
        }
    }

    /// How long ago it was taken: the larger of the two clocks' readings.
    pub fn age_ms(&self, now: Now) -> u64 {
        now.wall_ms
            .saturating_sub(self.stamp.at_ms)
            .max(now.mono_ms.saturating_sub(self.mono_ms))
    }

    /// Whether a write carrying it may still be sent at `now`: always, but
    /// for a kept stamp only within `R/4` of it, so every copy lands within
    /// `R/2` of the stamp and what it keeps stays `K` past the landing.
    pub fn may_carry(&self, now: Now, settings: &Settings) -> bool {
        self.stamp.keep_until.is_none() || self.may_send(now, settings)
    }

    /// Whether a DeleteObjects for what it marks may still be sent at `now`.
    pub fn may_send(&self, now: Now, settings: &Settings) -> bool {
        self.age_ms(now) < settings.send_window_ms()
    }
}

/// The tokens of one caller: 16 lowercase hex digits each, distinct, drawn
/// from a seed (random in production, fixed in the model checker).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tokens {
    seed: u64,
    next: u64,
}

impl Tokens {
    /// Tokens drawn from `seed`.
    pub fn new(seed: u64) -> Tokens {
        Tokens { seed, next: 0 }
    }

    /// Tokens from a random seed.
    pub fn random() -> Tokens {
        Tokens::new(fastrand::u64(..))
    }

    /// A fresh stream of tokens drawn from this one (for the machines a
    /// caller runs one after another, such as GC's per-item ones).
    pub fn fork(&mut self) -> Tokens {
        let seed = u64::from_str_radix(&self.next(), 16).unwrap_or(0);
        Tokens::new(seed)
    }

    /// The next token.
    pub fn next(&mut self) -> String {
        let n = self.next;
        self.next += 1;
        format!(
            "{:016x}",
            splitmix(
                self.seed
                    .wrapping_add(n.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            )
        )
    }
}

/// SplitMix64's finalizer: a bijection of `u64`, so distinct inputs give
/// distinct tokens.
fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_and_age() {
        let s = Settings::new(Duration::from_secs(4), Duration::from_secs(1));
        let now = Now {
            wall_ms: 10_000,
            mono_ms: 500,
        };
        let mine = Mine::new("00000000000000ab", now);
        let v = mine.stamp.reserving().value();
        assert_eq!(Stamp::parse(Some(&v)), Some(mine.stamp.reserving()));
        assert_eq!(Stamp::parse(Some(&AttributeValue::S("1a2b".into()))), None);
        // Kept: the keep time rides along, and death counts from it.
        let kept = mine.stamp.reserving().keeping(Some(20_000));
        assert_eq!(kept.text(), "10000 00000000000000ab once keep=30000");
        assert_eq!(Stamp::parse(Some(&kept.value())), Some(kept.clone()));
        let placeholder = mine.stamp.keeping(Some(1));
        assert_eq!(Stamp::parse(Some(&placeholder.value())), Some(placeholder));
        assert_eq!(kept.dies_at(&s), 35_000);
        for bad in [
            "1 ab keep",
            "1 ab once once",
            "1 ab keep=2 once",
            "1 ab x",
            "1 ",
        ] {
            assert_eq!(
                Stamp::parse(Some(&AttributeValue::S(bad.into()))),
                None,
                "{bad}"
            );
        }
        // A clock step back does not make it younger: the monotonic clock counts.
        let later = Now {
            wall_ms: 9_000,
            mono_ms: 1_600,
        };
        assert_eq!(mine.age_ms(later), 1_100);
        assert!(!mine.may_send(later, &s));
        assert!(!mine.stamp.is_dead(later, &s));
        let dead = Now {
            wall_ms: 15_000,
            mono_ms: 0,
        };
        assert!(mine.stamp.is_dead(dead, &s));
        let past = Now {
            wall_ms: 8_999,
            mono_ms: 0,
        };
        assert!(mine.stamp.is_from_future(past, &s));
        assert!(s.check().is_ok());
        assert!(
            Settings::new(Duration::from_secs(2), Duration::from_secs(1))
                .check()
                .is_err()
        );
    }

    #[test]
    fn tokens_are_distinct_hex() {
        let mut t = Tokens::new(7);
        let a: Vec<String> = (0..1000).map(|_| t.next()).collect();
        let set: std::collections::HashSet<&String> = a.iter().collect();
        assert_eq!(set.len(), a.len());
        assert!(a
            .iter()
            .all(|t| t.len() == 16 && t.bytes().all(|b| b.is_ascii_hexdigit())));
        assert_eq!(Tokens::new(7).next(), a[0]);
    }
}
