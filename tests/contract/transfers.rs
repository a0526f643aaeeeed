//! Transfers: multipart uploads above the threshold (aborted on any failure, so
//! no incomplete upload is left), values from files and readers, streamed and
//! ranged downloads with the MD5 checked as the bytes pass.

use bytes::Bytes;
use vhs::BackendExt as _;
use vhs::{Blob, Error, Fault, Model, Op, Store};

use crate::fixture::Fixture;
use crate::models::Video;

/// S3's smallest part: the test store's threshold and part size, so a value of
/// a few parts stays small.
const PART: u64 = 5 * 1024 * 1024;
/// Three parts, the last one short.
const LEN: usize = 2 * PART as usize + 1234;

/// The fixture with a store that uploads anything above one part by multipart.
fn multipart(mut fx: Fixture) -> Fixture {
    fx.store = Store::builder(fx.faults.clone(), fx.bucket.clone())
        .table_for::<Video>(fx.store.table_name::<Video>())
        .multipart_threshold(PART)
        .part_size(PART)
        .build()
        .unwrap();
    fx
}

/// `len` bytes that differ from part to part (and from seed to seed).
pub fn pattern(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| {
            (i as u64)
                .wrapping_mul(2654435761)
                .wrapping_add(u64::from(seed)) as u8
                ^ (i >> 13) as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

fn video(id: &str, data: Blob) -> Video {
    Video {
        id: id.into(),
        data: Some(data),
        thumb: Some(Bytes::from_static(b"thumb")),
    }
}

/// Downloads `attr` of `key` into memory through the streaming API.
async fn download(store: &Store, key: &vhs::Key<Video>) -> vhs::Result<Vec<u8>> {
    let mut out = Vec::new();
    let n = store.download_large(key, "data", &mut out).await?;
    assert_eq!(n, out.len() as u64);
    Ok(out)
}

pub async fn multipart_round_trip_from_bytes_file_and_reader(fx: Fixture) {
    let fx = multipart(fx);
    let dir = tempfile::tempdir().unwrap();

    // From bytes in memory.
    let bytes = pattern(LEN, 1);
    let v = video("bytes", Blob::from(bytes.clone()));
    let staged = fx.store.create_large(&v).await.unwrap();
    assert_eq!(staged.object("data").unwrap().size, LEN as u64);
    let calls = fx.faults.calls();
    let count = |op| calls.iter().filter(|c| **c == op).count();
    assert_eq!(count(Op::CreateMultipartUpload), 1, "{calls:?}");
    assert_eq!(count(Op::UploadPart), 3, "{calls:?}");
    assert_eq!(count(Op::CompleteMultipartUpload), 1, "{calls:?}");
    assert_eq!(count(Op::PutObject), 1, "only the thumbnail: {calls:?}");
    let got = fx.store.get_large(&v.primary_key()).await.unwrap();
    // Three ranges: spooled to a temporary file.
    assert_eq!(got.data.unwrap().to_bytes().await.unwrap(), bytes);
    assert_eq!(got.thumb.unwrap(), Bytes::from_static(b"thumb"));
    assert_eq!(download(&fx.store, &v.primary_key()).await.unwrap(), bytes);

    // From a file, read in two passes (hash, then upload).
    let path = dir.path().join("in.bin");
    let file_bytes = pattern(LEN + 7, 2);
    std::fs::write(&path, &file_bytes).unwrap();
    let v = video("file", Blob::from_file(&path).await.unwrap());
    fx.store.create_large(&v).await.unwrap();
    let out = dir.path().join("out.bin");
    let n = fx
        .store
        .download_large_to_file(&v.primary_key(), "data", &out)
        .await
        .unwrap();
    assert_eq!(n, file_bytes.len() as u64);
    assert_eq!(std::fs::read(&out).unwrap(), file_bytes);

    // From a reader, spooled (and hashed) on the way in.
    let reader_bytes = pattern(LEN - 99, 3);
    let blob = Blob::spool(&reader_bytes[..], dir.path()).await.unwrap();
    assert_eq!(blob.len(), reader_bytes.len() as u64);
    let v = video("reader", blob);
    fx.store.create_large(&v).await.unwrap();
    assert_eq!(
        download(&fx.store, &v.primary_key()).await.unwrap(),
        reader_bytes
    );

    // A small file goes up by one PutObject.
    let small = dir.path().join("small.bin");
    std::fs::write(&small, b"small file").unwrap();
    fx.faults.reset();
    let v = video("small", Blob::from_file(&small).await.unwrap());
    fx.store.create_large(&v).await.unwrap();
    assert!(!fx.faults.calls().contains(&Op::CreateMultipartUpload));
    let got = fx.store.get_large(&v.primary_key()).await.unwrap();
    assert_eq!(&got.data.unwrap().as_bytes().unwrap()[..], b"small file");

    // The identical item again: its object is found by HeadObject, not sent
    // again, and survives the failed create.
    fx.faults.reset();
    let again = video("bytes", Blob::from(bytes.clone()));
    let err = fx.store.create_large(&again).await.unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    let calls = fx.faults.calls();
    assert!(calls.contains(&Op::HeadObject), "{calls:?}");
    assert!(!calls.contains(&Op::CreateMultipartUpload), "{calls:?}");
    assert_eq!(
        download(&fx.store, &again.primary_key()).await.unwrap(),
        bytes
    );

    assert!(fx.uploads().await.is_empty(), "{:?}", fx.uploads().await);
}

pub async fn ranged_reads(fx: Fixture) {
    let fx = multipart(fx);
    let bytes = pattern(LEN, 4);
    let v = video("r", Blob::from(bytes.clone()));
    fx.store.create_large(&v).await.unwrap();
    let key = v.primary_key();
    let read = |r: std::ops::Range<u64>| fx.store.read_large_range(&key, "data", r);
    let p = PART;
    assert_eq!(read(0..10).await.unwrap(), bytes.slice(0..10));
    // Across a part boundary.
    assert_eq!(
        read(p - 5..p + 5).await.unwrap(),
        bytes.slice(p as usize - 5..p as usize + 5)
    );
    // Past the end: cut short; at or after the end: empty.
    let len = LEN as u64;
    assert_eq!(
        read(len - 3..len + 100).await.unwrap(),
        bytes.slice(LEN - 3..)
    );
    assert!(read(len..len + 10).await.unwrap().is_empty());
    assert!(read(len + 10..len + 20).await.unwrap().is_empty());
    assert!(read(5..5).await.unwrap().is_empty());
    // The small attribute too.
    assert_eq!(
        fx.store
            .read_large_range(&key, "thumb", 1..3)
            .await
            .unwrap(),
        Bytes::from_static(b"hu")
    );
    // Bad input.
    assert!(matches!(
        fx.store.read_large_range(&key, "nope", 0..1).await,
        Err(Error::InvalidInput { .. })
    ));
    let none = Video {
        id: "none".into(),
        data: None,
        thumb: None,
    };
    fx.store.create_large(&none).await.unwrap();
    assert!(matches!(
        fx.store
            .read_large_range(&none.primary_key(), "data", 0..1)
            .await,
        Err(Error::InvalidInput { .. })
    ));
}

pub async fn empty_and_small_values_stream(fx: Fixture) {
    let fx = multipart(fx);
    for (id, len) in [("empty", 0), ("one", 1), ("part", PART as usize)] {
        let bytes = pattern(len, 5);
        let v = video(id, Blob::from(bytes.clone()));
        fx.store.create_large(&v).await.unwrap();
        assert_eq!(download(&fx.store, &v.primary_key()).await.unwrap(), bytes);
    }
}

pub async fn failed_multipart_uploads_are_aborted(fx: Fixture) {
    let fx = multipart(fx);
    let bytes = pattern(LEN, 6);
    for (op, nth) in [
        (Op::UploadPart, 2),
        (Op::UploadPart, 3),
        (Op::CompleteMultipartUpload, 1),
        (Op::CreateMultipartUpload, 1),
    ] {
        fx.faults.reset();
        fx.faults.inject(op, nth, Fault::Fail { retryable: false });
        let v = video(&format!("{op:?}-{nth}"), Blob::from(bytes.clone()));
        let err = fx.store.create_large(&v).await.unwrap_err();
        assert!(matches!(err, Error::Backend { .. }), "{op:?}: {err}");
        if op != Op::CreateMultipartUpload {
            assert!(
                fx.faults.calls().contains(&Op::AbortMultipartUpload),
                "{op:?}: {:?}",
                fx.faults.calls()
            );
        }
        assert!(
            fx.uploads().await.is_empty(),
            "{op:?}: {:?}",
            fx.uploads().await
        );
        assert!(fx.item(&v.primary_key()).await.is_none());
        assert!(
            fx.objects()
                .await
                .iter()
                .all(|k| !k.contains(&format!("{op:?}-{nth}"))),
            "{op:?}: {:?}",
            fx.objects().await
        );
    }

    // The completion's answer lost: the object exists; the write is resolved to
    // that and succeeds, and nothing is left in progress.
    fx.faults.reset();
    fx.faults
        .inject(Op::CompleteMultipartUpload, 1, Fault::LoseResponse);
    let v = video("lost", Blob::from(bytes.clone()));
    fx.store.create_large(&v).await.unwrap();
    assert!(fx.uploads().await.is_empty(), "{:?}", fx.uploads().await);
    assert_eq!(download(&fx.store, &v.primary_key()).await.unwrap(), bytes);
}

pub async fn changed_file_is_refused(fx: Fixture) {
    let fx = multipart(fx);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grows.bin");
    std::fs::write(&path, pattern(LEN, 7)).unwrap();
    let blob = Blob::from_file(&path).await.unwrap();
    // The file grows after its length was taken.
    std::fs::write(&path, pattern(LEN + 1, 7)).unwrap();
    let v = video("grows", blob);
    let err = fx.store.create_large(&v).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    assert!(err.to_string().contains("changed"), "{err}");
    assert!(fx.item(&v.primary_key()).await.is_none());
    assert!(fx.uploads().await.is_empty());
    // A missing file is an I/O error, before anything is written.
    let err = Blob::from_file(dir.path().join("missing"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
}

pub async fn tampered_download_is_an_integrity_error(fx: Fixture) {
    let fx = multipart(fx);
    let bytes = pattern(LEN, 8);
    let v = video("t", Blob::from(bytes.clone()));
    let staged = fx.store.create_large(&v).await.unwrap();
    let key = staged.object("data").unwrap().pointer.key.clone();
    // Same length, one byte changed in the last part.
    let mut evil = bytes.to_vec();
    evil[LEN - 1] ^= 1;
    fx.tamper(&key, &evil).await;
    let err = download(&fx.store, &v.primary_key()).await.unwrap_err();
    assert!(matches!(err, Error::Integrity { .. }), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.bin");
    let err = fx
        .store
        .download_large_to_file(&v.primary_key(), "data", &out)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Integrity { .. }), "{err}");
    assert!(
        !out.exists(),
        "a file that failed the check is never put in place"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "the temporary file is removed"
    );
    assert!(matches!(
        fx.store.get_large(&v.primary_key()).await,
        Err(Error::Integrity { .. })
    ));
}

pub async fn gc_aborts_stale_uploads(fx: Fixture) {
    let fx = multipart(fx);
    let prefix = fx.prefix::<Video>();
    let start = vhs::MultipartStart {
        bucket: fx.bucket.clone(),
        key: format!("{prefix}dead/data/md5=00000000000000000000000000000000"),
        content_type: "application/octet-stream".into(),
        content_encoding: None,
        metadata: Default::default(),
        checksum: vhs::ChecksumAlgorithm::Md5,
        storage_class: None,
        tags: Vec::new(),
    };
    // A process died mid-upload.
    let id = fx.raw.create_multipart_upload(&start).await.unwrap();
    fx.raw
        .upload_part(
            &start.bucket,
            &start.key,
            &id,
            1,
            Bytes::from_static(b"x"),
            &vhs::ChecksumAlgorithm::Md5.digest(b"x"),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let listed = fx
        .raw
        .list_multipart_uploads(&fx.bucket, &prefix)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    let gc = |age| {
        let options = vhs::maintenance::GcOptions::default().take_over_after(age);
        let store = fx.store.clone();
        async move { store.gc::<Video>(&options, |_| {}).await.unwrap() }
    };
    // moto reports every upload as started in 2010: there, no upload is young.
    let honest_clock = listed[0].initiated.is_some_and(|t| {
        std::time::SystemTime::now()
            .duration_since(t)
            .is_ok_and(|age| age < std::time::Duration::from_secs(86_400))
    });
    if honest_clock {
        let report = gc(std::time::Duration::from_secs(3600)).await;
        assert_eq!(report.uploads_aborted, 0, "young uploads are kept");
        assert_eq!(fx.uploads().await.len(), 1);
    }
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let dry = {
        let options = vhs::maintenance::GcOptions::default()
            .take_over_after(std::time::Duration::ZERO)
            .dry_run(true);
        fx.store.gc::<Video>(&options, |_| {}).await.unwrap()
    };
    assert_eq!(dry.uploads_aborted, 1);
    assert_eq!(fx.uploads().await.len(), 1, "a dry run aborts nothing");
    let report = gc(std::time::Duration::ZERO).await;
    assert_eq!(report.uploads_aborted, 1);
    assert!(fx.uploads().await.is_empty(), "{:?}", fx.uploads().await);
}

/// GET over plain HTTP/1.0 (the emulator is on loopback): status and body.
fn http_get(url: &str) -> (u16, Vec<u8>) {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_at(rest.find('/').expect("a path"));
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers end");
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, response[split + 4..].to_vec())
}

/// The fixture's store, on the emulator signing as `test`/`test`: ministack checks
/// a presigned URL's signature against its root credentials (the SDK's test
/// credentials are fine for signed requests, not for presigned ones).
async fn signer(fx: &Fixture) -> Store {
    if fx.kind == crate::fixture::Kind::Memory {
        return fx.store.clone();
    }
    let credentials = aws_sdk_s3::config::Credentials::new("test", "test", None, None, "vhs-tests");
    let config = crate::emulator::sdk_config()
        .await
        .to_builder()
        .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(
            credentials,
        ))
        .build();
    let url = crate::emulator::endpoint().await;
    Store::builder(
        vhs::AwsBackend::with_options(&config, vhs::AwsOptions::emulator(url)),
        fx.bucket.clone(),
    )
    .table_for::<Video>(fx.store.table_name::<Video>())
    .build()
    .unwrap()
}

pub async fn presigned_urls(fx: Fixture) {
    let fx = multipart(fx);
    let v = video("p", Blob::from(pattern(1000, 9)));
    let staged = fx.store.create_large(&v).await.unwrap();
    let key = v.primary_key();
    let minute = std::time::Duration::from_secs(60);
    let url = signer(&fx)
        .await
        .presign_large(&key, "data", minute)
        .await
        .unwrap();
    let object = staged.object("data").unwrap().pointer.key.clone();
    match fx.kind {
        crate::fixture::Kind::Memory => {
            assert!(url.starts_with("memory://"), "{url}");
            assert!(url.contains("md5="), "{url}");
        }
        crate::fixture::Kind::Emulator => {
            assert!(url.contains("X-Amz-Signature="), "{url}");
            let forged = {
                let mut f = url.clone();
                let last = f.pop().unwrap();
                f.push(if last == '0' { '1' } else { '0' });
                f
            };
            let (status, body) = tokio::task::spawn_blocking(move || http_get(&url))
                .await
                .unwrap();
            let (forged_status, _) = tokio::task::spawn_blocking(move || http_get(&forged))
                .await
                .unwrap();
            // ministack checks the signature; moto 5.2.5 serves a forged one.
            if crate::emulator::emulator_name().starts_with("ministack") {
                assert_eq!(forged_status, 403, "a forged signature is refused");
            }
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
            assert_eq!(Bytes::from(body), pattern(1000, 9));
        }
    }
    // Expiries outside 1 s..=7 days: refused before anything is sent.
    fx.faults.reset();
    for bad in [0, 7 * 24 * 3600 + 1] {
        let err = fx
            .store
            .presign_large(&key, "data", std::time::Duration::from_secs(bad))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    }
    assert!(fx.faults.calls().is_empty(), "{:?}", fx.faults.calls());
    // Never a URL for a missing object, nor for an attribute the item lacks.
    fx.lose(&object).await;
    assert!(matches!(
        fx.store.presign_large(&key, "data", minute).await,
        Err(Error::DanglingPointer { .. })
    ));
    assert!(matches!(
        fx.store.presign_large(&key, "nope", minute).await,
        Err(Error::InvalidInput { .. })
    ));
}

/// `#[large(compress = "...")]`: the object holds the compressed bytes, its key
/// says how (`enc=`), and every read path gives back the value: get, streamed
/// and file downloads (also of a multipart object), verify with re-hashing.
/// Ranged reads refuse; a tampered object is an integrity error before any
/// decompression is trusted.
pub async fn compressed_values_round_trip(fx: Fixture) {
    use crate::models::Packed;
    let store = Store::builder(fx.faults.clone(), fx.bucket.clone())
        .table_for::<Packed>(fx.store.table_name::<Packed>())
        .multipart_threshold(PART)
        .part_size(PART)
        .build()
        .unwrap();
    let text = "all work and no play ".repeat(20_000);
    let data = br#"{"n": 1, "list": [1, 2, 3]}"#.repeat(10_000);
    // Incompressible (xorshift noise): above the multipart threshold compressed.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let big: Bytes = (0..LEN)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect::<Vec<u8>>()
        .into();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.bin");
    std::fs::write(&file, &big).unwrap();
    let packed = Packed {
        id: "z".into(),
        text: Some(text.clone()),
        data: Some(data.clone()),
        blob: Some(Blob::from_file(&file).await.unwrap()),
    };
    let key = Packed::key("z");
    let staged = store.create_large(&packed).await.unwrap();
    for (attr, codec, raw) in [("text", "zstd", text.len()), ("data", "gzip", data.len())] {
        let o = staged.object(attr).unwrap();
        assert_eq!(o.encoding.map(|e| e.name()), Some(codec));
        assert!(
            o.pointer
                .key
                .contains(&format!("/attr={attr}/enc={codec}/md5=")),
            "{}",
            o.pointer.key
        );
        assert!(o.size < raw as u64 / 20, "{attr}: {} of {raw}", o.size);
        // Stored with its Content-Encoding: an HTTP client handed a presigned
        // URL decodes it.
        let stored = fx
            .raw
            .get_object(&fx.bucket, &o.pointer.key)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.content_encoding.as_deref(), Some(codec), "{attr}");
    }
    // By multipart too.
    let blob = &staged.object("blob").unwrap().pointer.key;
    let stored = fx.raw.get_object(&fx.bucket, blob).await.unwrap().unwrap();
    assert_eq!(stored.content_encoding.as_deref(), Some("zstd"));
    assert!(
        staged.object("blob").unwrap().size > PART,
        "stored by multipart"
    );

    let got = store.get_large(&key).await.unwrap();
    assert_eq!(
        (got.text.as_ref(), got.data.as_ref()),
        (Some(&text), Some(&data))
    );
    assert_eq!(got.blob.unwrap().to_bytes().await.unwrap(), big);
    for (attr, want) in [("text", Bytes::from(text.clone())), ("blob", big.clone())] {
        let mut out = Vec::new();
        let n = store.download_large(&key, attr, &mut out).await.unwrap();
        assert_eq!((n, out.len()), (want.len() as u64, want.len()), "{attr}");
        assert!(out == want, "{attr}: the value, decompressed");
    }
    let path = dir.path().join("out.txt");
    store
        .download_large_to_file(&key, "text", &path)
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    let err = store
        .read_large_range(&key, "text", 0..10)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("compressed"), "{err}");

    let report = store
        .verify::<Packed>(&crate::faults::verify_opts(), |_| {})
        .await
        .unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.pointers, 3);
    let gc = store
        .gc::<Packed>(&crate::faults::gc_now(), |_| {})
        .await
        .unwrap();
    assert!(gc.deleted.is_empty(), "{gc:?}");

    // The same value again from memory: the same object, nothing new stored.
    let before = fx.objects().await;
    store
        .update_large(
            &key,
            Packed::changes().set_blob(Some(Blob::from(big.clone()))),
        )
        .await
        .unwrap();
    store.flush().await;
    assert_eq!(fx.objects().await, before);

    // Tampered: the stored bytes no longer match their key's MD5.
    let text_key = staged.object("text").unwrap().pointer.key.clone();
    fx.tamper(&text_key, b"not zstd at all").await;
    let err = store.get_large(&key).await.unwrap_err();
    assert!(matches!(err, Error::Integrity { .. }), "{err}");
    let mut out = Vec::new();
    let err = store
        .download_large(&key, "text", &mut out)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Integrity { .. }), "{err}");

    store.delete_large(&key).await.unwrap();
    store.flush().await;
    assert_eq!(fx.objects().await, Vec::<String>::new());
}
