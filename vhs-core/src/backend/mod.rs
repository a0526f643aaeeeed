//! The storage backend: the handful of DynamoDB and S3 calls vhs makes.
//!
//! A call is a value, [`Call`], answered by a [`Reply`]; a [`Backend`] has one
//! method, [`Backend::send`]. That one method is the interception point: a
//! wrapper (fault injection, the store's concurrency limit, tracing, metrics, a
//! test's scheduler) implements `send` around its inner backend's `send`, and
//! sees every call there, whatever the call. The typed methods callers use
//! (`get_item`, `put_object`, ...) come from [`BackendExt`], written once for
//! every backend.
//!
//! A backend that talks to a service implements the typed calls it supports,
//! by service: [`ItemCalls`] (DynamoDB items), [`ObjectCalls`] (S3 objects and
//! multipart uploads), [`PresignCalls`] and [`ProvisionCalls`] (the last two
//! have defaults that answer [`Error::unsupported`](crate::Error::unsupported)),
//! then answers `send` with [`Call::serve`]. The store's data path needs only
//! the first two; provisioning (`ensure_table`, the CLI's `provision`) needs the
//! last.
//!
//! Two implementations ship: [`AwsBackend`](crate::AwsBackend) (DynamoDB + S3 through
//! the AWS SDK) and [`MemoryBackend`](crate::MemoryBackend) (in process, same
//! semantics, conditional writes included). Tests wrap either in
//! [`FaultyBackend`](crate::FaultyBackend) to fail chosen calls.
//!
//! Adding a call: one method in its service trait and its arm in [`Call::serve`]
//! (`services.rs`), one [`Op`] and one [`Call`] variant (`calls.rs`), one line
//! in [`BackendExt`]'s table (`ext.rs`), its IAM actions (`iam.rs`), and its
//! implementation in the two backends. No wrapper changes.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::Result;

mod calls;
mod ext;
mod limits;
mod queries;
mod requests;
mod services;
mod streams;
mod versions;

pub use calls::{Call, Op, Reply, Service};
pub use ext::BackendExt;
pub use limits::*;
pub use queries::{QueryRows, QueryStart, QueryState, QueryStatus};
pub use requests::*;
pub use services::{ItemCalls, ObjectCalls, PresignCalls, ProvisionCalls, QueryCalls, StreamCalls};
pub(crate) use streams::NEW_AND_OLD_IMAGES;
pub use streams::{RecordsPage, ShardInfo, ShardStart, StreamDescription};
pub use versions::{BucketVersioning, ObjectVersion, VersionCursor, VersionPage};

/// Where vhs's calls go: one method, [`Backend::send`], which a backend answers
/// and a wrapper intercepts.
///
/// Every call is one request to the service (or, for [`Op::PresignGet`], a local
/// computation), so a wrapper counts requests exactly.
///
/// A wrapper is a type holding an inner backend whose `send` looks at the call,
/// forwards it (or not), and looks at the answer:
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use vhs_core::{Backend, BackendExt, Call, MemoryBackend, Reply, Result};
///
/// #[derive(Debug, Default)]
/// struct Counted<B> {
///     inner: B,
///     calls: AtomicUsize,
/// }
///
/// #[async_trait::async_trait]
/// impl<B: Backend> Backend for Counted<B> {
///     async fn send(&self, call: Call<'_>) -> Result<Reply> {
///         self.calls.fetch_add(1, Ordering::Relaxed);
///         self.inner.send(call).await
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let counted = Counted { inner: MemoryBackend::new(), calls: AtomicUsize::new(0) };
/// counted.create_bucket("b").await.unwrap();
/// assert!(counted.bucket_exists("b").await.unwrap());
/// assert_eq!(counted.calls.load(Ordering::Relaxed), 2);
/// # });
/// ```
#[async_trait]
pub trait Backend: Send + Sync + fmt::Debug + 'static {
    /// Sends one call and returns its answer: the [`Reply`] variant that
    /// [`Call::op`]'s typed method in [`BackendExt`] expects.
    async fn send(&self, call: Call<'_>) -> Result<Reply>;
}

#[async_trait]
impl<B: Backend + ?Sized> Backend for Arc<B> {
    async fn send(&self, call: Call<'_>) -> Result<Reply> {
        (**self).send(call).await
    }
}

#[async_trait]
impl<B: Backend + ?Sized> Backend for Box<B> {
    async fn send(&self, call: Call<'_>) -> Result<Reply> {
        (**self).send(call).await
    }
}
