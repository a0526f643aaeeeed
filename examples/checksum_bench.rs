//! The cost of each content-address algorithm (`#[large(checksum = "...")]`):
//! hashing in process, and create / get throughput on the in-memory backend,
//! printed as two tables.
//!
//! ```text
//! cargo run --release --example checksum_bench
//! cargo run --release --example checksum_bench -- --items 100 --size 1048576
//! ```
//!
//! Each item has one large attribute of `--size` bytes. A create hashes the
//! value once (key and upload header) and the memory backend hashes it again
//! to check the header, as S3 does; a get hashes it once to check it against
//! its key. One caller.

use std::time::Instant;

use bytes::Bytes;
use vhs::{ChecksumAlgorithm, MemoryBackend, Model, Store};

#[derive(Model, Debug, Clone)]
#[vhs(table = "bench_md5")]
struct Md5Item {
    #[vhs(hash_key)]
    id: String,
    #[large(checksum = "md5")]
    data: Option<Bytes>,
}

#[derive(Model, Debug, Clone)]
#[vhs(table = "bench_sha256")]
struct Sha256Item {
    #[vhs(hash_key)]
    id: String,
    #[large(checksum = "sha256")]
    data: Option<Bytes>,
}

#[derive(Model, Debug, Clone)]
#[vhs(table = "bench_crc64nvme")]
struct Crc64Item {
    #[vhs(hash_key)]
    id: String,
    #[large(checksum = "crc64nvme")]
    data: Option<Bytes>,
}

const MIB: usize = 1024 * 1024;

struct Args {
    items: usize,
    size: usize,
    hash_mib: usize,
}

fn args() -> Args {
    let mut a = Args {
        items: 100,
        size: MIB,
        hash_mib: 512,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--items" => a.items = value.parse().expect("--items N"),
            "--size" => a.size = value.parse().expect("--size BYTES"),
            "--hash-mib" => a.hash_mib = value.parse().expect("--hash-mib N"),
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

/// MiB/s of `algorithm` over `mib` MiB, fed one MiB at a time.
fn hash_rate(algorithm: ChecksumAlgorithm, mib: usize) -> f64 {
    let chunk: Vec<u8> = (0..MIB).map(|i| (i * 31 % 251) as u8).collect();
    let started = Instant::now();
    let mut hasher = algorithm.hasher();
    for _ in 0..mib {
        hasher.update(&chunk);
    }
    std::hint::black_box(hasher.finish());
    mib as f64 / started.elapsed().as_secs_f64()
}

/// Creates then gets `items` items of `make(i)`; returns (creates/s, gets/s).
async fn throughput<M: Model + Clone>(
    store: &Store,
    items: usize,
    make: impl Fn(usize) -> M,
) -> (f64, f64) {
    store.ensure_table::<M>().await.expect("table");
    let all: Vec<M> = (0..items).map(&make).collect();
    let started = Instant::now();
    for item in &all {
        store.create_large(item).await.expect("create");
    }
    let creates = items as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    for item in &all {
        std::hint::black_box(store.get_large(&item.primary_key()).await.expect("get"));
    }
    let gets = items as f64 / started.elapsed().as_secs_f64();
    (creates, gets)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = args();
    println!("hash in process, {} MiB fed 1 MiB at a time:\n", a.hash_mib);
    println!("| algorithm | MiB/s | ms per MiB |");
    println!("|---|---:|---:|");
    for algorithm in [
        ChecksumAlgorithm::Md5,
        ChecksumAlgorithm::Sha256,
        ChecksumAlgorithm::Crc64Nvme,
    ] {
        hash_rate(algorithm, 16); // warm up
        let rate = hash_rate(algorithm, a.hash_mib);
        println!("| {algorithm} | {rate:.0} | {:.3} |", 1000.0 / rate);
    }

    let store = Store::builder(MemoryBackend::new(), "bench")
        .build()
        .expect("store");
    store.ensure_bucket().await.expect("bucket");
    let value = Bytes::from(
        (0..a.size)
            .map(|i| (i as u64).wrapping_mul(2654435761) as u8)
            .collect::<Vec<u8>>(),
    );
    // Each item's value differs (its first 8 bytes), so no object is shared.
    let distinct = |i: usize| {
        let mut v = value.to_vec();
        let n = v.len().min(8);
        v[..n].copy_from_slice(&(i as u64).to_be_bytes()[..n]);
        Some(Bytes::from(v))
    };
    println!(
        "\nMemoryBackend, one caller, {} items of one {}-byte attribute:\n",
        a.items, a.size
    );
    println!("| algorithm | create_large items/s | get_large items/s | create MiB/s | get MiB/s |");
    println!("|---|---:|---:|---:|---:|");
    let mib = a.size as f64 / MIB as f64;
    let rows = [
        (
            "md5",
            throughput(&store, a.items, |i| Md5Item {
                id: i.to_string(),
                data: distinct(i),
            })
            .await,
        ),
        (
            "sha256",
            throughput(&store, a.items, |i| Sha256Item {
                id: i.to_string(),
                data: distinct(i),
            })
            .await,
        ),
        (
            "crc64nvme",
            throughput(&store, a.items, |i| Crc64Item {
                id: i.to_string(),
                data: distinct(i),
            })
            .await,
        ),
    ];
    for (name, (creates, gets)) in rows {
        println!(
            "| {name} | {creates:.0} | {gets:.0} | {:.0} | {:.0} |",
            creates * mib,
            gets * mib
        );
    }
}
