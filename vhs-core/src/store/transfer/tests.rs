use super::upload::{part_size, read_parts, Part};
use super::*;
use crate::backend::{MAX_PARTS, MAX_PUT_OBJECT_BYTES, MIN_PART_BYTES};
use crate::error::Result;
use tokio::sync::mpsc;

#[test]
fn part_size_grows_to_fit_ten_thousand_parts() {
    const MIB: u64 = 1024 * 1024;
    assert_eq!(part_size(0, 8 * MIB), 8 * MIB);
    assert_eq!(part_size(20 * MIB, 8 * MIB), 8 * MIB);
    assert_eq!(part_size(10_000 * 8 * MIB, 8 * MIB), 8 * MIB);
    // 5 TiB: 524.288 MiB per part, rounded up to 525 MiB.
    let tib5 = 5 * 1024 * 1024 * MIB;
    let size = part_size(tib5, 8 * MIB);
    assert_eq!(size, 525 * MIB);
    assert!(tib5.div_ceil(size) <= MAX_PARTS);
    assert!(size <= MAX_PUT_OBJECT_BYTES);
    assert_eq!(part_size(6 * 1024 * MIB, MIN_PART_BYTES), MIN_PART_BYTES);
}

/// Runs `read_parts` on a file whose bytes are not the ones planned.
fn read_file_parts(content: &[u8], planned: &[u8]) -> Vec<Result<Part>> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, content).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let blob = rt.block_on(Blob::from_file(&path)).unwrap();
    let (tx, mut rx) = mpsc::channel(1);
    let planned = crate::checksum::ChecksumAlgorithm::Md5.digest(planned);
    let reader = std::thread::spawn(move || read_parts(blob, MIN_PART_BYTES, planned, tx));
    let mut got = Vec::new();
    while let Some(part) = rx.blocking_recv() {
        got.push(part);
    }
    reader.join().unwrap();
    got
}

#[test]
fn a_file_that_changed_since_it_was_hashed_fails_before_its_last_part() {
    let len = MIN_PART_BYTES as usize + 10;
    let planned = vec![7u8; len];
    let parts = read_file_parts(&planned, &planned);
    assert_eq!(parts.len(), 2);
    assert!(parts.iter().all(|p| p.is_ok()));
    assert_eq!(parts[1].as_ref().unwrap().number, 2);
    assert_eq!(parts[1].as_ref().unwrap().body.len(), 10);

    // Same length, other bytes: the first part goes, the last never does.
    let mut changed = planned.clone();
    changed[len - 1] = 8;
    let parts = read_file_parts(&changed, &planned);
    assert_eq!(parts.len(), 2);
    assert!(parts[0].is_ok());
    let err = parts[1].as_ref().err().unwrap();
    assert!(err.to_string().contains("changed"), "{err}");
}
