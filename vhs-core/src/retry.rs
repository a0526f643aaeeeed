//! Retrying with exponential backoff and full jitter.

use std::time::Duration;

use crate::error::{Error, Result};

/// How often and how patiently to repeat a call that failed with a retryable
/// error ([`Error::is_retryable`]): exponential backoff with full jitter.
///
/// The store uses one (see [`Options::wait`](crate::Options::wait)) when a write
/// has to wait for a deletion of the same object to finish, and the versioned
/// stores use one for their read-modify-write loops.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// The backoff before the second attempt; doubled each time.
    pub base_delay: Duration,
    /// The longest backoff.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 100 attempts, 5 ms doubling up to 500 ms: enough for a 16-writer contention
    /// on one id to settle.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 100,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(500),
        }
    }
}

impl RetryPolicy {
    /// A policy of `max_attempts` attempts with the default delays.
    pub fn attempts(max_attempts: u32) -> Self {
        RetryPolicy {
            max_attempts: max_attempts.max(1),
            ..Self::default()
        }
    }

    /// Sets the delays: `base` before the second attempt, doubling up to `max`.
    /// Zero delays retry at once, without sleeping.
    pub fn delays(mut self, base: Duration, max: Duration) -> Self {
        self.base_delay = base;
        self.max_delay = max;
        self
    }

    /// After failed attempt number `attempt` ended in `error`: whether to try again;
    /// if so, first sleeps the backoff.
    /// Each repeat counts in [`RETRIES`](crate::metrics::RETRIES), by what
    /// failed (see [`retried`]).
    pub(crate) async fn again(&self, error: &Error, attempt: u32) -> bool {
        if !error.is_retryable() || !self.pause(attempt).await {
            return false;
        }
        ::metrics::counter!(crate::metrics::RETRIES, "operation" => retried(error)).increment(1);
        true
    }

    /// After attempt number `attempt`: false when the attempts are used up;
    /// otherwise sleeps the backoff and returns true.
    pub(crate) async fn pause(&self, attempt: u32) -> bool {
        if attempt >= self.max_attempts.max(1) {
            return false;
        }
        let delay = self.backoff(attempt);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        true
    }

    /// The backoff after failed attempt number `attempt` (1-based): a random
    /// duration between zero and `min(max_delay, base_delay * 2^(attempt-1))`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let cap = exp.min(self.max_delay);
        let nanos = cap.as_nanos().min(u64::MAX as u128) as u64;
        Duration::from_nanos(fastrand::u64(0..=nanos))
    }
}

/// The `operation` label of a retry after `error`: the backend operation that
/// failed (`GetObject`, `TransactWriteItems`, ...), or the conflict repeated
/// (`version_conflict`, `busy`).
fn retried(error: &Error) -> &'static str {
    match *error {
        Error::Backend { operation, .. } | Error::OutcomeUnknown { operation, .. } => operation,
        Error::TransactionCanceled { .. } => crate::backend::Op::TransactWriteItems.name(),
        Error::VersionConflict { .. } => "version_conflict",
        Error::Busy { .. } => "busy",
        _ => "other",
    }
}

/// Runs `call` until it succeeds, fails with an error that is not retryable, or
/// `policy.max_attempts` attempts have failed; sleeps [`RetryPolicy::backoff`]
/// between attempts. Returns the value and the number of attempts made.
///
/// ```
/// use vhs_core::{retry, Error, RetryPolicy};
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let mut n = 0;
/// let (value, attempts) = retry(&RetryPolicy::attempts(5), || {
///     n += 1;
///     let ok = n >= 3;
///     async move {
///         if ok { Ok("done") } else { Err(Error::backend("s3", "PutObject", true, "503")) }
///     }
/// })
/// .await
/// .unwrap();
/// assert_eq!((value, attempts), ("done", 3));
/// # });
/// ```
pub async fn retry<T, F, Fut>(policy: &RetryPolicy, mut call: F) -> Result<(T, u32)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut attempt = 1;
    loop {
        match call().await {
            Ok(v) => return Ok((v, attempt)),
            Err(e) if policy.again(&e, attempt).await => attempt += 1,
            Err(e) => return Err(e),
        }
    }
}
