//! `Options::keep_replaced_for`: what an update or a delete replaces stays
//! readable for the window (a change feed's consumer reading an old image
//! finds it), is collected by GC once the window and `R + S` passed, and never
//! holds up a writer that writes the same content back.

use std::time::Duration;

use vhs::maintenance::GcOptions;
use vhs::types::AttributeValue;
use vhs::BackendExt as _;
use vhs::{Model, Store, StoreBuilder};

use crate::fixture::{sorted, Fixture};
use crate::models::Note;

/// A store on a table of its own for `Note` (retention `retention`),
/// configured further by `configure`.
async fn note_store(
    fx: &Fixture,
    name: &str,
    retention: Duration,
    configure: impl FnOnce(StoreBuilder) -> StoreBuilder,
) -> Store {
    let table = format!("{}-{name}", fx.store.table_name::<Note>());
    let builder = Store::builder(fx.faults.clone(), fx.bucket.clone())
        .prefix(format!("{}/{name}", fx.store.prefix()))
        .table_for::<Note>(table)
        .retention(retention);
    let store = configure(builder).build().unwrap();
    store.ensure_table::<Note>().await.unwrap();
    store
}

/// The object keys of the values of `store`'s table.
async fn values(fx: &Fixture, store: &Store) -> Vec<String> {
    let prefix = format!("{}/", store.prefix());
    sorted(
        fx.objects()
            .await
            .into_iter()
            .filter(|k| k.starts_with(&prefix) && !k.ends_with(crate::fixture::SETTINGS))
            .collect(),
    )
}

/// The key of the object `item`'s `html` points to.
fn pointer(_store: &Store, item: &vhs::Item) -> String {
    match item.get("html") {
        Some(AttributeValue::S(uri)) => vhs::Pointer::parse(uri).unwrap().key,
        other => panic!("no pointer: {other:?}"),
    }
}

/// The item of `key` in `store`'s table, exactly as stored.
async fn stored(fx: &Fixture, store: &Store, key: &vhs::Key<Note>) -> vhs::Item {
    fx.raw
        .get_item(store.table_name::<Note>(), &key.to_item(), true)
        .await
        .unwrap()
        .expect("the item")
}

/// The bytes of object `key`, if it exists.
async fn read(fx: &Fixture, key: &str) -> Option<Vec<u8>> {
    fx.raw
        .get_object(&fx.bucket, key)
        .await
        .unwrap()
        .map(|o| o.body.to_vec())
}

/// Without the option an update deletes what it replaced at once (what a
/// change feed's consumer then misses); with it, the old value stays
/// readable, is reported kept, and survives GC while the window lasts.
pub async fn replaced_and_deleted_values_stay_for_the_window(fx: Fixture) {
    let hour = Duration::from_secs(3600);
    let today = note_store(&fx, "keep-off", hour, |b| b).await;
    let key = Note::new("k", "first").primary_key();
    today.create_large(&Note::new("k", "first")).await.unwrap();
    let updated = today
        .update_large(&key, Note::changes().set_html(Some("second".into())))
        .await
        .unwrap();
    let old = pointer(&today, &updated.old);
    assert!(
        !values(&fx, &today).await.contains(&old),
        "without keep_replaced_for the old value is deleted at once"
    );
    assert_eq!(read(&fx, &old).await, None);

    let kept = note_store(&fx, "keep-on", hour, |b| b.keep_replaced_for(hour)).await;
    kept.create_large(&Note::new("k", "first")).await.unwrap();
    let updated = kept
        .update_large(&key, Note::changes().set_html(Some("second".into())))
        .await
        .unwrap();
    let first = pointer(&kept, &updated.old);
    assert_eq!(updated.cleanup.kept, vec![first.clone()]);
    assert!(updated.cleanup.deleted.is_empty());
    assert_eq!(read(&fx, &first).await.as_deref(), Some(&b"first"[..]));
    let deleted = kept.delete_large(&key).await.unwrap();
    let second = pointer(&kept, deleted.old.as_ref().expect("the old image"));
    assert_eq!(deleted.cleanup.kept, vec![second.clone()]);
    assert_eq!(read(&fx, &second).await.as_deref(), Some(&b"second"[..]));
    // GC, however eager, leaves both while the window lasts.
    let eager = GcOptions::default()
        .grace(Duration::ZERO)
        .take_over_after(Duration::ZERO);
    kept.gc::<Note>(&eager, |_| {}).await.unwrap();
    assert_eq!(values(&fx, &kept).await, sorted(vec![first, second]));
    assert!(kept.get_large(&key).await.unwrap_err().is_not_found());
}

/// Once the window and `R + S` passed, GC takes the kept values over and
/// deletes them through the protocol; what the item points to stays.
pub async fn kept_values_are_collected_once_their_time_ran_out(fx: Fixture) {
    let store = note_store(&fx, "keep-gc", Duration::from_secs(2), |b| {
        b.keep_replaced_for(Duration::from_millis(500))
    })
    .await;
    let key = Note::new("g", "v1").primary_key();
    store.create_large(&Note::new("g", "v1")).await.unwrap();
    let updated = store
        .update_large(&key, Note::changes().set_html(Some("v2".into())))
        .await
        .unwrap();
    let v1 = pointer(&store, &updated.old);
    let v2 = pointer(&store, &stored(&fx, &store, &key).await);
    let gc = GcOptions::default().grace(Duration::ZERO);
    let early = store.gc::<Note>(&gc, |_| {}).await.unwrap();
    assert_eq!(early.marks_taken_over, 0, "{early:?}");
    assert_eq!(
        values(&fx, &store).await,
        sorted(vec![v1.clone(), v2.clone()])
    );
    // Dead at the keep time + R + S (2 s + 0.5 s).
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let late = store.gc::<Note>(&gc, |_| {}).await.unwrap();
    assert_eq!(late.marks_taken_over, 1, "{late:?}");
    assert_eq!(values(&fx, &store).await, vec![v2]);
    let item = stored(&fx, &store, &key).await;
    assert!(
        !item.keys().any(|k| k.starts_with("vhs:del:")),
        "the kept reservation was ended: {item:?}"
    );
    assert_eq!(
        store.get_large(&key).await.unwrap().html.as_deref(),
        Some("v2")
    );
}

/// Writing a kept value back ends its reservation at once (no waiting for
/// the window): the writer proves the object exists and points to it.
pub async fn writing_a_kept_value_back_does_not_wait(fx: Fixture) {
    let store = note_store(&fx, "keep-back", Duration::from_secs(3600), |b| {
        b.keep_replaced_for(Duration::from_secs(3600))
            .wait(vhs::RetryPolicy::attempts(2))
    })
    .await;
    let key = Note::new("b", "A").primary_key();
    store.create_large(&Note::new("b", "A")).await.unwrap();
    let to_b = store
        .update_large(&key, Note::changes().set_html(Some("B".into())))
        .await
        .unwrap();
    let a = pointer(&store, &to_b.old);
    let to_a = store
        .update_large(&key, Note::changes().set_html(Some("A".into())))
        .await
        .unwrap();
    let b = pointer(&store, &to_a.old);
    assert_eq!(to_a.cleanup.kept, vec![b.clone()]);
    let item = stored(&fx, &store, &key).await;
    assert_eq!(pointer(&store, &item), a);
    let marks: Vec<&String> = item.keys().filter(|k| k.starts_with("vhs:del:")).collect();
    assert_eq!(marks.len(), 1, "only B's reservation is left: {item:?}");
    assert_eq!(
        store.get_large(&key).await.unwrap().html.as_deref(),
        Some("A")
    );
    assert_eq!(values(&fx, &store).await, sorted(vec![a, b]));
}
