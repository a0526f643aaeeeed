//! The ownership protocol: how vhs writes, deletes and collects objects so
//! that no interleaving leaves a live item pointing to a missing object.
//!
//! (The specification and the proof are written in [`spec`].)
//!
//! The layer has a pure core and a thin shell:
//! - `clock`: the agreed time bounds, stamps, tokens;
//! - `item`: what an item owns and what a read of it says;
//! - `decide`: every decision, as a pure function of (state read, intent,
//!   settings, time);
//! - `machine`: every procedure (create, update, delete, transactions, the
//!   step-by-step API and the settling of its failed writes, releases,
//!   retirements, GC's take-over) as a machine that says what to send next
//!   and is told what came back;
//! - `engine`: runs machines over a backend, with the store's background
//!   queue and wait policy;
//! - `agreed`: the settings every process of a table reads;
//! - `cleanup`: what a call leaves behind ([`Cleanup`]).
//!
//! Under `cfg(test)`, `model` checks the machines exhaustively: a world of
//! one item and its objects, actors running the real machines, and every
//! interleaving of their requests with lost answers, duplicated requests,
//! crashes and clock leaps ([`spec`] lists the properties it checks).
//!
//! Nothing here imports the store; the store calls in.

pub(crate) mod agreed;
pub(crate) mod cleanup;
pub(crate) mod clock;
pub(crate) mod decide;
pub(crate) mod engine;
pub(crate) mod item;
pub(crate) mod machine;
pub mod spec;

#[cfg(test)]
mod model;

pub use cleanup::Cleanup;
pub(crate) use cleanup::Tally;
pub use clock::Settings;
