//! The schedules two adversarial reviews found, each written down as a test
//! (review items 1 to 9 of the "Data safety II" issue). Each lost an object,
//! undid a delete, or left a writer stuck before the protocol's fixes; each
//! runs on the memory backend and on the emulator. The model checker
//! (`vhs-core`, `model_*`) explores these schedules and every other
//! interleaving of the same actors; these tests drive the real store through
//! them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use vhs::maintenance::GcOptions;
use vhs::BackendExt as _;
use vhs::{Backend, Background, Conditional, Error, Model, RetryPolicy, Store, StoreBuilder};

use crate::fixture::Fixture;
use crate::models::{Document, Note, Page};
use crate::schedules::{EarlyAnswer, Point};

/// A store over `backend` with the fixture's bucket, prefix and tables.
fn store_over(
    fx: &Fixture,
    backend: impl Backend,
    configure: impl FnOnce(StoreBuilder) -> StoreBuilder,
) -> Store {
    let builder = Store::builder(backend, fx.bucket.clone())
        .prefix(fx.store.prefix())
        .table_for::<Note>(fx.store.table_name::<Note>())
        .table_for::<Document>(fx.store.table_name::<Document>());
    configure(builder).build().unwrap()
}

/// A writer that waits little for deletions in progress.
fn impatient(b: StoreBuilder) -> StoreBuilder {
    b.wait(RetryPolicy::attempts(3).delays(Duration::from_millis(5), Duration::from_millis(20)))
}

/// A table of its own for `Note`, whose recorded retention is `retention`.
async fn short_retention(fx: &Fixture, name: &str, retention: Duration) -> (String, Store) {
    let table = format!("{}-{name}", fx.store.table_name::<Note>());
    let store = Store::builder(fx.faults.clone(), fx.bucket.clone())
        .prefix(fx.store.prefix())
        .table_for::<Note>(table.clone())
        .retention(retention)
        .build()
        .unwrap();
    store.ensure_table::<Note>().await.unwrap();
    (table, store)
}

/// A store on `table` for `Note`, over `backend`.
fn on_table(
    fx: &Fixture,
    table: &str,
    backend: impl Backend,
    configure: impl FnOnce(StoreBuilder) -> StoreBuilder,
) -> Store {
    let builder = Store::builder(backend, fx.bucket.clone())
        .prefix(fx.store.prefix())
        .table_for::<Note>(table.to_owned());
    configure(builder).build().unwrap()
}

fn html(note: &Note) -> Option<&str> {
    note.html.as_deref()
}

/// Item 1: a delete's late pointer removal must not strip a newer delete's
/// reservation. D1 deletes (its pointer removal waits); a transaction creates
/// the item again; D2 deletes it (its one DeleteObjects waits); D1's removal
/// runs; a create of the same content must not point to the object D2 is
/// about to delete.
pub async fn reviewed_1_a_late_pointer_removal_keeps_a_newer_delete_s_reservation(fx: Fixture) {
    let key = Note::new("r1", "A").primary_key();
    fx.store.create_large(&Note::new("r1", "A")).await.unwrap();
    let d1 = store_over(&fx, fx.raw.clone(), |b| b.background(Background::OnFlush));
    let d2 = store_over(&fx, fx.raw.clone(), |b| {
        b.background(Background::OnFlush).defer_cleanup(true)
    });
    let creator = store_over(&fx, fx.raw.clone(), impatient);
    d1.delete_large(&key).await.unwrap();
    fx.store
        .transaction()
        .create(&Note::new("r1", "A"))
        .commit()
        .await
        .unwrap();
    d2.delete_large(&key).await.unwrap();
    d1.flush().await;
    // D2 has not deleted its object yet: the create must wait (or reuse it
    // only once D2's deletion landed), never point to it now.
    let early = creator.create_large(&Note::new("r1", "A")).await;
    d2.flush().await;
    match early {
        Ok(_) => {
            let got = fx.store.get_large(&key).await.unwrap();
            assert_eq!(html(&got), Some("A"));
        }
        Err(e) => {
            assert!(matches!(e, Error::Busy { .. }), "{e}");
            creator.create_large(&Note::new("r1", "A")).await.unwrap();
            let got = fx.store.get_large(&key).await.unwrap();
            assert_eq!(html(&got), Some("A"));
        }
    }
    let report = fx
        .store
        .verify::<Note>(&Default::default(), |_| {})
        .await
        .unwrap();
    assert!(report.is_clean(), "{report:?}");
}

/// Item 2(a): GC of one model of a two-model table marks an orphan on
/// condition that no attribute points to it, its own attribute included,
/// even one that model does not know. A writer points `image` back to the
/// orphan between GC's listing and its mark.
pub async fn reviewed_2_typed_gc_rechecks_the_object_s_own_attribute(fx: Fixture) {
    let doc = Document::sample("r2", "s");
    let key = doc.primary_key();
    fx.store.create_large(&doc).await.unwrap();
    // The image's object becomes an orphan: the item points elsewhere, and
    // the object is put back (as a failed write would leave it).
    let first = fx.store.get_stored(&key, true).await.unwrap();
    let image_uri = first.pointer("image").unwrap().to_owned();
    let image_key = image_uri
        .trim_start_matches(&format!("s3://{}/", fx.bucket))
        .to_owned();
    fx.store
        .update_large(&key, Document::changes().set_image(Some(vec![9, 9])))
        .await
        .unwrap();
    fx.store.flush().await;
    crate::fixture::put_raw(
        &*fx.raw,
        &fx.bucket,
        &image_key,
        doc.image.as_deref().unwrap(),
    )
    .await;
    let writer = fx.store.clone();
    let back = doc.image.clone();
    let early = Arc::new(EarlyAnswer::at(
        Point::BeforeCommit,
        fx.raw.clone(),
        async move {
            writer
                .update_large(&key, Document::changes().set_image(back))
                .await
                .unwrap();
        },
    ));
    // GC of `Page`, which shares the table and knows only `html`.
    let gc = Store::builder(early.clone(), fx.bucket.clone())
        .prefix(fx.store.prefix())
        .table_for::<Page>(fx.store.table_name::<Document>())
        .build()
        .unwrap();
    gc.gc::<Page>(&GcOptions::default().grace(Duration::ZERO), |_| {})
        .await
        .unwrap();
    assert!(early.ran(), "the schedule happened");
    let got = fx.store.get_large(&doc.primary_key()).await.unwrap();
    assert_eq!(got.image, doc.image);
}

/// Item 2(b): untyped GC (`vhs gc`) of two orphans of one item, racing a
/// create that points to both: each mark names the object's own attribute.
pub async fn reviewed_2_untyped_gc_marks_each_orphan_by_its_own_attribute(fx: Fixture) {
    let doc = Document::sample("r2b", "s");
    let key = doc.primary_key();
    // Two orphans of an item that does not exist (put_s3, never committed).
    let values = vhs::LargeValues::of(&doc).unwrap();
    fx.store.put_s3(&key, values).await.unwrap();
    let creator = fx.store.clone();
    let created = doc.clone();
    let early = Arc::new(EarlyAnswer::at(
        Point::BeforeCommit,
        fx.raw.clone(),
        async move {
            creator.create_large(&created).await.unwrap();
        },
    ));
    let gc = store_over(&fx, early.clone(), |b| b);
    let table = gc
        .open_table(fx.store.table_name::<Document>())
        .await
        .unwrap();
    table
        .gc(&GcOptions::default().grace(Duration::ZERO), |_| {})
        .await
        .unwrap();
    assert!(early.ran(), "the schedule happened");
    let got = fx.store.get_large(&key).await.unwrap();
    assert_eq!(got, doc);
}

/// Item 3: a staged write (step-by-step API) whose caller waited past the
/// deadline cannot land, while GC marked, deleted and removed what the
/// upload left.
pub async fn reviewed_3_a_staged_write_cannot_land_after_its_deadline(fx: Fixture) {
    let (table, store) = short_retention(&fx, "r3", Duration::from_secs(2)).await;
    let key = Note::new("r3", "X").primary_key();
    let staged = store
        .put_s3(&key, vhs::LargeValues::of(&Note::new("r3", "X")).unwrap())
        .await
        .unwrap();
    assert!(!staged.is_expired());
    // GC collects the orphan (the uploads are old enough for it here) and,
    // taking over at once, the placeholder its mark left.
    let reap = GcOptions::default()
        .grace(Duration::ZERO)
        .take_over_after(Duration::ZERO);
    store.gc::<Note>(&reap, |_| {}).await.unwrap();
    store.gc::<Note>(&reap, |_| {}).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(staged.is_expired());
    let mut item = Note::new("r3", "X").to_item().unwrap();
    item.extend(staged.to_put_attributes());
    let put = fx
        .raw
        .put_item(&table, item, Some(&staged.put_condition()))
        .await
        .unwrap();
    assert!(matches!(put, Conditional::Failed(_)), "{put:?}");
    match store.get_large(&key).await {
        Err(e) => assert!(e.is_not_found(), "{e}"),
        Ok(n) => assert_eq!(html(&n), Some("X")),
    }
}

/// Item 4: a create whose PutItem landed but whose answer was lost, then a
/// delete, then the create's resend: the create reports success once, and
/// the delete stays done.
pub async fn reviewed_4_a_create_resent_after_a_delete_does_not_undo_it(fx: Fixture) {
    let key = Note::new("r4", "A").primary_key();
    let deleter = fx.store.clone();
    let k = key.clone();
    let early = Arc::new(EarlyAnswer::at(
        Point::LoseFirstPutAnswer,
        fx.raw.clone(),
        async move {
            deleter.delete_large(&k).await.unwrap();
        },
    ));
    let creator = store_over(&fx, early.clone(), |b| b);
    creator.create_large(&Note::new("r4", "A")).await.unwrap();
    assert!(early.ran(), "the schedule happened");
    assert!(fx.item(&key).await.is_none(), "the delete was undone");
}

/// Item 5: a deleter that dies before its bookkeeping delays an identical
/// create only until its reservation is dead: the create ends it itself
/// (no GC), with and without deferred cleanup.
pub async fn reviewed_5_a_dead_deleter_delays_an_identical_create_only_until_its_deadline(
    fx: Fixture,
) {
    for deferred in [false, true] {
        let name = format!("r5{deferred}");
        let (table, store) = short_retention(&fx, &name, Duration::from_secs(2)).await;
        let key = Note::new("r5", "A").primary_key();
        store.create_large(&Note::new("r5", "A")).await.unwrap();
        let deleter = on_table(&fx, &table, fx.raw.clone(), |b| {
            b.background(Background::OnFlush).defer_cleanup(deferred)
        });
        deleter.delete_large(&key).await.unwrap();
        drop(deleter); // dies: its background work never runs
        let creator = on_table(&fx, &table, fx.raw.clone(), |b| {
            b.wait(
                RetryPolicy::attempts(200)
                    .delays(Duration::from_millis(50), Duration::from_millis(100)),
            )
        });
        let started = Instant::now();
        creator.create_large(&Note::new("r5", "A")).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(15));
        let got = creator.get_large(&key).await.unwrap();
        assert_eq!(html(&got), Some("A"), "deferred: {deferred}");
    }
}

/// Item 6: a pointer to another item's object is a bad pointer: never read,
/// reported by verify.
pub async fn reviewed_6_a_pointer_to_another_item_s_object_is_a_bad_pointer(fx: Fixture) {
    fx.store
        .create_large(&Note::new("r6-a", "A"))
        .await
        .unwrap();
    let b = fx
        .store
        .create_large(&Note::new("r6-b", "B"))
        .await
        .unwrap();
    let neighbour = b.object("html").unwrap().pointer.uri();
    let key = Note::new("r6-a", "A").primary_key();
    let mut item = fx.raw_item(&key).await.unwrap();
    item.insert("html".into(), vhs::types::AttributeValue::S(neighbour));
    fx.raw
        .put_item(fx.store.table_name::<Note>(), item, None)
        .await
        .unwrap();
    let err = fx.store.get_large(&key).await.unwrap_err();
    assert!(matches!(err, Error::BadPointer { .. }), "{err}");
    let report = fx
        .store
        .verify::<Note>(&Default::default(), |_| {})
        .await
        .unwrap();
    assert_eq!(report.bad_pointers.len(), 1, "{report:?}");
    let table = fx
        .store
        .open_table(fx.store.table_name::<Note>())
        .await
        .unwrap();
    let report = table.verify(&Default::default(), |_| {}).await.unwrap();
    assert_eq!(report.bad_pointers.len(), 1, "{report:?}");
}

/// Item 7: a delete whose UpdateItem landed but whose answer was lost, then
/// a create replacing its placeholder, then the delete's resend: the resend
/// cannot apply to the new item.
pub async fn reviewed_7_a_resent_delete_does_not_delete_a_newer_item(fx: Fixture) {
    let key = Note::new("r7", "A").primary_key();
    fx.store.create_large(&Note::new("r7", "A")).await.unwrap();
    let creator = fx.store.clone();
    let early = Arc::new(EarlyAnswer::at(
        Point::LoseFirstUpdateAnswer,
        fx.raw.clone(),
        async move {
            creator.create_large(&Note::new("r7", "B")).await.unwrap();
        },
    ));
    let deleter = store_over(&fx, early.clone(), |b| b);
    deleter.delete_large(&key).await.unwrap();
    assert!(early.ran(), "the schedule happened");
    let got = fx.store.get_large(&key).await.unwrap();
    assert_eq!(html(&got), Some("B"));
    fx.store.flush().await;
    deleter.flush().await;
    let report = fx
        .store
        .verify::<Note>(&Default::default(), |_| {})
        .await
        .unwrap();
    assert!(report.is_clean(), "{report:?}");
}

/// Item 8: GC's DeleteObjects answers an error without having landed: the
/// mark stays, so a writer cannot point to the object before the late
/// DeleteObjects lands.
pub async fn reviewed_8_a_mark_stays_while_its_delete_may_still_land(fx: Fixture) {
    let key = Note::new("r8", "Z").primary_key();
    fx.store
        .put_s3(&key, vhs::LargeValues::of(&Note::new("r8", "Z")).unwrap())
        .await
        .unwrap();
    let early = Arc::new(EarlyAnswer::at(
        Point::HoldFirstDelete,
        fx.raw.clone(),
        async {},
    ));
    let gc = store_over(&fx, early.clone(), |b| b);
    gc.gc::<Note>(&GcOptions::default().grace(Duration::ZERO), |_| {})
        .await
        .unwrap();
    assert!(early.ran(), "the schedule happened");
    let writer = store_over(&fx, fx.raw.clone(), impatient);
    let wrote = writer.create_large(&Note::new("r8", "Z")).await;
    assert!(early.land_held().await, "the held DeleteObjects lands late");
    match wrote {
        Err(e) => assert!(matches!(e, Error::Busy { .. }), "{e}"),
        Ok(_) => panic!("a writer pointed to an object whose delete may still land"),
    }
    match fx.store.get_large(&key).await {
        Err(e) => assert!(e.is_not_found(), "{e}"),
        Ok(n) => panic!("{n:?}"),
    }
}

/// Item 9: an update's commit lands at once but its answer arrives after the
/// retention; meanwhile GC takes the reservation over, deletes and unmarks,
/// and a writer points to the same content again. The late answer must not
/// send the reserved object's DeleteObjects.
pub async fn reviewed_9_a_slow_answer_does_not_stretch_the_send_window(fx: Fixture) {
    let (table, store) = short_retention(&fx, "r9", Duration::from_secs(2)).await;
    let key = Note::new("r9", "A").primary_key();
    store.create_large(&Note::new("r9", "A")).await.unwrap();
    let (gc, writer) = (store.clone(), store.clone());
    let k = key.clone();
    let early = Arc::new(EarlyAnswer::at(
        Point::SlowFirstUpdateAnswer,
        fx.raw.clone(),
        async move {
            // Past the retention and the skew bound: the reservation is dead.
            tokio::time::sleep(Duration::from_millis(2700)).await;
            gc.gc::<Note>(&GcOptions::default().grace(Duration::ZERO), |_| {})
                .await
                .unwrap();
            writer
                .update_large(&k, Note::changes().set_html(Some("A".into())))
                .await
                .unwrap();
        },
    ));
    let slow = on_table(&fx, &table, early.clone(), |b| b);
    slow.update_large(&key, Note::changes().set_html(Some("B".into())))
        .await
        .unwrap();
    assert!(early.ran(), "the schedule happened");
    let got = store.get_large(&key).await.unwrap();
    assert_eq!(html(&got), Some("A"));
}

/// Upgrading: items as the version before the protocol layer left them keep
/// working. A live item whose marks had set `vhs:gen` (and has no
/// `vhs:seq`), and the placeholder of a delete that died after its
/// DeleteObjects (no token history, its pointer kept as a reservation of an
/// object already gone).
pub async fn upgrade_items_of_the_previous_version_keep_working(fx: Fixture) {
    use vhs::types::AttributeValue::S;
    let table = fx.store.table_name::<Note>();

    let live = Note::new("up-live", "A");
    fx.store.create_large(&live).await.unwrap();
    let key = live.primary_key();
    let mut item = fx.raw_item(&key).await.unwrap();
    item.retain(|k, _| k != "vhs:seq" && k != "vhs:act");
    item.insert("vhs:gen".into(), S("00000000000000a1".into()));
    fx.raw.put_item(table, item, None).await.unwrap();
    assert_eq!(fx.store.get_large(&key).await.unwrap(), live);
    fx.store
        .update_large(&key, Note::changes().set_html(Some("B".into())))
        .await
        .unwrap();
    assert_eq!(
        fx.store.get_large(&key).await.unwrap(),
        Note::new("up-live", "B")
    );

    let gone = Note::new("up-gone", "C");
    let staged = fx.store.create_large(&gone).await.unwrap();
    let object = staged.object("html").unwrap().pointer.key.clone();
    let gone_key = gone.primary_key();
    let mut item = fx.raw_item(&gone_key).await.unwrap();
    item.retain(|k, _| !k.starts_with("vhs:"));
    // The delete died three hours ago, past the retention and the skew bound.
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        - 3 * 3600 * 1000;
    item.insert("vhs:ph".into(), S(format!("{ms} 00000000000000b2")));
    fx.raw.put_item(table, item, None).await.unwrap();
    fx.lose(&object).await;
    let err = fx.store.get_large(&gone_key).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    // Identical content: the create finds the dead reservation, ends it and
    // replaces the placeholder (a live one would make it wait: reviewed_5).
    fx.store.create_large(&gone).await.unwrap();
    assert_eq!(fx.store.get_large(&gone_key).await.unwrap(), gone);

    fx.store.delete_large(&key).await.unwrap();
    fx.store.flush().await;
    fx.store
        .gc::<Note>(&GcOptions::default().grace(Duration::ZERO), |_| {})
        .await
        .unwrap();
    let report = fx
        .store
        .verify::<Note>(&Default::default(), |_| {})
        .await
        .unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.orphans, 0, "{report:?}");
    let err = fx.store.get_large(&key).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
}
