//! Contract cases: written once, run over every backend (see `main.rs`).

use bytes::Bytes;
use vhs::types::AttributeValue;
use vhs::BackendExt as _;
use vhs::{Changes, Condition, Error, Json, Model, ObjectKey, Pointer, Stored};

use crate::fixture::{keys_of, put_raw, sorted, Fixture};
use crate::models::{Blob, Document, Meta};

fn uri(fx: &Fixture, key: &str) -> String {
    format!("s3://{}/{}", fx.bucket, key)
}

// ---------------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------------

pub async fn round_trip_with_range_key(fx: Fixture) {
    let doc = Document::sample("p1", "s1");
    let staged = Document::create_large(&fx.store, &doc).await.unwrap();
    assert!(staged
        .attrs()
        .iter()
        .all(|a| a.object.as_ref().unwrap().created));

    let key = Document::key("p1", "s1");
    assert_eq!(Document::get_large(&fx.store, &key).await.unwrap(), doc);
    assert_eq!(
        Document::get_large_consistent(&fx.store, &key)
            .await
            .unwrap(),
        doc
    );

    // The item holds pointers in the documented layout, nothing of the bodies.
    let item = fx.item(&key).await.unwrap();
    let html_md5 = format!(
        "{:x}",
        md5::Md5::digest(doc.html.as_ref().unwrap().as_bytes())
    );
    let html_key = format!(
        "{}pk=p1/sk=s1/attr=html/md5={html_md5}",
        fx.prefix::<Document>()
    );
    assert_eq!(item["html"], AttributeValue::S(uri(&fx, &html_key)));
    assert!(
        matches!(&item["image"], AttributeValue::S(s) if s.starts_with(&uri(&fx, &format!("{}pk=p1/sk=s1/attr=image/md5=", fx.prefix::<Document>()))))
    );
    assert_eq!(fx.objects().await, keys_of(&staged));
    assert!(fx.objects().await.contains(&html_key));

    // Object metadata and content types.
    let object = fx
        .raw
        .get_object(&fx.bucket, &html_key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(object.metadata["pk"], "p1");
    assert_eq!(object.metadata["sk"], "s1");
    assert_eq!(object.metadata["attr"], "html");
    let update_at = &object.metadata["updated_at"];
    assert!(
        update_at.len() >= 20 && update_at.ends_with('Z'),
        "{update_at}"
    );
    assert_eq!(
        object.content_type.as_deref(),
        Some("text/plain; charset=utf-8")
    );
    let image_key = &staged.object("image").unwrap().pointer.key;
    let image = fx
        .raw
        .get_object(&fx.bucket, image_key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(image.content_type.as_deref(), Some("image/png"));
    assert_eq!(image.body.as_ref(), doc.image.as_deref().unwrap());
}

use md5::Digest;

pub async fn round_trip_without_range_key(fx: Fixture) {
    let blob = Blob::sample(42);
    Blob::create_large(&fx.store, &blob).await.unwrap();
    let key = Blob::key(42);
    assert_eq!(Blob::get_large(&fx.store, &key).await.unwrap(), blob);
    let objects = fx.objects().await;
    assert_eq!(objects.len(), 2);
    assert!(
        objects
            .iter()
            .all(|k| k.starts_with(&format!("{}pk=42/attr=", fx.prefix::<Blob>()))),
        "{objects:?}"
    );
    let meta = objects.iter().find(|k| k.contains("attr=meta")).unwrap();
    let o = fx.raw.get_object(&fx.bucket, meta).await.unwrap().unwrap();
    assert_eq!(o.content_type.as_deref(), Some("application/json"));
    assert!(!o.metadata.contains_key("sk"));
    let round: Meta = serde_json::from_slice(&o.body).unwrap();
    assert_eq!(round, blob.meta.unwrap().0);

    Blob::delete_large(&fx.store, &key).await.unwrap();
    assert!(fx.objects().await.is_empty());
}

pub async fn none_means_no_object_and_no_attribute(fx: Fixture) {
    let mut doc = Document::sample("p", "s");
    doc.html = None;
    let staged = fx.store.create_large(&doc).await.unwrap();
    assert_eq!(staged.attrs().len(), 2);
    assert!(staged.object("html").is_none());
    let key = doc.primary_key();
    let item = fx.item(&key).await.unwrap();
    assert!(!item.contains_key("html"));
    assert_eq!(fx.objects().await.len(), 1);
    assert_eq!(fx.store.get_large(&key).await.unwrap(), doc);

    let mut blob = Blob::sample(1);
    blob.body = None;
    blob.meta = None;
    blob.note = None;
    fx.store.create_large(&blob).await.unwrap();
    let item = fx.item(&Blob::key(1)).await.unwrap();
    assert_eq!(item.len(), 1, "only the key: {item:?}");
    assert_eq!(fx.store.get_large(&Blob::key(1)).await.unwrap(), blob);
}

pub async fn empty_values_are_objects(fx: Fixture) {
    let mut doc = Document::sample("p", "s");
    doc.html = Some(String::new());
    doc.image = Some(Vec::new());
    let staged = fx.store.create_large(&doc).await.unwrap();
    for a in staged.attrs() {
        let o = a.object.as_ref().unwrap();
        assert_eq!(o.size, 0);
        assert_eq!(o.checksum.segment(), "md5=d41d8cd98f00b204e9800998ecf8427e");
    }
    // Same empty content, different attributes: two distinct objects.
    assert_eq!(fx.objects().await.len(), 2);
    assert_eq!(fx.store.get_large(&doc.primary_key()).await.unwrap(), doc);
}

pub async fn get_missing_is_not_found(fx: Fixture) {
    let err = fx
        .store
        .get_large(&Document::key("nope", "x"))
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    let err = fx.store.get_stored(&Blob::key(9), true).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
}

pub async fn get_stored_and_load_chosen_attributes(fx: Fixture) {
    let doc = Document::sample("p", "s");
    fx.store.create_large(&doc).await.unwrap();
    fx.faults.reset();
    let mut stored = fx
        .store
        .get_stored(&doc.primary_key(), false)
        .await
        .unwrap();
    assert_eq!(
        fx.faults.calls(),
        vec![vhs::Op::GetItem],
        "no object fetched"
    );
    assert!(stored.model.html.is_none() && stored.model.image.is_none());
    assert_eq!(stored.model.data, doc.data);
    assert!(stored.pointer("html").unwrap().starts_with("s3://"));
    fx.store.load(&mut stored, &["image"]).await.unwrap();
    assert_eq!(stored.model.image, doc.image);
    assert!(stored.model.html.is_none());
    let err = fx.store.load(&mut stored, &["data"]).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
}

// ---------------------------------------------------------------------------------
// Create
// ---------------------------------------------------------------------------------

pub async fn create_over_existing_item_fails_and_cleans_up(fx: Fixture) {
    let first = Document::sample("p", "s");
    let staged = fx.store.create_large(&first).await.unwrap();
    let before = fx.objects().await;

    let mut second = first.clone();
    second.html = Some("other".into());
    let err = fx.store.create_large(&second).await.unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    // The new html object was removed; the shared image object (same content, same
    // key, not created by the second call) was not.
    assert_eq!(fx.objects().await, before);
    assert_eq!(keys_of(&staged), before);
    assert_eq!(
        fx.store.get_large(&first.primary_key()).await.unwrap(),
        first
    );
}

pub async fn create_over_existing_item_without_cleanup_keeps_objects(fx: Fixture) {
    let fx = Fixture::with(fx.kind, |b| b.clean_up_when_failed(false)).await;
    let first = Document::sample("p", "s");
    fx.store.create_large(&first).await.unwrap();
    let mut second = first.clone();
    second.html = Some("other".into());
    let err = fx.store.create_large(&second).await.unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    let other_md5 = format!("{:x}", md5::Md5::digest(b"other"));
    let orphan = format!(
        "{}pk=p/sk=s/attr=html/md5={other_md5}",
        fx.prefix::<Document>()
    );
    assert_eq!(fx.objects().await.len(), 3);
    assert!(fx.objects().await.contains(&orphan));
    assert_eq!(
        fx.store.get_large(&first.primary_key()).await.unwrap(),
        first
    );
}

pub async fn create_identical_twice_deletes_nothing(fx: Fixture) {
    let doc = Document::sample("p", "s");
    fx.store.create_large(&doc).await.unwrap();
    let before = fx.objects().await;
    let err = fx.store.create_large(&doc).await.unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    assert_eq!(fx.objects().await, before);
    assert_eq!(fx.store.get_large(&doc.primary_key()).await.unwrap(), doc);
}

/// Known failure mode (1), create path: the item's object was lost; a create of the
/// same content re-uploads it (this call "created" it), the PutItem fails because
/// the item exists, and the cleanup must not delete the object the item references.
pub async fn create_recreating_lost_object_keeps_it(fx: Fixture) {
    let doc = Document::sample("p", "s");
    let staged = fx.store.create_large(&doc).await.unwrap();
    let html_key = staged.object("html").unwrap().pointer.key.clone();
    fx.lose(&html_key).await;
    let err = fx.store.get_large(&doc.primary_key()).await.unwrap_err();
    assert!(matches!(err, Error::DanglingPointer { .. }), "{err}");

    let err = fx.store.create_large(&doc).await.unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    assert!(
        fx.objects().await.contains(&html_key),
        "guard kept the live object"
    );
    assert_eq!(fx.store.get_large(&doc.primary_key()).await.unwrap(), doc);
}

// ---------------------------------------------------------------------------------
// Update
// ---------------------------------------------------------------------------------

pub async fn update_one_of_two_large_attributes(fx: Fixture) {
    let doc = Document::sample("p", "s");
    let created = fx.store.create_large(&doc).await.unwrap();
    let old_html = created.object("html").unwrap().pointer.key.clone();
    let image = created.object("image").unwrap().pointer.key.clone();
    let key = doc.primary_key();

    let changes = Document::changes()
        .set_html(Some("<p>new</p>".into()))
        .set_data(serde_json::json!({"v": 2}));
    let updated = Document::update_large(&fx.store, &key, changes)
        .await
        .unwrap();
    let new_html = updated.staged.object("html").unwrap().pointer.key.clone();
    assert!(updated.staged.object("html").unwrap().created);
    assert_eq!(updated.cleanup.deleted, vec![old_html.clone()]);
    assert!(updated.cleanup.leftover.is_empty());
    assert_eq!(updated.old["html"], AttributeValue::S(uri(&fx, &old_html)));
    assert_eq!(fx.objects().await, sorted(vec![image, new_html]));

    let got = fx.store.get_large(&key).await.unwrap();
    assert_eq!(got.html.as_deref(), Some("<p>new</p>"));
    assert_eq!(got.image, doc.image);
    assert_eq!(got.data, serde_json::json!({"v": 2}));
    assert_eq!(got.update_at, doc.update_at);
}

pub async fn update_large_attribute_to_none(fx: Fixture) {
    let doc = Document::sample("p", "s");
    let created = fx.store.create_large(&doc).await.unwrap();
    let image = created.object("image").unwrap().pointer.key.clone();
    let updated = fx
        .store
        .update_large(&doc.primary_key(), Document::changes().set_html(None))
        .await
        .unwrap();
    assert_eq!(updated.staged.attrs().len(), 1);
    assert!(updated.staged.object("html").is_none());
    assert_eq!(updated.cleanup.deleted.len(), 1);
    assert_eq!(fx.objects().await, vec![image]);
    let item = fx.item(&doc.primary_key()).await.unwrap();
    assert!(!item.contains_key("html"));
    let got = fx.store.get_large(&doc.primary_key()).await.unwrap();
    assert_eq!(got.html, None);
    assert_eq!(got.image, doc.image);
}

pub async fn update_with_identical_content_keeps_the_object(fx: Fixture) {
    let doc = Document::sample("p", "s");
    let created = fx.store.create_large(&doc).await.unwrap();
    let before = fx.objects().await;
    let updated = fx
        .store
        .update_large(
            &doc.primary_key(),
            Document::changes().set_html(doc.html.clone()),
        )
        .await
        .unwrap();
    assert!(!updated.staged.object("html").unwrap().created);
    assert_eq!(updated.cleanup, vhs::Cleanup::default());
    assert_eq!(fx.objects().await, before);
    assert_eq!(keys_of(&created), before);
    assert_eq!(fx.store.get_large(&doc.primary_key()).await.unwrap(), doc);
}

/// Known failure mode (1), update path: the object was lost, the update re-puts the
/// same content (same key, this call created it), and the post-success cleanup of
/// "the old object" must not delete it: it is the new one.
pub async fn update_recreating_lost_object_keeps_it(fx: Fixture) {
    let doc = Document::sample("p", "s");
    let created = fx.store.create_large(&doc).await.unwrap();
    let html_key = created.object("html").unwrap().pointer.key.clone();
    fx.lose(&html_key).await;
    let updated = fx
        .store
        .update_large(
            &doc.primary_key(),
            Document::changes().set_html(doc.html.clone()),
        )
        .await
        .unwrap();
    assert!(updated.staged.object("html").unwrap().created);
    assert!(updated.cleanup.deleted.is_empty(), "{:?}", updated.cleanup);
    assert!(fx.objects().await.contains(&html_key));
    assert_eq!(fx.store.get_large(&doc.primary_key()).await.unwrap(), doc);
}

pub async fn update_missing_item_is_not_found_and_cleans_up(fx: Fixture) {
    let err = fx
        .store
        .update_large(
            &Document::key("ghost", "s"),
            Document::changes().set_html(Some("x".into())),
        )
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(fx.objects().await.is_empty());
    assert!(
        fx.item(&Document::key("ghost", "s")).await.is_none(),
        "never an upsert"
    );
}

pub async fn update_with_false_condition_fails_and_cleans_up(fx: Fixture) {
    let doc = Document::sample("p", "s");
    fx.store.create_large(&doc).await.unwrap();
    let before = fx.objects().await;
    let changes = Document::changes()
        .set_html(Some("new".into()))
        .condition(Condition::eq("data", AttributeValue::S("nope".into())));
    let err = fx
        .store
        .update_large(&doc.primary_key(), changes)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ConditionFailed { .. }), "{err}");
    assert_eq!(fx.objects().await, before);
    assert_eq!(fx.store.get_large(&doc.primary_key()).await.unwrap(), doc);

    // A true condition passes.
    let mut blob = Blob::sample(5);
    fx.store.create_large(&blob).await.unwrap();
    let changes = Changes::<Blob>::new()
        .set("note", &"changed")
        .condition(Condition::eq("note", "small"));
    fx.store.update_large(&Blob::key(5), changes).await.unwrap();
    blob.note = Some("changed".into());
    assert_eq!(fx.store.get_large(&Blob::key(5)).await.unwrap(), blob);
}

pub async fn update_ordinary_attributes_only(fx: Fixture) {
    let blob = Blob::sample(3);
    fx.store.create_large(&blob).await.unwrap();
    let before = fx.objects().await;
    let updated = fx
        .store
        .update_large(&Blob::key(3), Blob::changes().set_note(None))
        .await
        .unwrap();
    assert!(updated.staged.attrs().is_empty());
    assert_eq!(fx.objects().await, before);
    let item = fx.item(&Blob::key(3)).await.unwrap();
    assert!(!item.contains_key("note"));
    let got = fx.store.get_large(&Blob::key(3)).await.unwrap();
    assert_eq!(got.note, None);
    assert_eq!(got.body, blob.body);
}

/// An update without changes is an existence check: it writes nothing, and a
/// missing item is still `NotFound`, never created.
pub async fn update_without_changes(fx: Fixture) {
    let doc = Document::sample("p", "s");
    fx.store.create_large(&doc).await.unwrap();
    let updated = fx
        .store
        .update_large(&doc.primary_key(), Document::changes())
        .await
        .unwrap();
    assert!(updated.staged.attrs().is_empty());
    assert_eq!(
        Stored::<Document>::from_item(updated.old)
            .unwrap()
            .model
            .data,
        doc.data
    );
    assert_eq!(fx.store.get_large(&doc.primary_key()).await.unwrap(), doc);
    let false_condition = Document::changes().condition(Condition::eq("data", "x"));
    let err = fx
        .store
        .update_large(&doc.primary_key(), false_condition)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ConditionFailed { .. }), "{err}");
    let missing = Document::key("nobody", "s");
    let err = fx
        .store
        .update_large(&missing, Document::changes())
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(fx.item(&missing).await.is_none());
}

pub async fn update_rejects_key_and_large_names_as_ordinary(fx: Fixture) {
    let doc = Document::sample("p", "s");
    fx.store.create_large(&doc).await.unwrap();
    fx.faults.reset();
    for changes in [
        Changes::<Document>::new().set("pk", &"other"),
        Changes::<Document>::new().set("html", &"raw"),
        Changes::<Document>::new().set_large_bytes("data", Some(Bytes::new())),
    ] {
        let err = fx
            .store
            .update_large(&doc.primary_key(), changes)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    }
    assert!(fx.faults.calls().is_empty(), "rejected before any call");
}

pub async fn update_without_post_success_cleanup_keeps_old_objects(fx: Fixture) {
    let fx = Fixture::with(fx.kind, |b| b.clean_up_when_succeeded(false)).await;
    let doc = Document::sample("p", "s");
    let created = fx.store.create_large(&doc).await.unwrap();
    let updated = fx
        .store
        .update_large(
            &doc.primary_key(),
            Document::changes().set_html(Some("v2".into())),
        )
        .await
        .unwrap();
    assert_eq!(updated.cleanup, vhs::Cleanup::default());
    let mut expected = keys_of(&created);
    expected.extend(keys_of(&updated.staged));
    assert_eq!(fx.objects().await, sorted(expected));
}

// ---------------------------------------------------------------------------------
// Delete
// ---------------------------------------------------------------------------------

pub async fn delete_removes_item_and_objects(fx: Fixture) {
    let doc = Document::sample("p", "s");
    fx.store.create_large(&doc).await.unwrap();
    let mut other = Document::sample("p", "t");
    other.html = Some("keep me".into());
    fx.store.create_large(&other).await.unwrap();

    let deleted = Document::delete_large(&fx.store, &doc.primary_key())
        .await
        .unwrap();
    assert_eq!(deleted.cleanup.deleted.len(), 2);
    assert!(deleted.cleanup.leftover.is_empty());
    assert!(deleted.old.as_ref().unwrap().contains_key("html"));
    assert!(fx.item(&doc.primary_key()).await.is_none());
    let left = fx.objects().await;
    assert_eq!(left.len(), 2);
    assert!(
        left.iter()
            .all(|k| k.starts_with(&format!("{}pk=p/sk=t/", fx.prefix::<Document>()))),
        "{left:?}"
    );
    assert_eq!(
        fx.store.get_large(&other.primary_key()).await.unwrap(),
        other
    );

    let err = fx.store.delete_large(&doc.primary_key()).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

pub async fn delete_skips_none_attributes(fx: Fixture) {
    let mut doc = Document::sample("p", "s");
    doc.image = None;
    fx.store.create_large(&doc).await.unwrap();
    let deleted = fx.store.delete_large(&doc.primary_key()).await.unwrap();
    assert_eq!(deleted.cleanup.deleted.len(), 1);
    assert!(fx.objects().await.is_empty());
}

// ---------------------------------------------------------------------------------
// Keys, layout, limits
// ---------------------------------------------------------------------------------

pub async fn hostile_keys_round_trip_without_collisions(fx: Fixture) {
    let pairs = [
        ("a/b", "c"),
        ("a", "b/c"),
        ("a=b", "c=d"),
        ("pk=a", "sk=b"),
        ("a/sk=b", "c"),
        ("a", "b/sk=c"),
        ("100%", "%25"),
        ("100%25", "%"),
        ("with space", "tab\tand\nnewline"),
        ("ünï/cødé", "日本語"),
        ("..", "."),
        ("a+b&c?d#e~f", "'\"<>"),
    ];
    let mut all_keys = Vec::new();
    for (pk, sk) in pairs {
        let mut doc = Document::sample(pk, sk);
        doc.html = Some("same".to_owned());
        let staged = fx.store.create_large(&doc).await.unwrap();
        for k in keys_of(&staged) {
            let prefix = fx.prefix::<Document>();
            let parsed = ObjectKey::parse(prefix.trim_end_matches('/'), &k).expect("parses back");
            assert_eq!(
                (parsed.hash.as_str(), parsed.range.as_deref()),
                (pk, Some(sk))
            );
            all_keys.push(k);
        }
    }
    let mut unique = all_keys.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        all_keys.len(),
        "no two items share an object key"
    );
    assert_eq!(fx.objects().await, unique);
    for (pk, sk) in pairs {
        let got = fx.store.get_large(&Document::key(pk, sk)).await.unwrap();
        assert_eq!((got.pk.as_str(), got.sk.as_str()), (pk, sk));
    }
    for (pk, sk) in pairs {
        fx.store.delete_large(&Document::key(pk, sk)).await.unwrap();
    }
    assert!(fx.objects().await.is_empty());
}

pub async fn prefix_with_slashes_is_normalized(fx: Fixture) {
    let fx = Fixture::with(fx.kind, |b| b.prefix("//tenant//docs/")).await;
    assert_eq!(fx.store.prefix(), "tenant/docs");
    let doc = Document::sample("p", "s");
    let staged = fx.store.create_large(&doc).await.unwrap();
    for k in keys_of(&staged) {
        let table = fx.store.table_name::<Document>();
        assert!(
            k.starts_with(&format!("tenant/docs/{table}/pk=p/sk=s/attr=")),
            "{k}"
        );
        assert!(!k.contains("//"));
        assert!(ObjectKey::parse(&format!("tenant/docs/{table}"), &k).is_some());
    }
    assert_eq!(fx.store.get_large(&doc.primary_key()).await.unwrap(), doc);
}

pub async fn over_long_key_is_rejected_before_writing(fx: Fixture) {
    // 400 '/' escape to 1200 bytes of key.
    let doc = Document::sample(&"/".repeat(400), "s");
    let err = fx.store.create_large(&doc).await.unwrap_err();
    match &err {
        Error::InvalidInput { message } => assert!(message.contains("1024"), "{message}"),
        other => panic!("{other}"),
    }
    assert!(
        fx.faults.calls().is_empty(),
        "nothing sent: {:?}",
        fx.faults.calls()
    );
    assert!(fx.objects().await.is_empty());
    assert!(fx.item(&doc.primary_key()).await.is_none());
}

pub async fn oversized_item_is_rejected_before_writing(fx: Fixture) {
    let mut doc = Document::sample("p", "s");
    doc.data = serde_json::json!({ "big": "x".repeat(500 * 1024) });
    let err = fx.store.create_large(&doc).await.unwrap_err();
    match &err {
        Error::InvalidInput { message } => assert!(message.contains("409600"), "{message}"),
        other => panic!("{other}"),
    }
    assert!(fx.faults.calls().is_empty());
    assert!(fx.objects().await.is_empty());

    fx.store
        .create_large(&Document::sample("p", "s"))
        .await
        .unwrap();
    fx.faults.reset();
    let changes = Document::changes().set_data(serde_json::json!("y".repeat(410 * 1024)));
    let err = fx
        .store
        .update_large(&doc.primary_key(), changes)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    assert!(fx.faults.calls().is_empty());

    // A large value of 1 MiB is fine: it goes to S3.
    let mut big = Document::sample("big", "s");
    big.html = Some("z".repeat(1024 * 1024));
    fx.store.create_large(&big).await.unwrap();
    assert_eq!(fx.store.get_large(&big.primary_key()).await.unwrap(), big);
}

pub async fn empty_key_is_rejected_before_writing(fx: Fixture) {
    let err = fx
        .store
        .create_large(&Document::sample("", "s"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    let err = fx
        .store
        .create_large(&Document::sample("p", ""))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    assert!(fx.faults.calls().is_empty());
}

// ---------------------------------------------------------------------------------
// Reading damaged state
// ---------------------------------------------------------------------------------

pub async fn tampered_object_is_an_integrity_error(fx: Fixture) {
    let doc = Document::sample("p", "s");
    let staged = fx.store.create_large(&doc).await.unwrap();
    let html = staged.object("html").unwrap().pointer.clone();
    fx.tamper(&html.key, b"evil").await;
    let err = fx.store.get_large(&doc.primary_key()).await.unwrap_err();
    match err {
        Error::Integrity {
            attr,
            uri,
            expected,
            actual,
        } => {
            assert_eq!(attr, "html");
            assert_eq!(uri, html.uri());
            assert_eq!(expected, staged.object("html").unwrap().checksum);
            assert_eq!(actual.hex(), format!("{:x}", md5::Md5::digest(b"evil")));
            assert_eq!(actual.algorithm(), vhs::ChecksumAlgorithm::Md5);
        }
        other => panic!("{other}"),
    }
}

pub async fn lost_object_is_a_dangling_pointer(fx: Fixture) {
    let doc = Document::sample("p", "s");
    let staged = fx.store.create_large(&doc).await.unwrap();
    let image = staged.object("image").unwrap().pointer.clone();
    fx.lose(&image.key).await;
    let err = fx.store.get_large(&doc.primary_key()).await.unwrap_err();
    match &err {
        Error::DanglingPointer { attr, uri } => {
            assert_eq!(attr, "image");
            assert_eq!(uri, &image.uri());
        }
        other => panic!("{other}"),
    }
    assert!(!err.is_not_found());
}

pub async fn foreign_pointers_are_refused_never_followed(fx: Fixture) {
    let doc = Document::sample("p", "s");
    fx.store.create_large(&doc).await.unwrap();
    // An object of another item, and values that are no pointers at all.
    let victim = Document::sample("victim", "s");
    let victim_staged = fx.store.create_large(&victim).await.unwrap();
    let victim_key = victim_staged.object("html").unwrap().pointer.key.clone();
    put_raw(&*fx.raw, &fx.bucket, "outside/secret", b"secret").await;

    let values = [
        "not a uri".to_owned(),
        "s3://other-bucket/pk=p/sk=s/attr=html/md5=d41d8cd98f00b204e9800998ecf8427e".to_owned(),
        uri(&fx, "outside/secret"),
        uri(&fx, &victim_key),
    ];
    for value in values {
        let mut item = fx.item(&doc.primary_key()).await.unwrap();
        item.insert("html".into(), AttributeValue::S(value.clone()));
        fx.raw.put_item(&fx.tables.0, item, None).await.unwrap();
        let result = fx.store.get_large(&doc.primary_key()).await;
        // Another item's object too: its owner may delete it at any time.
        let err = result.unwrap_err();
        assert!(matches!(err, Error::BadPointer { .. }), "{value}: {err}");
    }
    // ... but a delete never touches an object that does not belong to the item.
    let deleted = fx.store.delete_large(&doc.primary_key()).await.unwrap();
    assert!(!deleted.cleanup.deleted.contains(&victim_key));
    assert!(fx.objects().await.contains(&victim_key));
    assert!(fx.objects().await.contains(&"outside/secret".to_owned()));
    assert_eq!(
        fx.store.get_large(&victim.primary_key()).await.unwrap(),
        victim
    );
}

// ---------------------------------------------------------------------------------
// Step-by-step API (backend-neutral)
// ---------------------------------------------------------------------------------

pub async fn step_by_step_put_item_flow(fx: Fixture) {
    let doc = Document::sample("p", "s");
    let key = doc.primary_key();
    let staged = fx
        .store
        .put_s3(&key, vhs::LargeValues::of(&doc).unwrap())
        .await
        .unwrap();
    assert_eq!(fx.objects().await, keys_of(&staged));
    for a in staged.attrs() {
        let o = a.object.as_ref().unwrap();
        assert!(o.created);
        assert_eq!(o.pointer.bucket, fx.bucket);
        assert_eq!(
            o.pointer.key,
            fx.store.object_key(&key, a.attr, &o.checksum).unwrap()
        );
    }
    // Our own PutItem, with our own condition.
    let mut item = doc.to_item().unwrap();
    item.extend(staged.to_put_attributes());
    item.insert("owner".into(), AttributeValue::S("me".into()));
    let table = fx.store.table_name::<Document>().to_owned();
    let put = fx
        .raw
        .put_item(&table, item, Some(&Condition::not_exists("pk")))
        .await
        .unwrap();
    assert_eq!(put, vhs::Conditional::Applied(None));
    assert_eq!(fx.store.get_large(&key).await.unwrap(), doc);

    // A second writer stages other content, its PutItem fails, its hook cleans up.
    let mut other = doc.clone();
    other.html = Some("rival".into());
    let staged2 = fx
        .store
        .put_s3(&key, vhs::LargeValues::of(&other).unwrap())
        .await
        .unwrap();
    assert_eq!(staged2.created_keys().len(), 1, "the image is shared");
    let mut item = other.to_item().unwrap();
    item.extend(staged2.to_put_attributes());
    let put = fx
        .raw
        .put_item(&table, item, Some(&Condition::not_exists("pk")))
        .await
        .unwrap();
    assert!(matches!(put, vhs::Conditional::Failed(Some(_))));
    let cleanup = fx.store.clean_up_after_create_failed(&staged2).await;
    assert_eq!(cleanup.deleted, staged2.created_keys());
    assert_eq!(fx.objects().await, keys_of(&staged));
}

pub async fn step_by_step_update_flow(fx: Fixture) {
    let doc = Document::sample("p", "s");
    let key = doc.primary_key();
    fx.store.create_large(&doc).await.unwrap();
    let table = fx.store.table_name::<Document>().to_owned();

    let values = vhs::LargeValues::<Document>::new()
        .with("html", Some(Bytes::from_static(b"v2")))
        .unwrap()
        .with("image", None)
        .unwrap();
    let staged = fx.store.put_s3(&key, values).await.unwrap();
    let fragment = staged.to_update_fragment();
    assert_eq!(
        fragment.expression(),
        "SET #vhsn0 = :vhsv0, #vhsn1 = :vhsv1 REMOVE #vhsn2"
    );
    assert_eq!(
        fragment.names["#vhsn0"], "vhs:tok",
        "the write's token history"
    );
    assert_eq!(fragment.names["#vhsn1"], "html");
    assert_eq!(fragment.names["#vhsn2"], "image");

    // Failed update: the hook removes only what this call created.
    let update = staged.to_item_update();
    let result = fx
        .raw
        .update_item(
            &table,
            &key.to_item(),
            &update,
            Some(&Condition::exists("nope")),
        )
        .await
        .unwrap();
    assert!(matches!(result, vhs::Conditional::Failed(Some(_))));
    let cleanup = fx.store.clean_up_after_update_failed(&staged).await;
    assert_eq!(cleanup.deleted, staged.created_keys());
    assert_eq!(fx.store.get_large(&key).await.unwrap(), doc);

    // Successful update: the hook removes the old objects.
    let staged = fx
        .store
        .put_s3(
            &key,
            vhs::LargeValues::<Document>::new()
                .with("html", Some(Bytes::from_static(b"v2")))
                .unwrap()
                .with("image", None)
                .unwrap(),
        )
        .await
        .unwrap();
    let condition = Condition::exists("pk").and(staged.condition());
    let old = match fx
        .raw
        .update_item(
            &table,
            &key.to_item(),
            &staged.to_item_update(),
            Some(&condition),
        )
        .await
        .unwrap()
    {
        vhs::Conditional::Applied(old) => old,
        other => panic!("{other:?}"),
    };
    let cleanup = fx
        .store
        .clean_up_after_update_succeeded(&staged, &old)
        .await;
    assert_eq!(cleanup.deleted.len(), 2, "old html and old image");
    assert_eq!(fx.objects().await, keys_of(&staged));
    let got = fx.store.get_large(&key).await.unwrap();
    assert_eq!(got.html.as_deref(), Some("v2"));
    assert_eq!(got.image, None);

    // The staged condition holds the state put_s3 read: a write in between makes
    // the commit fail, and the caller starts again from put_s3.
    let staged = fx
        .store
        .put_s3(
            &key,
            vhs::LargeValues::<Document>::new()
                .with("html", Some(Bytes::from_static(b"v3")))
                .unwrap(),
        )
        .await
        .unwrap();
    fx.store
        .update_large(
            &key,
            Document::changes().set_data(serde_json::json!({"between": true})),
        )
        .await
        .unwrap();
    let result = fx
        .raw
        .update_item(
            &table,
            &key.to_item(),
            &staged.to_item_update(),
            Some(&staged.condition()),
        )
        .await
        .unwrap();
    assert!(matches!(result, vhs::Conditional::Failed(Some(_))));
    fx.store.clean_up_after_update_failed(&staged).await;
    let got = fx.store.get_large(&key).await.unwrap();
    assert_eq!(got.data, serde_json::json!({"between": true}));
    assert_eq!(got.html.as_deref(), Some("v2"));
    assert_eq!(
        fx.objects().await.len(),
        1,
        "the v2 html only: v3 was removed"
    );
}

pub async fn json_wrapper_and_bytes_update(fx: Fixture) {
    let blob = Blob::sample(8);
    fx.store.create_large(&blob).await.unwrap();
    let meta = Json(Meta {
        tags: vec![],
        score: 2.0,
    });
    fx.store
        .update_large(
            &Blob::key(8),
            Blob::changes()
                .set_meta(Some(meta.clone()))
                .set_body(Some(Bytes::from_static(b"abc"))),
        )
        .await
        .unwrap();
    let got = fx.store.get_large(&Blob::key(8)).await.unwrap();
    assert_eq!(got.meta, Some(meta));
    assert_eq!(got.body.as_deref(), Some(&b"abc"[..]));
    assert_eq!(fx.objects().await.len(), 2);
    let item = fx.item(&Blob::key(8)).await.unwrap();
    let pointer = Pointer::parse(item["body"].as_s().unwrap()).unwrap();
    assert_eq!(pointer.bucket, fx.bucket);
    assert!(
        pointer
            .key
            .starts_with(&format!("{}pk=8/attr=body/md5=", fx.prefix::<Blob>())),
        "{pointer}"
    );
}

pub async fn batch_get_large_reads_many_items_in_order(fx: Fixture) {
    // 230 items, 20 keys never written, one deleted item (a placeholder), and one
    // key twice: three BatchGetItem chunks.
    let docs: Vec<Document> = (0..230)
        .map(|i| Document::sample(&format!("p{i}"), "s"))
        .collect();
    futures::future::join_all(docs.iter().map(|d| fx.store.create_large(d)))
        .await
        .into_iter()
        .for_each(|r| {
            r.unwrap();
        });
    fx.store.delete_large(&docs[7].primary_key()).await.unwrap();
    let mut keys: Vec<_> = docs.iter().map(|d| d.primary_key()).collect();
    keys.extend((0..20).map(|i| Document::key(format!("missing{i}"), "s".to_owned())));
    keys.push(docs[3].primary_key());
    fx.faults.reset();
    let got = fx.store.batch_get_large(&keys).await.unwrap();
    assert_eq!(got.len(), keys.len());
    for (i, doc) in docs.iter().enumerate() {
        if i == 7 {
            assert!(got[i].is_none(), "a deleted item reads as absent");
        } else {
            assert_eq!(got[i].as_ref(), Some(doc), "item {i}");
        }
    }
    assert!(got[230..250].iter().all(Option::is_none));
    assert_eq!(got[250].as_ref(), Some(&docs[3]));
    let calls = fx.faults.calls();
    assert_eq!(
        calls
            .iter()
            .filter(|c| **c == vhs::Op::BatchGetItem)
            .count(),
        3,
        "{calls:?}"
    );
    assert!(fx
        .store
        .batch_get_large::<Document>(&[])
        .await
        .unwrap()
        .is_empty());
}

pub async fn batch_get_large_asks_again_for_unprocessed_keys(fx: Fixture) {
    // 60 items of ~300 KB: 18 MB, over BatchGetItem's 16 MB answer.
    let docs: Vec<Document> = (0..60)
        .map(|i| Document {
            data: serde_json::json!("x".repeat(300 * 1024)),
            ..Document::sample(&format!("big{i}"), "s")
        })
        .collect();
    for d in &docs {
        fx.store.create_large(d).await.unwrap();
    }
    fx.faults.reset();
    let keys: Vec<_> = docs.iter().map(|d| d.primary_key()).collect();
    let got = fx.store.batch_get_large(&keys).await.unwrap();
    for (doc, got) in docs.iter().zip(&got) {
        assert_eq!(got.as_ref(), Some(doc));
    }
    let batches = fx
        .faults
        .calls()
        .iter()
        .filter(|c| **c == vhs::Op::BatchGetItem)
        .count();
    if fx.kind == crate::fixture::Kind::Memory {
        assert!(
            batches >= 2,
            "the unprocessed keys were asked again: {batches}"
        );
    }
}

pub async fn batch_create_and_delete_report_each_item(fx: Fixture) {
    // 40 items (more than one wave of `max_concurrency`), one of which exists.
    let docs: Vec<Document> = (0..40)
        .map(|i| Document::sample(&format!("b{i}"), "s"))
        .collect();
    let existing = Document {
        html: Some("first".into()),
        ..docs[5].clone()
    };
    fx.store.create_large(&existing).await.unwrap();
    let outcomes = fx.store.batch_create_large(&docs).await.unwrap();
    assert_eq!(outcomes.len(), docs.len());
    for (i, outcome) in outcomes.iter().enumerate() {
        match outcome {
            Err(Error::AlreadyExists { .. }) if i == 5 => {}
            Ok(staged) if i != 5 => {
                let html = docs[i].html.as_ref().unwrap();
                assert_eq!(staged.object("html").unwrap().size, html.len() as u64);
            }
            other => panic!("item {i}: {other:?}"),
        }
    }
    let keys: Vec<_> = docs.iter().map(|d| d.primary_key()).collect();
    let got = fx.store.batch_get_large(&keys).await.unwrap();
    for (i, (doc, got)) in docs.iter().zip(&got).enumerate() {
        let want = if i == 5 { &existing } else { doc };
        assert_eq!(got.as_ref(), Some(want), "item {i}");
    }

    // Deletes: every item, and one key that was never written.
    let mut keys = keys;
    keys.push(Document::key("never".to_owned(), "s".to_owned()));
    let outcomes = fx.store.batch_delete_large(&keys).await.unwrap();
    for (i, outcome) in outcomes.iter().enumerate() {
        match outcome {
            Err(Error::NotFound { .. }) if i == 40 => {}
            Ok(deleted) if i < 40 => assert!(deleted.cleanup.leftover.is_empty()),
            other => panic!("key {i}: {other:?}"),
        }
    }
    fx.store.flush().await;
    assert_eq!(fx.objects().await, Vec::<String>::new());
    assert!(fx.store.batch_get_large(&keys).await.unwrap()[..40]
        .iter()
        .all(Option::is_none));
}

pub async fn batch_writes_check_every_input_before_sending(fx: Fixture) {
    let good: Vec<Document> = (0..5)
        .map(|i| Document::sample(&format!("g{i}"), "s"))
        .collect();
    // One item too large for DynamoDB (its ordinary attribute alone is 500 KB),
    // one whose object key would be too long for S3, one given twice.
    let too_big = Document {
        data: serde_json::json!("x".repeat(500 * 1024)),
        ..Document::sample("big", "s")
    };
    let long_key = Document::sample(&"k".repeat(1000), "s");
    let twice = good[2].clone();
    for (bad, says) in [
        (too_big, "after its large values moved to S3"),
        (long_key, "above S3's limit"),
        (twice, "appears twice"),
    ] {
        let mut batch = good.clone();
        batch.push(bad);
        batch.push(Document::sample("last", "s"));
        fx.faults.reset();
        let err = fx.store.batch_create_large(&batch).await.unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
        assert!(err.to_string().contains(says), "{err}");
        assert_eq!(fx.faults.calls(), vec![], "nothing was sent");
    }
    let mut keys: Vec<_> = good.iter().map(|d| d.primary_key()).collect();
    keys.push(good[0].primary_key());
    let err = fx.store.batch_delete_large(&keys).await.unwrap_err();
    assert!(err.to_string().contains("appears twice"), "{err}");
    assert_eq!(fx.faults.calls(), vec![], "nothing was sent");
    assert_eq!(fx.objects().await, Vec::<String>::new());
    assert!(fx
        .store
        .batch_create_large::<Document>(&[])
        .await
        .unwrap()
        .is_empty());
}

/// `#[large(inline_below = N)]`: values below N bytes are binary attributes of
/// the item, values at or above N are objects; both read back the same, an
/// update moves a value between the two forms and deletes what it replaced, and
/// verify and GC count inline values as values, not as broken pointers.
pub async fn inline_values_live_in_the_item(fx: Fixture) {
    use crate::models::Memo;
    let key = Memo::key("m");
    let small = Memo::with("m", 1023, 1);
    let staged = fx.store.create_large(&small).await.unwrap();
    assert!(staged.object("body").is_none() && staged.object("title").is_none());
    assert_eq!(fx.objects().await, Vec::<String>::new(), "nothing in S3");
    let item = fx.item(&key).await.unwrap();
    assert_eq!(
        item.get("body"),
        Some(&AttributeValue::B(vec![1u8; 1023].into()))
    );
    assert!(matches!(item.get("title"), Some(AttributeValue::B(_))));
    fx.faults.reset();
    assert_eq!(fx.store.get_large(&key).await.unwrap(), small);
    assert_eq!(fx.faults.calls(), vec![vhs::Op::GetItem], "one request");

    // At the threshold the value goes to S3; the title and an attachment too.
    let big = Memo {
        attachment: Some(vec![7; 10]),
        ..Memo::with("m", 1024, 2)
    };
    let changes = Memo::changes()
        .set_body(big.body.clone())
        .set_attachment(big.attachment.clone())
        .set_n(2);
    fx.store.update_large(&key, changes).await.unwrap();
    fx.store.flush().await;
    let objects = fx.objects().await;
    assert_eq!(objects.len(), 2, "{objects:?}");
    assert!(matches!(
        fx.item(&key).await.unwrap().get("body"),
        Some(AttributeValue::S(_))
    ));
    let got = fx.store.get_large(&key).await.unwrap();
    assert_eq!(
        (got.body, got.attachment),
        (big.body.clone(), big.attachment)
    );

    // Streamed, ranged and presigned reads of both forms.
    let mut out = Vec::new();
    let n = fx
        .store
        .download_large(&key, "title", &mut out)
        .await
        .unwrap();
    assert_eq!((n, out.as_slice()), (6, b"memo m".as_slice()));
    let range = fx
        .store
        .read_large_range(&key, "title", 2..100)
        .await
        .unwrap();
    assert_eq!(&range[..], b"mo m");
    let err = fx
        .store
        .presign_large(&key, "title", std::time::Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    assert!(err.to_string().contains("kept in the item"), "{err}");
    let range = fx.store.read_large_range(&key, "body", 1..3).await.unwrap();
    assert_eq!(&range[..], &[2, 2]);

    // Back below the threshold: the body's object is deleted as replaced.
    fx.store
        .update_large(&key, Memo::changes().set_body(small.body.clone()))
        .await
        .unwrap();
    fx.store.flush().await;
    assert_eq!(fx.objects().await.len(), 1, "only the attachment is left");
    assert_eq!(
        fx.store.get_large(&key).await.unwrap().body,
        small.body.clone()
    );

    // batch reads, verify and GC.
    let other = Memo::with("o", 10, 3);
    fx.store.create_large(&other).await.unwrap();
    let got = fx
        .store
        .batch_get_large(&[key.clone(), Memo::key("o")])
        .await
        .unwrap();
    assert_eq!(got[1].as_ref(), Some(&other));
    assert_eq!(got[0].as_ref().unwrap().body, small.body);
    let report = fx
        .store
        .verify::<Memo>(&crate::faults::verify_opts(), |_| {})
        .await
        .unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!((report.pointers, report.inline), (1, 4), "{report:?}");
    let gc = fx
        .store
        .gc::<Memo>(&crate::faults::gc_now(), |_| {})
        .await
        .unwrap();
    assert!(gc.deleted.is_empty(), "{gc:?}");

    fx.store.delete_large(&key).await.unwrap();
    fx.store.flush().await;
    assert_eq!(fx.objects().await, Vec::<String>::new());
}

/// The step-by-step API with inline values: the staged attribute carries the
/// value, and the attributes to merge write it into the item.
pub async fn staged_inline_values_merge_into_your_write(fx: Fixture) {
    use crate::models::Memo;
    let memo = Memo::with("s", 20, 4);
    let key = Memo::key("s");
    let staged = fx
        .store
        .put_s3(&key, vhs::LargeValues::of(&memo).unwrap())
        .await
        .unwrap();
    let body = staged.attrs().iter().find(|a| a.attr == "body").unwrap();
    assert_eq!(
        (body.object.as_ref(), body.inline.as_ref()),
        (None, memo.body.as_ref())
    );
    let mut item = memo.to_item().unwrap();
    item.extend(staged.to_put_attributes());
    let put = fx
        .store
        .backend()
        .put_item(
            fx.store.table_name::<Memo>(),
            item,
            Some(&staged.condition()),
        )
        .await
        .unwrap();
    assert!(matches!(put, vhs::Conditional::Applied(_)), "{put:?}");
    assert_eq!(fx.store.get_large(&key).await.unwrap(), memo);
    assert_eq!(fx.objects().await, Vec::<String>::new());

    // An update fragment sets the inline value too.
    let changes = vhs::LargeValues::<Memo>::new()
        .with("body", Some(Bytes::from_static(b"new")))
        .unwrap();
    let staged = fx.store.put_s3(&key, changes).await.unwrap();
    let update = staged.to_item_update();
    fx.store
        .backend()
        .update_item(
            fx.store.table_name::<Memo>(),
            &key.to_item(),
            &update,
            Some(&staged.condition()),
        )
        .await
        .unwrap();
    let got = fx.store.get_large(&key).await.unwrap();
    assert_eq!(got.body, Some(Bytes::from_static(b"new")));
}

/// A background job that panics (here: in the `on_cleanup` callback) is
/// counted out: `flush` returns instead of waiting for it forever.
pub async fn flush_returns_after_a_panicking_background_job(fx: Fixture) {
    let fx = Fixture::with(fx.kind, |b| {
        b.defer_cleanup(true)
            .on_cleanup(|_| panic!("on_cleanup panicked (on purpose)"))
    })
    .await;
    let doc = Document::sample("p", "s");
    fx.store.create_large(&doc).await.unwrap();
    fx.store.delete_large(&doc.primary_key()).await.unwrap();
    let flushed = tokio::time::timeout(std::time::Duration::from_secs(20), fx.store.flush()).await;
    assert!(flushed.is_ok(), "flush hung on a panicked job");
    // The queue still works afterwards.
    fx.store.create_large(&doc).await.unwrap();
    assert_eq!(fx.store.get_large(&doc.primary_key()).await.unwrap(), doc);
}
