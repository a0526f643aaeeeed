//! Metrics of backend calls, through the [`metrics`](::metrics) facade: a
//! backend layer counting every request by service, operation and outcome,
//! timing it, and counting the bytes of object bodies sent and received (see
//! [`Metered`]). The names of every metric vhs emits are in
//! [`crate::metrics`].
//!
//! vhs only emits: the application installs a recorder (an exporter such as
//! `metrics-exporter-prometheus`). Without one the facade's no-op recorder
//! takes every call; the labels are `&'static str`s, so no label string is
//! allocated.

use std::time::Instant;

use ::metrics::{counter, histogram};
use async_trait::async_trait;

use crate::backend::{Backend, Call, Conditional, Reply, Service, Transacted};
use crate::error::Result;

use crate::metrics::*;

/// A backend whose requests are counted, timed and their bodies measured.
///
/// In the store's stack it sits inside the concurrency limit, next to tracing,
/// so a request's latency is the service's (and the network's), not the time
/// it waited for a permit. Presigning ([`Service::Local`]) is no request and is
/// not counted.
#[derive(Debug)]
pub(crate) struct Metered<B>(pub(crate) B);

#[async_trait]
impl<B: Backend> Backend for Metered<B> {
    async fn send(&self, call: Call<'_>) -> Result<Reply> {
        let op = call.op();
        let service = op.service();
        if service == Service::Local {
            return self.0.send(call).await;
        }
        let (service, operation) = (service.name(), op.name());
        let sent = match &call {
            Call::PutObject(put) => put.body.len(),
            Call::UploadPart { body, .. } => body.len(),
            _ => 0,
        };
        let start = Instant::now();
        let out = self.0.send(call).await;
        histogram!(BACKEND_REQUEST_SECONDS, "service" => service, "operation" => operation)
            .record(start.elapsed().as_secs_f64());
        let outcome = match &out {
            Ok(Reply::Written(Conditional::Failed(_)) | Reply::Updated(Conditional::Failed(_))) => {
                "condition_failed"
            }
            Ok(Reply::Transacted(Transacted::Canceled(_))) => "transaction_canceled",
            Ok(_) => "ok",
            Err(e) if e.is_retryable() => "retryable_error",
            Err(_) => "error",
        };
        counter!(BACKEND_REQUESTS, "service" => service, "operation" => operation, "outcome" => outcome)
            .increment(1);
        if sent > 0 {
            counter!(BACKEND_BYTES_SENT, "service" => service).increment(sent as u64);
        }
        let received = match &out {
            Ok(Reply::Object(Some(object))) => object.body.len(),
            Ok(Reply::Range(Some(range))) => range.body.len(),
            _ => 0,
        };
        if received > 0 {
            counter!(BACKEND_BYTES_RECEIVED, "service" => service).increment(received as u64);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    //! The metrics of a store's operations, as a debugging recorder installed
    //! on the test's thread sees them.

    use std::collections::HashMap;

    use bytes::Bytes;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

    use crate::backend::{Op, Service};
    use crate::fault::Fault;
    use crate::metrics::*;
    use crate::store::testing::{doc, key, store, Doc};

    /// The counters and histogram sample counts recorded, by name and sorted
    /// `label=value` pairs.
    fn recorded(snapshotter: &Snapshotter) -> HashMap<(String, String), u64> {
        let mut out = HashMap::new();
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            let key = key.key();
            let mut labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            labels.sort();
            let n = match value {
                DebugValue::Counter(n) => n,
                DebugValue::Histogram(samples) => samples.len() as u64,
                DebugValue::Gauge(_) => continue,
            };
            *out.entry((key.name().to_owned(), labels.join(",")))
                .or_default() += n;
        }
        out
    }

    #[tokio::test]
    async fn requests_bytes_and_cleanups_are_counted() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let _local = ::metrics::set_default_local_recorder(&recorder);
        let (store, backend) = store().await;
        // Setting up writes the store's settings object: start counting after.
        snapshotter.snapshot();
        let before = backend.calls().len();
        let body = Bytes::from(vec![7u8; 1000]);
        let blob = Doc {
            id: "a".to_owned(),
            body: Some(body.clone()),
        };
        store.create_large(&blob).await.unwrap();
        assert_eq!(store.get_large(&key("a")).await.unwrap(), blob);
        let deleted = store.delete_large(&key("a")).await.unwrap();
        assert_eq!(deleted.cleanup.deleted.len(), 1, "{deleted:?}");

        let metrics = recorded(&snapshotter);
        let get = |name: &str, labels: &str| {
            metrics
                .get(&(name.to_owned(), labels.to_owned()))
                .copied()
                .unwrap_or(0)
        };
        // Every request the backend saw, by service and operation, all ok and
        // each timed once.
        let mut calls: HashMap<(&str, &str), u64> = HashMap::new();
        let sent = &backend.calls()[before..];
        for op in sent {
            assert_ne!(op.service(), Service::Local);
            *calls.entry((op.service().name(), op.name())).or_default() += 1;
        }
        assert!(calls.contains_key(&("s3", "PutObject")), "{calls:?}");
        assert!(calls.contains_key(&("s3", "GetObject")), "{calls:?}");
        for ((service, operation), n) in &calls {
            let labels = format!("operation={operation},service={service}");
            assert_eq!(
                get(
                    BACKEND_REQUESTS,
                    &format!("operation={operation},outcome=ok,service={service}")
                ),
                *n,
                "{labels}: {metrics:?}"
            );
            assert_eq!(get(BACKEND_REQUEST_SECONDS, &labels), *n, "{labels}");
        }
        let requests: u64 = metrics
            .iter()
            .filter(|((name, _), _)| name == BACKEND_REQUESTS)
            .map(|(_, n)| n)
            .sum();
        assert_eq!(requests, sent.len() as u64, "{metrics:?}");
        assert_eq!(get(BACKEND_BYTES_SENT, "service=s3"), 1000);
        assert_eq!(get(BACKEND_BYTES_RECEIVED, "service=s3"), 1000);
        assert_eq!(get(CLEANUP_DELETED_OBJECTS, ""), 1);
        assert_eq!(get(CLEANUP_LEFTOVER_OBJECTS, ""), 0);
    }

    #[tokio::test]
    async fn an_object_left_over_is_counted() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let _local = ::metrics::set_default_local_recorder(&recorder);
        let (store, backend) = store().await;
        let blob = doc("b", b"bytes");
        store.create_large(&blob).await.unwrap();
        backend.inject(Op::DeleteObjects, 1, Fault::KeyErrors);
        let deleted = store.delete_large(&key("b")).await.unwrap();
        assert_eq!(deleted.cleanup.leftover.len(), 1, "{deleted:?}");

        let metrics = recorded(&snapshotter);
        let get = |name: &str| metrics.get(&(name.to_owned(), String::new())).copied();
        assert_eq!(get(CLEANUP_LEFTOVER_OBJECTS), Some(1), "{metrics:?}");
        assert_eq!(get(CLEANUP_DELETED_OBJECTS), Some(0), "{metrics:?}");
    }
}
