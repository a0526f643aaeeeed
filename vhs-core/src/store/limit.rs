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
