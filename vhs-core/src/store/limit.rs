//! The store-wide bound on requests in flight: a backend layer holding one
//! semaphore per service.
//!
//! Two semaphores, not one, because of the upload gate: a PutObject of an update
//! holds back its last byte until the update's GetItem returned (see
//! [`PutObject::complete_after`](crate::PutObject::complete_after)). With one
//! shared bound, PutObjects holding every permit would wait for a GetItem that
//! waits for a permit. A DynamoDB call never waits for an S3 call, so with a
//! bound per service nothing waits in a circle.

use async_trait::async_trait;
use tokio::sync::Semaphore;

use crate::backend::{Backend, Call, Reply, Service};
use crate::error::Result;

/// A backend whose calls wait for a permit of their service first.
#[derive(Debug)]
pub(crate) struct Limited<B> {
    inner: B,
    dynamodb: Semaphore,
    s3: Semaphore,
}

impl<B: Backend> Limited<B> {
    /// At most `per_service` DynamoDB calls and `per_service` S3 calls at once.
    pub(crate) fn new(inner: B, per_service: usize) -> Self {
        Limited {
            inner,
            dynamodb: Semaphore::new(per_service),
            s3: Semaphore::new(per_service),
        }
    }
}

#[async_trait]
impl<B: Backend> Backend for Limited<B> {
    async fn send(&self, call: Call<'_>) -> Result<Reply> {
        let service = match call.op().service() {
            Service::DynamoDb => &self.dynamodb,
            Service::S3 => &self.s3,
            // Computed locally: nothing to bound.
            _ => return self.inner.send(call).await,
        };
        // The semaphores are never closed.
        let _permit = service.acquire().await.expect("semaphore open");
        self.inner.send(call).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;

    use aws_sdk_dynamodb::types::AttributeValue;
    use tokio::sync::Semaphore;

    use super::*;
    use crate::backend::{BackendExt, TableSpec};
    use crate::memory::MemoryBackend;
    use crate::model::{Item, KeyKind};

    /// Holds every S3 call until the test adds permits to `gate`, counting
    /// those in flight.
    #[derive(Debug)]
    struct Held {
        inner: MemoryBackend,
        gate: Semaphore,
        flying: AtomicUsize,
        peak: AtomicUsize,
    }

    #[async_trait]
    impl Backend for Held {
        async fn send(&self, call: Call<'_>) -> Result<Reply> {
            if call.op().service() == Service::S3 {
                let now = self.flying.fetch_add(1, SeqCst) + 1;
                self.peak.fetch_max(now, SeqCst);
                drop(self.gate.acquire().await.expect("open"));
                self.flying.fetch_sub(1, SeqCst);
            }
            self.inner.send(call).await
        }
    }

    #[tokio::test]
    async fn each_service_has_its_own_bound() {
        let memory = MemoryBackend::new();
        memory.create_bucket("b").await.unwrap();
        memory
            .create_table(&TableSpec::new("t", ("id", KeyKind::String)))
            .await
            .unwrap();
        let held = Arc::new(Held {
            inner: memory,
            gate: Semaphore::new(0),
            flying: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        });
        let limited = Arc::new(Limited::new(held.clone(), 2));
        let heads: Vec<_> = (0..5)
            .map(|i| {
                let limited = limited.clone();
                tokio::spawn(async move { limited.head_object("b", &format!("k{i}")).await })
            })
            .collect();
        while held.flying.load(SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        // S3 is at its bound; a DynamoDB call still goes through (with one
        // bound for both, it would wait for the held S3 calls forever).
        let key: Item = [("id".to_owned(), AttributeValue::S("a".into()))].into();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            limited.get_item("t", &key, false),
        );
        assert_eq!(read.await.expect("not held behind S3").unwrap(), None);
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        assert_eq!(held.flying.load(SeqCst), 2, "more S3 calls than the bound");
        held.gate.add_permits(5);
        for head in heads {
            assert_eq!(head.await.unwrap().unwrap(), None);
        }
        assert_eq!(held.peak.load(SeqCst), 2);
    }
}
