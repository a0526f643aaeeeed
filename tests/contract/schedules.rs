//! Schedules the interleaving explorer cannot produce, written down one by one: a
//! server that answers an upload's `If-None-Match` with 412 before the store's read
//! of the item returned (S3 may judge the precondition before the body arrives),
//! and a deletion of that very object that lands in between. A writer must not
//! trust such a 412: it checks the object again after its read.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use vhs::BackendExt as _;
use vhs::{
    Backend, Call, Condition, Conditional, Model, PutOutcome, Reply, Signal, Store, Trigger,
};

use crate::fixture::Fixture;
use crate::models::{Note, VDoc};

type Hook = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Where [`EarlyAnswer`] runs its hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// The first `If-None-Match` upload that finds its object answers 412 at once
    /// (without waiting for the upload's signal), after running the hook: another
    /// caller's work, done while the upload's answer is in flight. Reads of items
    /// wait until the hook ran, so the store's read lands after it.
    Early412,
    /// Before the first conditional UpdateItem: between a writer's uploads and
    /// its commit.
    BeforeCommit,
    /// Before the first TransactWriteItems: between a transaction's uploads and
    /// reads and its commit.
    BeforeTransaction,
    /// After the first GetItem read its item, before its answer returns: a
    /// write that lands between a read and what the reader does with it.
    AfterFirstRead,
    /// The first TransactWriteItems is canceled, without being sent, with
    /// this code for its first action (`None`: no reason at all).
    CancelFirstTransaction(Option<&'static str>),
    /// The first conditional UpdateItem lands, then the hook runs, then its
    /// answer is lost (a retryable error).
    LoseFirstUpdateAnswer,
    /// The first conditional PutItem lands, then the hook runs, then its
    /// answer is lost.
    LoseFirstPutAnswer,
    /// The first conditional UpdateItem lands, then the hook runs, then its
    /// answer arrives: a slow answer.
    SlowFirstUpdateAnswer,
    /// The first `If-None-Match` upload lands (creating its object), then the
    /// hook runs, then its answer returns. Reads of items wait until the hook
    /// ran: an upload beside a read, the read landing after the hook.
    AfterFirstUpload,
    /// The first DeleteObjects answers a retryable error without being sent;
    /// it lands when the test calls [`EarlyAnswer::land_held`].
    HoldFirstDelete,
}

/// A backend that runs another caller's work at one [`Point`] of a call.
pub struct EarlyAnswer {
    inner: Arc<dyn Backend>,
    point: Point,
    hook: Mutex<Option<(Hook, Trigger)>>,
    hook_done: Signal,
    /// A DeleteObjects held back ([`Point::HoldFirstDelete`]): bucket, keys.
    held: Mutex<Option<(String, Vec<String>)>>,
}

impl std::fmt::Debug for EarlyAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EarlyAnswer").finish_non_exhaustive()
    }
}

impl EarlyAnswer {
    fn new(inner: Arc<dyn Backend>, hook: impl Future<Output = ()> + Send + 'static) -> Self {
        Self::at(Point::Early412, inner, hook)
    }

    pub fn at(
        point: Point,
        inner: Arc<dyn Backend>,
        hook: impl Future<Output = ()> + Send + 'static,
    ) -> Self {
        let (trigger, hook_done) = Signal::new();
        EarlyAnswer {
            inner,
            point,
            hook: Mutex::new(Some((Box::pin(hook), trigger))),
            hook_done,
            held: Mutex::new(None),
        }
    }

    /// Sends the DeleteObjects held back by [`Point::HoldFirstDelete`]: it
    /// lands now, late.
    pub async fn land_held(&self) -> bool {
        let held = self.held.lock().unwrap().take();
        match held {
            Some((bucket, keys)) => {
                self.inner
                    .delete_objects(&bucket, &keys, vhs::Attempts::Once)
                    .await
                    .unwrap();
                true
            }
            None => false,
        }
    }

    fn lost(operation: &'static str) -> vhs::Error {
        vhs::Error::backend(
            "dynamodb",
            operation,
            true,
            "timed out (answer lost, injected)",
        )
    }

    /// Runs the hook if it has not run yet.
    async fn run_hook(&self) -> bool {
        let hook = self.hook.lock().unwrap().take();
        match hook {
            Some((hook, trigger)) => {
                hook.await;
                trigger.fire();
                true
            }
            None => false,
        }
    }

    pub fn ran(&self) -> bool {
        self.hook.lock().unwrap().is_none()
    }
}

#[async_trait::async_trait]
impl Backend for EarlyAnswer {
    async fn send(&self, call: Call<'_>) -> vhs::Result<Reply> {
        match &call {
            Call::GetItem { .. } => {
                if matches!(self.point, Point::Early412 | Point::AfterFirstUpload) {
                    self.hook_done.wait().await;
                }
                let read = self.inner.send(call).await;
                if self.point == Point::AfterFirstRead {
                    self.run_hook().await;
                }
                read
            }
            Call::PutItem {
                condition: Some(_), ..
            } if self.point == Point::LoseFirstPutAnswer && !self.ran() => {
                let answer = self.inner.send(call).await;
                if self.run_hook().await {
                    return Err(Self::lost("PutItem"));
                }
                answer
            }
            Call::UpdateItem {
                condition: Some(_), ..
            } => {
                if self.point == Point::BeforeCommit {
                    self.run_hook().await;
                }
                let after = matches!(
                    self.point,
                    Point::LoseFirstUpdateAnswer | Point::SlowFirstUpdateAnswer
                );
                if after && !self.ran() {
                    let answer = self.inner.send(call).await;
                    if self.run_hook().await && self.point == Point::LoseFirstUpdateAnswer {
                        return Err(Self::lost("UpdateItem"));
                    }
                    return answer;
                }
                self.inner.send(call).await
            }
            Call::TransactWrite { actions, .. } => {
                if self.point == Point::BeforeTransaction {
                    self.run_hook().await;
                }
                if let Point::CancelFirstTransaction(code) = self.point {
                    if self.run_hook().await {
                        let reason = |code: Option<&str>| vhs::CancelReason {
                            code: code.map(str::to_owned),
                            message: code.map(|c| format!("{c} (injected)")),
                            item: None,
                        };
                        let mut reasons = vec![reason(code)];
                        reasons.extend((1..actions.len()).map(|_| reason(None)));
                        return Ok(Reply::Transacted(vhs::Transacted::Canceled(reasons)));
                    }
                }
                self.inner.send(call).await
            }
            Call::PutObject(request)
                if self.point == Point::Early412
                    && request.if_none_match
                    && self
                        .inner
                        .head_object(&request.bucket, &request.key)
                        .await?
                        .is_some()
                    && self.run_hook().await =>
            {
                Ok(Reply::Put(PutOutcome::AlreadyExisted))
            }
            Call::PutObject(request)
                if self.point == Point::AfterFirstUpload && request.if_none_match =>
            {
                let answer = self.inner.send(call).await;
                self.run_hook().await;
                answer
            }
            Call::DeleteObjects { bucket, keys, .. }
                if self.point == Point::HoldFirstDelete && !self.ran() =>
            {
                let first = {
                    let mut held = self.held.lock().unwrap();
                    let first = held.is_none();
                    if first {
                        *held = Some((bucket.to_string(), keys.to_vec()));
                    }
                    first
                };
                if first {
                    self.run_hook().await;
                    return Err(vhs::Error::backend(
                        "s3",
                        "DeleteObjects",
                        true,
                        "timed out (held back, injected)",
                    ));
                }
                self.inner.send(call).await
            }
            _ => self.inner.send(call).await,
        }
    }
}

/// A store like the fixture's for `Note`, over `backend`.
fn store_over(fx: &Fixture, backend: impl Backend) -> Store {
    Store::builder(backend, fx.bucket.clone())
        .prefix(fx.store.prefix())
        .table_for::<Note>(fx.store.table_name::<Note>())
        .build()
        .unwrap()
}

fn note(html: &str) -> Note {
    Note::new("early", html)
}

fn html(value: &str) -> vhs::LargeValues<Note> {
    vhs::LargeValues::<Note>::new()
        .with(
            "html",
            Some(bytes::Bytes::copy_from_slice(value.as_bytes())),
        )
        .unwrap()
}

/// An item holding X, and a writer whose first upload that finds its object gets
/// 412 at once while another writer replaces X with Y (deleting X's object).
async fn x_then_replaced_by_y(fx: &Fixture) -> (vhs::Key<Note>, Arc<EarlyAnswer>, Store) {
    fx.store.create_large(&note("X")).await.unwrap();
    let other = store_over(fx, fx.raw.clone());
    let early = Arc::new(EarlyAnswer::new(fx.raw.clone(), async move {
        other
            .update_large(
                &note("X").primary_key(),
                Note::changes().set_html(Some("Y".into())),
            )
            .await
            .unwrap();
    }));
    let writer = store_over(fx, early.clone());
    (note("X").primary_key(), early, writer)
}

/// `update_large` back to the item's current content X: its upload of X gets 412
/// at once; meanwhile another writer replaces X with Y and deletes X's object;
/// then the read. The update must point to an object that exists.
pub async fn early_412_update_races_the_deletion_of_its_object(fx: Fixture) {
    let (key, early, writer) = x_then_replaced_by_y(&fx).await;
    writer
        .update_large(&key, Note::changes().set_html(Some("X".into())))
        .await
        .unwrap();
    assert!(early.ran(), "the schedule happened");
    let got = fx.store.get_large(&key).await.unwrap();
    assert_eq!(got.html.as_deref(), Some("X"));
}

/// The step-by-step form of the same schedule, with a writer that dies right after
/// its commit (no hook runs): nothing after the commit is needed for the pointer
/// to resolve.
pub async fn early_412_step_by_step_commit_then_writer_dies(fx: Fixture) {
    let (key, early, writer) = x_then_replaced_by_y(&fx).await;
    let staged = writer.put_s3(&key, html("X")).await.unwrap();
    assert!(early.ran(), "the schedule happened");
    let table = fx.store.table_name::<Note>().to_owned();
    let condition = Condition::exists("pk").and(staged.condition());
    let applied = fx
        .raw
        .update_item(
            &table,
            &key.to_item(),
            &staged.to_item_update(),
            Some(&condition),
        )
        .await
        .unwrap();
    assert!(matches!(applied, Conditional::Applied(_)), "{applied:?}");
    // The writer dies here.
    let got = fx.store.get_large(&key).await.unwrap();
    assert_eq!(got.html.as_deref(), Some("X"));
}

/// Twin creates of identical content: V uploaded the object, W's upload gets 412
/// at once; V's PutItem fails and its cleanup deletes the object (leaving a
/// placeholder); then W commits. W must find its object gone and upload it again.
pub async fn early_412_create_races_its_twins_cleanup(fx: Fixture) {
    let key = note("X").primary_key();
    let twin = store_over(&fx, fx.raw.clone());
    let staged = twin.put_s3(&key, html("X")).await.unwrap();
    assert_eq!(staged.created_keys().len(), 1);
    let early = Arc::new(EarlyAnswer::new(fx.raw.clone(), async move {
        // V's own PutItem failed: its hook removes what it created.
        let cleanup = twin.clean_up_after_create_failed(&staged).await;
        assert_eq!(cleanup.deleted.len(), 1, "{cleanup:?}");
    }));
    let writer = store_over(&fx, early.clone());
    writer.create_large(&note("X")).await.unwrap();
    assert!(early.ran(), "the schedule happened");
    let got = fx.store.get_large(&key).await.unwrap();
    assert_eq!(got.html.as_deref(), Some("X"));
}

/// GC (grace 0) runs between an update's upload of new content and its commit:
/// the new object is an orphan to it, so it marks, deletes and unmarks it. The
/// commit must fail (the mark changed the item's generation), and the writer
/// upload again before committing.
pub async fn gc_between_an_update_s_upload_and_its_commit(fx: Fixture) {
    fx.store.create_large(&note("A")).await.unwrap();
    let key = note("A").primary_key();
    let other = store_over(&fx, fx.raw.clone());
    let hooked = Arc::new(EarlyAnswer::at(
        Point::BeforeCommit,
        fx.raw.clone(),
        async move {
            let gc = other
                .gc::<Note>(&crate::faults::gc_now(), |_| {})
                .await
                .unwrap();
            assert_eq!(gc.deleted.len(), 1, "GC deleted the fresh object: {gc:?}");
        },
    ));
    let writer = store_over(&fx, hooked.clone());
    writer
        .update_large(&key, Note::changes().set_html(Some("B".into())))
        .await
        .unwrap();
    assert!(hooked.ran(), "the schedule happened");
    let got = fx.store.get_large(&key).await.unwrap();
    assert_eq!(got.html.as_deref(), Some("B"));
}

/// Issue 22: an update's upload runs beside its read. Its upload of B
/// creates the object; before the read lands, GC marks the fresh object (no
/// item points to it yet), deletes it and unmarks: the read shows no mark,
/// only the tombstone GC's unmark left. The update must not count its upload
/// as proof that B exists after the read: it checks B again, finds it gone,
/// uploads it again, and commits a pointer that resolves.
pub async fn gc_between_an_update_s_upload_and_its_read(fx: Fixture) {
    fx.store.create_large(&note("A")).await.unwrap();
    let key = note("A").primary_key();
    let other = store_over(&fx, fx.raw.clone());
    let hooked = Arc::new(EarlyAnswer::at(
        Point::AfterFirstUpload,
        fx.raw.clone(),
        async move {
            let gc = other
                .gc::<Note>(&crate::faults::gc_now(), |_| {})
                .await
                .unwrap();
            assert_eq!(gc.deleted.len(), 1, "GC deleted the fresh object: {gc:?}");
        },
    ));
    let writer = store_over(&fx, hooked.clone());
    let updated = writer
        .update_large(&key, Note::changes().set_html(Some("B".into())))
        .await
        .unwrap();
    assert!(hooked.ran(), "the schedule happened");
    assert_eq!(updated.staged.created_keys().len(), 1);
    let got = fx.store.get_large(&key).await.unwrap();
    assert_eq!(got.html.as_deref(), Some("B"));
    let report = fx.store.verify::<Note>(&Default::default(), |_| {}).await;
    assert!(report.unwrap().is_clean());
}

/// Issue 22: the release after every update leaves a tombstone on the item;
/// past 32 a commit folds the older ones into `vhs:gone`, each removal on
/// condition that the tombstone is unchanged (one condition alone must still
/// be an expression DynamoDB accepts). Later updates keep working and the
/// item stays small.
pub async fn tombstones_fold_past_32(fx: Fixture) {
    let key = note("v0").primary_key();
    fx.store.create_large(&note("v0")).await.unwrap();
    for i in 1..=40 {
        fx.store
            .update_large(&key, Note::changes().set_html(Some(format!("v{i}"))))
            .await
            .unwrap();
        fx.store.flush().await;
    }
    let got = fx.store.get_large(&key).await.unwrap();
    assert_eq!(got.html.as_deref(), Some("v40"));
    let item = fx.raw_item(&key).await.expect("the item");
    let tombstones = item.keys().filter(|k| k.starts_with("vhs:gone:")).count();
    assert!((30..=33).contains(&tombstones), "{tombstones}: {item:?}");
    assert!(item.contains_key("vhs:gone"), "{item:?}");
    assert!(!item.keys().any(|k| k.starts_with("vhs:del:")), "{item:?}");
}

fn vdoc_store(fx: &Fixture, backend: impl Backend) -> Store {
    Store::builder(backend, fx.bucket.clone())
        .prefix(fx.store.prefix())
        .table_for::<Note>(fx.store.table_name::<Note>())
        .table_for::<VDoc>(fx.store.table_name::<VDoc>())
        .build()
        .unwrap()
}

/// Another writer updates the item with the very content the transaction
/// uploaded, between the transaction's read and its commit. The commit's
/// condition fails (the item changed), the transaction decides again on the
/// item the failure returned, and commits: the shared object is referenced by
/// both writes in turn and never deleted.
pub async fn transaction_after_a_concurrent_identical_write(fx: Fixture) {
    fx.store.create_large(&Note::new("T", "x")).await.unwrap();
    let other = vdoc_store(&fx, fx.raw.clone());
    let hooked = Arc::new(EarlyAnswer::at(
        Point::BeforeTransaction,
        fx.raw.clone(),
        async move {
            other
                .update_large(&Note::key("T"), Note::changes().set_html(Some("y".into())))
                .await
                .unwrap();
        },
    ));
    let tx = vdoc_store(&fx, hooked.clone());
    tx.transaction()
        .update(&Note::key("T"), Note::changes().set_html(Some("y".into())))
        .create(&Note::new("U", "y"))
        .commit()
        .await
        .unwrap();
    assert!(hooked.ran(), "the schedule happened");
    tx.flush().await;
    fx.store.flush().await;
    assert_eq!(
        fx.store.get_large(&Note::key("T")).await.unwrap(),
        Note::new("T", "y")
    );
    assert_eq!(
        fx.store.get_large(&Note::key("U")).await.unwrap(),
        Note::new("U", "y")
    );
    // T's "y" and U's "y" (objects belong to their item); "x" was deleted.
    assert_eq!(fx.objects().await.len(), 2, "{:?}", fx.objects().await);
}

/// Another writer wins the version race with identical content: the
/// transaction's commit is canceled by the service, it decides again on the
/// returned item, finds the version moved, and reports `VersionConflict`. Its
/// cleanup must not delete the object it uploaded: the winner points to it.
pub async fn transaction_losing_a_version_race_to_identical_content(fx: Fixture) {
    let v1 = VDoc {
        id: "R".into(),
        version: 1,
        body: Some("one".into()),
        title: "t".into(),
    };
    fx.store.create_large(&v1).await.unwrap();
    let other = vdoc_store(&fx, fx.raw.clone());
    let hooked = Arc::new(EarlyAnswer::at(
        Point::BeforeTransaction,
        fx.raw.clone(),
        async move {
            other
                .update_large(
                    &VDoc::key("R"),
                    VDoc::changes().set_body(Some("two".into())).if_version(1),
                )
                .await
                .unwrap();
        },
    ));
    let tx = vdoc_store(&fx, hooked.clone());
    let err = tx
        .transaction()
        .update(
            &VDoc::key("R"),
            VDoc::changes().set_body(Some("two".into())).if_version(1),
        )
        .create(&Note::new("W", "w"))
        .commit()
        .await
        .unwrap_err();
    assert!(hooked.ran(), "the schedule happened");
    match err {
        vhs::Error::TransactionCanceled { action: 0, reason } => assert!(
            matches!(
                *reason,
                vhs::Error::VersionConflict {
                    expected: 1,
                    found: Some(2),
                    ..
                }
            ),
            "{reason}"
        ),
        other => panic!("{other}"),
    }
    tx.flush().await;
    fx.store.flush().await;
    let now = fx.store.get_large(&VDoc::key("R")).await.unwrap();
    assert_eq!((now.version, now.body.as_deref()), (2, Some("two")));
    assert!(fx
        .store
        .get_large(&Note::key("W"))
        .await
        .unwrap_err()
        .is_not_found());
    // Only R's "two": "one" was replaced, W's object removed with the cancel.
    assert_eq!(fx.objects().await.len(), 1, "{:?}", fx.objects().await);
}

/// A read cache must never serve what a read that raced a write saw: the
/// reader's GetItem answers the old item, the same store's update (of an
/// ordinary attribute, so the old item's objects stay) lands and returns, then
/// the reader stores what it read. The next read must miss and see the update.
pub async fn cached_read_racing_a_write_is_not_served(fx: Fixture) {
    let v = VDoc {
        id: "K".into(),
        version: 1,
        body: Some("body".into()),
        title: "old".into(),
    };
    fx.store.create_large(&v).await.unwrap();
    let cell: Arc<std::sync::OnceLock<Store>> = Arc::new(std::sync::OnceLock::new());
    let writer = cell.clone();
    let hooked = Arc::new(EarlyAnswer::at(
        Point::AfterFirstRead,
        fx.raw.clone(),
        async move {
            let store = writer.get().expect("store built").clone();
            store
                .update_large(
                    &VDoc::key("K"),
                    VDoc::changes().set_title("new").if_version(1),
                )
                .await
                .unwrap();
        },
    ));
    let store = Store::builder(hooked.clone(), fx.bucket.clone())
        .prefix(fx.store.prefix())
        .table_for::<VDoc>(fx.store.table_name::<VDoc>())
        .cache(vhs::CacheOptions::new().ttl(std::time::Duration::from_secs(3600)))
        .build()
        .unwrap();
    cell.set(store.clone()).unwrap();
    // The racing read answers what it read...
    let raced = store.get_large(&VDoc::key("K")).await.unwrap();
    assert!(hooked.ran(), "the schedule happened");
    assert_eq!((raced.title.as_str(), raced.version), ("old", 1));
    // ...but the cache does not keep serving it.
    let next = store.get_large(&VDoc::key("K")).await.unwrap();
    assert_eq!((next.title.as_str(), next.version), ("new", 2));
    store.flush().await;
}

/// A cancellation the service gives for good (here `ValidationError`) ends the
/// transaction at once with that action and code, its uploads removed; one
/// that gives no reason at all is waited out and sent again, not looped on.
pub async fn transaction_cancellations_without_a_condition(fx: Fixture) {
    let refusing = Arc::new(EarlyAnswer::at(
        Point::CancelFirstTransaction(Some("ValidationError")),
        fx.raw.clone(),
        async {},
    ));
    let tx = vdoc_store(&fx, refusing.clone());
    let err = tx
        .transaction()
        .create(&Note::new("X", "x"))
        .create(&Note::new("Y", "y"))
        .commit()
        .await
        .unwrap_err();
    assert!(refusing.ran(), "the schedule happened");
    match &err {
        vhs::Error::TransactionCanceled { action: 0, reason } => assert!(
            matches!(&**reason, vhs::Error::Backend { code: Some(c), retryable: false, .. } if c == "ValidationError"),
            "{reason}"
        ),
        other => panic!("{other}"),
    }
    tx.flush().await;
    assert!(fx.objects().await.is_empty(), "{:?}", fx.objects().await);

    let silent = Arc::new(EarlyAnswer::at(
        Point::CancelFirstTransaction(None),
        fx.raw.clone(),
        async {},
    ));
    let tx = vdoc_store(&fx, silent.clone());
    tx.transaction()
        .create(&Note::new("X", "x"))
        .commit()
        .await
        .unwrap();
    assert!(silent.ran(), "the schedule happened");
    assert_eq!(
        fx.store.get_large(&Note::key("X")).await.unwrap(),
        Note::new("X", "x")
    );
}
