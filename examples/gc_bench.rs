//! GC and verify throughput on a large table, printed as a table.
//!
//! ```text
//! cargo run --release --example gc_bench                                  # in memory
//! cargo run --release --example gc_bench -- --endpoint http://127.0.0.1:4566 --items 100000
//! ```
//!
//! Populates `--items` items, each with one small `#[large]` object, plus 1% orphan
//! objects older than the grace period would be in production (GC runs with
//! grace 0 here), written around the store with raw batched calls for speed. Then
//! runs `verify` (HeadObject per pointer), `verify` with re-hashing (GetObject per
//! pointer; only with `--rehash`), a dry-run GC and a GC, and prints items/s and
//! the process's peak RSS. Then the sharded runs (`--shard I/N`): verify and a
//! dry-run GC as one shard (`0/1`) and as four (`0/4` … `3/4`, one after the
//! other, as four processes would run them), each row with the peak of the heap above what it was when the run started (a
//! counting allocator): the unsharded runs hold the set of references, the
//! sharded ones a page of the listing and its items.
//!
//! ```text
//! cargo run --release --example gc_bench -- --items 1000000     # 1 M objects in memory
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use futures::stream::{self, StreamExt};
use vhs::maintenance::{GcOptions, GcReport, Shard, VerifyOptions, VerifyReport};
use vhs::BackendExt as _;
use vhs::{AwsBackend, AwsOptions, Backend, LargeValues, MemoryBackend, Model, Store};

#[derive(Model, Debug, Clone)]
#[vhs(table = "gc-bench")]
struct Record {
    #[vhs(hash_key)]
    id: String,
    #[large]
    body: Option<Vec<u8>>,
    n: u64,
}

/// The system allocator, counting the bytes live and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call goes to `System` unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f`; returns its output, how long it took and the heap's peak above
/// its size at the start, in MiB.
async fn measured<T>(f: impl Future<Output = T>) -> (T, Duration, f64) {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let t = Instant::now();
    let out = f.await;
    let took = t.elapsed();
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    (out, took, peak as f64 / (1024.0 * 1024.0))
}

struct Args {
    endpoint: Option<String>,
    items: usize,
    rehash: bool,
}

fn args() -> Args {
    let mut a = Args {
        endpoint: None,
        items: 20_000,
        rehash: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--endpoint" => a.endpoint = it.next(),
            "--items" => a.items = it.next().and_then(|v| v.parse().ok()).expect("--items N"),
            "--rehash" => a.rehash = true,
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn row(label: &str, n: u64, took: Duration) -> String {
    format!(
        "| {label:<28} | {n:>9} | {:>8.1} | {:>10.0} |",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    )
}

fn mem_row(label: &str, objects: u64, took: Duration, peak_mib: f64) -> String {
    format!(
        "| {label:<28} | {objects:>9} | {:>8.1} | {:>10.0} | {peak_mib:>9.1} |",
        took.as_secs_f64(),
        objects as f64 / took.as_secs_f64()
    )
}

/// Verify in `n` shards, one after the other: the merged report, the total
/// time and the largest peak.
async fn verify_shards(store: &Store, n: u32) -> (VerifyReport, Duration, f64) {
    let (mut merged, mut total, mut peak) = (VerifyReport::default(), Duration::ZERO, 0f64);
    for i in 0..n {
        let options = VerifyOptions::default().shard(Shard::new(i, n).unwrap());
        let (report, took, mib) = measured(store.verify::<Record>(&options, |_| {})).await;
        merged.merge(report.unwrap());
        total += took;
        peak = peak.max(mib);
    }
    (merged, total, peak)
}

/// GC with `options` in `n` shards, one after the other.
async fn gc_shards(store: &Store, options: &GcOptions, n: u32) -> (GcReport, Duration, f64) {
    let (mut merged, mut total, mut peak) = (GcReport::default(), Duration::ZERO, 0f64);
    for i in 0..n {
        let options = options.clone().shard(Shard::new(i, n).unwrap());
        let (report, took, mib) = measured(store.gc::<Record>(&options, |_| {})).await;
        merged.merge(report.unwrap());
        total += took;
        peak = peak.max(mib);
    }
    (merged, total, peak)
}

#[tokio::main]
async fn main() {
    let args = args();
    let (backend, raw_ddb): (
        std::sync::Arc<dyn Backend>,
        Option<aws_sdk_dynamodb::Client>,
    ) = match &args.endpoint {
        Some(url) => {
            let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .test_credentials()
                .region(aws_config::Region::new("us-east-1"))
                .load()
                .await;
            let backend = AwsBackend::with_options(&config, AwsOptions::emulator(url));
            let ddb = backend.dynamodb().clone();
            (std::sync::Arc::new(backend), Some(ddb))
        }
        None => (std::sync::Arc::new(MemoryBackend::new()), None),
    };
    let id = std::process::id();
    let store = Store::builder(backend.clone(), format!("vhs-gc-bench-{id}"))
        .table_for::<Record>(format!("gc-bench-{id}"))
        .prefix("bench")
        .build()
        .unwrap();
    store.ensure_bucket().await.unwrap();
    store.ensure_table::<Record>().await.unwrap();

    // Populate: objects through the store's own staging (so keys and pointers are
    // real), items in BatchWriteItem calls of 25 where the SDK is available.
    let started = Instant::now();
    let orphans = args.items / 100;
    let staged: Vec<(Record, vhs::Staged<Record>)> = stream::iter(0..args.items + orphans)
        .map(|i| {
            let store = store.clone();
            async move {
                let r = Record {
                    id: format!("item-{i:07}"),
                    body: Some(format!("body of item {i}").into_bytes()),
                    n: i as u64,
                };
                let s = store
                    .put_s3(&r.primary_key(), LargeValues::of(&r).unwrap())
                    .await
                    .unwrap();
                (r, s)
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let items: Vec<_> = staged
        .into_iter()
        .filter(|(r, _)| (r.n as usize) < args.items)
        .map(|(r, s)| {
            let mut item = r.to_item().unwrap();
            item.extend(s.to_put_attributes());
            item
        })
        .collect();
    let table = store.table_name::<Record>().to_owned();
    match &raw_ddb {
        Some(ddb) => {
            let batches: Vec<Vec<_>> = items.chunks(25).map(|c| c.to_vec()).collect();
            stream::iter(batches)
                .map(|batch| {
                    let ddb = ddb.clone();
                    let table = table.clone();
                    async move {
                        let mut requests: Vec<WriteRequest> = batch
                            .into_iter()
                            .map(|item| {
                                WriteRequest::builder()
                                    .put_request(
                                        PutRequest::builder().set_item(Some(item)).build().unwrap(),
                                    )
                                    .build()
                            })
                            .collect();
                        while !requests.is_empty() {
                            let out = ddb
                                .batch_write_item()
                                .request_items(table.clone(), requests)
                                .send()
                                .await
                                .unwrap();
                            requests = out
                                .unprocessed_items
                                .and_then(|mut m| m.remove(&table))
                                .unwrap_or_default();
                        }
                    }
                })
                .buffer_unordered(8)
                .collect::<Vec<_>>()
                .await;
        }
        None => {
            for item in items {
                backend.put_item(&table, item, None).await.unwrap();
            }
        }
    }
    let populate = started.elapsed();

    println!(
        "backend: {}, {} items with one object each, {} orphan objects; populated in {:.0} s\n",
        args.endpoint.as_deref().unwrap_or("memory"),
        args.items,
        orphans,
        populate.as_secs_f64()
    );
    sharded(&store, args.items, orphans).await;
    println!();
    println!("| run                          |     items |  seconds |    items/s |");
    println!("|------------------------------|----------:|---------:|-----------:|");
    let t = Instant::now();
    let report = store
        .verify::<Record>(&VerifyOptions::default(), |_| {})
        .await
        .unwrap();
    println!("{}", row("verify (HeadObject)", report.items, t.elapsed()));
    assert!(report.is_clean());
    assert_eq!(report.orphans as usize, orphans);
    if args.rehash {
        let t = Instant::now();
        let report = store
            .verify::<Record>(&VerifyOptions::default().rehash(true), |_| {})
            .await
            .unwrap();
        println!(
            "{}",
            row("verify --rehash (GetObject)", report.items, t.elapsed())
        );
        assert!(report.is_clean());
    }
    let t = Instant::now();
    let dry = store
        .gc::<Record>(
            &GcOptions::default().grace(Duration::ZERO).dry_run(true),
            |_| {},
        )
        .await
        .unwrap();
    println!("{}", row("gc, dry run", dry.items, t.elapsed()));
    assert_eq!(dry.deleted.len(), orphans);
    let t = Instant::now();
    let gc = store
        .gc::<Record>(&GcOptions::default().grace(Duration::ZERO), |_| {})
        .await
        .unwrap();
    println!("{}", row("gc", gc.items, t.elapsed()));
    assert_eq!(gc.deleted.len(), orphans);
    println!(
        "\ngc deleted {} orphans ({} bytes), {} objects listed; peak RSS {:.0} MiB",
        gc.deleted.len(),
        gc.deleted_bytes,
        gc.objects,
        peak_rss_mib()
    );
}

/// The unsharded and sharded runs, with the heap's peak: verify and a
/// dry-run GC (the deletions are the same protocol either way), each
/// sharded run's merged report equal to the unsharded one's.
async fn sharded(store: &Store, items: usize, orphans: usize) {
    let objects = (items + orphans) as u64;
    println!(
        "| run                          |   objects |  seconds |  objects/s | peak heap MiB |"
    );
    println!("|------------------------------|----------:|---------:|-----------:|----------:|");
    let (whole, took, mib) =
        measured(store.verify::<Record>(&VerifyOptions::default(), |_| {})).await;
    let whole = whole.unwrap();
    println!("{}", mem_row("verify, unsharded", objects, took, mib));
    for n in [1, 4] {
        let (merged, took, mib) = verify_shards(store, n).await;
        assert_eq!(merged, whole);
        let label = format!("verify, {n} shard{}", if n > 1 { "s" } else { "" });
        println!("{}", mem_row(&label, objects, took, mib));
    }
    let dry = GcOptions::default().grace(Duration::ZERO).dry_run(true);
    let (whole, took, mib) = measured(store.gc::<Record>(&dry, |_| {})).await;
    let whole = whole.unwrap();
    println!("{}", mem_row("gc dry run, unsharded", objects, took, mib));
    for n in [1, 4] {
        let (merged, took, mib) = gc_shards(store, &dry, n).await;
        assert_eq!(merged, whole);
        let label = format!("gc dry run, {n} shard{}", if n > 1 { "s" } else { "" });
        println!("{}", mem_row(&label, objects, took, mib));
    }
    assert_eq!(whole.deleted.len(), orphans);
}
