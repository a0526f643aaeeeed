//! The store-wide bound on requests in flight: a backend wrapper holding one
//! semaphore per service.
//!
//! Two semaphores, not one, because of the upload gate: a PutObject of an update
//! holds back its last byte until the update's GetItem returned (see
//! [`PutObject::complete_after`]). With one shared bound, PutObjects holding
//! every permit would wait for a GetItem that waits for a permit. A DynamoDB call
//! never waits for an S3 call, so with a bound per service nothing waits in a
//! circle.
//!
//! Every backend call of the store passes here, so this is also where tracing
//! sees them: one `debug` event per call (its operation, its table or bucket,
//! and its error if it failed), inside the span of the store operation that
//! made it, and one more request counted for that operation (see [`traced`]).

use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::Semaphore;
use tracing::{Instrument, Span};

use crate::backend::{
    Attempts, Backend, BatchPage, BucketSpec, CompletedPart, Conditional, MultipartInfo,
    MultipartStart, ObjectInfo, ObjectPage, ObjectRange, PutObject, PutOutcome, Query, QueryPage,
    Scan, StoredObject, TableSpec, TransactWrite, Transacted,
};
use std::sync::Arc;

use crate::cache::ReadCache;
use crate::condition::{Condition, ItemUpdate};
use crate::error::Result;
use crate::model::Item;

/// A backend whose calls wait for a permit of their service first.
#[derive(Debug)]
pub(crate) struct Limited<B> {
    inner: B,
    dynamodb: Semaphore,
    s3: Semaphore,
    /// Told of every write to a table when it returns.
    cache: Option<Arc<ReadCache>>,
}

impl<B: Backend> Limited<B> {
    /// At most `per_service` DynamoDB calls and `per_service` S3 calls at once.
    /// Every write to a table returning invalidates what `cache` holds of it.
    pub(crate) fn new(inner: B, per_service: usize, cache: Option<Arc<ReadCache>>) -> Self {
        Limited {
            inner,
            dynamodb: Semaphore::new(per_service),
            s3: Semaphore::new(per_service),
            cache,
        }
    }

    /// A DynamoDB write `op` to `tables`: whatever its outcome, the read cache
    /// forgets the tables once it returned (see [`ReadCache`]).
    async fn write<T>(
        &self,
        op: &'static str,
        tables: &[&str],
        call: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let out = self.dynamodb(op, &Tables(tables), call).await;
        if let Some(cache) = &self.cache {
            for table in tables {
                cache.invalidate(table);
            }
        }
        out
    }

    /// DynamoDB call `op` on `table`.
    async fn dynamodb<T>(
        &self,
        op: &'static str,
        table: &(dyn fmt::Display + Sync),
        call: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let out = self.on(&self.dynamodb, call).await;
        match &out {
            Ok(_) => tracing::debug!(op, table = %table, "backend call"),
            Err(e) => tracing::debug!(op, table = %table, error = %e, "backend call failed"),
        }
        out
    }

    /// S3 call `op` on `bucket`.
    async fn s3<T>(
        &self,
        op: &'static str,
        bucket: &str,
        call: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let out = self.on(&self.s3, call).await;
        match &out {
            Ok(_) => tracing::debug!(op, bucket, "backend call"),
            Err(e) => tracing::debug!(op, bucket, error = %e, "backend call failed"),
        }
        out
    }

    async fn on<T>(&self, service: &Semaphore, call: impl Future<Output = Result<T>>) -> Result<T> {
        // The semaphores are never closed.
        let _permit = service.acquire().await.expect("semaphore open");
        Requests::count();
        call.await
    }
}

/// Table names, comma-separated (the tables of a transaction).
struct Tables<'a>(&'a [&'a str]);

impl fmt::Display for Tables<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, table) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(table)?;
        }
        Ok(())
    }
}

tokio::task_local! {
    /// The request count of the innermost traced operation this task runs.
    static REQUESTS: Arc<Requests>;
}

/// The backend calls an operation made, and the count of the operation it
/// runs inside (whose calls include its own).
#[derive(Debug)]
struct Requests {
    calls: AtomicU64,
    outer: Option<Arc<Requests>>,
}

impl Requests {
    /// One more backend call, for the operations this task is inside (if any).
    fn count() {
        let _ = REQUESTS.try_with(|requests| {
            let mut next = Some(&**requests);
            while let Some(r) = next {
                r.calls.fetch_add(1, Ordering::Relaxed);
                next = r.outer.as_deref();
            }
        });
    }
}

/// Runs a store operation inside its `span`.
///
/// While a subscriber wants the span, the backend calls the operation makes
/// are counted and the count is recorded in the span's `requests` field when
/// the operation ends. A call counts when it has its permit and is sent:
/// every call of the operation's own future, its concurrent sub-futures
/// included, and background jobs it runs itself (with
/// [`Background::OnFlush`](super::Background::OnFlush), or outside a Tokio
/// runtime); not jobs spawned onto the runtime, which outlive it. SDK-level
/// retries inside one call are one call. Without a subscriber (the span is
/// disabled) this is `operation.await` and nothing else.
pub(crate) async fn traced<T>(span: &Span, operation: impl Future<Output = T>) -> T {
    if span.is_disabled() {
        return operation.await;
    }
    let requests = Arc::new(Requests {
        calls: AtomicU64::new(0),
        outer: REQUESTS.try_with(Arc::clone).ok(),
    });
    let out = REQUESTS
        .scope(requests.clone(), operation)
        .instrument(span.clone())
        .await;
    span.record("requests", requests.calls.load(Ordering::Relaxed));
    out
}

#[async_trait]
impl<B: Backend> Backend for Limited<B> {
    async fn create_table(&self, spec: &TableSpec) -> Result<()> {
        self.dynamodb("CreateTable", &spec.name, self.inner.create_table(spec))
            .await
    }
    async fn get_item(&self, table: &str, key: &Item, consistent: bool) -> Result<Option<Item>> {
        self.dynamodb(
            "GetItem",
            &table,
            self.inner.get_item(table, key, consistent),
        )
        .await
    }
    async fn put_item(
        &self,
        table: &str,
        item: Item,
        condition: Option<&Condition>,
    ) -> Result<Conditional<Option<Item>>> {
        self.write(
            "PutItem",
            &[table],
            self.inner.put_item(table, item, condition),
        )
        .await
    }
    async fn update_item(
        &self,
        table: &str,
        key: &Item,
        update: &ItemUpdate,
        condition: Option<&Condition>,
    ) -> Result<Conditional<Item>> {
        self.write(
            "UpdateItem",
            &[table],
            self.inner.update_item(table, key, update, condition),
        )
        .await
    }
    async fn delete_item(
        &self,
        table: &str,
        key: &Item,
        condition: Option<&Condition>,
    ) -> Result<Conditional<Option<Item>>> {
        self.write(
            "DeleteItem",
            &[table],
            self.inner.delete_item(table, key, condition),
        )
        .await
    }
    async fn query(&self, request: &Query) -> Result<QueryPage> {
        self.dynamodb("Query", &request.table, self.inner.query(request))
            .await
    }
    async fn scan(&self, request: &Scan) -> Result<QueryPage> {
        self.dynamodb("Scan", &request.table, self.inner.scan(request))
            .await
    }
    async fn transact_write(&self, actions: &[TransactWrite], token: &str) -> Result<Transacted> {
        let tables: Vec<&str> = actions.iter().map(TransactWrite::table).collect();
        self.write(
            "TransactWriteItems",
            &tables,
            self.inner.transact_write(actions, token),
        )
        .await
    }
    async fn describe_table(&self, table: &str) -> Result<Option<TableSpec>> {
        self.dynamodb("DescribeTable", &table, self.inner.describe_table(table))
            .await
    }
    async fn delete_table(&self, table: &str) -> Result<bool> {
        self.dynamodb("DeleteTable", &table, self.inner.delete_table(table))
            .await
    }
    async fn create_bucket(&self, bucket: &str) -> Result<()> {
        self.s3("CreateBucket", bucket, self.inner.create_bucket(bucket))
            .await
    }
    async fn bucket_exists(&self, bucket: &str) -> Result<bool> {
        self.s3("HeadBucket", bucket, self.inner.bucket_exists(bucket))
            .await
    }
    async fn configure_bucket(&self, spec: &BucketSpec) -> Result<()> {
        self.s3(
            "ConfigureBucket",
            &spec.name,
            self.inner.configure_bucket(spec),
        )
        .await
    }
    async fn put_object(&self, request: PutObject) -> Result<PutOutcome> {
        // The request moves into the call: its bucket is copied for the event
        // only when the event is wanted.
        let bucket = tracing::enabled!(tracing::Level::DEBUG).then(|| request.bucket.clone());
        self.s3(
            "PutObject",
            bucket.as_deref().unwrap_or_default(),
            self.inner.put_object(request),
        )
        .await
    }
    async fn get_object(&self, bucket: &str, key: &str) -> Result<Option<StoredObject>> {
        self.s3("GetObject", bucket, self.inner.get_object(bucket, key))
            .await
    }
    async fn get_object_range(
        &self,
        bucket: &str,
        key: &str,
        range: Range<u64>,
    ) -> Result<Option<ObjectRange>> {
        self.s3(
            "GetObject",
            bucket,
            self.inner.get_object_range(bucket, key, range),
        )
        .await
    }
    async fn head_object(&self, bucket: &str, key: &str) -> Result<Option<ObjectInfo>> {
        self.s3("HeadObject", bucket, self.inner.head_object(bucket, key))
            .await
    }
    async fn presign_get(
        &self,
        bucket: &str,
        key: &str,
        expires_in: std::time::Duration,
    ) -> Result<String> {
        // Local: no request, no permit, not counted.
        self.inner.presign_get(bucket, key, expires_in).await
    }
    async fn batch_get_item(
        &self,
        table: &str,
        keys: &[Item],
        consistent: bool,
    ) -> Result<BatchPage> {
        self.dynamodb(
            "BatchGetItem",
            &table,
            self.inner.batch_get_item(table, keys, consistent),
        )
        .await
    }
    async fn create_multipart_upload(&self, request: &MultipartStart) -> Result<String> {
        self.s3(
            "CreateMultipartUpload",
            &request.bucket,
            self.inner.create_multipart_upload(request),
        )
        .await
    }
    async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: u32,
        body: Bytes,
        content_md5: &str,
    ) -> Result<String> {
        self.s3(
            "UploadPart",
            bucket,
            self.inner
                .upload_part(bucket, key, upload_id, number, body, content_md5),
        )
        .await
    }
    async fn complete_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
        if_none_match: bool,
    ) -> Result<PutOutcome> {
        self.s3(
            "CompleteMultipartUpload",
            bucket,
            self.inner
                .complete_multipart_upload(bucket, key, upload_id, parts, if_none_match),
        )
        .await
    }
    async fn abort_multipart_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<()> {
        self.s3(
            "AbortMultipartUpload",
            bucket,
            self.inner.abort_multipart_upload(bucket, key, upload_id),
        )
        .await
    }
    async fn list_multipart_uploads(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<MultipartInfo>> {
        self.s3(
            "ListMultipartUploads",
            bucket,
            self.inner.list_multipart_uploads(bucket, prefix),
        )
        .await
    }
    async fn delete_objects(
        &self,
        bucket: &str,
        keys: &[String],
        attempts: Attempts,
    ) -> Result<Vec<(String, String)>> {
        self.s3(
            "DeleteObjects",
            bucket,
            self.inner.delete_objects(bucket, keys, attempts),
        )
        .await
    }
    async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        continuation: Option<String>,
    ) -> Result<ObjectPage> {
        self.s3(
            "ListObjectsV2",
            bucket,
            self.inner.list_objects(bucket, prefix, continuation),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    //! Spans and events as a subscriber sees them, through a minimal capturing
    //! subscriber.

    use std::collections::HashMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use aws_sdk_dynamodb::types::AttributeValue;
    use bytes::Bytes;
    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Level, Metadata, Subscriber};

    use crate::blob::Blob;
    use crate::error::{Error, Result};
    use crate::fault::{Fault, FaultyBackend, Op};
    use crate::memory::MemoryBackend;
    use crate::model::{Item, Key, KeyDef, KeyKind, KeyValue, LargeAttr, Model, Schema};
    use crate::store::{Background, Store};

    /// A model written by hand: `id`, and one large `body` always in S3.
    #[derive(Debug, PartialEq)]
    struct Doc {
        id: String,
        body: Option<Bytes>,
    }

    impl Model for Doc {
        const SCHEMA: Schema = Schema {
            table: "docs",
            hash_key: KeyDef {
                name: "id",
                kind: KeyKind::String,
            },
            range_key: None,
            large: &[LargeAttr {
                name: "body",
                content_type: "application/octet-stream",
                inline_below: 0,
                compress: None,
                spool: false,
            }],
            attributes: &[],
            version: None,
            indexes: &[],
            updated_at: None,
        };

        fn primary_key(&self) -> Key<Self> {
            Key::from_parts(KeyValue::String(self.id.clone()), None)
        }

        fn to_item(&self) -> Result<Item> {
            Ok(Item::from([(
                "id".to_owned(),
                AttributeValue::S(self.id.clone()),
            )]))
        }

        fn from_item(item: Item) -> Result<Self> {
            match item.get("id") {
                Some(AttributeValue::S(id)) => Ok(Doc {
                    id: id.clone(),
                    body: None,
                }),
                _ => Err(Error::invalid("no id")),
            }
        }

        fn encode_large(&self) -> Result<Vec<Option<Blob>>> {
            Ok(vec![self.body.clone().map(Blob::from_bytes)])
        }

        fn decode_large(&mut self, index: usize, bytes: Bytes) -> Result<()> {
            if index == 0 {
                self.body = Some(bytes);
            }
            Ok(())
        }
    }

    #[derive(Debug)]
    struct SpanData {
        name: &'static str,
        parent: Option<u64>,
        fields: HashMap<&'static str, String>,
    }

    #[derive(Debug)]
    struct EventData {
        level: Level,
        /// The span current when it was emitted.
        span: Option<u64>,
        fields: HashMap<&'static str, String>,
    }

    #[derive(Debug, Default)]
    struct Captured {
        spans: HashMap<u64, SpanData>,
        events: Vec<EventData>,
        /// Entered spans (the tests run on one thread).
        stack: Vec<u64>,
    }

    impl Captured {
        /// The spans named `name`, in creation order.
        fn named(&self, name: &str) -> Vec<u64> {
            let mut ids: Vec<u64> = self
                .spans
                .iter()
                .filter(|(_, s)| s.name == name)
                .map(|(id, _)| *id)
                .collect();
            ids.sort();
            ids
        }

        /// The only span named `name`.
        fn one(&self, name: &str) -> &SpanData {
            let ids = self.named(name);
            assert_eq!(ids.len(), 1, "spans named {name}: {:?}", self.spans);
            &self.spans[&ids[0]]
        }

        /// Whether span `id` is `ancestor` or inside it.
        fn within(&self, mut id: Option<u64>, ancestor: u64) -> bool {
            while let Some(i) = id {
                if i == ancestor {
                    return true;
                }
                id = self.spans[&i].parent;
            }
            false
        }

        /// The backend-call events (their `op`s) emitted inside span `id`.
        fn calls_in(&self, id: u64) -> Vec<String> {
            self.events
                .iter()
                .filter(|e| e.fields.contains_key("op") && self.within(e.span, id))
                .map(|e| e.fields["op"].clone())
                .collect()
        }
    }

    struct Fields<'a>(&'a mut HashMap<&'static str, String>);

    impl Visit for Fields<'_> {
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.insert(field.name(), value.to_owned());
        }
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0.insert(field.name(), format!("{value:?}"));
        }
    }

    /// Records every span (with its fields and parent) and every event (with
    /// the span current at the time).
    #[derive(Clone, Default)]
    struct Capture {
        captured: Arc<Mutex<Captured>>,
        next: Arc<AtomicU64>,
    }

    impl Capture {
        fn lock(&self) -> std::sync::MutexGuard<'_, Captured> {
            self.captured.lock().unwrap()
        }
    }

    impl Subscriber for Capture {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, span: &Attributes<'_>) -> Id {
            let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
            let mut captured = self.lock();
            let parent = if let Some(p) = span.parent() {
                Some(p.into_u64())
            } else if span.is_contextual() {
                captured.stack.last().copied()
            } else {
                None
            };
            let mut fields = HashMap::new();
            span.record(&mut Fields(&mut fields));
            captured.spans.insert(
                id,
                SpanData {
                    name: span.metadata().name(),
                    parent,
                    fields,
                },
            );
            Id::from_u64(id)
        }
        fn record(&self, span: &Id, values: &Record<'_>) {
            let mut captured = self.lock();
            let data = captured.spans.get_mut(&span.into_u64()).unwrap();
            values.record(&mut Fields(&mut data.fields));
        }
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut captured = self.lock();
            let span = match event.parent() {
                Some(p) => Some(p.into_u64()),
                None if event.is_contextual() => captured.stack.last().copied(),
                None => None,
            };
            let mut fields = HashMap::new();
            event.record(&mut Fields(&mut fields));
            captured.events.push(EventData {
                level: *event.metadata().level(),
                span,
                fields,
            });
        }
        fn enter(&self, span: &Id) {
            self.lock().stack.push(span.into_u64());
        }
        fn exit(&self, span: &Id) {
            let mut captured = self.lock();
            let top = captured.stack.pop();
            assert_eq!(top, Some(span.into_u64()), "spans exited out of order");
        }
    }

    fn doc(id: &str, body: &'static [u8]) -> Doc {
        Doc {
            id: id.to_owned(),
            body: Some(Bytes::from_static(body)),
        }
    }

    /// A store over a faulty memory backend (to count the calls it sees),
    /// background jobs run by `flush` only, its table and bucket created.
    async fn store() -> (Store, FaultyBackend<MemoryBackend>) {
        let backend = FaultyBackend::new(MemoryBackend::new());
        let store = Store::builder(backend.clone(), "bucket")
            .background(Background::OnFlush)
            .build()
            .unwrap();
        store.ensure_bucket().await.unwrap();
        store.ensure_table::<Doc>().await.unwrap();
        (store, backend)
    }

    #[tokio::test]
    async fn operations_run_in_spans_that_hold_their_backend_calls() {
        let capture = Capture::default();
        let _guard = tracing::subscriber::set_default(capture.clone());
        let (store, backend) = store().await;

        let before = backend.calls().len();
        store.create_large(&doc("a", b"hello")).await.unwrap();
        let create_calls = backend.calls().len() - before;

        let before = backend.calls().len();
        let read = store
            .get_large(&Key::<Doc>::from_parts(KeyValue::String("a".into()), None))
            .await
            .unwrap();
        assert_eq!(read, doc("a", b"hello"));
        let get_calls = backend.calls().len() - before;

        let before = backend.calls().len();
        let deleted = store
            .delete_large(&Key::<Doc>::from_parts(KeyValue::String("a".into()), None))
            .await
            .unwrap();
        assert_eq!(deleted.cleanup.deleted.len(), 1, "{deleted:?}");
        let delete_calls = backend.calls().len() - before;

        let captured = capture.lock();
        for (name, calls, ops) in [
            ("create_large", create_calls, &["PutObject", "PutItem"][..]),
            ("get_large", get_calls, &["GetItem", "GetObject"][..]),
            (
                "delete_large",
                delete_calls,
                &["UpdateItem", "DeleteObjects"][..],
            ),
        ] {
            let span = captured.one(name);
            assert_eq!(span.fields["table"], "docs", "{name}: {span:?}");
            assert_eq!(span.fields["key"], r#"id="a""#, "{name}: {span:?}");
            assert_eq!(span.parent, None, "{name}: {span:?}");
            let id = captured.named(name)[0];
            let seen = captured.calls_in(id);
            for op in ops {
                assert!(seen.iter().any(|s| s == op), "{name}: {op} not in {seen:?}");
            }
            // Every call the backend saw, and no other, is counted and traced.
            assert!(calls > 0, "{name}");
            assert_eq!(seen.len(), calls, "{name}: {seen:?}");
            assert_eq!(span.fields["requests"], calls.to_string(), "{name}");
        }
        let create = captured.one("create_large");
        assert_eq!(create.fields["attrs"], "1");
        assert_eq!(create.fields["bytes"], "5");
        assert_eq!(
            captured.one("delete_large").fields["cleanup"],
            "clean: 1 deleted"
        );
        // Backend calls are debug events, each naming its table or bucket.
        for event in captured
            .events
            .iter()
            .filter(|e| e.fields.contains_key("op"))
        {
            assert_eq!(event.level, Level::DEBUG);
            let target = event.fields.get("table").or(event.fields.get("bucket"));
            assert!(
                matches!(target.map(String::as_str), Some("docs" | "bucket")),
                "{event:?}"
            );
        }
    }

    #[tokio::test]
    async fn objects_left_over_are_warned_about_and_recorded() {
        let capture = Capture::default();
        let _guard = tracing::subscriber::set_default(capture.clone());
        let (store, backend) = store().await;
        store.create_large(&doc("b", b"bytes")).await.unwrap();
        backend.inject(Op::DeleteObjects, 1, Fault::KeyErrors);
        let deleted = store
            .delete_large(&Key::<Doc>::from_parts(KeyValue::String("b".into()), None))
            .await
            .unwrap();
        assert_eq!(deleted.cleanup.leftover.len(), 1, "{deleted:?}");
        let (key, _) = &deleted.cleanup.leftover[0];

        let captured = capture.lock();
        let span = captured.named("delete_large")[0];
        let warnings: Vec<&EventData> = captured
            .events
            .iter()
            .filter(|e| e.level == Level::WARN)
            .collect();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        let warning = warnings[0];
        assert!(captured.within(warning.span, span), "{warning:?}");
        assert_eq!(warning.fields["uri"], format!("s3://bucket/{key}"));
        assert!(
            warning.fields["error"].contains("AccessDenied"),
            "{warning:?}"
        );
        assert!(
            captured.spans[&span].fields["cleanup"].starts_with("leftover: 1 objects left for GC"),
            "{:?}",
            captured.spans[&span]
        );
    }

    #[tokio::test]
    async fn a_disabled_span_counts_nothing() {
        // What `info_span!` gives when no subscriber wants the span.
        let span = tracing::Span::none();
        let (store, backend) = store().await;
        let (counted, created) = super::traced(&span, async {
            let created = store.create_large(&doc("c", b"x")).await;
            (super::REQUESTS.try_with(|_| ()).is_ok(), created)
        })
        .await;
        created.unwrap();
        assert!(!counted, "a request count was in scope");
        assert!(backend.calls().contains(&Op::PutItem));
    }
}
