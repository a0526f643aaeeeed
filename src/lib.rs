//! **vhs**, the Versioned Hybrid Store: DynamoDB items whose large attributes live in
//! S3, correct by construction.
//!
//! Mark a struct `#[derive(Model)]` and its big fields `#[large]`; vhs writes each
//! large value as an S3 object and keeps an `s3://` pointer to it in the item, with
//! conditional writes, a cleanup that never deletes what an item references, and
//! collision-free keys. See the README for the guarantees of each call.
//!
//! ```
//! use vhs::{MemoryBackend, Model, Store};
//!
//! #[derive(Model, Debug, PartialEq)]
//! #[vhs(table = "documents")]
//! struct Document {
//!     #[vhs(hash_key)]
//!     pk: String,
//!     #[large]
//!     html: Option<String>,
//!     title: String,
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = Store::builder(MemoryBackend::new(), "bucket").build()?;
//! store.ensure_bucket().await?;
//! store.ensure_table::<Document>().await?;
//!
//! let doc = Document { pk: "a".into(), html: Some("<p>big</p>".into()), title: "t".into() };
//! Document::create_large(&store, &doc).await?;
//! let key = Document::key("a");
//! assert_eq!(Document::get_large(&store, &key).await?, doc);
//!
//! Document::update_large(&store, &key, Document::changes().set_html(None)).await?;
//! assert_eq!(Document::get_large(&store, &key).await?.html, None);
//! Document::delete_large(&store, &key).await?;
//! # Ok::<(), vhs::Error>(())
//! # }).unwrap();
//! ```
#![warn(missing_docs)]

pub use vhs_core::*;

/// Derives [`Model`] for a struct with named fields.
///
/// Container attributes: `#[vhs(table = "name")]` (default: the struct's name),
/// `#[vhs(crate = "path")]`. Field attributes: `#[vhs(hash_key)]` (exactly one),
/// `#[vhs(range_key)]` (at most one), `#[vhs(version)]` (at most one, an integer
/// field that is not a key or large: optimistic locking, written by the store;
/// the update builder gets `if_version` instead of a setter for it),
/// `#[vhs(rename = "attr")]`, and `#[large]` / `#[large(content_type = "...")]` on
/// `Option<T>` fields that go to S3.
pub use vhs_derive::Model;
