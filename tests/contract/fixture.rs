//! One fixture per test: a store over a fresh table set and bucket, on the
//! backend under test, wrapped in a fault injector.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use vhs::BackendExt as _;
use vhs::{Backend, FaultyBackend, Item, MemoryBackend, Model, Store, StoreBuilder};

use crate::models::{Attachment, Blob, Document, Memo, Note, Packed, Page, VDoc, Video};

/// Which backend a contract test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Memory,
    Emulator,
}

pub struct Fixture {
    pub kind: Kind,
    pub store: Store,
    /// The backend the store uses: inject faults here.
    pub faults: FaultyBackend<Arc<dyn Backend>>,
    /// The backend without faults, for setting up and inspecting state.
    pub raw: Arc<dyn Backend>,
    /// The memory backend itself (`Kind::Memory`), for what only it does:
    /// a presigned upload without an HTTP server.
    pub memory: Option<MemoryBackend>,
    pub bucket: String,
    pub tables: (String, String),
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The secret the fixtures' stores sign upload tickets with.
pub const UPLOAD_SECRET: &[u8] = b"contract-suite-upload-secret-0123456789";

/// The name of the object that records a table's protocol settings.
pub const SETTINGS: &str = "vhs-protocol.json";

impl Fixture {
    pub async fn new(kind: Kind) -> Fixture {
        Self::with(kind, |b| b).await
    }

    /// A fixture whose store is configured further by `configure`.
    pub async fn with(kind: Kind, configure: impl FnOnce(StoreBuilder) -> StoreBuilder) -> Fixture {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let id = format!("{}-{n}", std::process::id());
        let memory = matches!(kind, Kind::Memory).then(MemoryBackend::new);
        let raw: Arc<dyn Backend> = match kind {
            Kind::Memory => Arc::new(memory.clone().expect("a memory backend")),
            Kind::Emulator => {
                let url = crate::emulator::endpoint().await;
                let config = crate::emulator::sdk_config().await;
                Arc::new(vhs::AwsBackend::with_options(
                    &config,
                    // ministack refuses a full-object CRC-64/NVME at a
                    // multipart completion (it computes composites only).
                    vhs::AwsOptions::emulator(url)
                        .composite_checksums_only(crate::emulator::emulator_name() == "ministack"),
                ))
            }
        };
        let faults = FaultyBackend::new(raw.clone());
        let bucket = format!("vhs-test-{id}");
        let tables = (format!("documents-{id}"), format!("blobs-{id}"));
        let builder = Store::builder(faults.clone(), bucket.clone())
            .table_for::<Document>(tables.0.clone())
            .table_for::<Blob>(tables.1.clone())
            .table_for::<VDoc>(format!("vdocs-{id}"))
            .table_for::<Note>(format!("notes-{id}"))
            .table_for::<Page>(format!("pages-{id}"))
            .table_for::<Video>(format!("videos-{id}"))
            .table_for::<Memo>(format!("memos-{id}"))
            .table_for::<Packed>(format!("packed-{id}"))
            .table_for::<Attachment>(format!("attachments-{id}"))
            .upload_secret(UPLOAD_SECRET);
        let store = configure(builder).build().expect("store");
        store.ensure_bucket().await.expect("bucket");
        store.ensure_table::<Document>().await.expect("table");
        store.ensure_table::<Blob>().await.expect("table");
        store.ensure_table::<VDoc>().await.expect("table");
        store.ensure_table::<Note>().await.expect("table");
        store.ensure_table::<Page>().await.expect("table");
        store.ensure_table::<Video>().await.expect("table");
        store.ensure_table::<Memo>().await.expect("table");
        store.ensure_table::<Packed>().await.expect("table");
        store.ensure_table::<Attachment>().await.expect("table");
        faults.reset();
        Fixture {
            kind,
            store,
            faults,
            raw,
            memory,
            bucket,
            tables,
        }
    }

    /// Every object key in the bucket, sorted: the values, not the tables'
    /// protocol settings (`{table prefix}/vhs-protocol.json`).
    pub async fn objects(&self) -> Vec<String> {
        let mut keys = Vec::new();
        let mut next = None;
        loop {
            let page = self
                .raw
                .list_objects(&self.bucket, "", next)
                .await
                .expect("list");
            keys.extend(
                page.objects
                    .into_iter()
                    .map(|o| o.key)
                    .filter(|k| !k.ends_with(SETTINGS)),
            );
            match page.next {
                Some(n) => next = Some(n),
                None => break,
            }
        }
        keys.sort();
        keys
    }

    /// The item as stored, read around the store.
    ///
    /// A placeholder (what a delete leaves) counts as absent, and vhs's own
    /// bookkeeping attributes (`vhs:*`) are left out: what a reader sees.
    pub async fn item<M: Model>(&self, key: &vhs::Key<M>) -> Option<Item> {
        let item = self.raw_item(key).await?;
        if item.contains_key("vhs:ph") {
            return None;
        }
        Some(
            item.into_iter()
                .filter(|(k, _)| !k.starts_with("vhs:"))
                .collect(),
        )
    }

    /// The item exactly as stored, placeholders and bookkeeping included.
    pub async fn raw_item<M: Model>(&self, key: &vhs::Key<M>) -> Option<Item> {
        self.raw
            .get_item(self.store.table_name::<M>(), &key.to_item(), true)
            .await
            .expect("get_item")
    }

    /// The object prefix of `M`'s table, with a trailing `/`.
    pub fn prefix<M: Model>(&self) -> String {
        format!(
            "{}/",
            self.store
                .table_prefix(self.store.table_name::<M>())
                .expect("prefix")
        )
    }

    /// Overwrites an object behind the store's back.
    pub async fn tamper(&self, key: &str, body: &[u8]) {
        put_raw(&*self.raw, &self.bucket, key, body).await;
    }

    /// Every multipart upload in progress in the bucket, as `key` strings.
    pub async fn uploads(&self) -> Vec<String> {
        self.raw
            .list_multipart_uploads(&self.bucket, "")
            .await
            .expect("list uploads")
            .into_iter()
            .map(|u| u.key)
            .collect()
    }

    /// Deletes an object behind the store's back.
    pub async fn lose(&self, key: &str) {
        let errors = self
            .raw
            .delete_objects(&self.bucket, &[key.to_owned()], vhs::Attempts::Retried)
            .await
            .expect("delete");
        assert!(errors.is_empty(), "{errors:?}");
    }
}

pub async fn put_raw(backend: &dyn Backend, bucket: &str, key: &str, body: &[u8]) {
    put_raw_with(backend, bucket, key, body, vhs::ChecksumAlgorithm::Md5).await
}

/// [`put_raw`] sending the body's checksum in `algorithm` (its header).
pub async fn put_raw_with(
    backend: &dyn Backend,
    bucket: &str,
    key: &str,
    body: &[u8],
    algorithm: vhs::ChecksumAlgorithm,
) {
    backend
        .put_object(vhs::PutObject {
            bucket: bucket.into(),
            key: key.into(),
            body: bytes::Bytes::copy_from_slice(body),
            checksum: algorithm.digest(body),
            content_type: "application/octet-stream".into(),
            content_encoding: None,
            metadata: Default::default(),
            storage_class: None,
            tags: Vec::new(),
            if_none_match: false,
            complete_after: vhs::Signal::open(),
        })
        .await
        .expect("raw put");
}

/// The key part of every object a staged result references.
pub fn keys_of<M: Model>(staged: &vhs::Staged<M>) -> Vec<String> {
    let mut v: Vec<String> = staged
        .attrs()
        .iter()
        .filter_map(|a| a.object.as_ref().map(|o| o.pointer.key.clone()))
        .collect();
    v.sort();
    v
}

/// An object key without its table prefix: `pk=…/…`.
pub fn local(key: &str) -> String {
    key[key.find("pk=").expect("a key in the layout")..].to_owned()
}

pub fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}
