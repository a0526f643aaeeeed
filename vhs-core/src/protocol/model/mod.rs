//! The model checker: the protocol's machines run against a model of one
//! DynamoDB item, its objects, a clock and a faulty network, every reachable
//! state explored (stateright, depth-first, states deduplicated by hash), the
//! properties checked in each. See [`check`] for the model and [`tests`] for
//! the scenarios.

mod actor;
mod check;
mod conformance;
mod tests;
mod world;
