//! Conformance: the model against the real engine and the real in-memory
//! backend, so that what the checker explores is what runs.
//!
//! - Random walks of every scenario (faults, time and crashes included) are
//!   replayed request by request through the engine's [`execute`] on a
//!   [`MemoryBackend`]: every answer must equal the model world's, and so must
//!   the item and the objects after every request that lands.
//! - Every writer of every scenario runs alone from the scenario's start
//!   through the engine's [`drive`] (its batches concurrent, its uploads
//!   gated on its reads, as in production): its outcome and the world it
//!   leaves must be the model's solo run's.
//!
//! [`execute`]: crate::protocol::engine::execute
//! [`drive`]: crate::protocol::engine::drive

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use stateright::Model;

use super::actor::{Kind, Outcome, Phase};
use super::check::{ProtocolModel, Scenario, A, S};
use super::world::{Msg, NAMES};
use crate::backend::BackendExt as _;
use crate::backend::{Backend, PutObject, PutOutcome, Signal, TableSpec};
use crate::checksum::ChecksumAlgorithm;
use crate::error::Result;
use crate::memory::MemoryBackend;
use crate::model::{Item, KeyKind};
use crate::protocol::cleanup::Cleanup;
use crate::protocol::engine::{self, Env, Uploads};
use crate::protocol::machine::{Answer, Op};
use crate::retry::RetryPolicy;

/// The model's uploads as real PutObject requests: each object's body is its
/// name, whose MD5 its key names.
struct Bodies {
    bucket: String,
    keys: Vec<String>,
}

impl Uploads for Bodies {
    fn put<'a>(&'a self, upload: usize, after: &'a Signal) -> BoxFuture<'a, Result<PutOutcome>> {
        unreachable!("replayed uploads go through `put_now` ({upload}, {after:?})")
    }
}

/// A PutObject (`If-None-Match: *`) of model object `index`.
fn put_request(m: &ProtocolModel, index: usize, after: Signal) -> PutObject {
    let body = Bytes::from_static(NAMES[index].as_bytes());
    PutObject {
        bucket: m.setup.target.bucket.clone(),
        key: m.setup.objects[index].key.clone(),
        checksum: ChecksumAlgorithm::Md5.digest(&body),
        body,
        content_type: "application/octet-stream".to_owned(),
        content_encoding: None,
        metadata: Default::default(),
        storage_class: None,
        tags: Vec::new(),
        if_none_match: true,
        complete_after: after,
    }
}

/// The uploads of one actor, for the engine's `drive`.
struct ActorUploads<'a> {
    model: &'a ProtocolModel,
    backend: &'a MemoryBackend,
    objects: Vec<usize>,
}

impl Uploads for ActorUploads<'_> {
    fn put<'a>(&'a self, upload: usize, after: &'a Signal) -> BoxFuture<'a, Result<PutOutcome>> {
        let request = put_request(self.model, self.objects[upload], after.clone());
        Box::pin(async move { self.backend.put_object(request).await })
    }
}

/// A memory backend in the scenario's starting state.
async fn world(m: &ProtocolModel, s: &S) -> MemoryBackend {
    let b = MemoryBackend::new();
    b.create_table(&TableSpec::new("t", ("pk", KeyKind::String)))
        .await
        .expect("table");
    b.create_bucket("b").await.expect("bucket");
    if let Some(item) = s.world.item() {
        b.put_item("t", item.clone(), None).await.expect("item");
    }
    for i in 0..NAMES.len() {
        if s.world.exists(i) {
            b.put_object(put_request(m, i, Signal::open()))
                .await
                .expect("object");
        }
    }
    b
}

/// The memory backend's item and objects, as the model holds them.
async fn observed(m: &ProtocolModel, b: &MemoryBackend) -> (Option<Item>, u8) {
    let item = b
        .get_item("t", &m.setup.target.key, true)
        .await
        .expect("get");
    let mut objects = 0u8;
    for (i, o) in m.setup.objects.iter().enumerate() {
        if b.head_object("b", &o.key).await.expect("head").is_some() {
            objects |= 1 << i;
        }
    }
    (item, objects)
}

/// Runs one request on the memory backend through the engine.
async fn run_op(m: &ProtocolModel, b: &MemoryBackend, msg: &Msg) -> Result<Answer> {
    if let Op::Put { upload, .. } = &msg.op {
        let index = m.scenario.actors[msg.actor as usize].uploads()[*upload];
        return b
            .put_object(put_request(m, index, Signal::open()))
            .await
            .map(Answer::Put);
    }
    let bodies = Bodies {
        bucket: "b".into(),
        keys: Vec::new(),
    };
    let _ = (&bodies.bucket, &bodies.keys);
    engine::execute(b, &bodies, 1, vec![msg.op.clone()])
        .await
        .pop()
        .expect("one answer")
}

/// One random walk of `m` (`steps` at most, choices by `seed`), replayed on a
/// memory backend; returns how many requests landed.
async fn walk(m: &ProtocolModel, seed: u64, steps: usize) -> usize {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut s = m.init_states().remove(0);
    let b = world(m, &s).await;
    let mut landed = 0;
    for step in 0..steps {
        let mut actions = Vec::new();
        m.actions(&s, &mut actions);
        if actions.is_empty() {
            break;
        }
        let action = actions[rng.usize(..actions.len())].clone();
        if let A::Land(id) | A::LandSilent(id) = &action {
            let msg = s
                .world
                .net
                .iter()
                .find(|x| x.id() == *id)
                .expect("in flight")
                .clone();
            let mut w = s.world.clone();
            let uploads = m.scenario.actors[msg.actor as usize].uploads();
            let expected = w.apply(&m.setup, &msg.op, &uploads);
            let got = run_op(m, &b, &msg)
                .await
                .expect("the memory backend answers");
            // DynamoDB (and the memory backend) answer a transaction sent again
            // with the same client token as committed, without applying it
            // again; moto (and the model) check its conditions again. The
            // protocol relies on neither: both are this answer.
            let resent = matches!(
                (&got, &expected, &msg.op),
                (
                    Answer::Transacted(crate::backend::Transacted::Committed),
                    Answer::Transacted(crate::backend::Transacted::Canceled(reasons)),
                    Op::Transact { token, .. },
                ) if reasons.iter().any(|r| r.item.as_ref().is_some_and(|i| {
                    crate::protocol::item::State::of(Some(i.clone()))
                        .wrote(token.rsplit_once('-').map_or(token.as_str(), |(t, _)| t))
                }))
            );
            assert!(
                resent || wordless(got.clone()) == wordless(expected.clone()),
                "seed {seed} step {step}: {:?} answered differently: {got:?} / {expected:?}",
                msg.op
            );
            landed += 1;
        }
        if action == A::Reap {
            // DynamoDB's TTL: the item removed outright.
            b.delete_item("t", &m.setup.target.key, None)
                .await
                .expect("reap");
        }
        s = m.next_state(&s, action).expect("a step");
        let (item, objects) = observed(m, &b).await;
        assert_eq!(
            item.as_ref(),
            s.world.item(),
            "seed {seed} step {step}: the items differ"
        );
        assert_eq!(
            objects, s.world.objects,
            "seed {seed} step {step}: the objects differ"
        );
    }
    landed
}

/// The engine's handle for a solo run: the memory backend, a wait that never
/// gives up (bounded by the steps), background work run at once.
#[derive(Clone)]
struct SoloEnv {
    backend: Arc<dyn Backend>,
    wait: RetryPolicy,
}

impl Env for SoloEnv {
    fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }
    fn wait(&self) -> &RetryPolicy {
        &self.wait
    }
    fn max_concurrency(&self) -> usize {
        4
    }
    fn defer(&self, job: BoxFuture<'static, Cleanup>) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            job.await;
        })
    }
}

/// Checks `scenario`: random walks replayed, and each writer alone.
pub(super) async fn conform(scenario: Scenario, walks: u64, steps: usize) {
    let m = ProtocolModel::new(scenario);
    let mut landed = 0;
    for seed in 0..walks {
        landed += walk(&m, seed, steps).await;
    }
    assert!(
        landed >= walks as usize,
        "{}: the walks landed little",
        m.scenario.name
    );
    let mut solos = 0;
    let start = m.init_states().remove(0);
    for n in 0..m.scenario.actors.len() {
        let spec = &m.scenario.actors[n];
        if !spec.writer() || matches!(spec.kind, Kind::Step(_)) {
            continue;
        }
        // The model alone.
        let mut alone = start.clone();
        for (i, a) in alone.actors.iter_mut().enumerate() {
            if i != n {
                a.phase = Phase::Crashed;
            }
        }
        m.solo(&alone, n).expect("the model's solo run ends");
        let expected = m.solo_world(&alone, n);
        // The engine alone.
        let b = world(&m, &start).await;
        let outcome = solo_engine(&m, &b, n).await;
        assert_eq!(
            Some(outcome),
            expected.0,
            "{}: actor {n} alone: the outcomes differ",
            m.scenario.name
        );
        let (item, objects) = observed(&m, &b).await;
        // The engine stamps with the real clock, the model with its own.
        assert_eq!(
            item.map(untimed),
            expected.1.item().cloned().map(untimed),
            "{}: actor {n} alone: the items differ",
            m.scenario.name
        );
        assert_eq!(
            objects, expected.1.objects,
            "{}: actor {n} alone: the objects differ",
            m.scenario.name
        );
        solos += 1;
    }
    println!(
        "conformance {}: {walks} walks, {landed} requests compared; {solos} writers run alone",
        m.scenario.name
    );
}

/// An answer without the service's words (cancellation messages).
fn wordless(answer: Answer) -> Answer {
    match answer {
        Answer::Transacted(crate::backend::Transacted::Canceled(reasons)) => {
            Answer::Transacted(crate::backend::Transacted::Canceled(
                reasons
                    .into_iter()
                    .map(|r| crate::backend::CancelReason { message: None, ..r })
                    .collect(),
            ))
        }
        other => other,
    }
}

/// `item` with every stamp's time set to 0.
fn untimed(item: Item) -> Item {
    item.into_iter()
        .map(|(k, v)| {
            let v = match crate::protocol::clock::Stamp::parse(Some(&v)) {
                Some(mut stamp) => {
                    // A kept stamp's keep time, relative to the stamp.
                    stamp.keep_until = stamp.keep_until.map(|k| k.saturating_sub(stamp.at_ms));
                    stamp.at_ms = 0;
                    stamp.value()
                }
                // The reap time and the tombstones follow the stamps' clock.
                None if k == crate::protocol::item::REAP_AT
                    || k == crate::protocol::item::GONE_ANY
                    || k.starts_with(crate::protocol::item::GONE) =>
                {
                    aws_sdk_dynamodb::types::AttributeValue::N("0".into())
                }
                None => v,
            };
            (k, v)
        })
        .collect()
}

/// Runs actor `n` of `m`'s scenario through the engine on `b`.
async fn solo_engine(m: &ProtocolModel, b: &MemoryBackend, n: usize) -> Outcome {
    let env = SoloEnv {
        backend: Arc::new(b.clone()),
        wait: RetryPolicy::attempts(50)
            .delays(std::time::Duration::ZERO, std::time::Duration::ZERO),
    };
    let uploads = ActorUploads {
        model: m,
        backend: b,
        objects: m.scenario.actors[n].uploads(),
    };
    m.run_with_engine(n, &env, &uploads).await
}

#[test]
fn model_conformance_random_walks_and_solo_runs() {
    let soak = std::env::var("VHS_SOAK").is_ok_and(|v| v == "1");
    let walks = if soak { 2000 } else { 200 };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for s in super::tests::scenarios() {
        let s = super::tests::with_faults(s);
        runtime.block_on(conform(s, walks, 200));
    }
}
