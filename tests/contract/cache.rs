//! The read cache over every backend: hits, misses, TTLs on a manual clock,
//! invalidation by each kind of write. (A read racing a write is in
//! `schedules`.)

use std::time::Duration;

use futures::TryStreamExt;
use vhs::{CacheOptions, ManualClock, Op, Precondition};

use crate::fixture::{Fixture, Kind};
use crate::models::{Note, VDoc};

const HOUR: Duration = Duration::from_secs(3600);
const FIVE_MINUTES: Duration = Duration::from_secs(300);

async fn cached(kind: Kind, clock: &ManualClock) -> Fixture {
    let options = CacheOptions::new()
        .ttl(Duration::from_secs(10))
        .ttl_for::<Note>(HOUR)
        .query_ttl_for::<Note>(FIVE_MINUTES)
        .clock(clock.clone());
    Fixture::with(kind, |b| b.cache(options)).await
}

fn count(fx: &Fixture, op: Op) -> usize {
    fx.faults.calls().iter().filter(|o| **o == op).count()
}

pub async fn cache_serves_items_and_bodies_until_their_ttl(fx: Fixture) {
    let clock = ManualClock::new();
    let fx = cached(fx.kind, &clock).await;
    let store = &fx.store;
    store.create_large(&Note::new("A", "a")).await.unwrap();
    fx.faults.reset();
    let key = Note::key("A");
    assert_eq!(store.get_large(&key).await.unwrap(), Note::new("A", "a"));
    assert_eq!(fx.faults.calls(), [Op::GetItem, Op::GetObject]);
    // A hit: no request at all.
    assert_eq!(store.get_large(&key).await.unwrap(), Note::new("A", "a"));
    clock.advance(HOUR - Duration::from_secs(1));
    assert_eq!(store.get_large(&key).await.unwrap(), Note::new("A", "a"));
    assert_eq!(fx.faults.calls().len(), 2);
    // Expired: the item is read again; the body is still cached by its key.
    clock.advance(Duration::from_secs(2));
    assert_eq!(store.get_large(&key).await.unwrap(), Note::new("A", "a"));
    assert_eq!(fx.faults.calls(), [Op::GetItem, Op::GetObject, Op::GetItem]);
    // A consistent read never uses the cache.
    store.get_large_consistent(&key).await.unwrap();
    assert_eq!(count(&fx, Op::GetItem), 3);
    // Another model has the default TTL (10 s).
    let v = VDoc {
        id: "V".into(),
        version: 1,
        body: Some("v".into()),
        title: "t".into(),
    };
    store.create_large(&v).await.unwrap();
    fx.faults.reset();
    store.get_large(&VDoc::key("V")).await.unwrap();
    store.get_large(&VDoc::key("V")).await.unwrap();
    assert_eq!(count(&fx, Op::GetItem), 1);
    clock.advance(Duration::from_secs(11));
    store.get_large(&VDoc::key("V")).await.unwrap();
    assert_eq!(count(&fx, Op::GetItem), 2);
    // A missing item is not cached.
    assert!(store
        .get_large(&Note::key("none"))
        .await
        .unwrap_err()
        .is_not_found());
    assert!(store
        .get_large(&Note::key("none"))
        .await
        .unwrap_err()
        .is_not_found());
    assert_eq!(count(&fx, Op::GetItem), 4);
}

pub async fn cache_is_invalidated_by_every_write(fx: Fixture) {
    let clock = ManualClock::new();
    let fx = cached(fx.kind, &clock).await;
    let store = &fx.store;
    let key = Note::key("A");
    let get = || async { store.get_large(&key).await };
    store.create_large(&Note::new("A", "1")).await.unwrap();
    assert_eq!(get().await.unwrap().html.as_deref(), Some("1"));

    store
        .update_large(&key, Note::changes().set_html(Some("2".into())))
        .await
        .unwrap();
    assert_eq!(get().await.unwrap().html.as_deref(), Some("2"));

    store
        .transaction()
        .update(&key, Note::changes().set_html(Some("3".into())))
        .commit()
        .await
        .unwrap();
    assert_eq!(get().await.unwrap().html.as_deref(), Some("3"));

    store.delete_large(&key).await.unwrap();
    assert!(get().await.unwrap_err().is_not_found());

    store.create_large(&Note::new("A", "4")).await.unwrap();
    assert_eq!(get().await.unwrap().html.as_deref(), Some("4"));

    store
        .transaction()
        .delete(&key, Precondition::new())
        .commit()
        .await
        .unwrap();
    assert!(get().await.unwrap_err().is_not_found());

    let created = store
        .batch_create_large(&[Note::new("A", "5")])
        .await
        .unwrap();
    assert!(created[0].is_ok());
    assert_eq!(get().await.unwrap().html.as_deref(), Some("5"));
    // The clock never moved: every fresh value above came from a miss.
    assert!(count(&fx, Op::GetItem) >= 7);
}

pub async fn cache_serves_query_pages_until_their_ttl(fx: Fixture) {
    let clock = ManualClock::new();
    let fx = cached(fx.kind, &clock).await;
    let store = &fx.store;
    store.create_large(&Note::new("Q", "q")).await.unwrap();
    fx.faults.reset();
    let query = || async {
        store
            .query::<Note>(Note::PK.eq("Q"))
            .items()
            .try_collect::<Vec<Note>>()
            .await
            .unwrap()
    };
    assert_eq!(query().await, [Note::new("Q", "q")]);
    assert_eq!(query().await, [Note::new("Q", "q")]);
    // One Query; the body was fetched once and then served by its key.
    assert_eq!(count(&fx, Op::Query), 1);
    assert_eq!(count(&fx, Op::GetObject), 1);
    clock.advance(FIVE_MINUTES + Duration::from_secs(1));
    query().await;
    assert_eq!(count(&fx, Op::Query), 2);
    // A write to any item of the table drops its pages.
    store.create_large(&Note::new("other", "o")).await.unwrap();
    query().await;
    assert_eq!(count(&fx, Op::Query), 3);
    query().await;
    assert_eq!(count(&fx, Op::Query), 3);
    // Consistent queries are never cached.
    let _: Vec<Note> = store
        .query::<Note>(Note::PK.eq("Q"))
        .consistent()
        .items()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(count(&fx, Op::Query), 4);
}
