//! Least-privilege IAM policies (`vhs::iam`): every public operation of each
//! access level runs over a call-recording backend, and the level's policy
//! grants exactly the actions those calls need: nothing used is missing,
//! nothing granted is unused.
//!
//! Memory backend only: the calls a store makes do not depend on the backend.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::{TimeZone, Utc};
use futures::TryStreamExt;
use serde_json::Value;
use vhs::iam::{self, Access, PolicyScope};
use vhs::maintenance::{GcOptions, RepairOptions, VerifyOptions};
use vhs::BackendExt as _;
use vhs::{
    BucketSpec, Condition, Fault, FaultyBackend, Json, KeyKind, LargeValues, MemoryBackend, Model,
    MultiVersionStore, Op, Order, Precondition, SingleVersionStore, Store, TableSpec,
};

use crate::models::{Document, Event, Memo, Note, Packed, Program, VDoc, Video};

const BUCKET: &str = "vhs-iam";
/// S3's smallest part: the threshold and part size, so a multipart value is
/// small.
const PART: u64 = 5 * 1024 * 1024;
/// Three parts, the last one short.
const LEN: usize = 2 * PART as usize + 1234;

/// For each action, the operations (with their level) that used it.
type Usage = BTreeMap<&'static str, BTreeSet<(Access, &'static str)>>;

/// The memory backend, recording the IAM actions of every call
/// (`iam::call_actions`: a tagged object write needs `s3:PutObjectTagging`).
#[derive(Debug, Clone, Default)]
struct Recorder {
    inner: MemoryBackend,
    actions: Arc<Mutex<Vec<&'static str>>>,
}

#[async_trait::async_trait]
impl vhs::Backend for Recorder {
    async fn send(&self, call: vhs::Call<'_>) -> vhs::Result<vhs::Reply> {
        self.actions
            .lock()
            .unwrap()
            .extend(iam::call_actions(&call));
        self.inner.send(call).await
    }
}

/// A store over a recording backend, and what each operation used.
struct Rig {
    faults: FaultyBackend<Recorder>,
    store: Store,
    usage: Usage,
    /// The store tags its objects.
    tagged: bool,
}

impl Rig {
    fn new(tagged: bool) -> Rig {
        let faults = FaultyBackend::new(Recorder::default());
        let mut builder = builder(&faults);
        if tagged {
            builder = builder.tag_objects_with_names();
        }
        let store = builder.build().expect("store");
        Rig {
            faults,
            store,
            usage: Usage::new(),
            tagged,
        }
    }

    /// Runs `operation` (of `level`) and charges its calls to it. Boxed: the
    /// futures of a whole scenario would not fit on a test thread's stack.
    fn run<'a, T: 'a>(
        &'a mut self,
        level: Access,
        operation: &'static str,
        call: impl Future<Output = vhs::Result<T>> + 'a,
    ) -> Pin<Box<dyn Future<Output = T> + 'a>> {
        Box::pin(async move {
            let out = call
                .await
                .unwrap_or_else(|e| panic!("{level} {operation}: {e}"));
            self.charge(level, operation).await;
            out
        })
    }

    /// Charges the calls seen since the last charge to `operation`, and forgets
    /// them (and any injected fault). Waits for the background jobs the
    /// operation queued first: their calls are the operation's too.
    async fn charge(&mut self, level: Access, operation: &'static str) -> Vec<Op> {
        self.store.flush().await;
        let calls = self.faults.calls();
        self.faults.reset();
        assert!(!calls.is_empty(), "{operation}: no backend call");
        let actions = std::mem::take(&mut *self.faults.inner().actions.lock().unwrap());
        for action in actions {
            self.usage
                .entry(action)
                .or_default()
                .insert((level, operation));
        }
        calls
    }

    /// Every action used by operations of `access` and the levels it includes.
    fn used(&self, access: Access) -> BTreeSet<&'static str> {
        self.usage
            .iter()
            .filter(|(_, ops)| ops.iter().any(|(l, _)| access.includes(*l)))
            .map(|(a, _)| *a)
            .collect()
    }

    /// Who used `action`, for messages.
    fn users(&self, action: &str) -> Vec<String> {
        self.usage
            .get(action)
            .into_iter()
            .flatten()
            .map(|(l, o)| format!("{l} {o}"))
            .collect()
    }
}

fn builder(faults: &FaultyBackend<Recorder>) -> vhs::StoreBuilder {
    Store::builder(faults.clone(), BUCKET)
        .prefix("app")
        .multipart_threshold(PART)
        .part_size(PART)
}

/// `len` bytes that differ from part to part.
fn pattern(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| {
            (i as u64)
                .wrapping_mul(2654435761)
                .wrapping_add(u64::from(seed)) as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

fn video(id: &str, data: Bytes) -> Video {
    Video {
        id: id.into(),
        data: Some(vhs::Blob::from(data)),
        thumb: Some(Bytes::from_static(b"thumb")),
    }
}

fn event(i: u32, program: &str) -> Event {
    Event {
        object_type: "EVENT".into(),
        id: format!("e{i:02}"),
        program_id: Some(program.into()),
        event_start: Utc
            .with_ymd_and_hms(2026, 11, 1 + i, 10, 0, 0)
            .unwrap()
            .fixed_offset(),
        seats: i,
        title: format!("event {i}"),
        data: Some(Json(serde_json::json!({ "n": i, "pad": "x".repeat(300) }))),
    }
}

fn vdoc(id: &str, version: u64, body: &str) -> VDoc {
    VDoc {
        id: id.into(),
        version,
        body: Some(body.into()),
        title: format!("title {version}"),
    }
}

fn versioned_doc(n: u32) -> Document {
    let mut d = Document::sample("v", "s");
    d.html = Some(format!("<p>version {n}</p>"));
    d
}

/// Runs every public operation of every level once, each charged to its level.
async fn exercise(tagged: bool) -> Rig {
    let mut rig = Rig::new(tagged);
    let store = rig.store.clone();
    let single = SingleVersionStore::<Document>::new(&store, "doc-single").unwrap();
    let multi = MultiVersionStore::<Document>::new(&store, "doc-multi").unwrap();
    Box::pin(provision(&mut rig, &store, &single, &multi)).await;
    Box::pin(writes(&mut rig, &store, &single, &multi)).await;
    Box::pin(reads(&mut rig, &store, &single, &multi)).await;
    Box::pin(collect_garbage(&mut rig, &store, &single, &multi)).await;
    rig
}

type Single = SingleVersionStore<Document>;
type Multi = MultiVersionStore<Document>;

/// Admin: the bucket and the tables.
async fn provision(rig: &mut Rig, store: &Store, single: &Single, multi: &Multi) {
    use Access::Admin;

    rig.run(Admin, "ensure_bucket", store.ensure_bucket()).await;
    rig.run(
        Admin,
        "ensure_bucket_with",
        store.ensure_bucket_with(&BucketSpec::new(BUCKET, store.prefix())),
    )
    .await;
    if rig.tagged {
        let table = store.table_name::<Video>();
        let mut spec = BucketSpec::new(BUCKET, store.table_prefix(table).unwrap());
        spec.transitions = vec![store.transition(table, "data", 30, "STANDARD_IA").unwrap()];
        rig.run(
            Admin,
            "ensure_bucket_with a transition",
            store.ensure_bucket_with(&spec),
        )
        .await;
    }
    rig.run(Admin, "ensure_table", async {
        store.ensure_table::<Document>().await?;
        store.ensure_table::<Note>().await?;
        store.ensure_table::<VDoc>().await?;
        store.ensure_table::<Video>().await?;
        store.ensure_table::<Memo>().await?;
        store.ensure_table::<Packed>().await?;
        store.ensure_table::<Program>().await?;
        // Adds the event indexes to the existing single table.
        store.ensure_table::<Event>().await
    })
    .await;
    let spec = TableSpec {
        streams: true,
        point_in_time_recovery: true,
        time_to_live: Some("expires".into()),
        ..TableSpec::new("audit", ("id", KeyKind::String))
    };
    rig.run(Admin, "ensure_table_spec", store.ensure_table_spec(&spec))
        .await;
    let bucket = BucketSpec::new(BUCKET, store.table_prefix("audit").unwrap());
    let plan = rig
        .run(
            Admin,
            "plan_provision",
            store.plan_provision(&spec, &bucket),
        )
        .await;
    assert!(plan.table.is_some() && plan.bucket_exists, "{plan:?}");
    rig.run(Admin, "provision", store.provision(&spec, &bucket))
        .await;
    rig.run(Admin, "versioned ensure_table", async {
        single.ensure_table().await?;
        multi.ensure_table().await
    })
    .await;
}

/// Every write.
async fn writes(rig: &mut Rig, store: &Store, single: &Single, multi: &Multi) {
    use Access::Write;
    let doc = Document::sample("p", "s");
    rig.run(Write, "create_large", store.create_large(&doc))
        .await;
    rig.run(Write, "create_large (inline and compressed)", async {
        store.create_large(&Memo::with("m", 10, 1)).await?;
        store
            .create_large(&Packed {
                id: "z".into(),
                text: Some("text ".repeat(100)),
                data: Some(b"{\"a\": 1}".to_vec()),
                blob: None,
            })
            .await
    })
    .await;
    let big = pattern(LEN, 1);
    rig.run(
        Write,
        "create_large (multipart)",
        store.create_large(&video("big", big.clone())),
    )
    .await;

    rig.faults
        .inject(Op::UploadPart, 2, Fault::Fail { retryable: false });
    let failed = store.create_large(&video("failed", pattern(LEN, 2))).await;
    assert!(failed.is_err(), "the injected UploadPart failure");
    let calls = rig
        .charge(Write, "create_large (multipart upload fails)")
        .await;
    assert!(calls.contains(&Op::AbortMultipartUpload), "{calls:?}");

    for i in 0..4 {
        rig.run(
            Write,
            "create_large (events)",
            store.create_large(&event(i, ["p0", "p1"][i as usize % 2])),
        )
        .await;
    }
    rig.run(
        Write,
        "create_large (program)",
        store.create_large(&Program {
            object_type: "PROGRAM".into(),
            id: "p0".into(),
            program_name: "Zero".into(),
            data: Some(Json(serde_json::json!({ "pad": "y".repeat(400) }))),
        }),
    )
    .await;

    rig.run(
        Write,
        "update_large (replaces an object)",
        store.update_large(
            &doc.primary_key(),
            Document::changes().set_html(Some("<p>new</p>".into())),
        ),
    )
    .await;
    let replaced = rig.usage["s3:DeleteObject"].clone();
    assert!(
        replaced.contains(&(Write, "update_large (replaces an object)")),
        "{replaced:?}"
    );

    rig.run(Write, "delete_large", async {
        store.create_large(&Note::new("gone", "bye")).await?;
        store.delete_large(&Note::key("gone")).await
    })
    .await;
    rig.run(Write, "delete_large_if", async {
        store.create_large(&Note::new("gone2", "bye")).await?;
        store
            .delete_large_if(&Note::key("gone2"), Condition::exists("html"))
            .await
    })
    .await;
    let outcomes = rig
        .run(
            Write,
            "batch_create_large",
            store.batch_create_large(&[Note::new("b1", "one"), Note::new("b2", "two")]),
        )
        .await;
    assert!(outcomes.iter().all(|o| o.is_ok()));
    let outcomes = rig
        .run(
            Write,
            "batch_delete_large",
            store.batch_delete_large(&[Note::key("b1"), Note::key("b2")]),
        )
        .await;
    assert!(outcomes.iter().all(|o| o.is_ok()));

    rig.run(Write, "create_large (transaction inputs)", async {
        store.create_large(&Note::new("A", "old a")).await?;
        store.create_large(&Note::new("C", "c")).await?;
        store.create_large(&vdoc("V", 1, "v1")).await?;
        store.create_large(&Document::sample("t", "s")).await
    })
    .await;
    rig.run(
        Write,
        "transaction",
        store
            .transaction()
            .create(&Note::new("B", "new b"))
            .update(
                &Note::key("A"),
                Note::changes().set_html(Some("new a".into())),
            )
            .update(
                &VDoc::key("V"),
                VDoc::changes().set_body(Some("v2".into())).if_version(1),
            )
            .delete(&Document::key("t", "s"), Precondition::new())
            .check(&Note::key("C"), Condition::exists("html"))
            .commit(),
    )
    .await;
    rig.run(
        Write,
        "update_large (versioned model)",
        store.update_large(
            &VDoc::key("V"),
            VDoc::changes().set_title("three").if_version(2),
        ),
    )
    .await;

    // The step-by-step API, with the caller's own writes.
    let table = store.table_name::<Document>().to_owned();
    let key = Document::key("step", "s");
    let mut step_doc = Document::sample("step", "s");
    let staged = rig
        .run(
            Write,
            "put_s3",
            store.put_s3(&key, LargeValues::of(&step_doc).unwrap()),
        )
        .await;
    let mut item = step_doc.to_item().unwrap();
    item.extend(staged.to_put_attributes());
    rig.run(
        Write,
        "step-by-step PutItem",
        store
            .backend()
            .put_item(&table, item, Some(&Condition::not_exists("pk"))),
    )
    .await;
    step_doc.html = Some("rival".into());
    let rival = rig
        .run(
            Write,
            "put_s3",
            store.put_s3(&key, LargeValues::of(&step_doc).unwrap()),
        )
        .await;
    let cleanup = store.clean_up_after_create_failed(&rival).await;
    assert!(cleanup.leftover.is_empty(), "{cleanup:?}");
    rig.charge(Write, "clean_up_after_create_failed").await;
    let values = LargeValues::<Document>::new()
        .with("html", Some(Bytes::from_static(b"v2")))
        .unwrap();
    let staged = rig.run(Write, "put_s3", store.put_s3(&key, values)).await;
    let cleanup = store.clean_up_after_update_failed(&staged).await;
    assert!(cleanup.leftover.is_empty(), "{cleanup:?}");
    rig.charge(Write, "clean_up_after_update_failed").await;
    let values = LargeValues::<Document>::new()
        .with("html", Some(Bytes::from_static(b"v3")))
        .unwrap();
    let staged = rig.run(Write, "put_s3", store.put_s3(&key, values)).await;
    let condition = Condition::exists("pk").and(staged.condition());
    let old = match rig
        .run(
            Write,
            "step-by-step UpdateItem",
            store.backend().update_item(
                &table,
                &key.to_item(),
                &staged.to_item_update(),
                Some(&condition),
            ),
        )
        .await
    {
        vhs::Conditional::Applied(old) => old,
        other => panic!("{other:?}"),
    };
    let cleanup = store.clean_up_after_update_succeeded(&staged, &old).await;
    assert_eq!(cleanup.deleted.len(), 1, "{cleanup:?}");
    rig.charge(Write, "clean_up_after_update_succeeded").await;

    // Deferred cleanup: the replaced objects go on the background queue.
    let deferred = builder(&rig.faults).defer_cleanup(true).build().unwrap();
    rig.run(
        Write,
        "update_large (deferred cleanup)",
        deferred.update_large(
            &Note::key("A"),
            Note::changes().set_html(Some("deferred".into())),
        ),
    )
    .await;
    deferred.flush().await;
    rig.charge_if_any(Write, "flush").await;

    // Versioned stores.
    rig.run(Write, "versioned put", async {
        single.put("v", 0, &versioned_doc(0)).await?;
        multi.put("v", 0, &versioned_doc(0)).await
    })
    .await;
    rig.run(Write, "versioned put_latest", async {
        single.put_latest("v", &versioned_doc(1)).await?;
        multi.put_latest("v", &versioned_doc(1)).await
    })
    .await;
    rig.run(Write, "versioned update", async {
        single
            .update("v", |mut d| {
                d.html = Some("<p>updated</p>".into());
                d
            })
            .await?;
        multi
            .update("v", |mut d| {
                d.html = Some("<p>updated</p>".into());
                d
            })
            .await
    })
    .await;
    rig.run(Write, "versioned upsert", async {
        single.upsert("new", || versioned_doc(7), |d| d).await?;
        multi.upsert("new", || versioned_doc(7), |d| d).await
    })
    .await;
    rig.run(Write, "versioned delete_version", async {
        single.delete_version("new", 0).await?;
        multi.delete_version("new", 0).await
    })
    .await;
    let pruned = rig.run(Write, "prune", multi.prune("v", 1)).await;
    assert_eq!(pruned.versions.len(), 2, "{pruned:?}");
}

/// Every read (of what `writes` left).
async fn reads(rig: &mut Rig, store: &Store, single: &Single, multi: &Multi) {
    use Access::Read;
    let dir = tempfile::tempdir().unwrap();
    let big = pattern(LEN, 1);
    let doc_key = Document::key("p", "s");
    rig.run(Read, "get_large", store.get_large(&doc_key)).await;
    rig.run(
        Read,
        "get_large_consistent",
        store.get_large_consistent(&doc_key),
    )
    .await;
    let mut stored = rig
        .run(Read, "get_stored", store.get_stored(&doc_key, false))
        .await;
    rig.run(Read, "load", store.load(&mut stored, &["html", "image"]))
        .await;
    let got = rig
        .run(
            Read,
            "batch_get_large",
            store.batch_get_large(&[doc_key.clone(), Document::key("missing", "s")]),
        )
        .await;
    assert!(got[0].is_some() && got[1].is_none());
    let found: Vec<Document> = rig
        .run(
            Read,
            "query",
            store
                .query::<Document>(Document::PK.eq("p"))
                .items()
                .try_collect(),
        )
        .await;
    assert_eq!(found.len(), 1);
    let found: Vec<Event> = rig
        .run(
            Read,
            "query (index)",
            store
                .query::<Event>(Event::PROGRAM_ID.eq("p0"))
                .index("programID-eventStart-index")
                .items()
                .try_collect(),
        )
        .await;
    assert_eq!(found.len(), 2);
    let found: Vec<Program> = rig
        .run(
            Read,
            "query (keys-only index)",
            store
                .query::<Program>(Program::OBJECT_TYPE.eq("PROGRAM"))
                .index("programName-index")
                .items()
                .try_collect(),
        )
        .await;
    assert_eq!(found.len(), 1);
    let found: Vec<Note> = rig
        .run(Read, "scan", store.scan::<Note>().items().try_collect())
        .await;
    assert!(!found.is_empty());
    let found: Vec<Note> = rig
        .run(
            Read,
            "scan (parallel)",
            store.scan::<Note>().segments(3).items().try_collect(),
        )
        .await;
    assert!(!found.is_empty());
    let pages: Vec<vhs::Page<vhs::Stored<Note>>> = rig
        .run(
            Read,
            "scan (stored pages)",
            store.scan::<Note>().stored_pages().try_collect(),
        )
        .await;
    assert!(!pages.is_empty());

    let big_key = Video::key("big");
    let mut out = Vec::new();
    let n = rig
        .run(
            Read,
            "download_large",
            store.download_large(&big_key, "data", &mut out),
        )
        .await;
    assert_eq!((n, Bytes::from(out)), (LEN as u64, big.clone()));
    let path = dir.path().join("out.bin");
    rig.run(
        Read,
        "download_large_to_file",
        store.download_large_to_file(&big_key, "data", &path),
    )
    .await;
    let range = rig
        .run(
            Read,
            "read_large_range",
            store.read_large_range(&big_key, "data", 10..20),
        )
        .await;
    assert_eq!(range, big.slice(10..20));
    rig.run(Read, "get_large (multipart)", store.get_large(&big_key))
        .await;
    rig.run(
        Read,
        "presign_large",
        store.presign_large(&big_key, "data", Duration::from_secs(60)),
    )
    .await;
    rig.run(Read, "verify", async {
        let report = store
            .verify::<Document>(&VerifyOptions::default(), |_| {})
            .await?;
        assert!(report.is_clean(), "{report:?}");
        let report = store
            .verify::<Video>(&VerifyOptions::default().rehash(true), |_| {})
            .await?;
        assert!(report.is_clean(), "{report:?}");
        Ok(())
    })
    .await;
    rig.run(Read, "versioned get_latest", async {
        single.get_latest("v").await?;
        multi.get_latest("v").await
    })
    .await;
    rig.run(Read, "versioned get", multi.get("v", 2)).await;
    let versions: Vec<u64> = rig
        .run(
            Read,
            "versions",
            multi.versions("v", Order::NewestFirst).try_collect(),
        )
        .await;
    assert_eq!(versions, [2]);
    rig.run(Read, "versioned verify", async {
        single.verify(&VerifyOptions::default(), |_| {}).await?;
        multi.verify(&VerifyOptions::default(), |_| {}).await
    })
    .await;

    // A table opened by its key schema: what the CLI's read commands run.
    let table = rig
        .run(
            Read,
            "open_table",
            store.open_table(store.table_name::<Document>()),
        )
        .await;
    let (items, _) = rig
        .run(Read, "AnyTable::list", table.list(None, None, 10))
        .await;
    rig.run(
        Read,
        "AnyTable::list of a hash key",
        table.list(Some("p"), None, 10),
    )
    .await;
    let key = table.key("p", Some("s")).unwrap();
    let item = rig
        .run(Read, "AnyTable::get", table.get(&key))
        .await
        .expect("stored");
    let (attr, _) = table.pointers(&item).remove(0);
    rig.run(
        Read,
        "AnyTable::object_info",
        table.object_info(&item, &attr),
    )
    .await;
    if rig.tagged {
        let tags = rig
            .run(
                Read,
                "AnyTable::object_tags",
                table.object_tags(&item, &attr),
            )
            .await
            .expect("object");
        assert_eq!(tags.len(), 2, "{tags:?}");
    }
    rig.run(
        Read,
        "AnyTable::download",
        table.download(&item, &attr, &mut Vec::new()),
    )
    .await;
    rig.run(
        Read,
        "AnyTable::verify",
        table.verify(&VerifyOptions::default(), |_| {}),
    )
    .await;
    rig.run(Read, "AnyTable::stats", table.stats(|_| {})).await;
    let mut records = store.stream_records("audit");
    rig.run(Read, "stream_records", records.poll()).await;
    assert!(!items.is_empty());
}

/// Admin: GC, with a dead writer's upload to abort and orphans to delete.
async fn collect_garbage(rig: &mut Rig, store: &Store, single: &Single, multi: &Multi) {
    use Access::{Admin, Write};
    let prefix = store.table_prefix(store.table_name::<Video>()).unwrap();
    let raw = rig.faults.inner().clone();
    raw.create_multipart_upload(&vhs::MultipartStart {
        bucket: BUCKET.into(),
        key: format!("{prefix}/pk=dead/attr=data/md5=00000000000000000000000000000000"),
        content_type: "application/octet-stream".into(),
        content_encoding: None,
        metadata: Default::default(),
        checksum: vhs::ChecksumAlgorithm::Md5,
        storage_class: None,
        tags: Vec::new(),
    })
    .await
    .unwrap();
    let keep = builder(&rig.faults)
        .clean_up_when_failed(false)
        .build()
        .unwrap();
    rig.faults
        .inject(Op::PutItem, 1, Fault::Fail { retryable: false });
    let orphaned = keep.create_large(&video("orphan", pattern(100, 3))).await;
    assert!(orphaned.is_err(), "the injected PutItem failure");
    rig.charge(Write, "create_large (PutItem fails, no cleanup)")
        .await;
    // Older than the retention (zero) plus S3's one-second timestamps.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let reap = GcOptions::default()
        .grace(Duration::ZERO)
        .take_over_after(Duration::ZERO);
    let report = rig.run(Admin, "gc", store.gc::<Video>(&reap, |_| {})).await;
    assert_eq!(report.uploads_aborted, 1, "{report:?}");
    assert_eq!(report.deleted.len(), 2, "{report:?}");
    rig.run(Admin, "gc", store.gc::<Note>(&reap, |_| {})).await;
    rig.run(Admin, "versioned gc", async {
        single.gc(&reap, |_| {}).await?;
        multi.gc(&reap, |_| {}).await
    })
    .await;
    let table = store.open_table(store.table_name::<Video>()).await.unwrap();
    rig.faults.reset();
    rig.run(Admin, "AnyTable::gc", table.gc(&reap, |_| {}))
        .await;
    Box::pin(restore_from_versions(rig, store, &prefix)).await;
}

/// Admin: backups that restore consistently. Versioning on, an object lost
/// behind the store's back (a delete marker over it), brought back from its
/// noncurrent version.
async fn restore_from_versions(rig: &mut Rig, store: &Store, prefix: &str) {
    use Access::{Admin, Write};
    rig.run(
        Admin,
        "ensure_bucket_with backup_consistent",
        store.ensure_bucket_with(&BucketSpec::new(BUCKET, store.prefix()).backup_consistent()),
    )
    .await;
    rig.run(
        Write,
        "create_large",
        store.create_large(&video("restored", pattern(100, 9))),
    )
    .await;
    // Around the recorder: not an operation of the store's.
    let memory = rig.faults.inner().inner.clone();
    let lost: Vec<String> = memory
        .list_objects(BUCKET, &format!("{prefix}/pk=restored/"), None)
        .await
        .unwrap()
        .objects
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert!(!lost.is_empty());
    memory
        .delete_objects(BUCKET, &lost, vhs::Attempts::Retried)
        .await
        .unwrap();
    let report = rig
        .run(
            Admin,
            "repair_from_versions",
            store.repair_from_versions::<Video>(&RepairOptions::default(), |_| {}),
        )
        .await;
    assert_eq!(report.restored.len(), lost.len(), "{report:?}");
}

impl Rig {
    /// Like [`Rig::charge`], for an operation that may make no call.
    async fn charge_if_any(&mut self, level: Access, operation: &'static str) -> Vec<Op> {
        self.store.flush().await;
        if self.faults.calls().is_empty() {
            return Vec::new();
        }
        self.charge(level, operation).await
    }
}

/// Both directions for `access`: everything its operations use is granted,
/// everything granted is used by an operation it allows.
async fn level_is_exact(access: Access) {
    level_is_exact_in(&exercise(false).await, access);
}

/// [`level_is_exact`] on `rig`, exercised already.
fn level_is_exact_in(rig: &Rig, access: Access) {
    let granted = iam::tagged_level_actions(access, rig.tagged);
    let used = rig.used(access);
    eprintln!("{access} operations use {used:?}");
    let missing: Vec<String> = used
        .difference(&granted)
        .map(|a| format!("{a} (used by {:?})", rig.users(a)))
        .collect();
    assert!(
        missing.is_empty(),
        "the {access} policy lacks actions its operations use: {missing:#?}"
    );
    let unused: Vec<&str> = granted.difference(&used).copied().collect();
    assert!(
        unused.is_empty(),
        "the {access} policy grants actions no {access} operation uses: {unused:?}\nused: {used:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_read_level_is_exactly_what_reads_use() {
    level_is_exact(Access::Read).await;
    let read = iam::level_actions(Access::Read);
    let writes: Vec<&&str> = read
        .iter()
        .filter(|a| {
            ["Put", "Update", "Delete", "Create", "Abort"]
                .iter()
                .any(|w| a.contains(w))
        })
        .collect();
    assert!(writes.is_empty(), "read grants writes: {writes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_write_level_is_exactly_what_writes_use() {
    level_is_exact(Access::Write).await;
    let write = iam::level_actions(Access::Write);
    for action in ["s3:DeleteObject", "s3:AbortMultipartUpload"] {
        assert!(write.contains(action), "{action}: {write:?}");
        assert!(
            granted_in_policy(&iam::policy(Access::Write, &scope())).contains(action),
            "{action}"
        );
    }
    assert!(
        !write.contains("s3:CreateBucket") && !write.contains("dynamodb:CreateTable"),
        "{write:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_admin_level_is_exactly_what_admin_uses() {
    level_is_exact(Access::Admin).await;
}

/// A store that tags its objects: writes need `s3:PutObjectTagging`, reading
/// the tags `s3:GetObjectTagging`, and each level is still exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_levels_of_a_store_tagging_objects_are_exact() {
    let rig = exercise(true).await;
    for access in Access::ALL {
        level_is_exact_in(&rig, access);
    }
    assert!(
        rig.users("s3:PutObjectTagging")
            .iter()
            .any(|u| u == "write create_large"),
        "{:?}",
        rig.usage.keys()
    );
    let policy = iam::policy(Access::Write, &scope().tagged_objects(true));
    let granted = granted_in_policy(&policy);
    assert!(granted.contains("s3:PutObjectTagging") && granted.contains("s3:GetObjectTagging"));
    let untagged = granted_in_policy(&iam::policy(Access::Admin, &scope()));
    assert!(
        !untagged.iter().any(|a| a.contains("Tagging")),
        "{untagged:?}"
    );
}

// ---------------------------------------------------------------------------------
// The policy documents.

fn scope() -> PolicyScope {
    PolicyScope::new("documents", BUCKET, "/app//documents/")
        .region("eu-west-1")
        .account("123456789012")
}

const TABLE: &str = "arn:aws:dynamodb:eu-west-1:123456789012:table/documents";
const INDEXES: &str = "arn:aws:dynamodb:eu-west-1:123456789012:table/documents/index/*";
const STREAMS: &str = "arn:aws:dynamodb:eu-west-1:123456789012:table/documents/stream/*";
const BUCKET_ARN: &str = "arn:aws:s3:::vhs-iam";
const OBJECTS: &str = "arn:aws:s3:::vhs-iam/app/documents/*";

/// The policy as a client would see it: serialized, then parsed.
fn parsed(access: Access, scope: &PolicyScope) -> Value {
    let text = serde_json::to_string_pretty(&iam::policy(access, scope)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn statements(policy: &Value) -> &Vec<Value> {
    policy["Statement"].as_array().expect("Statement array")
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("an array: {v}"))
        .iter()
        .map(|s| s.as_str().expect("a string"))
        .collect()
}

/// Every action any statement grants.
fn granted_in_policy(policy: &Value) -> BTreeSet<String> {
    statements(policy)
        .iter()
        .flat_map(|s| strings(&s["Action"]))
        .map(str::to_owned)
        .collect()
}

/// IAM's `StringLike`: `*` any run of characters, `?` one character.
fn like(pattern: &str, text: &str) -> bool {
    match pattern.chars().next() {
        None => text.is_empty(),
        Some('*') => (0..=text.len())
            .filter(|i| text.is_char_boundary(*i))
            .any(|i| like(&pattern[1..], &text[i..])),
        Some('?') => {
            let mut t = text.chars();
            t.next().is_some() && like(&pattern[1..], t.as_str())
        }
        Some(c) => text.starts_with(c) && like(&pattern[c.len_utf8()..], &text[c.len_utf8()..]),
    }
}

#[test]
fn iam_policy_documents_name_exactly_the_table_prefix_and_bucket() {
    for access in Access::ALL {
        let policy = parsed(access, &scope());
        assert_eq!(policy["Version"], "2012-10-17");
        assert_eq!(policy, iam::policy(access, &scope()), "deterministic");
        let all = statements(&policy);
        let sids: BTreeSet<&str> = all.iter().map(|s| s["Sid"].as_str().unwrap()).collect();
        assert_eq!(sids.len(), all.len(), "unique Sids: {sids:?}");

        // The policy grants exactly the level's actions.
        let granted = granted_in_policy(&policy);
        let level: BTreeSet<String> = iam::level_actions(access)
            .into_iter()
            .map(str::to_owned)
            .collect();
        assert_eq!(granted, level, "{access}");

        let mut listed_under_prefix = false;
        for s in all {
            let sid = s["Sid"].as_str().unwrap();
            assert_eq!(s["Effect"], "Allow", "{sid}");
            let actions = strings(&s["Action"]);
            let mut sorted = actions.clone();
            sorted.sort();
            assert_eq!(actions, sorted, "{sid}: sorted actions");
            let resources = strings(&s["Resource"]);
            let dynamodb = actions.iter().all(|a| a.starts_with("dynamodb:"));
            let s3 = actions.iter().all(|a| a.starts_with("s3:"));
            assert!(dynamodb || s3, "{sid}: one service per statement");
            if dynamodb {
                // Indexes only where an action can target one.
                let on_index = actions
                    .iter()
                    .all(|a| ["dynamodb:Query", "dynamodb:Scan"].contains(a));
                let on_stream = actions.iter().all(|a| {
                    [
                        "dynamodb:DescribeStream",
                        "dynamodb:GetRecords",
                        "dynamodb:GetShardIterator",
                    ]
                    .contains(a)
                });
                let expected = if on_index {
                    vec![TABLE, INDEXES]
                } else if on_stream {
                    vec![STREAMS]
                } else {
                    vec![TABLE]
                };
                assert_eq!(resources, expected, "{sid}");
                assert!(s.get("Condition").is_none(), "{sid}");
                continue;
            }
            let bucket_level = actions.iter().any(|a| {
                [
                    "s3:ListBucket",
                    "s3:ListBucketMultipartUploads",
                    "s3:CreateBucket",
                ]
                .contains(a)
                    || a.contains("Configuration")
                    || a.contains("PublicAccessBlock")
            });
            if !bucket_level {
                assert_eq!(resources, [OBJECTS], "{sid}: objects under the prefix");
                continue;
            }
            assert_eq!(resources, [BUCKET_ARN], "{sid}");
            if let Some(condition) = s.get("Condition") {
                assert_eq!(actions, ["s3:ListBucket"], "{sid}");
                let prefixes = strings(&condition["StringLike"]["s3:prefix"]);
                assert_eq!(prefixes, ["app/documents/*", "app/documents/"], "{sid}");
                listed_under_prefix = true;
            } else if actions != ["s3:ListBucketMultipartUploads"] {
                // Listing uploads takes no prefix condition; anything else on
                // the whole bucket is for admin only.
                assert_eq!(
                    access,
                    Access::Admin,
                    "{sid}: the whole bucket for admin only"
                );
            }
        }
        assert!(listed_under_prefix, "{access}: ListBucket under the prefix");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_list_condition_matches_what_the_store_sends() {
    let faults = FaultyBackend::new(Recorder::default());
    let store = builder(&faults).build().unwrap();
    store.ensure_bucket().await.unwrap();
    store.ensure_table::<Document>().await.unwrap();
    let staged = store
        .create_large(&Document::sample("p", "s"))
        .await
        .unwrap();
    let scope = PolicyScope::for_table(&store, store.table_name::<Document>()).unwrap();
    assert_eq!(scope.prefix, "app/documents");
    let policy = parsed(Access::Read, &scope);
    let list = statements(&policy)
        .iter()
        .find(|s| s.get("Condition").is_some())
        .expect("a conditioned ListBucket");
    let patterns = strings(&list["Condition"]["StringLike"]["s3:prefix"]);
    let allowed = |key: &str| patterns.iter().any(|p| like(p, key));
    // What ListObjectsV2 of verify and GC sends, and every object key (S3 checks
    // a HeadObject of a missing key with the key as `s3:prefix`).
    assert!(allowed(&format!("{}/", scope.prefix)), "{patterns:?}");
    for o in staged.attrs().iter().filter_map(|a| a.object.as_ref()) {
        assert!(allowed(&o.pointer.key), "{}: {patterns:?}", o.pointer.key);
        let arn = format!("arn:aws:s3:::{BUCKET}/{}", o.pointer.key);
        assert!(like(&scope.objects_arn(), &arn), "{arn}");
    }
    // Not another table's objects, nor a sibling prefix, nor the whole bucket.
    for other in ["app/notes/", "app/documents2/", "app/", ""] {
        assert!(!allowed(other), "{other}: {patterns:?}");
    }
}

#[test]
fn iam_kms_partition_and_empty_prefix() {
    let key = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let kms = |access| {
        let policy = parsed(access, &scope().kms_key_arn(key));
        let s = statements(&policy)
            .iter()
            .find(|s| strings(&s["Action"]).iter().all(|a| a.starts_with("kms:")))
            .cloned()
            .expect("a KMS statement");
        assert_eq!(strings(&s["Resource"]), [key]);
        strings(&s["Action"])
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(kms(Access::Read), ["kms:Decrypt"]);
    assert_eq!(kms(Access::Write), ["kms:Decrypt", "kms:GenerateDataKey"]);
    assert_eq!(kms(Access::Admin), ["kms:Decrypt", "kms:GenerateDataKey"]);
    assert!(!granted_in_policy(&parsed(Access::Admin, &scope()))
        .iter()
        .any(|a| a.starts_with("kms:")));

    let cn = parsed(Access::Admin, &scope().partition("aws-cn"));
    for s in statements(&cn) {
        for r in strings(&s["Resource"]) {
            assert!(r.starts_with("arn:aws-cn:"), "{r}");
        }
    }
    // No region or account: any.
    let any = parsed(Access::Read, &PolicyScope::new("t", "b", "p"));
    assert_eq!(
        strings(&statements(&any)[0]["Resource"]),
        ["arn:aws:dynamodb:*:*:table/t"]
    );
    // No prefix: the whole bucket, listed without a condition.
    let whole = parsed(Access::Write, &PolicyScope::new("t", "b", ""));
    for s in statements(&whole) {
        assert!(s.get("Condition").is_none(), "{s}");
        for r in strings(&s["Resource"]) {
            if r.starts_with("arn:aws:s3") {
                assert!(r == "arn:aws:s3:::b" || r == "arn:aws:s3:::b/*", "{r}");
            }
        }
    }
}

#[test]
fn iam_every_op_maps_to_actions_of_some_level() {
    let admin = iam::level_actions(Access::Admin);
    for op in [
        Op::CreateTable,
        Op::GetItem,
        Op::PutItem,
        Op::UpdateItem,
        Op::DeleteItem,
        Op::Query,
        Op::Scan,
        Op::HeadObject,
        Op::CreateBucket,
        Op::PutObject,
        Op::GetObject,
        Op::DeleteObjects,
        Op::ListObjects,
        Op::GetObjectRange,
        Op::CreateMultipartUpload,
        Op::UploadPart,
        Op::CompleteMultipartUpload,
        Op::AbortMultipartUpload,
        Op::ListMultipartUploads,
        Op::BatchGetItem,
        Op::TransactWriteItems,
        Op::DescribeTable,
        Op::HeadBucket,
        Op::ConfigureBucket,
        Op::DescribeStream,
        Op::GetShardIterator,
        Op::GetRecords,
    ] {
        let actions = iam::actions(op);
        assert!(!actions.is_empty(), "{op:?}");
        for a in actions {
            assert!(admin.contains(a), "{op:?}: {a} is granted by no level");
        }
    }
    assert!(!iam::actions(Op::TransactWriteItems).contains(&"dynamodb:TransactWriteItems"));
    // Reading tags back is granted to a store that tags objects only.
    assert_eq!(iam::actions(Op::GetObjectTagging), ["s3:GetObjectTagging"]);
    assert!(iam::tagged_level_actions(Access::Read, true).contains("s3:GetObjectTagging"));
    assert!(!admin.contains("s3:GetObjectTagging"));
    assert_eq!("admin".parse::<Access>().unwrap(), Access::Admin);
    assert!("root".parse::<Access>().is_err());
}
