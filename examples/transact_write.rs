//! The step-by-step API with your own DynamoDB transaction: stage the large values in
//! S3 with vhs, then write the item together with a second item in one
//! `TransactWriteItems` through raw `aws-sdk-dynamodb`, then call the cleanup hook
//! that matches the outcome.
//!
//! Needs DynamoDB + S3. Against a local emulator (ministack or moto on port 4566):
//!
//! ```text
//! VHS_ENDPOINT=http://127.0.0.1:4566 cargo run --example transact_write
//! ```
//!
//! Without `VHS_ENDPOINT` it uses your AWS environment (credentials, region) and the
//! bucket named by `VHS_BUCKET`, creating the two tables if they are missing.

use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use serde::{Deserialize, Serialize};
use vhs::{AwsBackend, AwsOptions, LargeValues, Model, Store};

#[derive(Model, Serialize, Deserialize, Debug, PartialEq)]
#[vhs(table = "vhs-example-orders")]
struct Order {
    #[vhs(hash_key)]
    id: String,
    #[large(content_type = "application/pdf")]
    invoice: Option<Vec<u8>>,
    total_cents: u64,
}

#[derive(Model, Serialize, Deserialize, Debug, PartialEq)]
#[vhs(table = "vhs-example-audit")]
struct Audit {
    #[vhs(hash_key)]
    id: String,
    event: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (config, options) = match std::env::var("VHS_ENDPOINT") {
        Ok(url) => (
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .test_credentials()
                .region(aws_config::Region::new("us-east-1"))
                .load()
                .await,
            AwsOptions::emulator(url),
        ),
        Err(_) => (aws_config::load_from_env().await, AwsOptions::default()),
    };
    let backend = AwsBackend::with_options(&config, options);
    let dynamodb = backend.dynamodb().clone();
    let bucket = std::env::var("VHS_BUCKET").unwrap_or_else(|_| "vhs-example".into());
    let store = Store::builder(backend, bucket).prefix("orders").build()?;
    store.ensure_bucket().await?;
    store.ensure_table::<Order>().await?;
    store.ensure_table::<Audit>().await?;

    let order = Order {
        id: format!("order-{}", std::process::id()),
        invoice: Some(b"%PDF-1.7 ...".to_vec()),
        total_cents: 4_200,
    };
    let audit = Audit {
        id: format!("audit-{}", order.id),
        event: "order created".into(),
    };

    // 1. Upload the large values; nothing is in DynamoDB yet.
    let staged = store
        .put_s3(&order.primary_key(), LargeValues::of(&order)?)
        .await?;

    // 2. Your own transaction: the order (with its pointers) and an audit record.
    let mut item = order.to_item()?;
    item.extend(staged.to_put_attributes());
    let put_order = Put::builder()
        .table_name(store.table_name::<Order>())
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(id)")
        .build()?;
    let put_audit = Put::builder()
        .table_name(store.table_name::<Audit>())
        .set_item(Some(audit.to_item()?))
        .build()?;
    let result = dynamodb
        .transact_write_items()
        .transact_items(TransactWriteItem::builder().put(put_order).build())
        .transact_items(TransactWriteItem::builder().put(put_audit).build())
        .send()
        .await;

    // 3. The hook that matches the outcome.
    if let Err(e) = result {
        let cleanup = store.clean_up_after_create_failed(&staged).await;
        eprintln!("transaction failed ({e}); removed {:?}", cleanup.deleted);
        return Err(e.into());
    }
    let read = store.get_large(&order.primary_key()).await?;
    assert_eq!(read, order);
    println!(
        "order {} written with its invoice at {} and an audit record, in one transaction",
        order.id,
        staged
            .object("invoice")
            .map(|o| o.pointer.uri())
            .unwrap_or_default()
    );
    Ok(())
}
