//! vhs side by side with the same workload written by hand with the AWS SDK, and with
//! pynamodb_mate, the Python library a user would otherwise pick. One command:
//!
//! ```text
//! cargo bench --bench compare                  # starts ministack itself, prints one table
//! cargo bench --bench compare -- --help        # sizes, callers, delays
//! ```
//!
//! The workload: items with two large attributes of 100 KB and a number; create, get,
//! update (one large attribute and the number) and delete, each over `--items` items with
//! `--callers` calls at once. Every implementation runs against the same emulator in the
//! same run, directly and again through [`delay::DelayProxy`] adding `--delays` ms each way.
//!
//! Implementations:
//! - `vhs`: [`Store`] with its defaults (cleanup inline); `vhs deferred`: with
//!   [`StoreBuilder::defer_cleanup`](vhs::StoreBuilder::defer_cleanup).
//! - `raw sequential` / `raw concurrent`: [`raw::Raw`], the pattern by hand.
//! - `pynamodb_mate`: `pynamodb_mate_bench.py` in a virtualenv the harness makes under
//!   `target/tmp/vhs-emulators/`, through boto3 against the same endpoint.
//!
//! Each row also gives the CPU time this process spent per operation (`client CPU ms/op`,
//! every thread, from `/proc/self/stat` at 10 ms resolution; at a delay it includes the
//! proxy's thread, the same for every implementation). `--only` runs some of the
//! implementations, `--marks` prints each run's span for `perf report --time`.
//!
//! Then one value of `--transfer` bytes (2 GiB) goes up from a file and down to a file in
//! a child process, which reports MiB/s and its own peak RSS; and MD5 MiB/s in process.

#[path = "../../tests/contract/emulator.rs"]
#[allow(dead_code)]
mod emulator;

mod delay;
mod raw;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use md5::Digest;
use vhs::{AwsBackend, AwsOptions, Blob, Model, Store};

use crate::delay::DelayProxy;
use crate::raw::{Mode, Raw};

/// The peer and what it runs on, pinned.
const PEER: &[&str] = &[
    "pynamodb_mate==6.0.1.1",
    "pynamodb==6.1.0",
    "boto3==1.44.5",
    "botocore==1.44.5",
];

const MIB: u64 = 1024 * 1024;

#[derive(Model, Debug, Clone, PartialEq)]
#[vhs(table = "compare")]
struct Pair {
    #[vhs(hash_key)]
    id: String,
    #[large]
    a: Option<Bytes>,
    #[large]
    b: Option<Bytes>,
    n: u64,
}

#[derive(Model, Debug)]
#[vhs(table = "transfer")]
struct Big {
    #[vhs(hash_key)]
    id: String,
    #[large]
    data: Option<Blob>,
}

#[derive(Debug)]
struct Args {
    items: usize,
    size: usize,
    callers: Vec<usize>,
    delays_ms: Vec<u64>,
    transfer: u64,
    peer: bool,
    transfer_child: Option<(u64, String)>,
    /// `--only`: the implementations to run, by [`Imp::key`] (empty: all).
    only: Vec<String>,
    /// `--marks`: print each measured run's span on stderr.
    marks: bool,
}

const HELP: &str = "\
cargo bench --bench compare -- [options]
  --items N          items per operation and run (default 200)
  --size BYTES       size of each of the two large values (default 100000)
  --callers LIST     calls at once, comma-separated (default 1,32)
  --delays LIST      one-way delays in ms added by a proxy, comma-separated (default 0,5)
  --transfer BYTES   size of the one large value moved up and down (default 2 GiB; 0: skip)
  --no-peer          skip pynamodb_mate (no Python virtualenv)
  --only LIST        run only these: vhs, deferred, sequential, concurrent, peer
  --marks            print each measured run's span on stderr as
                     `compare: mark <label> <from> <to>` in seconds since boot, the clock
                     of `perf record -k boottime` (for `perf report --time from,to`)
Environment: VHS_TEST_EMULATOR=moto or VHS_TEST_ENDPOINT=http://127.0.0.1:P, as for the tests.";

impl Args {
    /// Whether `--only` leaves `imp` in.
    fn wants(&self, imp: Imp) -> bool {
        self.only.is_empty() || self.only.iter().any(|k| k == imp.key())
    }
}

fn list<T: std::str::FromStr>(text: &str) -> Result<Vec<T>, lexopt::Error>
where
    T::Err: std::fmt::Display,
{
    text.split(',')
        .map(|v| {
            v.trim()
                .parse()
                .map_err(|e: T::Err| lexopt::Error::from(format!("{v:?}: {e}")))
        })
        .collect()
}

fn args() -> Result<Args, lexopt::Error> {
    use lexopt::prelude::*;
    let mut args = Args {
        items: 200,
        size: 100_000,
        callers: vec![1, 32],
        delays_ms: vec![0, 5],
        transfer: 2048 * MIB,
        peer: true,
        transfer_child: None,
        only: Vec::new(),
        marks: false,
    };
    let mut parser = lexopt::Parser::from_env();
    let mut child_endpoint = None;
    let mut child_bytes = None;
    while let Some(arg) = parser.next()? {
        match arg {
            Long("items") => args.items = parser.value()?.parse()?,
            Long("size") => args.size = parser.value()?.parse()?,
            Long("callers") => args.callers = list(&parser.value()?.string()?)?,
            Long("delays") => args.delays_ms = list(&parser.value()?.string()?)?,
            Long("transfer") => args.transfer = parser.value()?.parse()?,
            Long("no-peer") => args.peer = false,
            Long("only") => args.only = list(&parser.value()?.string()?)?,
            Long("marks") => args.marks = true,
            Long("transfer-child") => child_bytes = Some(parser.value()?.parse()?),
            Long("endpoint") => child_endpoint = Some(parser.value()?.string()?),
            // `cargo bench` passes `--bench` to every bench binary.
            Long("bench") => {}
            Long("help") | Short('h') => {
                println!("{HELP}");
                std::process::exit(0);
            }
            _ => return Err(arg.unexpected()),
        }
    }
    if let (Some(bytes), Some(endpoint)) = (child_bytes, child_endpoint) {
        args.transfer_child = Some((bytes, endpoint));
    }
    if args.items == 0 || args.callers.contains(&0) {
        return Err("--items and --callers must be at least 1".into());
    }
    Ok(args)
}

/// Throughput and latency of one operation.
#[derive(Clone, Copy, Debug)]
struct Stats {
    ops_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// This process's CPU time (user + system, every thread) per operation; NaN for the
    /// peer, which runs in a process of its own.
    cpu_ms: f64,
    /// When the run started and ended, in [`uptime_s`] seconds (0 for the peer).
    span_s: (f64, f64),
}

/// This process's CPU time so far (user + system, every thread, the exited ones
/// included), from `/proc/self/stat`, in clock ticks of 10 ms. Zero where there is no
/// `/proc`.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command's closing parenthesis: state is the first, utime
    // the 12th and stime the 13th.
    let fields: Vec<u64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|f| f.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    Duration::from_millis(fields.iter().sum::<u64>() * 10)
}

/// Seconds since boot (`/proc/uptime`, CLOCK_BOOTTIME at 10 ms), the clock of
/// `perf record -k boottime`; 0 where there is no `/proc`.
fn uptime_s() -> f64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3
}

/// Runs `op(i)` for every item, `callers` at once, each call timed.
async fn measure<F, Fut>(items: usize, callers: usize, op: F) -> Stats
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (started, cpu, from) = (Instant::now(), cpu_time(), uptime_s());
    let mut latencies: Vec<Duration> = stream::iter(0..items)
        .map(|i| {
            let call = op(i);
            async move {
                let t = Instant::now();
                call.await;
                t.elapsed()
            }
        })
        .buffer_unordered(callers)
        .collect()
        .await;
    let total = started.elapsed();
    let cpu = cpu_time().saturating_sub(cpu);
    latencies.sort();
    Stats {
        ops_per_s: items as f64 / total.as_secs_f64(),
        p50_ms: percentile(&latencies, 0.5),
        p99_ms: percentile(&latencies, 0.99),
        cpu_ms: cpu.as_secs_f64() * 1e3 / items as f64,
        span_s: (from, uptime_s()),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Imp {
    Vhs,
    VhsDeferred,
    RawSequential,
    RawConcurrent,
    Peer,
}

impl Imp {
    fn name(self) -> &'static str {
        match self {
            Imp::Vhs => "vhs",
            Imp::VhsDeferred => "vhs deferred cleanup",
            Imp::RawSequential => "raw SDK sequential",
            Imp::RawConcurrent => "raw SDK concurrent",
            Imp::Peer => "pynamodb_mate",
        }
    }

    /// Its name for `--only`.
    fn key(self) -> &'static str {
        match self {
            Imp::Vhs => "vhs",
            Imp::VhsDeferred => "deferred",
            Imp::RawSequential => "sequential",
            Imp::RawConcurrent => "concurrent",
            Imp::Peer => "peer",
        }
    }

    /// Sequential round trips of `op` on the caller's path (pinned for vhs by the
    /// `round_trip_*` tests; by construction for the raw baselines).
    fn round_trips(self, op: &str) -> u32 {
        let [create, get, update, delete] = match self {
            Imp::Vhs => [2, 2, 3, 2],
            Imp::VhsDeferred => [2, 2, 2, 1],
            Imp::RawSequential => [3, 3, 3, 3],
            Imp::RawConcurrent => [2, 2, 3, 2],
            // Every request after the previous one (read off its source and a
            // request log): HeadObject + PutObject per value, then PutItem; GetItem +
            // a GetObject per value; HeadObject + PutObject, GetItem, UpdateItem,
            // DeleteObjects; GetItem, DeleteItem, DeleteObjects.
            Imp::Peer => [5, 3, 5, 3],
        };
        match op {
            "create" => create,
            "get" => get,
            "update" => update,
            _ => delete,
        }
    }
}

const OPS: [&str; 4] = ["create", "get", "update", "delete"];

struct Row {
    delay_ms: u64,
    callers: usize,
    op: &'static str,
    imp: Imp,
    stats: Stats,
    round_trip_ms: f64,
}

fn body(size: usize, i: usize, tag: u8) -> Bytes {
    let mut v = vec![tag; size];
    let n = v.len().min(8);
    v[..n].copy_from_slice(&(i as u64).to_le_bytes()[..n]);
    Bytes::from(v)
}

/// Everything a run needs to reach the emulator, directly or through the proxy.
struct Target {
    url: String,
    config: aws_config::SdkConfig,
    bucket: String,
    tag: String,
}

impl Target {
    fn clients(&self) -> (aws_sdk_dynamodb::Client, aws_sdk_s3::Client) {
        let ddb = aws_sdk_dynamodb::Client::new(&self.config);
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&self.config)
                .force_path_style(true)
                .build(),
        );
        (ddb, s3)
    }

    fn table(&self, imp: Imp, callers: usize) -> String {
        let name = imp.name().replace(' ', "-");
        format!("cmp-{name}-{callers}-{}", self.tag)
    }
}

/// The median time of a request that does no work (a GetItem and a HeadObject of keys
/// that do not exist), after a warm-up.
async fn round_trip_ms(target: &Target) -> f64 {
    let (ddb, s3) = target.clients();
    let raw = Raw::new(
        ddb.clone(),
        s3.clone(),
        format!("cmp-rt-{}", target.tag),
        target.bucket.clone(),
        Mode::Concurrent,
    );
    raw.create_table().await.expect("CreateTable");
    let mut samples = Vec::new();
    for i in 0..45 {
        let t = Instant::now();
        let _ = ddb
            .get_item()
            .table_name(&raw.table)
            .key(
                "id",
                aws_sdk_dynamodb::types::AttributeValue::S("none".into()),
            )
            .send()
            .await
            .expect("GetItem");
        let d = t.elapsed();
        let t = Instant::now();
        let _ = s3
            .head_object()
            .bucket(&target.bucket)
            .key("none")
            .send()
            .await;
        if i >= 5 {
            samples.push(d);
            samples.push(t.elapsed());
        }
    }
    samples.sort();
    percentile(&samples, 0.5)
}

async fn run_vhs(target: &Target, args: &Args, callers: usize, deferred: bool) -> Vec<Stats> {
    let imp = if deferred { Imp::VhsDeferred } else { Imp::Vhs };
    let backend = AwsBackend::with_options(&target.config, AwsOptions::emulator(&target.url));
    let store = Store::builder(backend, &target.bucket)
        .table_for::<Pair>(target.table(imp, callers))
        .defer_cleanup(deferred)
        .build()
        .expect("store");
    store.ensure_table::<Pair>().await.expect("CreateTable");
    let size = args.size;
    let pair = move |i: usize, id: String| Pair {
        id,
        a: Some(body(size, i, 1)),
        b: Some(body(size, i, 2)),
        n: i as u64,
    };
    let s = &store;
    // Warm-up: as many connections as the callers will use.
    measure(callers, callers, |i| async move {
        let key = Pair::key(format!("warm-{i}"));
        s.create_large(&pair(i, format!("warm-{i}"))).await.unwrap();
        s.get_large(&key).await.unwrap();
        s.delete_large(&key).await.unwrap();
    })
    .await;
    let id = |i: usize| format!("item-{i}");
    let stats = vec![
        measure(args.items, callers, |i| async move {
            s.create_large(&pair(i, id(i))).await.unwrap();
        })
        .await,
        measure(args.items, callers, |i| async move {
            let got = s.get_large(&Pair::key(id(i))).await.unwrap();
            assert_eq!(got.n, i as u64);
        })
        .await,
        measure(args.items, callers, |i| async move {
            let changes = Pair::changes()
                .set_a(Some(body(size, i, 3)))
                .set_n(i as u64 + 1);
            s.update_large(&Pair::key(id(i)), changes).await.unwrap();
        })
        .await,
        measure(args.items, callers, |i| async move {
            s.delete_large(&Pair::key(id(i))).await.unwrap();
        })
        .await,
    ];
    let left = store.flush().await;
    assert!(
        left.leftover.is_empty() && left.marks_left.is_empty(),
        "background cleanup left objects: {left:?}"
    );
    stats
}

async fn run_raw(target: &Target, args: &Args, callers: usize, mode: Mode) -> Vec<Stats> {
    let imp = match mode {
        Mode::Sequential => Imp::RawSequential,
        Mode::Concurrent => Imp::RawConcurrent,
    };
    let (ddb, s3) = target.clients();
    let raw = Raw::new(
        ddb,
        s3,
        target.table(imp, callers),
        target.bucket.clone(),
        mode,
    );
    raw.create_table().await.expect("CreateTable");
    let size = args.size;
    let r = &raw;
    measure(callers, callers, |i| async move {
        let id = format!("warm-{i}");
        r.create(&id, body(size, i, 1), body(size, i, 2), i as u64)
            .await
            .unwrap();
        r.get(&id).await.unwrap();
        r.delete(&id).await.unwrap();
    })
    .await;
    let id = |i: usize| format!("item-{i}");
    vec![
        measure(args.items, callers, |i| async move {
            r.create(&id(i), body(size, i, 1), body(size, i, 2), i as u64)
                .await
                .unwrap();
        })
        .await,
        measure(args.items, callers, |i| async move {
            let (a, _, n) = r.get(&id(i)).await.unwrap();
            assert_eq!((a.len(), n), (size, i as u64));
        })
        .await,
        measure(args.items, callers, |i| async move {
            r.update(&id(i), body(size, i, 3), i as u64 + 1)
                .await
                .unwrap();
        })
        .await,
        measure(args.items, callers, |i| async move {
            r.delete(&id(i)).await.unwrap();
        })
        .await,
    ]
}

fn peer_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/compare/pynamodb_mate_bench.py")
}

async fn run_peer(venv: &Path, target: &Target, args: &Args, callers: usize) -> Vec<Stats> {
    let out = tokio::process::Command::new(venv.join("bin/python"))
        .arg(peer_script())
        .args(["--endpoint", &target.url])
        .args(["--table", &target.table(Imp::Peer, callers)])
        .args(["--bucket", &target.bucket])
        .args(["--items", &args.items.to_string()])
        .args(["--callers", &callers.to_string()])
        .args(["--size", &args.size.to_string()])
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .await
        .expect("run the pynamodb_mate benchmark");
    assert!(
        out.status.success(),
        "pynamodb_mate_bench.py: {}",
        out.status
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    OPS.iter()
        .map(|op| {
            let line = lines
                .iter()
                .find(|l| l["op"] == *op)
                .unwrap_or_else(|| panic!("pynamodb_mate_bench.py printed no {op}"));
            let field = |name: &str| line[name].as_f64().expect("a number");
            Stats {
                ops_per_s: field("ops_per_s"),
                p50_ms: field("p50_ms"),
                p99_ms: field("p99_ms"),
                cpu_ms: f64::NAN,
                span_s: (0.0, 0.0),
            }
        })
        .collect()
}

/// MiB/s of MD5 in this process, over 256 MiB in 1 MiB chunks.
fn md5_mib_per_s() -> f64 {
    let chunk: Vec<u8> = (0..MIB).map(|i| (i * 31 % 251) as u8).collect();
    let started = Instant::now();
    let mut hasher = md5::Md5::new();
    for _ in 0..256 {
        hasher.update(&chunk);
    }
    std::hint::black_box(hasher.finalize());
    256.0 / started.elapsed().as_secs_f64()
}

/// The child process: one value of `bytes` up from a file and down to a file. Prints
/// `{"up_s": .., "down_s": .., "peak_rss": ..}`.
async fn transfer_child(bytes: u64, endpoint: &str) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let input = dir.path().join("in.bin");
    let output = dir.path().join("out.bin");
    {
        let input = input.clone();
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let mut file = std::io::BufWriter::new(std::fs::File::create(input).unwrap());
            let mut chunk: Vec<u8> = (0..MIB).map(|i| (i * 131 % 256) as u8).collect();
            let mut left = bytes;
            let mut n = 0u64;
            while left > 0 {
                chunk[..8].copy_from_slice(&n.to_le_bytes());
                let take = left.min(MIB) as usize;
                file.write_all(&chunk[..take]).unwrap();
                left -= take as u64;
                n += 1;
            }
            file.flush().unwrap();
        })
        .await
        .unwrap();
    }
    let config = emulator::sdk_config_for(endpoint).await;
    let backend = AwsBackend::with_options(&config, AwsOptions::emulator(endpoint));
    let store = Store::builder(backend, format!("vhs-transfer-{}", std::process::id()))
        .build()
        .unwrap();
    store.ensure_bucket().await.unwrap();
    store.ensure_table::<Big>().await.unwrap();
    let big = Big {
        id: "big".into(),
        data: Some(Blob::from_file(&input).await.unwrap()),
    };
    let started = Instant::now();
    store.create_large(&big).await.unwrap();
    let up = started.elapsed();
    let started = Instant::now();
    let written = store
        .download_large_to_file(&big.primary_key(), "data", &output)
        .await
        .unwrap();
    let down = started.elapsed();
    assert_eq!(written, bytes);
    store.delete_large(&big.primary_key()).await.unwrap();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    println!(
        "{}",
        serde_json::json!({
            "up_s": up.as_secs_f64(),
            "down_s": down.as_secs_f64(),
            "peak_rss": peak_kib * 1024,
        })
    );
}

async fn transfer(bytes: u64, endpoint: &str) -> serde_json::Value {
    let out = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--transfer-child",
            &bytes.to_string(),
            "--endpoint",
            endpoint,
        ])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .await
        .expect("run the transfer child");
    assert!(out.status.success(), "transfer child: {}", out.status);
    serde_json::from_slice(&out.stdout).expect("the child's JSON line")
}

fn print_table(rows: &[Row]) {
    println!(
        "| delay (ms each way) | callers | op | implementation | ops/s | p50 ms | p99 ms \
         | vhs ÷ this (ops/s) | round trips | p50 ÷ (round trips × RT) | client CPU ms/op |"
    );
    println!("|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let vhs = rows
            .iter()
            .find(|r| {
                r.imp == Imp::Vhs
                    && r.delay_ms == row.delay_ms
                    && r.callers == row.callers
                    && r.op == row.op
            })
            .map(|r| r.stats.ops_per_s);
        let versus = match (row.imp, vhs) {
            (Imp::Vhs, _) | (_, None) => "".to_owned(),
            (_, Some(vhs)) => format!("{:.2}", vhs / row.stats.ops_per_s),
        };
        let trips = row.imp.round_trips(row.op);
        let bound = if row.delay_ms > 0 {
            format!(
                "{:.2}",
                row.stats.p50_ms / (trips as f64 * row.round_trip_ms)
            )
        } else {
            "".to_owned()
        };
        let cpu = if row.stats.cpu_ms.is_nan() {
            "".to_owned()
        } else {
            format!("{:.2}", row.stats.cpu_ms)
        };
        println!(
            "| {} | {} | {} | {} | {:.0} | {:.1} | {:.1} | {versus} | {} | {bound} | {cpu} |",
            row.delay_ms,
            row.callers,
            row.op,
            row.imp.name(),
            row.stats.ops_per_s,
            row.stats.p50_ms,
            row.stats.p99_ms,
            trips,
        );
    }
}

#[tokio::main]
async fn main() {
    let args = match args() {
        Ok(args) => args,
        Err(err) => {
            eprintln!("compare: {err}\n{HELP}");
            std::process::exit(2);
        }
    };
    if let Some((bytes, endpoint)) = &args.transfer_child {
        transfer_child(*bytes, endpoint).await;
        return;
    }

    let endpoint = emulator::endpoint().await;
    let upstream: SocketAddr = endpoint
        .trim_start_matches("http://")
        .parse()
        .expect("the emulator's address");
    let venv = if args.peer && args.wants(Imp::Peer) {
        let venv = tokio::task::spawn_blocking(|| {
            emulator::python_env("pynamodb_mate-6.0.1.1", PEER, "python")
        })
        .await
        .unwrap();
        Some(venv.unwrap_or_else(|err| panic!("{err}")))
    } else {
        None
    };
    let tag = std::process::id().to_string();
    let bucket = format!("vhs-compare-{tag}");
    {
        let config = emulator::sdk_config_for(&endpoint).await;
        let backend = Arc::new(AwsBackend::with_options(
            &config,
            AwsOptions::emulator(&endpoint),
        ));
        Store::builder(backend, &bucket)
            .build()
            .unwrap()
            .ensure_bucket()
            .await
            .expect("CreateBucket");
    }

    eprintln!(
        "compare: {} at {endpoint}, {} items of 2 x {} bytes, callers {:?}, delays {:?} ms",
        emulator::emulator_name(),
        args.items,
        args.size,
        args.callers,
        args.delays_ms
    );
    let mut rows = Vec::new();
    let mut round_trips = Vec::new();
    for &delay_ms in &args.delays_ms {
        let proxy =
            (delay_ms > 0).then(|| DelayProxy::start(upstream, Duration::from_millis(delay_ms)));
        let url = proxy.as_ref().map_or(endpoint.clone(), |p| p.url());
        let target = Target {
            config: emulator::sdk_config_for(&url).await,
            url,
            bucket: bucket.clone(),
            tag: format!("{tag}-{delay_ms}"),
        };
        let rt = round_trip_ms(&target).await;
        round_trips.push((delay_ms, rt));
        for &callers in &args.callers {
            let mut imps = vec![Imp::Vhs, Imp::VhsDeferred, Imp::RawSequential];
            imps.push(Imp::RawConcurrent);
            if venv.is_some() {
                imps.push(Imp::Peer);
            }
            for imp in imps.into_iter().filter(|i| args.wants(*i)) {
                eprintln!("compare: {delay_ms} ms, {callers} callers, {}", imp.name());
                let stats = match imp {
                    Imp::Vhs => run_vhs(&target, &args, callers, false).await,
                    Imp::VhsDeferred => run_vhs(&target, &args, callers, true).await,
                    Imp::RawSequential => run_raw(&target, &args, callers, Mode::Sequential).await,
                    Imp::RawConcurrent => run_raw(&target, &args, callers, Mode::Concurrent).await,
                    Imp::Peer => run_peer(venv.as_ref().unwrap(), &target, &args, callers).await,
                };
                for (op, stats) in OPS.iter().zip(stats) {
                    if args.marks {
                        eprintln!(
                            "compare: mark {delay_ms}ms/{callers}/{}/{op} {:.2} {:.2}",
                            imp.key(),
                            stats.span_s.0,
                            stats.span_s.1
                        );
                    }
                    rows.push(Row {
                        delay_ms,
                        callers,
                        op,
                        imp,
                        stats,
                        round_trip_ms: rt,
                    });
                }
            }
        }
    }
    rows.sort_by_key(|r| {
        let op = OPS.iter().position(|o| *o == r.op).unwrap();
        (r.delay_ms, r.callers, op)
    });

    let md5 = md5_mib_per_s();
    let moved = if args.transfer > 0 {
        eprintln!("compare: one value of {} bytes up and down", args.transfer);
        Some(transfer(args.transfer, &endpoint).await)
    } else {
        None
    };

    println!(
        "{} {}; {} items of 2 large attributes x {} bytes per run\n",
        emulator::emulator_name(),
        endpoint,
        args.items,
        args.size
    );
    print_table(&rows);
    println!();
    for (delay, rt) in round_trips {
        println!("RT (median of an empty GetItem / HeadObject) at {delay} ms each way: {rt:.2} ms");
    }
    println!("MD5 in process: {md5:.0} MiB/s");
    if let Some(moved) = moved {
        let mib = args.transfer as f64 / MIB as f64;
        let f = |name: &str| moved[name].as_f64().unwrap_or(f64::NAN);
        println!(
            "one value of {mib:.0} MiB, file to file: up {:.0} MiB/s, down {:.0} MiB/s, \
             peak RSS of that process {:.0} MiB",
            mib / f("up_s"),
            mib / f("down_s"),
            f("peak_rss") / MIB as f64
        );
    }
}
