//! Fault injection by wrapping a backend: production code carries no test flags.

use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use crate::backend::{Backend, Call, Op, Reply};
use crate::error::{Error, Result};

/// What an injected fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The call fails before reaching the inner backend.
    Fail {
        /// Whether the error says it is retryable.
        retryable: bool,
    },
    /// The call reaches the inner backend and is applied, but the response is lost:
    /// the caller sees an error (a timeout, as far as it can tell).
    LoseResponse,
    /// The process "dies" here: this call and every later one fail, so no cleanup
    /// can run.
    Crash,
    /// For DeleteObjects: the request succeeds but every key comes back as a
    /// per-key error (`AccessDenied`) and nothing is deleted. Other calls: like
    /// `Fail { retryable: false }`.
    KeyErrors,
}

#[derive(Debug)]
struct Rule {
    op: Option<Op>,
    nth: usize,
    seen: usize,
    fault: Fault,
}

#[derive(Debug, Default)]
struct Faults {
    rules: Vec<Rule>,
    crashed: bool,
    calls: Vec<Op>,
}

/// Wraps a backend and fails chosen calls, counting every call it sees.
///
/// ```
/// use vhs_core::{BackendExt, Fault, FaultyBackend, MemoryBackend, Op};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let faulty = FaultyBackend::new(MemoryBackend::new());
/// faulty.inject(Op::CreateBucket, 1, Fault::Fail { retryable: true });
/// assert!(faulty.create_bucket("b").await.unwrap_err().is_retryable());
/// assert!(faulty.create_bucket("b").await.is_ok());
/// assert_eq!(faulty.calls(), vec![Op::CreateBucket, Op::CreateBucket]);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct FaultyBackend<B> {
    inner: B,
    faults: Arc<Mutex<Faults>>,
}

impl<B: Backend> FaultyBackend<B> {
    /// Wraps `inner`; no faults until some are injected.
    pub fn new(inner: B) -> Self {
        FaultyBackend {
            inner,
            faults: Arc::default(),
        }
    }

    /// The wrapped backend (to inspect state behind the faults).
    pub fn inner(&self) -> &B {
        &self.inner
    }

    fn lock(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Injects `fault` into the `nth` (1-based) call of `op` from now on.
    pub fn inject(&self, op: Op, nth: usize, fault: Fault) {
        self.lock().rules.push(Rule {
            op: Some(op),
            nth,
            seen: 0,
            fault,
        });
    }

    /// Injects `fault` into the `nth` (1-based) call of any kind from now on.
    pub fn inject_nth_call(&self, nth: usize, fault: Fault) {
        self.lock().rules.push(Rule {
            op: None,
            nth,
            seen: 0,
            fault,
        });
    }

    /// Removes all faults, ends a crash, and forgets the calls seen.
    pub fn reset(&self) {
        *self.lock() = Faults::default();
    }

    /// Every call seen since the last reset, in order, faulted ones included.
    pub fn calls(&self) -> Vec<Op> {
        self.lock().calls.clone()
    }

    /// Records the call and decides its fault.
    fn check(&self, op: Op) -> Option<Fault> {
        let mut f = self.lock();
        f.calls.push(op);
        if f.crashed {
            return Some(Fault::Crash);
        }
        let mut hit = None;
        for rule in f.rules.iter_mut().filter(|r| r.op.is_none_or(|o| o == op)) {
            rule.seen += 1;
            if rule.seen == rule.nth && hit.is_none() {
                hit = Some(rule.fault);
            }
        }
        if hit == Some(Fault::Crash) {
            f.crashed = true;
        }
        hit
    }
}

fn injected(op: Op, retryable: bool, message: &str) -> Error {
    Error::Backend {
        service: "fault-injection",
        operation: op.name(),
        code: Some("InjectedFault".into()),
        retryable,
        message: message.into(),
        source: None,
    }
}

#[async_trait]
impl<B: Backend> Backend for FaultyBackend<B> {
    async fn send(&self, call: Call<'_>) -> Result<Reply> {
        let op = call.op();
        // Passed through, never counted or faulted: presigning sends no
        // request, and DeleteTable is provisioning for tests and teardown, not
        // a call the store's reads and writes make.
        if matches!(op, Op::PresignGet | Op::PresignUpload | Op::DeleteTable) {
            return self.inner.send(call).await;
        }
        match self.check(op) {
            None => self.inner.send(call).await,
            Some(Fault::LoseResponse) => {
                let _ = self.inner.send(call).await;
                Err(injected(
                    op,
                    true,
                    "response lost after the request was applied",
                ))
            }
            Some(Fault::KeyErrors) => match call {
                Call::DeleteObjects { keys, .. } => Ok(Reply::KeyErrors(
                    keys.iter()
                        .map(|k| (k.clone(), "AccessDenied: injected per-key error".to_owned()))
                        .collect(),
                )),
                _ => Err(injected(op, false, "injected failure")),
            },
            Some(Fault::Fail { retryable }) => Err(injected(op, retryable, "injected failure")),
            Some(Fault::Crash) => Err(injected(op, false, "injected crash")),
        }
    }
}
