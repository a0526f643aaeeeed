//! `#[vhs(updated_at)]`: every write sets it, as canonical UTC text.

use chrono::{DateTime, Utc};
use vhs::types::AttributeValue;
use vhs::SingleVersionStore;

use crate::fixture::Fixture;
use crate::models::Stamped;

fn stamped(pk: &str, n: u32) -> Stamped {
    Stamped {
        pk: pk.into(),
        updated: None,
        n,
        html: Some(format!("<p>{n}</p>")),
    }
}

pub async fn updated_at_is_set_by_every_write(fx: Fixture) {
    let store = &fx.store;
    let key = Stamped::key("S");
    let before = Utc::now();
    store.create_large(&stamped("S", 1)).await.unwrap();
    let created = store.get_large(&key).await.unwrap();
    let t1: DateTime<Utc> = created.updated.expect("set by create");
    assert!(t1 >= before && t1 <= Utc::now(), "{t1}");
    // Stored as canonical text: fixed width, UTC, `Z`.
    match &fx.item(&key).await.unwrap()["updatedAt"] {
        AttributeValue::S(s) => {
            assert_eq!(s.len(), "2026-11-23T07:00:00.000000000Z".len(), "{s}");
            assert!(s.ends_with('Z'), "{s}");
        }
        other => panic!("{other:?}"),
    }

    // An update sets it again (a round trip later, so a later time); one
    // that changes nothing writes nothing.
    store
        .update_large(&key, Stamped::changes().set_n(2))
        .await
        .unwrap();
    let t2 = store.get_large(&key).await.unwrap().updated.unwrap();
    assert!(t2 > t1, "{t2} after {t1}");
    store.update_large(&key, Stamped::changes()).await.unwrap();
    assert_eq!(store.get_large(&key).await.unwrap().updated, Some(t2));

    // Transactions and batches set it too.
    store
        .transaction()
        .update(&key, Stamped::changes().set_n(3))
        .create(&stamped("T", 1))
        .commit()
        .await
        .unwrap();
    let t3 = store.get_large(&key).await.unwrap().updated.unwrap();
    assert!(t3 > t2);
    assert!(store
        .get_large(&Stamped::key("T"))
        .await
        .unwrap()
        .updated
        .is_some());
    store.batch_create_large(&[stamped("U", 1)]).await.unwrap()[0]
        .as_ref()
        .unwrap();
    assert!(store
        .get_large(&Stamped::key("U"))
        .await
        .unwrap()
        .updated
        .is_some());

    // A versioned store sets it in the value, and a put of the same value at
    // the same version later is still the same content.
    let versions: SingleVersionStore<Stamped> =
        SingleVersionStore::new(store, format!("{}-stamped", fx.tables.0)).unwrap();
    versions.ensure_table().await.unwrap();
    versions.put("v", 1, &stamped("v", 1)).await.unwrap();
    versions.put("v", 1, &stamped("v", 1)).await.unwrap();
    let got = versions.get_latest("v").await.unwrap();
    assert!(got.value.updated.is_some());
}
