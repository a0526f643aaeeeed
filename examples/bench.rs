//! Throughput and latency of the transactional API, printed as a table.
//!
//! ```text
//! cargo run --release --example bench                                   # in memory
//! cargo run --release --example bench -- --endpoint http://127.0.0.1:4566 # an emulator
//! cargo run --release --example bench -- --items 200 --size 102400 --tasks 8
//! ```
//!
//! Each item has four large attributes of `--size` bytes. Every operation is run
//! twice: with uploads/downloads of one call in parallel (`max_concurrency` 16, the
//! default) and one at a time (`max_concurrency` 1), to show what the concurrency of a
//! single call buys. `--tasks` callers run at once.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use vhs::{AwsBackend, AwsOptions, Backend, MemoryBackend, Model, Store};

#[derive(Model, Debug, Clone)]
#[vhs(table = "bench")]
struct Record {
    #[vhs(hash_key)]
    id: String,
    #[large]
    a: Option<Bytes>,
    #[large]
    b: Option<Bytes>,
    #[large]
    c: Option<Bytes>,
    #[large]
    d: Option<Bytes>,
    n: u64,
}

struct Args {
    endpoint: Option<String>,
    items: usize,
    size: usize,
    tasks: usize,
}

fn args() -> Args {
    let mut a = Args {
        endpoint: None,
        items: 200,
        size: 100 * 1024,
        tasks: 4,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--endpoint" => a.endpoint = Some(value),
            "--items" => a.items = value.parse().expect("--items N"),
            "--size" => a.size = value.parse().expect("--size BYTES"),
            "--tasks" => a.tasks = value.parse().expect("--tasks N"),
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn run<F, Fut>(label: &str, items: usize, tasks: usize, f: F) -> String
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let start = Instant::now();
    let mut latencies: Vec<Duration> = stream::iter(0..items)
        .map(|i| {
            let fut = f(i);
            async move {
                let t = Instant::now();
                fut.await;
                t.elapsed()
            }
        })
        .buffer_unordered(tasks)
        .collect()
        .await;
    let total = start.elapsed();
    latencies.sort();
    format!(
        "| {label:<30} | {:>9.0} | {:>8.2} | {:>8.2} |",
        items as f64 / total.as_secs_f64(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
    )
}

async fn bench(
    backend: std::sync::Arc<dyn Backend>,
    args: &Args,
    concurrency: usize,
) -> Vec<String> {
    let bucket = format!("vhs-bench-{}", std::process::id());
    let table = format!("bench-{}-{concurrency}", std::process::id());
    let store = Store::builder(backend, bucket)
        .table_for::<Record>(table)
        .max_concurrency(concurrency)
        .build()
        .unwrap();
    store.ensure_bucket().await.unwrap();
    store.ensure_table::<Record>().await.unwrap();
    let body = |i: usize, tag: u8| {
        let mut v = vec![tag; args.size];
        v[..8].copy_from_slice(&(i as u64).to_le_bytes());
        Some(Bytes::from(v))
    };
    let record = |i: usize| Record {
        id: format!("item-{i}"),
        a: body(i, 1),
        b: body(i, 2),
        c: body(i, 3),
        d: body(i, 4),
        n: i as u64,
    };
    let s = &store;
    let mut rows = Vec::new();
    let c = concurrency;
    rows.push(
        run(
            &format!("create_large (conc {c})"),
            args.items,
            args.tasks,
            |i| async move {
                s.create_large(&record(i)).await.unwrap();
            },
        )
        .await,
    );
    rows.push(
        run(
            &format!("get_large (conc {c})"),
            args.items,
            args.tasks,
            |i| async move {
                s.get_large(&Record::key(format!("item-{i}")))
                    .await
                    .unwrap();
            },
        )
        .await,
    );
    rows.push(
        run(
            &format!("update_large 1 attr (conc {c})"),
            args.items,
            args.tasks,
            |i| async move {
                let changes = Record::changes().set_a(body(i, 9)).set_n(i as u64 + 1);
                s.update_large(&Record::key(format!("item-{i}")), changes)
                    .await
                    .unwrap();
            },
        )
        .await,
    );
    rows.push(
        run(
            &format!("delete_large (conc {c})"),
            args.items,
            args.tasks,
            |i| async move {
                s.delete_large(&Record::key(format!("item-{i}")))
                    .await
                    .unwrap();
            },
        )
        .await,
    );
    rows
}

#[tokio::main]
async fn main() {
    let args = args();
    let backend: std::sync::Arc<dyn Backend> = match &args.endpoint {
        Some(url) => {
            let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .test_credentials()
                .region(aws_config::Region::new("us-east-1"))
                .load()
                .await;
            std::sync::Arc::new(AwsBackend::with_options(&config, AwsOptions::emulator(url)))
        }
        None => std::sync::Arc::new(MemoryBackend::new()),
    };
    println!(
        "backend: {}, items: {}, 4 large attributes x {} bytes, {} callers at once\n",
        args.endpoint.as_deref().unwrap_or("memory"),
        args.items,
        args.size,
        args.tasks
    );
    println!("| operation                      |   items/s | p50 (ms) | p99 (ms) |");
    println!("|--------------------------------|----------:|---------:|---------:|");
    for concurrency in [16, 1] {
        for row in bench(backend.clone(), &args, concurrency).await {
            println!("{row}");
        }
    }
}
