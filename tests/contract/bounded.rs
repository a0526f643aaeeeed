//! Bounded memory on the read paths, measured: the peak RSS (`VmHWM`) of a process that reads
//! values far larger than the bound stays under it.
//!
//! The parent test writes the values (on the emulator, a process of its own, so the objects
//! are not in this process's memory), then runs this very test binary again once per case, as
//! a child that does nothing but that one read, reports its `VmHWM` and exits. Each figure is
//! a whole process's peak: the test harness, the runtime and the SDK included.
//!
//! Sizes: a 150 MB `Blob` read by `get_large` and re-hashed by `verify`, and a scan over it and
//! two more items of 100 MB each; with `VHS_SOAK=1` the first value is 300 MB.

use std::io::Write;
use std::time::Instant;

use futures::TryStreamExt;
use vhs::maintenance::VerifyOptions;
use vhs::{Blob, Store};

use crate::models::Video;
use crate::reads::noise;

const MB: usize = 1_000_000;
/// The bound each case must stay under.
const BOUND_MIB: u64 = 128;
/// The test's own name, for the child to run exactly it.
const NAME: &str = "bounded::reads_of_values_larger_than_memory_stay_under_128_mib";

/// The child's marker on stdout: `VHS_RSS <peak KiB> <seconds>`.
const MARKER: &str = "VHS_RSS";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_of_values_larger_than_memory_stay_under_128_mib() {
    if let Ok(case) = std::env::var("VHS_RSS_CASE") {
        return child(&case).await;
    }
    let soak = std::env::var_os("VHS_SOAK").is_some_and(|v| v != "0");
    let big = if soak { 300 * MB } else { 150 * MB };
    let fx = crate::fixture::Fixture::new(crate::fixture::Kind::Emulator).await;
    let dir = tempfile::tempdir().unwrap();
    // Written from files, so the writer's memory stays small too.
    for (id, len, seed) in [("big", big, 1), ("s1", 100 * MB, 2), ("s2", 100 * MB, 3)] {
        let path = dir.path().join(id);
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let mut left = len;
        let mut chunk = 0u64;
        while left > 0 {
            let n = left.min(4 * MB);
            file.write_all(&noise(n, seed * 1000 + chunk)).unwrap();
            left -= n;
            chunk += 1;
        }
        file.flush().unwrap();
        drop(file);
        let v = Video {
            id: id.into(),
            data: Some(Blob::from_file(&path).await.unwrap()),
            thumb: None,
        };
        let t = Instant::now();
        fx.store.create_large(&v).await.unwrap();
        eprintln!(
            "bounded: wrote {id} ({} MB) in {:.1}s",
            len / MB,
            t.elapsed().as_secs_f64()
        );
        std::fs::remove_file(&path).unwrap();
    }
    let url = crate::emulator::endpoint().await;
    let table = fx.store.table_name::<Video>().to_owned();
    let mut figures = Vec::new();
    for case in ["get_large", "verify_rehash", "scan"] {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env("VHS_RSS_CASE", case)
            .env("VHS_RSS_BUCKET", &fx.bucket)
            .env("VHS_RSS_TABLE", &table)
            .env("VHS_RSS_SIZE", big.to_string())
            .env("VHS_TEST_ENDPOINT", &url)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{case}: the child failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = stdout
            .lines()
            .find_map(|l| l.find(MARKER).map(|i| &l[i + MARKER.len()..]))
            .unwrap_or_else(|| panic!("{case}: no {MARKER} line in {stdout}"));
        let fields: Vec<&str> = line.split_whitespace().collect();
        let peak_kib: u64 = fields[0].parse().unwrap();
        eprintln!(
            "bounded: {case}: peak RSS {:.1} MiB in {}s ({} MB values)",
            peak_kib as f64 / 1024.0,
            fields[1],
            big / MB
        );
        figures.push((case, peak_kib));
    }
    for (case, peak_kib) in figures {
        assert!(
            peak_kib < BOUND_MIB * 1024,
            "{case}: peak RSS {:.1} MiB, over {BOUND_MIB} MiB",
            peak_kib as f64 / 1024.0
        );
    }
}

/// One case in a process of its own: the read, then the marker line.
async fn child(case: &str) {
    let var = |name: &str| std::env::var(name).unwrap();
    let config = crate::emulator::sdk_config().await;
    let url = crate::emulator::endpoint().await;
    let store = Store::builder(
        vhs::AwsBackend::with_options(&config, vhs::AwsOptions::emulator(url)),
        var("VHS_RSS_BUCKET"),
    )
    .table_for::<Video>(var("VHS_RSS_TABLE"))
    .build()
    .unwrap();
    let big: u64 = var("VHS_RSS_SIZE").parse().unwrap();
    let started = Instant::now();
    match case {
        "get_large" => {
            let v = store.get_large(&Video::key("big")).await.unwrap();
            let blob = v.data.unwrap();
            assert_eq!(blob.len(), big);
            assert!(blob.path().is_some(), "spooled to a file");
        }
        "verify_rehash" => {
            let report = store
                .verify::<Video>(&VerifyOptions::default().rehash(true), |_| {})
                .await
                .unwrap();
            assert!(report.is_clean(), "{report:?}");
            assert_eq!(report.pointers, 3);
        }
        "scan" => {
            let items: Vec<Video> = store.scan::<Video>().items().try_collect().await.unwrap();
            assert_eq!(items.len(), 3);
            let total: u64 = items.iter().map(|v| v.data.as_ref().unwrap().len()).sum();
            assert_eq!(total, big + 200 * MB as u64);
        }
        other => panic!("unknown case {other}"),
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let peak = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .unwrap();
    println!("\n{MARKER} {peak} {:.1}", started.elapsed().as_secs_f64());
}
