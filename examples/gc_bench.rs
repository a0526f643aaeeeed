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
//! the process's peak RSS.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use futures::stream::{self, StreamExt};
use vhs::maintenance::{GcOptions, VerifyOptions};
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
