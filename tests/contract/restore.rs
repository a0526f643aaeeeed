//! Backups that restore consistently: a table restored to an earlier time
//! gets back, from the bucket's noncurrent versions, the objects deleted
//! since (`Store::repair_from_versions`, `vhs restore-check`).
//!
//! The "restore" is the emulator's RestoreTableToPointInTime: ministack and
//! moto both copy the source table's *current* items whatever the time asked,
//! so the tests restore first, then update and delete items of the source
//! (whose old objects the protocol deletes): the restored table is then
//! exactly a table restored to the earlier time. On memory, the items are
//! copied into a new table the same way.

use std::collections::BTreeSet;

use vhs::maintenance::{NotRestoredReason, RepairOptions, RestoreMethod};
use vhs::BackendExt as _;
use vhs::{BucketSpec, BucketVersioning, Model, Scan, Store};

use crate::fixture::{put_raw, Fixture, Kind};
use crate::models::Document;

/// Versioning on, noncurrent versions kept 35 days: what `vhs provision
/// --backup-consistent` asks of the bucket.
pub async fn backup_consistent(fx: &Fixture) {
    let spec = BucketSpec::new(&fx.bucket, "").backup_consistent();
    assert_eq!(spec.noncurrent_version_expiry_days, Some(35));
    fx.store.ensure_bucket_with(&spec).await.unwrap();
    assert_eq!(
        fx.raw.get_bucket_versioning(&fx.bucket).await.unwrap(),
        BucketVersioning::Enabled
    );
}

/// `source`'s items as they are now, in a new table `target` (the emulator's
/// RestoreTableToPointInTime; a copy on memory).
pub async fn restore_table(fx: &Fixture, source: &str, target: &str) {
    match fx.kind {
        Kind::Emulator => {
            let config = crate::emulator::sdk_config().await;
            let ddb = aws_sdk_dynamodb::Client::new(&config);
            ddb.restore_table_to_point_in_time()
                .source_table_name(source)
                .target_table_name(target)
                .use_latest_restorable_time(true)
                .send()
                .await
                .expect("RestoreTableToPointInTime");
        }
        Kind::Memory => {
            let spec = fx
                .raw
                .describe_table(source)
                .await
                .unwrap()
                .expect("source");
            fx.raw
                .create_table(&vhs::TableSpec {
                    name: target.to_owned(),
                    ..spec
                })
                .await
                .unwrap();
            let mut start = None;
            loop {
                let page = fx
                    .raw
                    .scan(&Scan {
                        start,
                        consistent: true,
                        ..Scan::new(source)
                    })
                    .await
                    .unwrap();
                for item in page.items {
                    fx.raw.put_item(target, item, None).await.unwrap();
                }
                match page.last_key {
                    Some(k) => start = Some(k),
                    None => break,
                }
            }
        }
    }
}

/// A store for the restored table `target`: `Document`'s table is `target`,
/// its objects under the source table's prefix.
fn restored_store(fx: &Fixture, target: &str) -> Store {
    let source_prefix = fx
        .store
        .table_prefix(fx.store.table_name::<Document>())
        .unwrap();
    Store::builder(fx.faults.clone(), fx.bucket.clone())
        .table_for::<Document>(target)
        .table_prefix(target, source_prefix)
        .build()
        .unwrap()
}

fn doc(pk: &str, version: u32) -> Document {
    Document {
        html: Some(format!("<p>{pk} version {version}</p>")),
        image: Some(format!("image of {pk} v{version}").into_bytes()),
        ..Document::sample(pk, "s")
    }
}

/// Writes items, restores the table, then updates and deletes items of the
/// source. Returns the restored table's name, the documents it holds, and
/// the object keys deleted since the restore.
async fn history(fx: &Fixture) -> (String, Vec<Document>, BTreeSet<String>) {
    let docs: Vec<Document> = (0..6).map(|i| doc(&format!("d{i}"), 1)).collect();
    for d in &docs {
        fx.store.create_large(d).await.unwrap();
    }
    let before: BTreeSet<String> = fx.objects().await.into_iter().collect();
    assert_eq!(before.len(), 12);
    let target = format!("{}-restored", fx.store.table_name::<Document>());
    restore_table(fx, fx.store.table_name::<Document>(), &target).await;
    // After the restore point: replace both values of d0, the html of d1,
    // delete d2 and d3; d4 and d5 stay as they were.
    let d0 = doc("d0", 2);
    fx.store
        .update_large(
            &docs[0].primary_key(),
            Document::changes().set_html(d0.html).set_image(d0.image),
        )
        .await
        .unwrap();
    fx.store
        .update_large(
            &docs[1].primary_key(),
            Document::changes().set_html(Some("<p>d1 version 2</p>".into())),
        )
        .await
        .unwrap();
    fx.store.delete_large(&docs[2].primary_key()).await.unwrap();
    fx.store.delete_large(&docs[3].primary_key()).await.unwrap();
    fx.store.flush().await;
    let after: BTreeSet<String> = fx.objects().await.into_iter().collect();
    let deleted: BTreeSet<String> = before.difference(&after).cloned().collect();
    // d0: 2, d1: 1, d2: 2, d3: 2.
    assert_eq!(deleted.len(), 7, "{deleted:?}");
    (target, docs, deleted)
}

pub async fn restore_check_brings_back_every_deleted_object(fx: Fixture) {
    backup_consistent(&fx).await;
    let (target, docs, deleted) = history(&fx).await;
    let restored = restored_store(&fx, &target);
    // Before: the restored table's pointers to deleted objects dangle.
    let lost = restored
        .get_large(&docs[2].primary_key())
        .await
        .unwrap_err();
    assert!(matches!(lost, vhs::Error::DanglingPointer { .. }), "{lost}");

    // A dry run says what it would restore, and changes nothing.
    let objects = fx.objects().await;
    let dry = restored
        .repair_from_versions::<Document>(&RepairOptions::default().dry_run(true), |_| {})
        .await
        .unwrap();
    assert!(dry.dry_run);
    assert_eq!(dry.restored.len(), deleted.len());
    assert_eq!(fx.objects().await, objects);

    let report = restored
        .repair_from_versions::<Document>(&RepairOptions::default(), |_| {})
        .await
        .unwrap();
    assert_eq!(report.versioning, BucketVersioning::Enabled);
    assert_eq!((report.items, report.pointers), (6, 12));
    assert_eq!(report.present, 12 - deleted.len() as u64);
    assert!(report.is_complete(), "{:?}", report.not_restored);
    let keys: BTreeSet<String> = report
        .restored
        .iter()
        .map(|r| r.object_key.clone())
        .collect();
    assert_eq!(keys, deleted);
    for r in &report.restored {
        assert_eq!(
            r.method,
            RestoreMethod::DeleteMarkerRemoved { markers: 1 },
            "{r:?}"
        );
    }
    // Every pointer of the restored table resolves, to the values as they
    // were at the restore point.
    for d in &docs {
        assert_eq!(&restored.get_large(&d.primary_key()).await.unwrap(), d);
    }
    // The source still reads as it is now.
    assert_eq!(
        fx.store.get_large(&docs[0].primary_key()).await.unwrap(),
        doc("d0", 2)
    );

    // Again: nothing left to restore.
    let again = restored
        .repair_from_versions::<Document>(&RepairOptions::default(), |_| {})
        .await
        .unwrap();
    assert!(again.restored.is_empty() && again.is_complete());
    assert_eq!(again.present, 12);
}

pub async fn restore_check_on_an_unversioned_bucket_restores_nothing(fx: Fixture) {
    let (target, docs, deleted) = history(&fx).await;
    let restored = restored_store(&fx, &target);
    let objects = fx.objects().await;
    let report = restored
        .repair_from_versions::<Document>(&RepairOptions::default(), |_| {})
        .await
        .unwrap();
    assert_eq!(report.versioning, BucketVersioning::Unversioned);
    assert!(report.restored.is_empty());
    assert_eq!(report.not_restored.len(), deleted.len());
    assert!(report
        .not_restored
        .iter()
        .all(|n| n.reason == NotRestoredReason::BucketUnversioned));
    assert!(!report.is_complete());
    assert!(
        report.not_restored[0]
            .reason
            .to_string()
            .contains("not versioned"),
        "{}",
        report.not_restored[0].reason
    );
    assert_eq!(fx.objects().await, objects);
    let lost = restored
        .get_large(&docs[2].primary_key())
        .await
        .unwrap_err();
    assert!(matches!(lost, vhs::Error::DanglingPointer { .. }), "{lost}");
}

/// The key of the html object of the document `pk`.
async fn html_of(fx: &Fixture, pk: &str) -> String {
    let prefix = format!("{}pk={pk}/", fx.prefix::<Document>());
    fx.objects()
        .await
        .into_iter()
        .find(|k| k.starts_with(&prefix) && k.contains("/attr=html/"))
        .expect("an html object")
}

pub async fn restore_check_refuses_versions_with_other_bytes(fx: Fixture) {
    backup_consistent(&fx).await;
    let (a, b) = (doc("a", 1), doc("b", 1));
    fx.store.create_large(&a).await.unwrap();
    fx.store.create_large(&b).await.unwrap();
    let target = format!("{}-restored", fx.store.table_name::<Document>());
    restore_table(&fx, fx.store.table_name::<Document>(), &target).await;
    let (a_html, b_html) = (html_of(&fx, "a").await, html_of(&fx, "b").await);
    // a: other bytes written over the object, then it is deleted. The newest
    // version is wrong; the one under it is right: it is copied back.
    put_raw(&*fx.raw, &fx.bucket, &a_html, b"not the html").await;
    fx.lose(&a_html).await;
    // b: the good version removed for good, other bytes written, deleted:
    // its only version is wrong.
    let good = fx
        .raw
        .list_object_versions(&fx.bucket, &b_html, None)
        .await
        .unwrap()
        .versions;
    assert_eq!(good.len(), 1, "{good:?}");
    assert!(good[0].is_latest && !good[0].is_delete_marker);
    fx.raw
        .delete_object_version(&fx.bucket, &b_html, &good[0].version_id)
        .await
        .unwrap();
    put_raw(&*fx.raw, &fx.bucket, &b_html, b"not the html either").await;
    fx.lose(&b_html).await;

    let restored = restored_store(&fx, &target);
    let report = restored
        .repair_from_versions::<Document>(&RepairOptions::default(), |_| {})
        .await
        .unwrap();
    assert_eq!(report.present, 2);
    assert_eq!(report.restored.len(), 1, "{:?}", report.restored);
    assert_eq!(report.restored[0].object_key, a_html);
    assert_eq!(report.restored[0].method, RestoreMethod::Copied);
    assert_eq!(report.not_restored.len(), 1, "{:?}", report.not_restored);
    assert_eq!(
        report.not_restored[0].reason,
        NotRestoredReason::ChecksumMismatch { versions: 1 }
    );
    assert!(report.not_restored[0].value.ends_with(&b_html));
    // a reads back whole; b's html still dangles, nothing was written for it.
    assert_eq!(restored.get_large(&a.primary_key()).await.unwrap(), a);
    assert!(fx
        .raw
        .head_object(&fx.bucket, &b_html)
        .await
        .unwrap()
        .is_none());
    let b_read = restored.get_large(&b.primary_key()).await.unwrap_err();
    assert!(
        matches!(b_read, vhs::Error::DanglingPointer { .. }),
        "{b_read}"
    );
}

/// The calls themselves: versions newest first with the latest flagged,
/// delete markers listed, removing the marker brings the object back.
pub async fn bucket_versions_are_listed_and_a_removed_marker_restores(fx: Fixture) {
    let key = format!("{}loose/object", fx.prefix::<Document>());
    put_raw(&*fx.raw, &fx.bucket, &key, b"before versioning").await;
    let listed = fx
        .raw
        .list_object_versions(&fx.bucket, &key, None)
        .await
        .unwrap()
        .versions;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].version_id, "null");
    assert!(listed[0].is_latest);
    backup_consistent(&fx).await;
    put_raw(&*fx.raw, &fx.bucket, &key, b"second").await;
    fx.lose(&key).await;
    let listed = fx
        .raw
        .list_object_versions(&fx.bucket, &key, None)
        .await
        .unwrap()
        .versions;
    let shape: Vec<(bool, bool, u64)> = listed
        .iter()
        .map(|v| (v.is_latest, v.is_delete_marker, v.size))
        .collect();
    assert_eq!(
        shape,
        [(true, true, 0), (false, false, 6), (false, false, 17)],
        "{listed:?}"
    );
    assert_eq!(listed[2].version_id, "null");
    assert!(fx.raw.get_object(&fx.bucket, &key).await.unwrap().is_none());
    let old = fx
        .raw
        .get_object_version(&fx.bucket, &key, "null")
        .await
        .unwrap()
        .expect("the null version");
    assert_eq!(&old.body[..], b"before versioning");
    assert!(fx
        .raw
        .get_object_version(&fx.bucket, &key, &listed[0].version_id)
        .await
        .unwrap()
        .is_none());
    fx.raw
        .delete_object_version(&fx.bucket, &key, &listed[0].version_id)
        .await
        .unwrap();
    let back = fx
        .raw
        .get_object(&fx.bucket, &key)
        .await
        .unwrap()
        .expect("restored");
    assert_eq!(&back.body[..], b"second");
}

pub async fn backup_consistent_refuses_a_short_noncurrent_expiry(fx: Fixture) {
    let spec = BucketSpec {
        noncurrent_version_expiry_days: Some(30),
        versioning: true,
        ..BucketSpec::new(&fx.bucket, "")
    };
    fx.faults.reset();
    let e = fx.store.ensure_bucket_with(&spec).await.unwrap_err();
    assert!(matches!(e, vhs::Error::InvalidInput { .. }), "{e}");
    assert!(e.to_string().contains("at least 35"), "{e}");
    let table = vhs::TableSpec::new(
        fx.store.table_name::<Document>(),
        ("pk", vhs::KeyKind::String),
    );
    let e = fx.store.plan_provision(&table, &spec).await.unwrap_err();
    assert!(e.to_string().contains("at least 35"), "{e}");
    assert!(fx.faults.calls().is_empty(), "{:?}", fx.faults.calls());
    assert_eq!(
        fx.raw.get_bucket_versioning(&fx.bucket).await.unwrap(),
        BucketVersioning::Unversioned
    );
    // Provisioning with backup_consistent: versioned, idempotent.
    let table = table.backup_consistent();
    assert!(table.point_in_time_recovery);
    let spec = BucketSpec::new(&fx.bucket, "").backup_consistent();
    fx.store.ensure_bucket_with(&spec).await.unwrap();
    fx.store.ensure_bucket_with(&spec).await.unwrap();
    assert_eq!(
        fx.raw.get_bucket_versioning(&fx.bucket).await.unwrap(),
        BucketVersioning::Enabled
    );
}
