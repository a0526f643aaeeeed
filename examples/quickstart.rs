//! The main job of vhs, on the embedded in-memory backend: no servers needed.
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! Swap `MemoryBackend::new()` for `AwsBackend::new(&aws_config::load_from_env().await)`
//! and the same code runs on DynamoDB + S3.

use chrono::{DateTime, Utc};
use vhs::{Condition, Error, MemoryBackend, Model, Store};

#[derive(Model, Debug, Clone, PartialEq)] // no serde derive needed
#[vhs(table = "documents")]
struct Document {
    #[vhs(hash_key)]
    pk: String,
    #[vhs(range_key)]
    sk: String,
    #[vhs(updated_at)]
    updated_at: Option<DateTime<Utc>>, // set by every write
    #[large]
    html: Option<String>,
    #[large(content_type = "image/png")]
    image: Option<Vec<u8>>,
    data: serde_json::Value,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let store = Store::builder(MemoryBackend::new(), "my-bucket")
        .prefix("documents/v1")
        .build()?;
    store.ensure_bucket().await?;
    store.ensure_table::<Document>().await?;

    // Create: the large fields go to S3, the item keeps pointers to them.
    let doc = Document {
        pk: "acme".into(),
        sk: "2026/report".into(), // a '/' in a key is escaped in the S3 key
        updated_at: None,
        html: Some("<h1>Quarterly report</h1>".repeat(20_000)), // ~500 KB: too big for DynamoDB
        image: Some(vec![0x89, b'P', b'N', b'G']),
        data: serde_json::json!({ "status": "draft" }),
    };
    let staged = Document::create_large(&store, &doc).await?;
    for attr in staged.attrs() {
        if let Some(object) = &attr.object {
            println!(
                "{:>5} -> {} ({} bytes)",
                attr.attr, object.pointer, object.size
            );
        }
    }

    // Read it back: every large value fetched and checked against its MD5.
    let key = Document::key("acme", "2026/report");
    let read = Document::get_large(&store, &key).await?;
    assert!(read.updated_at.is_some());
    assert_eq!(
        Document {
            updated_at: None,
            ..read.clone()
        },
        doc
    );
    println!(
        "read back {} bytes of html",
        read.html.as_ref().map_or(0, String::len)
    );

    // Update one large field and one ordinary field, only if not archived.
    let updated = Document::update_large(
        &store,
        &key,
        Document::changes()
            .set_html(Some("<h1>Final report</h1>".into()))
            .set_data(serde_json::json!({ "status": "final" }))
            .condition(Condition::not_exists("archived_at")),
    )
    .await?;
    println!("update removed old objects: {:?}", updated.cleanup.deleted);

    // Creating the same key again never overwrites.
    match Document::create_large(&store, &doc).await {
        Err(Error::AlreadyExists { key, .. }) => println!("create again: {key} already exists"),
        other => panic!("unexpected: {other:?}"),
    }

    // Delete: the item first, then its objects.
    let deleted = Document::delete_large(&store, &key).await?;
    println!("deleted item and {} objects", deleted.cleanup.deleted.len());
    assert!(Document::get_large(&store, &key)
        .await
        .unwrap_err()
        .is_not_found());
    Ok(())
}
