//! What a deletion came to: [`Cleanup`], and its counts for tracing spans.

use std::fmt;

use tracing::Span;

/// Objects a cleanup deleted and the ones it could not delete.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Cleanup {
    /// Keys of the objects deleted.
    pub deleted: Vec<String>,
    /// Keys that should have been deleted but were not, with the reason: orphans
    /// for garbage collection. Their failure never fails the call that reports them.
    pub leftover: Vec<(String, String)>,
    /// Keys whose deletion mark could not be removed after the delete: a write of
    /// identical content waits for it until GC takes the mark over (after
    /// [`Options::retention`](crate::Options::retention)).
    pub marks_left: Vec<String>,
    /// Keys handed to the background queue for deletion
    /// ([`Options::defer_cleanup`](crate::Options::defer_cleanup)): their outcome is reported by
    /// [`Store::flush`](crate::Store::flush) and [`StoreBuilder::on_cleanup`](crate::StoreBuilder::on_cleanup).
    pub queued: Vec<String>,
    /// Keys of what the call replaced or deleted that stay readable under
    /// [`Options::keep_replaced_for`](crate::Options::keep_replaced_for):
    /// nothing is deleted now; GC deletes them once the time ran out.
    pub kept: Vec<String>,
    /// From the failure hooks only
    /// ([`Store::clean_up_after_create_failed`](crate::Store::clean_up_after_create_failed),
    /// [`Store::clean_up_after_update_failed`](crate::Store::clean_up_after_update_failed)):
    /// whether your write landed after all (`Some(true)`: a copy your SDK sent
    /// landed; treat the write as succeeded), did not and no longer can
    /// (`Some(false)`), or could not be settled (`None`; the hook then
    /// deleted nothing).
    pub write_landed: Option<bool>,
    /// Objects deleted without a mark because their table does not exist.
    #[doc(hidden)]
    pub unmarked: Vec<String>,
}

impl Cleanup {
    /// The keys of [`Cleanup::leftover`], sorted: objects to collect later.
    pub fn leftover_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.leftover.iter().map(|(k, _)| k.clone()).collect();
        keys.sort();
        keys
    }

    pub(crate) fn absorb(&mut self, other: Cleanup) {
        self.deleted.extend(other.deleted);
        self.leftover.extend(other.leftover);
        self.marks_left.extend(other.marks_left);
        self.queued.extend(other.queued);
        self.kept.extend(other.kept);
        self.unmarked.extend(other.unmarked);
        self.write_landed = self.write_landed.or(other.write_landed);
    }

    /// Records what this cleanup came to in `span`'s `cleanup` field.
    pub(crate) fn record_in(&self, span: &Span) {
        Tally::of(self).record_in(span);
    }
}

/// What cleanups came to, in counts: the `cleanup` field of an operation's
/// span (`clean: 2 deleted`, `queued: ...`, `leftover: ...`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    deleted: usize,
    queued: usize,
    leftover: usize,
    marks_left: usize,
}

impl Tally {
    pub(crate) fn of(cleanup: &Cleanup) -> Tally {
        Tally {
            deleted: cleanup.deleted.len(),
            queued: cleanup.queued.len(),
            leftover: cleanup.leftover.len(),
            marks_left: cleanup.marks_left.len(),
        }
    }

    /// Adds the counts of `cleanup`.
    pub(crate) fn add(&mut self, cleanup: &Cleanup) {
        let other = Tally::of(cleanup);
        self.deleted += other.deleted;
        self.queued += other.queued;
        self.leftover += other.leftover;
        self.marks_left += other.marks_left;
    }

    /// Records the counts in `span`'s `cleanup` field (formatted only if a
    /// subscriber reads it).
    pub(crate) fn record_in(self, span: &Span) {
        span.record("cleanup", tracing::field::display(self));
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Tally {
            deleted,
            queued,
            leftover,
            marks_left,
        } = *self;
        if leftover > 0 || marks_left > 0 {
            write!(
                f,
                "leftover: {leftover} objects left for GC, {marks_left} deletion marks left, {deleted} deleted, {queued} queued"
            )
        } else if queued > 0 {
            write!(
                f,
                "queued: {queued} objects to delete in the background, {deleted} deleted"
            )
        } else {
            write!(f, "clean: {deleted} deleted")
        }
    }
}
