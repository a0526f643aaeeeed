//! The step-by-step API with raw `aws-sdk-dynamodb`: staged attributes written
//! inside a TransactWriteItems together with a second item. Emulators only (it is
//! the SDK, not a vhs backend, that makes the transaction).

use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, TransactWriteItem, Update};
use vhs::{LargeValues, Model};

use crate::fixture::{keys_of, Fixture, Kind};
use crate::models::{Blob, Document};

async fn client() -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&crate::emulator::sdk_config().await)
}

pub async fn transact_write_items_with_a_second_item() {
    let fx = Fixture::new(Kind::Emulator).await;
    let ddb = client().await;
    let doc = Document::sample("p", "s");
    let key = doc.primary_key();

    // 1. Stage the large values.
    let staged = fx
        .store
        .put_s3(&key, LargeValues::of(&doc).unwrap())
        .await
        .unwrap();

    // 2. One transaction: the document (with pointers) and an audit item.
    let mut item = doc.to_item().unwrap();
    item.extend(staged.to_put_attributes());
    let audit = Blob {
        id: 1,
        body: None,
        meta: None,
        note: Some("created p/s".into()),
    };
    let put_doc = Put::builder()
        .table_name(fx.store.table_name::<Document>())
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(pk)")
        .build()
        .unwrap();
    let put_audit = Put::builder()
        .table_name(fx.store.table_name::<Blob>())
        .set_item(Some(audit.to_item().unwrap()))
        .build()
        .unwrap();
    ddb.transact_write_items()
        .transact_items(TransactWriteItem::builder().put(put_doc).build())
        .transact_items(TransactWriteItem::builder().put(put_audit).build())
        .send()
        .await
        .unwrap();
    assert_eq!(fx.store.get_large(&key).await.unwrap(), doc);
    assert_eq!(fx.store.get_large(&Blob::key(1)).await.unwrap(), audit);

    // 3. An update in a transaction whose condition check on the second item fails:
    //    nothing is written, and the hook removes only what this call created.
    let values = LargeValues::<Document>::new()
        .with("html", Some(bytes::Bytes::from_static(b"v2")))
        .unwrap();
    let staged2 = fx.store.put_s3(&key, values).await.unwrap();
    let update = update_of(&fx, &key, &staged2.to_update_fragment());
    let check = ConditionCheck::builder()
        .table_name(fx.store.table_name::<Blob>())
        .set_key(Some(Blob::key(1).to_item()))
        .condition_expression("note = :expected")
        .expression_attribute_values(":expected", AttributeValue::S("something else".into()))
        .build()
        .unwrap();
    let err = ddb
        .transact_write_items()
        .transact_items(TransactWriteItem::builder().update(update.clone()).build())
        .transact_items(TransactWriteItem::builder().condition_check(check).build())
        .send()
        .await
        .unwrap_err();
    let cancelled = err.into_service_error();
    assert!(
        cancelled.is_transaction_canceled_exception(),
        "{cancelled:?}"
    );
    let cleanup = fx.store.clean_up_after_update_failed(&staged2).await;
    assert_eq!(cleanup.deleted, staged2.created_keys());
    assert_eq!(fx.objects().await, keys_of(&staged));
    assert_eq!(fx.store.get_large(&key).await.unwrap(), doc);

    // 4. The same update alone succeeds; the success hook removes the old html.
    let staged3 = fx
        .store
        .put_s3(
            &key,
            LargeValues::<Document>::new()
                .with("html", Some(bytes::Bytes::from_static(b"v2")))
                .unwrap(),
        )
        .await
        .unwrap();
    // Built from this staging: its condition holds the state put_s3 read (the
    // failure hook above marked an object, which changed the item's generation).
    let update = update_of(&fx, &key, &staged3.to_update_fragment());
    let out = ddb
        .transact_write_items()
        .transact_items(TransactWriteItem::builder().update(update).build())
        .send()
        .await;
    out.unwrap();
    // TransactWriteItems returns no old image: read-before-write is the caller's
    // choice; here the old item is the one staged in step 2.
    let mut old = doc.to_item().unwrap();
    old.extend(staged.to_put_attributes());
    let cleanup = fx
        .store
        .clean_up_after_update_succeeded(&staged3, &old)
        .await;
    assert_eq!(
        cleanup.deleted,
        vec![staged.object("html").unwrap().pointer.key.clone()]
    );
    let got = fx.store.get_large(&key).await.unwrap();
    assert_eq!(got.html.as_deref(), Some("v2"));
    assert_eq!(got.image, doc.image);
    let raw = fx.item(&key).await.unwrap();
    assert_eq!(raw["rev"], AttributeValue::N("1".into()));
}

/// The staged update plus `ADD rev 1`, as a transaction's Update.
fn update_of(fx: &Fixture, key: &vhs::Key<Document>, fragment: &vhs::UpdateFragment) -> Update {
    Update::builder()
        .table_name(fx.store.table_name::<Document>())
        .set_key(Some(key.to_item()))
        .update_expression(format!("{} ADD #rev :one", fragment.expression()))
        .set_expression_attribute_names(Some(
            fragment
                .names
                .clone()
                .into_iter()
                .chain([("#rev".to_owned(), "rev".to_owned())])
                .collect(),
        ))
        .set_expression_attribute_values(Some(
            fragment
                .values
                .clone()
                .into_iter()
                .chain([(":one".to_owned(), AttributeValue::N("1".into()))])
                .collect(),
        ))
        .condition_expression(format!("attribute_exists(pk) AND {}", fragment.condition))
        .build()
        .unwrap()
}
