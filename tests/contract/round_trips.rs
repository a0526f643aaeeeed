//! Round trips on the caller's path, counted (never timed) by a backend wrapper,
//! for k = 1, 2 and 8 large attributes, inline and with deferred cleanup.
//!
//! A call's *depth* is 1 + the largest depth among the calls that had finished
//! when it started: calls sent together share a depth, a call that waited for
//! another is one deeper. An operation's round trips are the largest depth among
//! the calls it made before it returned. Background jobs run only in
//! [`Store::flush`] here ([`Background::OnFlush`]), so nothing after the return
//! is counted by accident; what they do is checked separately.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use vhs::BackendExt as _;
use vhs::{Backend, Background, Call, Item, Op, Reply, Store};

use crate::fixture::Fixture;
use crate::models::Wide;

/// Records every call with its depth.
#[derive(Clone, Default)]
struct Depth {
    inner: Option<Arc<dyn Backend>>,
    finished: Arc<AtomicUsize>,
    calls: Arc<Mutex<Vec<(Op, usize)>>>,
    /// Per call: the item it is for (when it names one), and when it started
    /// and finished on one clock of events, for [`Depth::take_per_item`].
    events: Arc<AtomicUsize>,
    spans: Arc<Mutex<Vec<Span>>>,
    /// Per service (DynamoDB, S3): calls in flight now, and the most seen at once.
    flying: Arc<[AtomicUsize; 2]>,
    peak: Arc<[AtomicUsize; 2]>,
}

/// A call's item, and its start and end on [`Depth`]'s clock of events.
type Span = (Option<String>, usize, usize);

/// The hash key (`id`, the round-trip models' key) of an item or key.
fn item_id(item: &Item) -> Option<String> {
    match item.get("id") {
        Some(vhs::types::AttributeValue::S(s)) => Some(s.clone()),
        _ => None,
    }
}

/// The `pk=` segment of an object key: the item it belongs to.
fn object_item(key: &str) -> Option<String> {
    key.split('/')
        .find_map(|s| s.strip_prefix("pk="))
        .map(str::to_owned)
}

/// 0 for DynamoDB, 1 for S3.
fn service(op: Op) -> usize {
    match op.service() {
        vhs::Service::DynamoDb => 0,
        _ => 1,
    }
}

impl std::fmt::Debug for Depth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Depth")
    }
}

impl Depth {
    fn new(inner: Arc<dyn Backend>) -> Self {
        Depth {
            inner: Some(inner),
            ..Depth::default()
        }
    }

    fn inner(&self) -> &dyn Backend {
        self.inner.as_deref().expect("wrapped")
    }

    /// Runs `call`, for the item `item` (if it names one), and records its depth.
    async fn run_for<T>(
        &self,
        item: Option<String>,
        op: Op,
        call: impl std::future::Future<Output = T>,
    ) -> T {
        let started = self.events.fetch_add(1, Ordering::SeqCst);
        let depth = self.finished.load(Ordering::SeqCst) + 1;
        let s = service(op);
        let now = self.flying[s].fetch_add(1, Ordering::SeqCst) + 1;
        self.peak[s].fetch_max(now, Ordering::SeqCst);
        let out = call.await;
        self.flying[s].fetch_sub(1, Ordering::SeqCst);
        // Calls sent together are polled for the first time one after another
        // in the caller's task; a loaded machine may answer one before the next
        // was polled at all, and tokio's cooperative budget can make a sibling's
        // first poll (a semaphore permit, say) wait for a later poll of the
        // task. Yielding first lets every call already queued in that task
        // start before this one counts as finished, so the count depends on
        // what waits for what, not on timing. (4 yields were seen to fall short
        // of 16 uploads started at once, under a loaded full run.)
        for _ in 0..64 {
            tokio::task::yield_now().await;
        }
        self.finished.fetch_max(depth, Ordering::SeqCst);
        self.calls.lock().unwrap().push((op, depth));
        let ended = self.events.fetch_add(1, Ordering::SeqCst);
        self.spans.lock().unwrap().push((item, started, ended));
        out
    }

    /// The round trips of the slowest item since the last take, counted per
    /// item: a call is one round trip after the calls *of the same item* that
    /// ended before it started. Unlike [`Depth::take`], a slow first call of
    /// one item (a loaded machine) does not push another item's second call
    /// into a third round trip; items processed one after another still show
    /// in `take`'s count. Calls that name no item are ignored.
    fn take_per_item(&self) -> usize {
        let spans = std::mem::take(&mut *self.spans.lock().unwrap());
        let mut by_item: std::collections::HashMap<String, Vec<(usize, usize)>> =
            std::collections::HashMap::new();
        for (item, start, end) in spans {
            if let Some(item) = item {
                by_item.entry(item).or_default().push((start, end));
            }
        }
        let mut most = 0;
        for calls in by_item.values_mut() {
            calls.sort();
            let mut depth: Vec<usize> = Vec::with_capacity(calls.len());
            for (i, &(start, _)) in calls.iter().enumerate() {
                let before = (0..i)
                    .filter(|&j| calls[j].1 < start)
                    .map(|j| depth[j])
                    .max()
                    .unwrap_or(0);
                depth.push(before + 1);
            }
            most = most.max(depth.into_iter().max().unwrap_or(0));
        }
        most
    }

    /// The calls since the last take, and their round trips; starts afresh.
    fn take(&self) -> (Vec<Op>, usize) {
        let calls = std::mem::take(&mut *self.calls.lock().unwrap());
        if std::env::var("VHS_DEPTH_DEBUG").is_ok() {
            eprintln!("{calls:?}");
        }
        self.finished.store(0, Ordering::SeqCst);
        let depth = calls.iter().map(|(_, d)| *d).max().unwrap_or(0);
        (calls.into_iter().map(|(op, _)| op).collect(), depth)
    }
}

#[async_trait]
impl Backend for Depth {
    async fn send(&self, call: Call<'_>) -> vhs::Result<Reply> {
        let op = call.op();
        // Provisioning and presigning are not on a caller's path.
        if matches!(
            op,
            Op::CreateTable
                | Op::CreateBucket
                | Op::DescribeTable
                | Op::DeleteTable
                | Op::HeadBucket
                | Op::ConfigureBucket
                | Op::PresignGet
        ) {
            return self.inner().send(call).await;
        }
        let item = match &call {
            Call::PutItem { item, .. } => item_id(item),
            Call::UpdateItem { key, .. } => item_id(key),
            Call::PutObject(request) => object_item(&request.key),
            Call::DeleteObjects { keys, .. } => keys.first().and_then(|k| object_item(k)),
            _ => None,
        };
        self.run_for(item, op, self.inner().send(call)).await
    }
}

/// A store over the fixture's backend, counted, with background jobs held for
/// `flush`.
async fn counted(fx: &Fixture, deferred: bool) -> (Store, Depth) {
    let depth = Depth::new(Arc::new(fx.faults.clone()));
    let store = Store::builder(depth.clone(), fx.bucket.clone())
        .table_for::<Wide>(format!("{}-wide-{deferred}", fx.tables.0))
        .background(Background::OnFlush)
        .defer_cleanup(deferred)
        .build()
        .unwrap();
    store.ensure_table::<Wide>().await.unwrap();
    depth.take();
    (store, depth)
}

fn count(calls: &[Op], op: Op) -> usize {
    calls.iter().filter(|c| **c == op).count()
}

/// Runs `case` for k = 1, 2, 8 on one store.
async fn for_each_k<F, Fut>(fx: &Fixture, deferred: bool, case: F)
where
    F: Fn(Store, Depth, usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (store, depth) = counted(fx, deferred).await;
    for k in [1, 2, 8] {
        case(store.clone(), depth.clone(), k).await;
    }
}

/// create_large: k PutObject, then one PutItem. Two round trips.
pub async fn round_trip_create(fx: Fixture) {
    for_each_k(&fx, false, |store, depth, k| async move {
        store
            .create_large(&Wide::with(&format!("c{k}"), k, 1))
            .await
            .unwrap();
        let (calls, trips) = depth.take();
        assert_eq!(trips, 2, "k={k}: {calls:?}");
        assert_eq!(count(&calls, Op::PutObject), k, "{calls:?}");
        assert_eq!(count(&calls, Op::PutItem), 1, "{calls:?}");
        assert_eq!(calls.len(), k + 1, "{calls:?}");
    })
    .await;
}

/// get_large: one GetItem, then every object at once. Two round trips.
pub async fn round_trip_get(fx: Fixture) {
    for_each_k(&fx, false, |store, depth, k| async move {
        let wide = Wide::with(&format!("g{k}"), k, 2);
        store.create_large(&wide).await.unwrap();
        depth.take();
        assert_eq!(store.get_large(&Wide::key(&wide.id)).await.unwrap(), wide);
        let (calls, trips) = depth.take();
        assert_eq!(trips, 2, "k={k}: {calls:?}");
        assert_eq!(count(&calls, Op::GetObject), k, "{calls:?}");
        assert_eq!(calls.len(), k + 1, "{calls:?}");
    })
    .await;
}

/// update_large replacing k values: uploads with the read, the commit, the
/// delete of the replaced objects. Three round trips; the end of the
/// reservations is one UpdateItem in the background.
pub async fn round_trip_update(fx: Fixture) {
    update_case(&fx, false).await;
}

/// With deferred cleanup, update_large returns after its commit: two round trips.
pub async fn round_trip_update_deferred(fx: Fixture) {
    update_case(&fx, true).await;
}

async fn update_case(fx: &Fixture, deferred: bool) {
    for_each_k(fx, deferred, |store, depth, k| async move {
        let id = format!("u{k}{deferred}");
        store.create_large(&Wide::with(&id, k, 3)).await.unwrap();
        let new = Wide::with(&id, k, 4);
        depth.take();
        let updated = store
            .update_large(&Wide::key(&id), changes_to(&new))
            .await
            .unwrap();
        let (calls, trips) = depth.take();
        let (expected, background) = if deferred {
            (2, vec![Op::DeleteObjects, Op::UpdateItem])
        } else {
            (3, vec![Op::UpdateItem])
        };
        assert_eq!(trips, expected, "k={k} deferred={deferred}: {calls:?}");
        assert_eq!(count(&calls, Op::PutObject), k, "{calls:?}");
        assert_eq!(calls.len(), k + expected, "{calls:?}");
        let outcome = store.flush().await;
        let (later, _) = depth.take();
        assert_eq!(later, background, "k={k} deferred={deferred}");
        assert!(outcome.marks_left.is_empty(), "{outcome:?}");
        let deleted = if deferred {
            assert_eq!(updated.cleanup.queued.len(), k);
            outcome.deleted
        } else {
            assert_eq!(count(&calls, Op::DeleteObjects), 1, "{calls:?}");
            updated.cleanup.deleted
        };
        assert_eq!(deleted.len(), k);
        assert_eq!(store.get_large(&Wide::key(&id)).await.unwrap(), new);
        depth.take();
    })
    .await;
}

/// delete_large: the placeholder, then the delete. Two round trips inline, one
/// deferred; the pointers are removed in the background.
pub async fn round_trip_delete(fx: Fixture) {
    for deferred in [false, true] {
        for_each_k(&fx, deferred, |store, depth, k| async move {
            let id = format!("d{k}{deferred}");
            store.create_large(&Wide::with(&id, k, 6)).await.unwrap();
            depth.take();
            let deleted = store.delete_large(&Wide::key(&id)).await.unwrap();
            let (calls, trips) = depth.take();
            let expected = if deferred { 1 } else { 2 };
            assert_eq!(trips, expected, "k={k} deferred={deferred}: {calls:?}");
            assert_eq!(calls.len(), expected, "{calls:?}");
            let background = store.flush().await;
            let (later, _) = depth.take();
            let deleted_keys = if deferred {
                assert_eq!(later, [Op::DeleteObjects, Op::UpdateItem]);
                background.deleted
            } else {
                assert_eq!(later, [Op::UpdateItem]);
                deleted.cleanup.deleted
            };
            assert_eq!(deleted_keys.len(), k);
            // Created again at once, over the placeholder, without waiting: its
            // PutItem fails on the placeholder, the objects are checked again
            // (step 2), then the PutItem that replaces it.
            store.create_large(&Wide::with(&id, k, 6)).await.unwrap();
            let (calls, trips) = depth.take();
            assert_eq!(trips, 4, "{calls:?}");
            assert_eq!(count(&calls, Op::GetItem), 0, "{calls:?}");
        })
        .await;
    }
}

/// An update back to a value whose objects were just deleted proves them
/// again (its uploads ran beside its read); an update that sets a value equal
/// to the stored one creates no object and deletes none.
pub async fn round_trip_reuse_without_waiting(fx: Fixture) {
    let (store, depth) = counted(&fx, false).await;
    let id = "r";
    let one = Wide::with(id, 2, 7);
    let two = Wide::with(id, 2, 8);
    store.create_large(&one).await.unwrap();
    store
        .update_large(&Wide::key(id), changes_to(&two))
        .await
        .unwrap();
    // The bookkeeping ends the reservations of `one`, leaving tombstones. An
    // update back to `one` (another process) uploads beside its read, which
    // shows those tombstones, recent: the deletion may have come after its
    // uploads, so it proves its objects by HeadObject (one round trip more
    // than an update whose objects no deletion touched), then commits and
    // releases `two`. (While the reservations were still there it would have
    // waited for them: `faults::update_post_success_cleanup_fails`.)
    store.flush().await;
    let held = Store::builder(depth.clone(), fx.bucket.clone())
        .table_for::<Wide>(store.table_name::<Wide>().to_owned())
        .background(Background::OnFlush)
        .build()
        .unwrap();
    // A new process reads the table's protocol settings once (as
    // `ensure_table` does); that is not the update's.
    held.protocol_settings(store.table_name::<Wide>())
        .await
        .unwrap();
    depth.take();
    let back = held
        .update_large(&Wide::key(id), changes_to(&one))
        .await
        .unwrap();
    let (calls, trips) = depth.take();
    assert_eq!(trips, 4, "{calls:?}");
    assert_eq!(count(&calls, Op::HeadObject), 2, "{calls:?}");
    assert_eq!(back.staged.created_keys().len(), 2);
    assert_eq!(held.get_large(&Wide::key(id)).await.unwrap(), one);
    // The same value again: the uploads find the objects (412) and nothing is
    // deleted.
    depth.take();
    let same = held
        .update_large(&Wide::key(id), changes_to(&one))
        .await
        .unwrap();
    let (calls, _) = depth.take();
    assert!(same.cleanup.deleted.is_empty(), "{same:?}");
    assert_eq!(count(&calls, Op::DeleteObjects), 0, "{calls:?}");
    assert!(same.staged.created_keys().is_empty());
    held.flush().await;
    store.flush().await;
    let stored = store
        .backend()
        .get_item(store.table_name::<Wide>(), &Wide::key(id).to_item(), true)
        .await
        .unwrap()
        .unwrap();
    assert!(
        !stored.keys().any(|k| k.starts_with("vhs:del:")),
        "{stored:?}"
    );
}

fn changes_to(w: &Wide) -> vhs::Changes<Wide> {
    Wide::changes()
        .set_a(w.a.clone())
        .set_b(w.b.clone())
        .set_c(w.c.clone())
        .set_d(w.d.clone())
        .set_e(w.e.clone())
        .set_f(w.f.clone())
        .set_g(w.g.clone())
        .set_h(w.h.clone())
        .into()
}

/// `Options::max_in_flight` bounds the requests in flight per service over every
/// call of the store, and they still run concurrently up to it.
pub async fn concurrency_is_bounded_store_wide(fx: Fixture) {
    let depth = Depth::new(Arc::new(fx.faults.clone()));
    let store = Store::builder(depth.clone(), fx.bucket.clone())
        .table_for::<Wide>(format!("{}-wide-limit", fx.tables.0))
        .max_in_flight(3)
        .build()
        .unwrap();
    store.ensure_table::<Wide>().await.unwrap();
    let calls: Vec<_> = (0..40)
        .map(|i| {
            let store = store.clone();
            async move {
                let item = Wide::with(&format!("w{i}"), 8, i as u8);
                store.create_large(&item).await.unwrap();
                store
                    .get_large(&vhs::Model::primary_key(&item))
                    .await
                    .unwrap();
                store
                    .delete_large(&vhs::Model::primary_key(&item))
                    .await
                    .unwrap();
            }
        })
        .collect();
    futures::future::join_all(calls).await;
    store.flush().await;
    let peak = |s: usize| depth.peak[s].load(Ordering::SeqCst);
    assert!(
        peak(0) <= 3 && peak(1) <= 3,
        "peaks {} and {}",
        peak(0),
        peak(1)
    );
    assert!(peak(1) > 1, "S3 calls still run concurrently: {}", peak(1));
}

/// A batch of 8 items with k = 2 takes the round trips of one item: creates in 2
/// (every upload, then every PutItem), deletes in 2 (every placeholder, then
/// every DeleteObjects), the pointers' removal in the background.
pub async fn round_trip_batch(fx: Fixture) {
    let (store, depth) = counted(&fx, false).await;
    let items: Vec<Wide> = (0..8).map(|i| Wide::with(&format!("b{i}"), 2, i)).collect();
    let created = store.batch_create_large(&items).await.unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    let (calls, trips) = depth.take();
    // Each item in 2 round trips, and the items side by side (one after
    // another would be 16); the global count can exceed 2 when a loaded
    // machine delays one item's upload past another's PutItem.
    assert_eq!(depth.take_per_item(), 2, "{calls:?}");
    assert!(trips < 8, "items one after another: {trips} round trips");
    assert_eq!(count(&calls, Op::PutObject), 16, "{calls:?}");
    assert_eq!(count(&calls, Op::PutItem), 8, "{calls:?}");
    assert_eq!(calls.len(), 24, "{calls:?}");

    let keys: Vec<_> = items.iter().map(vhs::Model::primary_key).collect();
    let deleted = store.batch_delete_large(&keys).await.unwrap();
    assert!(deleted.iter().all(Result::is_ok), "{deleted:?}");
    let (calls, trips) = depth.take();
    assert_eq!(depth.take_per_item(), 2, "{calls:?}");
    assert!(trips < 8, "items one after another: {trips} round trips");
    assert_eq!(count(&calls, Op::UpdateItem), 8, "{calls:?}");
    assert_eq!(count(&calls, Op::DeleteObjects), 8, "{calls:?}");
    assert_eq!(calls.len(), 16, "{calls:?}");
    let outcome = store.flush().await;
    assert!(outcome.marks_left.is_empty(), "{outcome:?}");
    assert_eq!(fx.objects().await, Vec::<String>::new());
}

/// Values kept in the item (`#[large(inline_below = N)]`): a create is one
/// PutItem and a get one GetItem, nothing sent to S3.
pub async fn round_trip_inline(fx: Fixture) {
    use crate::models::Memo;
    let memo = Memo::with("i", 100, 1);
    fx.faults.reset();
    fx.store.create_large(&memo).await.unwrap();
    assert_eq!(fx.faults.calls(), [Op::PutItem]);
    fx.faults.reset();
    assert_eq!(fx.store.get_large(&Memo::key("i")).await.unwrap(), memo);
    assert_eq!(fx.faults.calls(), [Op::GetItem]);
}
