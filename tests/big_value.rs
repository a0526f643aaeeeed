//! One large value goes up from a file and comes back down to a file through the
//! local emulator, and the process's peak memory stays under 256 MiB: the value
//! is never held whole. 2 GiB with `VHS_SOAK=1` (what `.ci/run` sets), 128 MiB
//! by default (a debug build moves ~5 MiB/s up through the SDK: 2 GiB takes
//! minutes there, seconds in release).
//!
//! Its own test binary, so the peak it reads (`VmHWM`) is its own, not that of
//! the contract suite's parallel tests.

#[path = "contract/emulator.rs"]
#[allow(dead_code)]
mod emulator;

use std::io::{Read, Write};
use std::path::Path;

use md5::Digest;
use vhs::{Blob, Model, Store};

#[derive(Model, Debug)]
#[vhs(table = "big")]
struct Big {
    #[vhs(hash_key)]
    id: String,
    #[large]
    data: Option<Blob>,
}

const MIB: u64 = 1024 * 1024;
/// The bound on the peak resident memory of the whole test process.
const PEAK_BOUND: u64 = 256 * MIB;

fn value_len() -> u64 {
    if std::env::var("VHS_SOAK").is_ok_and(|v| v == "1") {
        2048 * MIB
    } else {
        128 * MIB
    }
}

/// Writes `len` bytes that differ from MiB to MiB, one MiB at a time.
fn write_pattern(path: &Path, len: u64) {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut chunk = vec![0u8; MIB as usize];
    let mut left = len;
    let mut n = 0u64;
    while left > 0 {
        for (i, b) in chunk.iter_mut().enumerate() {
            *b = (i as u64 ^ n.wrapping_mul(0x9E37_79B9)) as u8;
        }
        let take = left.min(MIB) as usize;
        file.write_all(&chunk[..take]).unwrap();
        left -= take as u64;
        n += 1;
    }
    file.flush().unwrap();
}

/// MD5 of a file, one MiB at a time.
fn md5_file(path: &Path) -> (String, u64) {
    let mut file = std::fs::File::open(path).unwrap();
    let mut hasher = md5::Md5::new();
    let mut buf = vec![0u8; MIB as usize];
    let mut len = 0;
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    (format!("{:x}", hasher.finalize()), len)
}

/// The process's peak resident set size (`VmHWM`), in bytes.
#[cfg(target_os = "linux")]
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status");
    kb * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_value_round_trips_in_bounded_memory() {
    let len = value_len();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let input = dir.path().join("in.bin");
    let output = dir.path().join("out.bin");
    {
        let input = input.clone();
        tokio::task::spawn_blocking(move || write_pattern(&input, len))
            .await
            .unwrap();
    }

    let config = emulator::sdk_config().await;
    let url = emulator::endpoint().await;
    let backend = vhs::AwsBackend::with_options(&config, vhs::AwsOptions::emulator(url));
    let store = Store::builder(backend, format!("vhs-big-{}", std::process::id()))
        .build()
        .unwrap();
    store.ensure_bucket().await.unwrap();
    store.ensure_table::<Big>().await.unwrap();

    let started = std::time::Instant::now();
    let big = Big {
        id: "big".into(),
        data: Some(Blob::from_file(&input).await.unwrap()),
    };
    let staged = store.create_large(&big).await.unwrap();
    let up = started.elapsed();
    assert_eq!(staged.object("data").unwrap().size, len);

    let started = std::time::Instant::now();
    let written = store
        .download_large_to_file(&big.primary_key(), "data", &output)
        .await
        .unwrap();
    let down = started.elapsed();
    assert_eq!(written, len);

    let (expected, out_len) = {
        let (input, output) = (input.clone(), output.clone());
        tokio::task::spawn_blocking(move || (md5_file(&input), md5_file(&output)))
            .await
            .unwrap()
    };
    assert_eq!(expected, out_len, "the bytes came back unchanged");
    assert_eq!(staged.object("data").unwrap().checksum.hex(), expected.0);
    store.delete_large(&big.primary_key()).await.unwrap();

    let mb = len as f64 / MIB as f64;
    eprintln!(
        "{} MiB on {}: up {:.1} MiB/s, down {:.1} MiB/s",
        mb,
        emulator::emulator_name(),
        mb / up.as_secs_f64(),
        mb / down.as_secs_f64()
    );
    #[cfg(target_os = "linux")]
    {
        let peak = peak_rss();
        eprintln!(
            "peak RSS {} MiB (bound {} MiB)",
            peak / MIB,
            PEAK_BOUND / MIB
        );
        assert!(
            peak < PEAK_BOUND,
            "peak RSS {} MiB is over {} MiB for a {} MiB value",
            peak / MIB,
            PEAK_BOUND / MIB,
            mb
        );
    }
    #[cfg(not(target_os = "linux"))]
    eprintln!("peak RSS is measured on Linux only (VmHWM)");
}
