//! Presigned uploads: a client sends a value straight to S3 with a plain
//! HTTP client (reqwest on the emulators; the memory backend's stand-in for
//! S3 in memory), then the application commits it through the protocol.

use std::time::Duration;

use sha2::Digest as _;
use vhs::maintenance::GcOptions;
use vhs::{
    BackendExt as _, ChecksumAlgorithm, Error, PresignedUpload, TicketProblem, UploadMethod,
    UploadSpec, UploadTicket,
};

use crate::fixture::Fixture;
use crate::models::Attachment;

fn pdf(n: usize, seed: u8) -> Vec<u8> {
    let mut body = b"%PDF-1.7\n".to_vec();
    body.extend((0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
    body
}

fn sha256(body: &[u8]) -> vhs::Checksum {
    let digest = sha2::Sha256::digest(body).to_vec();
    vhs::Checksum::new(ChecksumAlgorithm::Sha256, digest).unwrap()
}

/// The ticket problem `e` reports, if it is one.
fn problem(e: &Error) -> Option<&TicketProblem> {
    match e {
        Error::Ticket { problem } => Some(problem),
        _ => None,
    }
}

fn attachment(id: &str) -> Attachment {
    Attachment {
        id: id.into(),
        name: format!("{id}.pdf"),
        scan: None,
        thumb: None,
    }
}

/// What the client does to the request, beside sending it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Client {
    AsTold,
    /// Leaves out the checksum header (PUT) or field (POST).
    NoChecksum,
}

/// Sends `body` as the client would. `Err` holds the server's refusal.
async fn send(
    fx: &Fixture,
    upload: &PresignedUpload,
    body: Vec<u8>,
    how: Client,
) -> Result<(), String> {
    let checksum = |name: &str| {
        let name = name.to_ascii_lowercase();
        name == "content-md5" || name.starts_with("x-amz-checksum-")
    };
    let mut upload = upload.clone();
    if how == Client::NoChecksum {
        upload.headers.retain(|(k, _)| !checksum(k));
        upload.fields.retain(|(k, _)| !checksum(k));
    }
    match &fx.memory {
        Some(memory) => memory
            .send_presigned(&upload, body.into())
            .await
            .map_err(|e| e.to_string()),
        None => {
            let client = reqwest::Client::new();
            let response = match upload.method {
                UploadMethod::Put => {
                    let mut request = client.put(&upload.url).body(body);
                    for (k, v) in &upload.headers {
                        request = request.header(k, v);
                    }
                    request.send().await
                }
                UploadMethod::Post => {
                    let mut form = reqwest::multipart::Form::new();
                    for (k, v) in &upload.fields {
                        form = form.text(k.clone(), v.clone());
                    }
                    // A browser names the file; a part without a name is a
                    // text field to some servers (moto decodes it as UTF-8).
                    let file = reqwest::multipart::Part::bytes(body)
                        .file_name("upload.pdf")
                        .mime_str("application/octet-stream")
                        .expect("a MIME type");
                    form = form.part("file", file);
                    client.post(&upload.url).multipart(form).send().await
                }
            }
            .map_err(|e| format!("transport: {e}"))?;
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            if status.is_success() {
                Ok(())
            } else {
                Err(format!("{status}: {text}"))
            }
        }
    }
}

/// Sends `body` with `t`, commits it as a new attachment `id`, and reads it
/// back.
async fn send_and_create(fx: &Fixture, id: &str, t: UploadTicket, body: &[u8]) -> Attachment {
    send(fx, &t.upload, body.to_vec(), Client::AsTold)
        .await
        .unwrap();
    fx.store
        .create_large_from_upload(&attachment(id), &[t])
        .await
        .unwrap();
    fx.store.get_large(&Attachment::key(id)).await.unwrap()
}

async fn ticket(fx: &Fixture, id: &str, spec: UploadSpec) -> UploadTicket {
    fx.store
        .presign_upload::<Attachment>(&Attachment::key(id), "scan", spec)
        .await
        .unwrap()
}

pub async fn a_presigned_put_is_committed_once(fx: Fixture) {
    let body = pdf(3000, 1);
    let t = ticket(
        &fx,
        "a",
        UploadSpec::new(sha256(&body)).size(body.len() as u64),
    )
    .await;
    assert_eq!(t.upload.method, UploadMethod::Put);
    assert!(t.object_key.ends_with(&sha256(&body).segment()), "{t:?}");
    // The ticket travels through the application's API as JSON.
    let t: UploadTicket = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();

    send(&fx, &t.upload, body.clone(), Client::AsTold)
        .await
        .unwrap();
    let staged = fx
        .store
        .create_large_from_upload(&attachment("a"), std::slice::from_ref(&t))
        .await
        .unwrap();
    let object = staged.object("scan").unwrap();
    assert_eq!(object.pointer.key, t.object_key);
    assert_eq!(object.size, body.len() as u64);
    assert!(!object.created, "the client created it, not the commit");

    let read = fx.store.get_large(&Attachment::key("a")).await.unwrap();
    assert_eq!(read.scan.as_deref(), Some(&body[..]));
    assert_eq!(read.name, "a.pdf");
    assert_eq!(read.thumb, None);
    let head = fx
        .raw
        .head_object(&fx.bucket, &t.object_key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        head.metadata[vhs::COMMIT_BY_METADATA],
        t.commit_by.to_string()
    );

    // The same ticket again: refused by the commit (its token is in the
    // history) and by S3 (If-None-Match: the object exists).
    let again = fx
        .store
        .create_large_from_upload(&attachment("a"), std::slice::from_ref(&t))
        .await
        .unwrap_err();
    assert_eq!(problem(&again), Some(&TicketProblem::Used), "{again}");
    let resent = send(&fx, &t.upload, body.clone(), Client::AsTold).await;
    assert!(resent.is_err(), "a second PUT onto the object was accepted");
    assert_eq!(
        fx.store
            .get_large(&Attachment::key("a"))
            .await
            .unwrap()
            .scan
            .as_deref(),
        Some(&body[..])
    );
}

pub async fn a_presigned_post_updates_and_replaces(fx: Fixture) {
    let first = pdf(2000, 2);
    let t1 = ticket(
        &fx,
        "b",
        UploadSpec::new(sha256(&first)).post().max_size(10_000),
    )
    .await;
    assert_eq!(t1.upload.method, UploadMethod::Post);
    assert!(t1.upload.fields.iter().any(|(k, _)| k == "policy") || fx.memory.is_some());
    send(&fx, &t1.upload, first.clone(), Client::AsTold)
        .await
        .unwrap();
    fx.store
        .create_large_from_upload(&attachment("b"), std::slice::from_ref(&t1))
        .await
        .unwrap();

    // A second upload replaces the first: its object is deleted through the
    // protocol, as any update's.
    let second = pdf(2500, 3);
    let t2 = ticket(
        &fx,
        "b",
        UploadSpec::new(sha256(&second)).post().max_size(10_000),
    )
    .await;
    send(&fx, &t2.upload, second.clone(), Client::AsTold)
        .await
        .unwrap();
    let updated = fx
        .store
        .update_large_from_upload(
            &Attachment::key("b"),
            Attachment::changes().set_name("renamed.pdf"),
            std::slice::from_ref(&t2),
        )
        .await
        .unwrap();
    assert_eq!(updated.cleanup.deleted, vec![t1.object_key.clone()]);
    let read = fx.store.get_large(&Attachment::key("b")).await.unwrap();
    assert_eq!(read.scan.as_deref(), Some(&second[..]));
    assert_eq!(read.name, "renamed.pdf");
    assert!(!fx.objects().await.contains(&t1.object_key));

    // An update from an upload of an item that does not exist.
    let t3 = ticket(&fx, "nobody", UploadSpec::new(sha256(&second)).post()).await;
    send(&fx, &t3.upload, second.clone(), Client::AsTold)
        .await
        .unwrap();
    let e = fx
        .store
        .update_large_from_upload(&Attachment::key("nobody"), Attachment::changes(), &[t3])
        .await
        .unwrap_err();
    assert!(e.is_not_found(), "{e}");
}

/// What S3 or the commit refuses, and that nothing is lost either way. The
/// store reads each upload back at its commit: moto stores a checksum header
/// unverified, so the checksum it reports proves nothing there.
pub async fn uploads_of_other_bytes_are_refused(fx: Fixture) {
    let fx = Fixture::with(fx.kind, |b| b.rehash_uploads(true)).await;
    let body = pdf(4000, 4);
    let other = pdf(4000, 5);
    let bigger = pdf(9000, 9);
    for (n, (method, sent, how)) in [
        (UploadMethod::Put, other.clone(), Client::AsTold),
        (UploadMethod::Put, bigger.clone(), Client::AsTold),
        (UploadMethod::Put, other.clone(), Client::NoChecksum),
        (UploadMethod::Post, other.clone(), Client::AsTold),
        (UploadMethod::Post, bigger.clone(), Client::AsTold),
        (UploadMethod::Post, other.clone(), Client::NoChecksum),
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("c{n}");
        let mut spec = UploadSpec::new(sha256(&body)).size(body.len() as u64);
        if method == UploadMethod::Post {
            spec = spec.post();
        }
        let t = ticket(&fx, &id, spec).await;
        let case = format!("case {n}: {method:?} {} bytes, {how:?}", sent.len());
        match send(&fx, &t.upload, sent, how).await {
            // S3 refused: nothing there, nothing to commit.
            Err(refusal) => {
                let e = fx
                    .store
                    .create_large_from_upload(&attachment(&id), std::slice::from_ref(&t))
                    .await
                    .unwrap_err();
                assert!(
                    matches!(e, Error::UploadMissing { .. }),
                    "{case}: {refusal}; {e}"
                );
            }
            // The server took it (an emulator that checks no checksum, size
            // or signature): the commit finds the difference, by the size,
            // by hashing what it reads back, or (moto, which stores the
            // claimed checksum and sends it back) by the SDK's check of the
            // body against that checksum.
            Ok(()) => {
                let e = fx
                    .store
                    .create_large_from_upload(&attachment(&id), std::slice::from_ref(&t))
                    .await
                    .unwrap_err();
                let mismatch = matches!(problem(&e), Some(TicketProblem::Mismatch(_)))
                    || e.to_string().contains("does not match the checksum");
                assert!(mismatch, "{case}: {e}");
                assert!(!e.is_retryable(), "{case}: {e}");
            }
        }
        assert!(fx.item(&Attachment::key(&id)).await.is_none(), "{case}");
    }
}

pub async fn forged_and_misdirected_tickets_are_refused(fx: Fixture) {
    let body = pdf(1000, 6);
    let t = ticket(
        &fx,
        "d",
        UploadSpec::new(sha256(&body)).size(body.len() as u64),
    )
    .await;
    send(&fx, &t.upload, body.clone(), Client::AsTold)
        .await
        .unwrap();
    let forged = |change: fn(&mut UploadTicket)| {
        let mut t = t.clone();
        change(&mut t);
        t
    };
    for bad in [
        forged(|t| t.size = Some(1)),
        forged(|t| t.commit_by += 3600),
        forged(|t| t.object_key = t.object_key.replace("pk=d", "pk=e")),
        forged(|t| t.signature = "00".repeat(32)),
    ] {
        let e = fx
            .store
            .create_large_from_upload(&attachment("d"), &[bad])
            .await
            .unwrap_err();
        assert_eq!(problem(&e), Some(&TicketProblem::Forged), "{e}");
    }
    // A genuine ticket for item `d`, committed as item `e`.
    let e = fx
        .store
        .create_large_from_upload(&attachment("e"), std::slice::from_ref(&t))
        .await
        .unwrap_err();
    assert!(
        matches!(problem(&e), Some(TicketProblem::WrongTarget { .. })),
        "{e}"
    );
    // A commit that also sets a large value itself.
    let mut with_value = attachment("d");
    with_value.thumb = Some(vec![1, 2, 3]);
    let e = fx
        .store
        .create_large_from_upload(&with_value, std::slice::from_ref(&t))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
    // A checksum of another algorithm than the attribute's.
    let md5 = ChecksumAlgorithm::Md5.digest(&body);
    let e = fx
        .store
        .presign_upload::<Attachment>(&Attachment::key("d"), "scan", UploadSpec::new(md5))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("sha256"), "{e}");
    // Another store's secret.
    let other = vhs::Store::builder(fx.raw.clone(), fx.bucket.clone())
        .table_for::<Attachment>(fx.store.table_name::<Attachment>().to_owned())
        .upload_secret(vec![7u8; 32])
        .build()
        .unwrap();
    let e = other
        .create_large_from_upload(&attachment("d"), std::slice::from_ref(&t))
        .await
        .unwrap_err();
    assert_eq!(problem(&e), Some(&TicketProblem::Forged), "{e}");
    assert!(fx.item(&Attachment::key("d")).await.is_none());
    assert!(fx.item(&Attachment::key("e")).await.is_none());
    // The genuine ticket still commits.
    fx.store
        .create_large_from_upload(&attachment("d"), &[t])
        .await
        .unwrap();
}

/// GC leaves an uncommitted upload alone until its ticket's commit deadline,
/// whatever the grace, and collects it after.
pub async fn an_unused_upload_is_collected_after_its_deadline(fx: Fixture) {
    let fx = Fixture::with(fx.kind, |b| b.upload_commit_margin(Duration::ZERO)).await;
    let body = pdf(500, 7);
    let t = ticket(
        &fx,
        "f",
        UploadSpec::new(sha256(&body)).expires_in(Duration::from_secs(3)),
    )
    .await;
    send(&fx, &t.upload, body.clone(), Client::AsTold)
        .await
        .unwrap();
    let gc = GcOptions::default().grace(Duration::ZERO);
    let report = fx.store.gc::<Attachment>(&gc, |_| {}).await.unwrap();
    assert_eq!(report.awaiting_commit, 1, "{report:?}");
    assert!(report.deleted.is_empty(), "{report:?}");
    assert!(fx.objects().await.contains(&t.object_key));

    // Past the deadline (expiry + a zero margin): an orphan like any other.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let report = fx.store.gc::<Attachment>(&gc, |_| {}).await.unwrap();
    assert_eq!(report.awaiting_commit, 0, "{report:?}");
    assert_eq!(report.deleted, vec![t.object_key.clone()], "{report:?}");
    // Committing it now: the deadline passed.
    let e = fx
        .store
        .create_large_from_upload(&attachment("f"), &[t])
        .await
        .unwrap_err();
    assert!(
        matches!(problem(&e), Some(TicketProblem::Expired { .. })),
        "{e}"
    );
}

/// The client never uploaded: the commit says so and writes nothing.
pub async fn a_commit_before_the_upload_is_refused(fx: Fixture) {
    let body = pdf(700, 8);
    let t = ticket(&fx, "g", UploadSpec::new(sha256(&body))).await;
    let e = fx
        .store
        .create_large_from_upload(&attachment("g"), std::slice::from_ref(&t))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::UploadMissing { .. }), "{e}");
    assert!(e.to_string().contains(&t.object_key), "{e}");
    assert!(fx.item(&Attachment::key("g")).await.is_none());
    // Then it does, and the same ticket commits.
    let read = send_and_create(&fx, "g", t, &body).await;
    assert_eq!(read.scan.as_deref(), Some(&body[..]));
}

/// An MD5 attribute: the ETag proves the content, or a read does.
pub async fn an_md5_attribute_takes_presigned_uploads(fx: Fixture) {
    let body = b"a thumbnail".to_vec();
    let t = fx
        .store
        .presign_upload::<Attachment>(
            &Attachment::key("h"),
            "thumb",
            UploadSpec::new(ChecksumAlgorithm::Md5.digest(&body)),
        )
        .await
        .unwrap();
    assert!(
        t.object_key.contains("/attr=thumb/md5="),
        "{}",
        t.object_key
    );
    let read = send_and_create(&fx, "h", t, &body).await;
    assert_eq!(read.thumb.as_deref(), Some(&body[..]));
}

/// A presigned upload's object gets the class and tags of any object of its
/// attribute: the client must send them (signed).
pub async fn presigned_uploads_carry_class_and_tags(fx: Fixture) {
    let fx = Fixture::with(fx.kind, |b| {
        b.storage_class("STANDARD_IA").tag_objects_with_names()
    })
    .await;
    for (id, post) in [("t-put", false), ("t-post", true)] {
        let body = pdf(1200, 10);
        let mut spec = UploadSpec::new(sha256(&body)).size(body.len() as u64);
        if post {
            spec = spec.post();
        }
        let t = ticket(&fx, id, spec).await;
        let read = send_and_create(&fx, id, t.clone(), &body).await;
        assert_eq!(read.scan.as_deref(), Some(&body[..]));
        let head = fx
            .raw
            .head_object(&fx.bucket, &t.object_key)
            .await
            .unwrap()
            .unwrap();
        let tags = fx
            .raw
            .get_object_tagging(&fx.bucket, &t.object_key)
            .await
            .unwrap()
            .unwrap();
        let table = fx.store.table_name::<Attachment>().to_owned();
        let tagged = tags.contains(&(vhs::TABLE_TAG.to_owned(), table))
            && tags.contains(&(vhs::ATTR_TAG.to_owned(), "scan".to_owned()));
        let class = head.storage_class.as_deref();
        // S3's POST form takes tags as a `tagging` XML field. The emulators
        // differ there, pinned here so a change shows: ministack 1.5.33 reads
        // only an `x-amz-tagging` field (a query string) and keeps no tag;
        // moto 5.2.5 keeps neither the `x-amz-storage-class` field nor tags.
        let emulator = fx.memory.is_none().then(crate::emulator::emulator_name);
        match (post, emulator) {
            (true, Some("ministack")) => {
                assert_eq!(class, Some("STANDARD_IA"), "{id}");
                assert!(
                    tags.is_empty(),
                    "{id}: ministack now keeps POST tags: {tags:?}"
                );
            }
            (true, Some("moto")) => {
                assert_eq!(class, None, "{id}: moto now keeps a POST's class");
                assert!(tags.is_empty(), "{id}: moto now keeps POST tags: {tags:?}");
            }
            _ => {
                assert_eq!(class, Some("STANDARD_IA"), "{id}");
                assert!(tagged, "{id}: {tags:?}");
            }
        }
    }
}
