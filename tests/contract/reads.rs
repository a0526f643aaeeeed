//! Reads that survive: a `Blob` value larger than one download range is spooled
//! to a temporary file range by range (never whole in memory); an object read
//! cut midway is read again within the store's retry policy; a listing serves
//! every good item of a page that holds a bad one.

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use vhs::{Blob, Error, Fault, Model, Op, Store};

use crate::fixture::Fixture;
use crate::models::{Packed, Video};

/// S3's smallest part, the test store's part size: a value of a few ranges
/// stays small.
const PART: u64 = 5 * 1024 * 1024;

/// `len` bytes no codec can shrink (an LCG's high bytes), different per seed.
pub fn noise(len: usize, seed: u64) -> Bytes {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        out.extend_from_slice(&(state >> 8).to_le_bytes()[..7]);
    }
    out.truncate(len);
    out.into()
}

/// The fixture's backend under a store with 5 MiB ranges, spooling into `dir`.
fn ranged(fx: &Fixture, dir: &std::path::Path) -> Store {
    Store::builder(fx.faults.clone(), fx.bucket.clone())
        .table_for::<Video>(fx.store.table_name::<Video>())
        .table_for::<Packed>(fx.store.table_name::<Packed>())
        .multipart_threshold(PART)
        .part_size(PART)
        .spool_dir(dir)
        .build()
        .unwrap()
}

/// The names of the files in `dir`.
fn files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

pub async fn blob_reads_larger_than_a_range_are_spooled_to_disk(fx: Fixture) {
    let dir = tempfile::tempdir().unwrap();
    let store = ranged(&fx, dir.path());

    // Three ranges and a bit: read into a file in the spool directory.
    let big = noise(3 * PART as usize + 777, 1);
    let v = Video {
        id: "big".into(),
        data: Some(Blob::from(big.clone())),
        thumb: Some(Bytes::from_static(b"t")),
    };
    store.create_large(&v).await.unwrap();
    let got = store.get_large(&v.primary_key()).await.unwrap();
    let blob = got.data.unwrap();
    assert!(
        blob.as_bytes().is_none(),
        "a large Blob read is not held in memory"
    );
    let path = blob.path().unwrap().to_path_buf();
    assert!(path.starts_with(dir.path()), "{path:?}");
    assert_eq!(blob.len(), big.len() as u64);
    assert_eq!(blob.to_bytes().await.unwrap(), big);
    assert_eq!(got.thumb.unwrap(), Bytes::from_static(b"t"));
    // Stored again unchanged, it is the same object (its MD5 came with it).
    let again = Video {
        id: "big-again".into(),
        data: Some(blob.clone()),
        thumb: None,
    };
    store.create_large(&again).await.unwrap();
    let copy = store.get_large(&again.primary_key()).await.unwrap();
    assert_eq!(copy.data.as_ref().unwrap().to_bytes().await.unwrap(), big);
    drop((blob, copy, again));
    assert!(!path.exists(), "the spooled file goes with the last clone");
    assert_eq!(files(dir.path()), Vec::<String>::new());

    // One range or less: in memory, as before.
    let small = noise(PART as usize, 2);
    let v = Video {
        id: "small".into(),
        data: Some(Blob::from(small.clone())),
        thumb: None,
    };
    store.create_large(&v).await.unwrap();
    let got = store.get_large(&v.primary_key()).await.unwrap();
    assert_eq!(got.data.unwrap().as_bytes().unwrap(), &small);

    // Compressed: the stored bytes are checked, the value decoded into the file.
    let value = noise(2 * PART as usize + 5, 3);
    let p = Packed {
        id: "packed".into(),
        text: None,
        data: None,
        blob: Some(Blob::from(value.clone())),
    };
    store.create_large(&p).await.unwrap();
    let got = store.get_large(&p.primary_key()).await.unwrap();
    let blob = got.blob.unwrap();
    assert!(blob.path().is_some());
    assert_eq!(blob.to_bytes().await.unwrap(), value);

    // A batch read and a scan spool the same way.
    let keys = [Video::key("big"), Video::key("small")];
    let read = store.batch_get_large(&keys).await.unwrap();
    assert!(read[0]
        .as_ref()
        .unwrap()
        .data
        .as_ref()
        .unwrap()
        .path()
        .is_some());
    let scanned: Vec<Video> = store.scan::<Video>().items().try_collect().await.unwrap();
    assert_eq!(scanned.len(), 3);
    for v in &scanned {
        let data = v.data.as_ref().unwrap();
        assert_eq!(data.path().is_some(), data.len() > PART, "{}", v.id);
    }
}

pub async fn object_reads_cut_midway_are_read_again(fx: Fixture) {
    let dir = tempfile::tempdir().unwrap();
    let store = ranged(&fx, dir.path());
    let big = noise(2 * PART as usize + 99, 4);
    let v = Video {
        id: "cut".into(),
        data: Some(Blob::from(big.clone())),
        thumb: Some(noise(1000, 5)),
    };
    store.create_large(&v).await.unwrap();
    let key = v.primary_key();
    let cut = Fault::Fail { retryable: true };

    // A Blob read range by range: the first range, then a later one, cut.
    fx.faults.reset();
    fx.faults.inject(Op::GetObjectRange, 1, cut);
    fx.faults.inject(Op::GetObjectRange, 3, cut);
    // The small value, read whole: cut twice.
    fx.faults.inject(Op::GetObject, 1, cut);
    fx.faults.inject(Op::GetObject, 2, cut);
    let got = store.get_large(&key).await.unwrap();
    assert_eq!(got.data.unwrap().to_bytes().await.unwrap(), big);
    assert_eq!(got.thumb.unwrap(), noise(1000, 5));

    // A streamed download and a ranged read.
    fx.faults.reset();
    fx.faults.inject(Op::GetObjectRange, 2, cut);
    let mut out = Vec::new();
    store.download_large(&key, "data", &mut out).await.unwrap();
    assert_eq!(out, big);
    fx.faults.reset();
    fx.faults.inject(Op::GetObjectRange, 1, cut);
    let part = store.read_large_range(&key, "data", 10..20).await.unwrap();
    assert_eq!(part, big.slice(10..20));

    // verify with rehash streams each object through its hash.
    fx.faults.reset();
    fx.faults.inject(Op::GetObjectRange, 2, cut);
    let report = store
        .verify::<Video>(
            &vhs::maintenance::VerifyOptions::default().rehash(true),
            |_| {},
        )
        .await
        .unwrap();
    assert!(report.is_clean(), "{report:?}");

    // Within the policy only: a read cut every time fails, retryable.
    fx.faults.reset();
    for n in 1..=6 {
        fx.faults.inject(Op::GetObject, n, cut);
    }
    let err = store.get_large(&key).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    // A failure that is not retryable is not repeated.
    fx.faults.reset();
    fx.faults
        .inject(Op::GetObject, 1, Fault::Fail { retryable: false });
    store.get_large(&key).await.unwrap_err();
    let gets = fx
        .faults
        .calls()
        .iter()
        .filter(|c| **c == Op::GetObject)
        .count();
    assert_eq!(gets, 1);
}

pub async fn listings_serve_the_good_items_of_a_page_with_a_bad_one(fx: Fixture) {
    let store = &fx.store;
    for id in ["a", "b", "c"] {
        let v = Video {
            id: id.into(),
            data: Some(Blob::from(format!("data of {id}"))),
            thumb: None,
        };
        store.create_large(&v).await.unwrap();
    }
    // `b`'s object deleted behind the store's back.
    let stored = store.get_stored(&Video::key("b"), true).await.unwrap();
    let uri = stored.pointer("data").unwrap().to_owned();
    let object = uri
        .split_once(&format!("{}/", fx.bucket))
        .unwrap()
        .1
        .to_owned();
    fx.lose(&object).await;

    // `items`: each item on its own; the stream goes on past `b`.
    let results: Vec<vhs::Result<Video>> = store.scan::<Video>().items().collect().await;
    assert_eq!(results.len(), 3);
    let mut good: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|v| v.id.clone()))
        .collect();
    good.sort();
    assert_eq!(good, ["a", "c"]);
    let bad: Vec<&Error> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        matches!(bad[..], [Error::DanglingPointer { .. }]),
        "{bad:?}"
    );
    // `try_collect` still stops at the first bad item.
    assert!(store
        .scan::<Video>()
        .items()
        .try_collect::<Vec<_>>()
        .await
        .is_err());

    // `pages`: the bad item is in `failed`, with its key.
    let pages: Vec<vhs::Page<Video>> = store.scan::<Video>().pages().try_collect().await.unwrap();
    let items: usize = pages.iter().map(|p| p.items.len()).sum();
    let failed: Vec<&vhs::ItemFailure> = pages.iter().flat_map(|p| &p.failed).collect();
    assert_eq!(items, 2);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].key, r#"id="b""#);
    assert!(matches!(failed[0].error, Error::DanglingPointer { .. }));
    assert!(
        failed[0]
            .to_string()
            .starts_with(r#"item id="b": dangling pointer"#),
        "{}",
        failed[0]
    );

    // A query reads the same way.
    let results: Vec<vhs::Result<Video>> = store
        .query::<Video>(Video::ID.eq("b"))
        .items()
        .collect()
        .await;
    assert!(matches!(results[..], [Err(Error::DanglingPointer { .. })]));
}
