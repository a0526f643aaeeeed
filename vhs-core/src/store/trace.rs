//! Tracing of backend calls: one `debug` event per call (its operation, its
//! table or bucket, and its error if it failed), inside the span of the store
//! operation that made it, and one more request counted for that operation
//! (see [`traced`]). A backend layer, below the store's concurrency limit, so a
//! call counts once it has its permit and is sent.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use tracing::{Instrument, Span};

use crate::backend::{Backend, Call, Reply, Service};
use crate::error::Result;

/// A backend whose calls are traced and counted.
#[derive(Debug)]
pub(crate) struct Traced<B>(pub(crate) B);

#[async_trait]
impl<B: Backend> Backend for Traced<B> {
    async fn send(&self, call: Call<'_>) -> Result<Reply> {
        let op = call.op();
        let service = op.service();
        if service == Service::Local {
            return self.0.send(call).await;
        }
        Requests::count();
        if !tracing::enabled!(tracing::Level::DEBUG) {
            return self.0.send(call).await;
        }
        let op = op.name();
        // The tables of a transaction, comma-separated; else the one table or bucket.
        let target = match &call {
            Call::TransactWrite { .. } => call.tables_written().join(","),
            _ => call.resource().to_owned(),
        };
        let out = self.0.send(call).await;
        match (&out, service) {
            (Ok(_), Service::DynamoDb) => tracing::debug!(op, table = %target, "backend call"),
            (Ok(_), _) => tracing::debug!(op, bucket = %target, "backend call"),
            (Err(e), Service::DynamoDb) => {
                tracing::debug!(op, table = %target, error = %e, "backend call failed")
            }
            (Err(e), _) => tracing::debug!(op, bucket = %target, error = %e, "backend call failed"),
        }
        out
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

#[cfg(test)]
mod tests {
    //! Spans and events as a subscriber sees them, through a minimal capturing
    //! subscriber.

    use std::collections::HashMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Level, Metadata, Subscriber};

    use crate::backend::Op;
    use crate::fault::Fault;
    use crate::store::testing::{doc, key, store};

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

    #[tokio::test]
    async fn operations_run_in_spans_that_hold_their_backend_calls() {
        let capture = Capture::default();
        let _guard = tracing::subscriber::set_default(capture.clone());
        let (store, backend) = store().await;

        let before = backend.calls().len();
        store.create_large(&doc("a", b"hello")).await.unwrap();
        let create_calls = backend.calls().len() - before;

        let before = backend.calls().len();
        let read = store.get_large(&key("a")).await.unwrap();
        assert_eq!(read, doc("a", b"hello"));
        let get_calls = backend.calls().len() - before;

        let before = backend.calls().len();
        let deleted = store.delete_large(&key("a")).await.unwrap();
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
        let deleted = store.delete_large(&key("b")).await.unwrap();
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
