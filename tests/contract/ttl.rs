//! Time to live (`#[vhs(ttl)]`): an expired item is absent to every read and
//! write before DynamoDB's reaper removes it; its objects stay while it is
//! there and are collected by GC once it is gone.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use vhs::maintenance::VerifyOptions;
use vhs::types::AttributeValue;
use vhs::{BackendExt as _, Condition, Error, Model, Store};

use crate::faults::gc_now;
use crate::fixture::{keys_of, Fixture, Kind};

/// A session of a user: expires at `expires` (epoch seconds), if set.
#[derive(Model, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[vhs(table = "sessions")]
pub struct Session {
    #[vhs(hash_key)]
    pub user: String,
    #[vhs(range_key)]
    pub id: String,
    #[vhs(ttl)]
    pub expires: Option<u64>,
    pub note: String,
    #[large]
    pub body: Option<Vec<u8>>,
}

/// A token whose expiry is a time (stored as epoch seconds too).
#[derive(Model, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[vhs(table = "tokens")]
pub struct Token {
    #[vhs(hash_key)]
    pub id: String,
    #[vhs(ttl)]
    pub expires: chrono::DateTime<chrono::Utc>,
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

fn session(id: &str, expires: Option<u64>, body: &str) -> Session {
    Session {
        user: "u".into(),
        id: id.into(),
        expires,
        note: format!("note of {id}"),
        body: Some(body.as_bytes().repeat(64)),
    }
}

/// A fixture with its own sessions and tokens tables, time to live enabled.
async fn fixture(kind: Kind) -> Fixture {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    );
    let fx = Fixture::with(kind, |b| {
        b.table_for::<Session>(format!("sessions-{n}"))
            .table_for::<Token>(format!("tokens-{n}"))
    })
    .await;
    fx.store.ensure_table::<Session>().await.expect("table");
    // Twice: time to live already on the attribute is left as it is.
    fx.store
        .ensure_table::<Session>()
        .await
        .expect("table again");
    fx.store.ensure_table::<Token>().await.expect("table");
    fx
}

fn table(fx: &Fixture) -> String {
    fx.store.table_name::<Session>().to_owned()
}

async fn sessions(store: &Store, scan: bool) -> Vec<String> {
    let items: Vec<Session> = if scan {
        store.scan::<Session>().items().try_collect().await
    } else {
        store
            .query::<Session>(Session::USER.eq("u"))
            .items()
            .try_collect()
            .await
    }
    .expect("listing");
    items.into_iter().map(|s| s.id).collect()
}

/// What DynamoDB's reaper does to one item, its clock at `now`: a
/// DeleteItem on condition that the table's TTL attribute (`vhs:ttl`) is a
/// Number at or before `now`. On memory, the backend's own reaper.
async fn reap(fx: &Fixture, key: &vhs::Key<Session>, now: u64) -> bool {
    match &fx.memory {
        Some(memory) => memory.reap_expired(now) > 0,
        None => {
            let cond = Condition::le(vhs::TTL_ATTRIBUTE, now);
            let out = fx
                .raw
                .delete_item(&table(fx), &key.to_item(), Some(&cond))
                .await
                .expect("delete item");
            matches!(out, vhs::Conditional::Applied(Some(_)))
        }
    }
}

/// How long after its expiry an item may be reaped: `2R + S` of the table's
/// protocol settings, in seconds.
async fn reap_delay(fx: &Fixture) -> u64 {
    let settings = fx.store.protocol_settings(&table(fx)).await.unwrap();
    settings.placeholder_after_ms().div_ceil(1000)
}

fn not_found<T: std::fmt::Debug>(r: vhs::Result<T>) {
    assert!(matches!(r, Err(Error::NotFound { .. })), "{r:?}");
}

pub async fn expired_items_are_absent_to_every_read(fx: Fixture) {
    let fx = fixture(fx.kind).await;
    let now = now();
    let live = session("a", Some(now + 3600), "live");
    let expired = session("b", Some(now - 60), "expired");
    let forever = session("c", None, "forever");
    for s in [&live, &expired, &forever] {
        fx.store.create_large(s).await.expect("create");
    }
    // The table has time to live on `vhs:ttl`; the item holds its expiry as
    // a Number of epoch seconds, copied to `vhs:exp`, and a reap time `2R + S`
    // later.
    assert_eq!(
        fx.raw.describe_time_to_live(&table(&fx)).await.unwrap(),
        Some(vhs::TTL_ATTRIBUTE.to_owned())
    );
    let raw = fx.raw_item(&expired.primary_key()).await.expect("stored");
    let at = AttributeValue::N((now - 60).to_string());
    assert_eq!((&raw["expires"], &raw["vhs:exp"]), (&at, &at));
    let reap_at = now - 60 + reap_delay(&fx).await;
    assert_eq!(raw["vhs:ttl"], AttributeValue::N(reap_at.to_string()));

    let key = expired.primary_key();
    not_found(fx.store.get_large(&key).await);
    not_found(fx.store.get_large_consistent(&key).await);
    not_found(fx.store.get_stored(&key, true).await);
    assert!(!fx.store.exists_consistent(&key).await.unwrap());
    assert_eq!(fx.store.get_large(&live.primary_key()).await.unwrap(), live);
    let got = fx
        .store
        .batch_get_large(&[live.primary_key(), key.clone(), forever.primary_key()])
        .await
        .unwrap();
    assert_eq!(got, vec![Some(live.clone()), None, Some(forever.clone())]);
    assert_eq!(sessions(&fx.store, false).await, ["a", "c"]);
    assert_eq!(sessions(&fx.store, true).await, ["a", "c"]);

    // An extension that lands (here written around vhs) makes it visible again.
    let later = AttributeValue::N((now + 3600).to_string());
    let update = vhs::ItemUpdate {
        set: vec![
            ("expires".to_owned(), later.clone()),
            ("vhs:exp".to_owned(), later),
        ],
        ..Default::default()
    };
    fx.raw
        .update_item(&table(&fx), &key.to_item(), &update, None)
        .await
        .unwrap();
    let again = Session {
        expires: Some(now + 3600),
        ..expired.clone()
    };
    assert_eq!(fx.store.get_large(&key).await.unwrap(), again);
    assert_eq!(sessions(&fx.store, true).await, ["a", "b", "c"]);

    // An update extends a live item's life.
    fx.store
        .update_large(
            &live.primary_key(),
            Session::changes().set_expires(Some(now + 7200)),
        )
        .await
        .unwrap();
    let raw = fx.raw_item(&live.primary_key()).await.expect("stored");
    let later = AttributeValue::N((now + 7200).to_string());
    assert_eq!((&raw["expires"], &raw["vhs:exp"]), (&later, &later));
    let reap_at = now + 7200 + reap_delay(&fx).await;
    assert_eq!(raw["vhs:ttl"], AttributeValue::N(reap_at.to_string()));

    // A time is stored as epoch seconds and read back (to the second).
    let at = chrono::DateTime::from_timestamp((now + 600) as i64, 0).unwrap();
    let token = Token {
        id: "t".into(),
        expires: at,
    };
    fx.store.create_large(&token).await.unwrap();
    let raw = fx.raw_item(&token.primary_key()).await.expect("stored");
    assert_eq!(raw["expires"], AttributeValue::N((now + 600).to_string()));
    assert_eq!(
        fx.store.get_large(&token.primary_key()).await.unwrap(),
        token
    );
}

pub async fn writes_treat_expired_items_as_absent(fx: Fixture) {
    let fx = fixture(fx.kind).await;
    let now = now();
    let old = session("x", Some(now - 60), "old body");
    let old_keys = keys_of(&fx.store.create_large(&old).await.unwrap());
    let key = old.primary_key();

    // Update and delete of an expired item: not found, nothing written.
    not_found(
        fx.store
            .update_large(&key, Session::changes().set_expires(Some(now + 3600)))
            .await,
    );
    not_found(fx.store.delete_large(&key).await);
    not_found(
        fx.store
            .delete_large_if(&key, Session::NOTE.eq("note of x"))
            .await,
    );
    let raw = fx.raw_item(&key).await.expect("still stored");
    assert_eq!(raw["vhs:exp"], AttributeValue::N((now - 60).to_string()));
    assert_eq!(fx.objects().await, old_keys);

    // A create over it succeeds, as over an absent item, and the expired
    // item's objects are released through the protocol.
    let new = session("x", Some(now + 3600), "new body");
    let staged = fx
        .store
        .create_large(&new)
        .await
        .expect("create over expired");
    fx.store.flush().await;
    assert_eq!(fx.store.get_large(&key).await.unwrap(), new);
    let report = fx
        .store
        .verify::<Session>(&VerifyOptions::default(), |_| {})
        .await
        .unwrap();
    assert!(report.dangling.is_empty(), "{report:?}");
    fx.store.gc::<Session>(&gc_now(), |_| {}).await.unwrap();
    assert_eq!(fx.objects().await, keys_of(&staged));

    // A batch create over an expired item creates it, beside a new one.
    let z = session("z", Some(now - 5), "z old");
    fx.store.create_large(&z).await.unwrap();
    let z2 = session("z", None, "z new");
    let w = session("w", None, "w");
    let outcomes = fx
        .store
        .batch_create_large(&[z2.clone(), w.clone()])
        .await
        .unwrap();
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    assert_eq!(fx.store.get_large(&z2.primary_key()).await.unwrap(), z2);
    // A create over a live item is still refused.
    let again = fx
        .store
        .batch_create_large(std::slice::from_ref(&w))
        .await
        .unwrap();
    assert!(
        matches!(again[0], Err(Error::AlreadyExists { .. })),
        "{again:?}"
    );

    // A put over an expired item creates too.
    let y = session("y", Some(now - 5), "y old");
    fx.store.create_large(&y).await.unwrap();
    let y2 = session("y", None, "y new");
    let put = fx.store.put_large(&y2).await.expect("put over expired");
    assert!(put.old.is_none());
    assert_eq!(fx.store.get_large(&y2.primary_key()).await.unwrap(), y2);

    // So does a transaction's create, in the transaction's own write.
    let t = session("t", Some(now - 5), "t old");
    fx.store.create_large(&t).await.unwrap();
    let t2 = session("t", Some(now + 3600), "t new");
    fx.store
        .transaction()
        .create(&t2)
        .commit()
        .await
        .expect("a transaction's create over expired");
    assert_eq!(fx.store.get_large(&t2.primary_key()).await.unwrap(), t2);
    let again = fx.store.transaction().create(&t2).commit().await;
    assert!(
        again.is_err(),
        "a create over a live item is refused: {again:?}"
    );
}

pub async fn gc_keeps_expired_items_objects_until_they_are_removed(fx: Fixture) {
    let fx = fixture(fx.kind).await;
    let now = now();
    let gone = session("g", Some(now - 60), "gone");
    let kept = session("k", Some(now + 3600), "kept");
    let gone_keys = keys_of(&fx.store.create_large(&gone).await.unwrap());
    let kept_keys = keys_of(&fx.store.create_large(&kept).await.unwrap());
    let mut all = [gone_keys.clone(), kept_keys.clone()].concat();
    all.sort();

    // Expired but present: it still references its objects.
    let report = fx.store.gc::<Session>(&gc_now(), |_| {}).await.unwrap();
    assert!(report.deleted.is_empty(), "{report:?}");
    assert_eq!(fx.objects().await, all);

    // Not before its reap time (`vhs:ttl`): a reaper then removes it, and
    // its objects are orphans, collected.
    let reap_at = now - 60 + reap_delay(&fx).await;
    assert!(!reap(&fx, &gone.primary_key(), reap_at - 1).await);
    assert!(reap(&fx, &gone.primary_key(), reap_at).await);
    assert!(fx.raw_item(&gone.primary_key()).await.is_none());
    let report = fx.store.gc::<Session>(&gc_now(), |_| {}).await.unwrap();
    let mut deleted = report.deleted.clone();
    deleted.sort();
    assert_eq!(deleted, gone_keys);
    assert_eq!(fx.objects().await, kept_keys);
    assert_eq!(fx.store.get_large(&kept.primary_key()).await.unwrap(), kept);
}

pub async fn the_reaper_racing_an_extension_leaves_no_dangling_pointer(fx: Fixture) {
    let fx = fixture(fx.kind).await;
    let delay = reap_delay(&fx).await;
    let mut reaped = 0;
    let mut extended = 0;
    for round in 0..crate::races::rounds(fx.kind) {
        let now = now();
        // Live to vhs; reapable to a reaper whose clock is past its `vhs:ttl`.
        let s = session(
            &format!("r{round}"),
            Some(now + 30),
            &format!("old {round}"),
        );
        let reaper_now = now + 60 + delay;
        let key = s.primary_key();
        let old_keys = keys_of(&fx.store.create_large(&s).await.unwrap());
        let extend = async {
            let changes = Session::changes()
                .set_expires(Some(now + 3600))
                .set_body(Some(format!("new {round}").into_bytes().repeat(64)));
            fx.store.update_large(&key, changes).await
        };
        // The reaper starts after a varying number of the update's steps.
        let reaper = async {
            for _ in 0..round % 9 {
                tokio::task::yield_now().await;
            }
            reap(&fx, &key, reaper_now).await
        };
        let (updated, was_reaped) = tokio::join!(extend, reaper);
        match (&updated, was_reaped) {
            (Ok(_), false) => extended += 1,
            (Err(Error::NotFound { .. }), true) => reaped += 1,
            other => panic!("round {round}: {other:?}"),
        }
        fx.store.flush().await;
        // Nothing a present item points to is gone, before and after GC.
        for _ in 0..2 {
            match fx.store.get_large_consistent(&key).await {
                Ok(got) => {
                    assert!(!was_reaped, "round {round}");
                    assert_eq!(got.expires, Some(now + 3600));
                }
                Err(Error::NotFound { .. }) => assert!(was_reaped, "round {round}"),
                Err(e) => panic!("round {round}: {e}"),
            }
            fx.store.gc::<Session>(&gc_now(), |_| {}).await.unwrap();
        }
        if was_reaped {
            let objects = fx.objects().await;
            assert!(
                old_keys.iter().all(|k| !objects.contains(k)),
                "round {round}: the reaped item's objects are collected"
            );
        }
    }
    let report = fx
        .store
        .verify::<Session>(&VerifyOptions::default(), |_| {})
        .await
        .unwrap();
    assert!(report.dangling.is_empty(), "{report:?}");
    eprintln!("reaper vs extension: {reaped} reaped, {extended} extended");
}

/// The emulator's own reaper (ministack: every 60 s) removes the expired
/// item; then GC collects its objects. moto has no reaper: the item stays,
/// hidden by vhs. In memory, the backend's reaper stands in for it.
pub async fn the_services_reaper_then_gc(fx: Fixture) {
    let fx = fixture(fx.kind).await;
    let now = now();
    // Expired long enough ago that its reap time (`2R + S` later) passed.
    let delay = reap_delay(&fx).await;
    if fx.kind == Kind::Memory {
        // A stream on the table, to see the reaper's removal in it.
        let spec = vhs::TableSpec {
            range_key: Some(("id".into(), vhs::KeyKind::String)),
            streams: true,
            ..vhs::TableSpec::new(table(&fx), ("user", vhs::KeyKind::String))
        };
        fx.store.ensure_table_spec(&spec).await.unwrap();
    }
    let s = session("m", Some(now - delay - 60), "reaped");
    let key = s.primary_key();
    let keys = keys_of(&fx.store.create_large(&s).await.unwrap());
    not_found(fx.store.get_large(&key).await);
    let emulator = match fx.kind {
        Kind::Memory => "memory",
        Kind::Emulator => crate::emulator::emulator_name(),
    };
    match emulator {
        "memory" => {
            assert_eq!(fx.memory.as_ref().unwrap().reap_expired(now), 1);
            assert!(fx.raw_item(&key).await.is_none());
            // The stream holds the create, then the removal by TTL.
            let mut reader = fx.store.changes::<Session>();
            let mut kinds = Vec::new();
            while let Some(batch) = reader.poll().await.unwrap() {
                for change in batch.changes {
                    kinds.push(match change {
                        vhs::stream::Change::Inserted(_) => "inserted",
                        vhs::stream::Change::Removed { by_ttl: true, .. } => "removed by ttl",
                        other => panic!("{other:?}"),
                    });
                }
            }
            assert_eq!(kinds, ["inserted", "removed by ttl"]);
        }
        "ministack" => {
            let mut removed = false;
            for _ in 0..80 {
                if fx.raw_item(&key).await.is_none() {
                    removed = true;
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            assert!(
                removed,
                "ministack's reaper did not remove the item in 80 s"
            );
        }
        _ => {
            // moto keeps the setting but never removes an item: it is still
            // stored, and still absent to vhs.
            assert_eq!(
                fx.raw.describe_time_to_live(&table(&fx)).await.unwrap(),
                Some(vhs::TTL_ATTRIBUTE.to_owned())
            );
            assert!(fx.raw_item(&key).await.is_some());
            let report = fx.store.gc::<Session>(&gc_now(), |_| {}).await.unwrap();
            assert!(report.deleted.is_empty());
            assert_eq!(fx.objects().await, keys);
            return;
        }
    }
    let report = fx.store.gc::<Session>(&gc_now(), |_| {}).await.unwrap();
    let mut deleted = report.deleted.clone();
    deleted.sort();
    assert_eq!(deleted, keys);
    assert!(fx.objects().await.is_empty());
}

/// The change feed's consumer of a TTL removal deletes the orphaned objects
/// through the protocol (`Store::collect_removed`), sooner than GC would, and
/// never one a newer item points to again.
pub async fn a_consumer_collects_what_the_reaper_orphaned(fx: Fixture) {
    let fx = fixture(fx.kind).await;
    let table = fx.store.table_name::<Session>().to_owned();
    let now = now();
    let reaped = |key: vhs::Key<Session>| {
        let (raw, table) = (fx.raw.clone(), table.clone());
        async move {
            // DynamoDB's reaper: the item removed outright, marks and all.
            raw.delete_item(&table, &key.to_item(), None).await.unwrap();
        }
    };
    let removal = |image: vhs::Item| vhs::stream::Change::<Session>::Removed {
        old: vhs::Stored::from_item(image).unwrap(),
        by_ttl: true,
    };

    let gone = session("c", Some(now - 60), "gone body");
    let keys = keys_of(&fx.store.create_large(&gone).await.unwrap());
    let image = fx.raw_item(&gone.primary_key()).await.expect("stored");
    reaped(gone.primary_key()).await;
    let cleanup = fx.store.collect_removed(&removal(image)).await.unwrap();
    assert_eq!(crate::fixture::sorted(cleanup.deleted), keys);
    assert!(fx.objects().await.is_empty(), "{:?}", fx.objects().await);

    // Created again with the same content before the consumer ran: the
    // object is the new item's, and stays.
    let again = session("d", Some(now - 60), "same body");
    let keys = keys_of(&fx.store.create_large(&again).await.unwrap());
    let image = fx.raw_item(&again.primary_key()).await.expect("stored");
    reaped(again.primary_key()).await;
    let fresh = session("d", Some(now + 3600), "same body");
    fx.store.create_large(&fresh).await.unwrap();
    let cleanup = fx.store.collect_removed(&removal(image)).await.unwrap();
    assert!(cleanup.deleted.is_empty(), "{cleanup:?}");
    assert_eq!(fx.objects().await, keys);
    assert_eq!(
        fx.store.get_large(&fresh.primary_key()).await.unwrap(),
        fresh
    );

    // Any other change deletes nothing.
    let image = fx.raw_item(&fresh.primary_key()).await.expect("stored");
    let not_ttl = vhs::stream::Change::<Session>::Removed {
        old: vhs::Stored::from_item(image).unwrap(),
        by_ttl: false,
    };
    let cleanup = fx.store.collect_removed(&not_ttl).await.unwrap();
    assert!(cleanup.deleted.is_empty() && cleanup.leftover.is_empty());
    assert_eq!(fx.objects().await, keys);
}
