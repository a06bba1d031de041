#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

//! `dms delta make` / `dms delta apply` through the built binary.

use std::path::Path;
use std::process::{Command, Output};

fn dms(args: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dms"))
        .args(args)
        .output()
        .unwrap()
}

fn versions() -> (Vec<u8>, Vec<u8>) {
    let old: Vec<u8> = (0..400_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut new = old.clone();
    new.splice(100_000..100_000, b"inserted in version 2".iter().copied());
    new[300_000..300_064].fill(0x90);
    new.truncate(390_000);
    (old, new)
}

#[test]
fn make_then_apply_round_trips_and_prints_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = versions();
    let (old_p, new_p) = (dir.path().join("v1.bin"), dir.path().join("v2.bin"));
    std::fs::write(&old_p, &old).unwrap();
    std::fs::write(&new_p, &new).unwrap();
    let delta_p = dir.path().join("v1-v2.delta");
    let out_p = dir.path().join("v2.rebuilt");

    let made = dms(&[
        Path::new("delta"),
        Path::new("make"),
        &old_p,
        &new_p,
        &delta_p,
    ]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let stdout = String::from_utf8(made.stdout).unwrap();
    let delta_len = std::fs::metadata(&delta_p).unwrap().len();
    assert!(delta_len < new.len() as u64 / 20, "delta {delta_len} bytes");
    assert!(
        stdout.contains(&format!("delta: {delta_len} bytes")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("new: {} bytes", new.len())),
        "{stdout}"
    );
    assert!(stdout.contains("ratio 0.0"), "{stdout}");

    let applied = dms(&[
        Path::new("delta"),
        Path::new("apply"),
        &old_p,
        &delta_p,
        &out_p,
    ]);
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let stdout = String::from_utf8(applied.stdout).unwrap();
    assert!(stdout.contains("verified"), "{stdout}");
    assert_eq!(std::fs::read(&out_p).unwrap(), new);
    assert_eq!(std::fs::read(&old_p).unwrap(), old);
}

#[test]
fn apply_to_the_wrong_base_fails_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = versions();
    let (old_p, new_p) = (dir.path().join("v1.bin"), dir.path().join("v2.bin"));
    std::fs::write(&old_p, &old).unwrap();
    std::fs::write(&new_p, &new).unwrap();
    let delta_p = dir.path().join("d");
    let made = dms(&[
        Path::new("delta"),
        Path::new("make"),
        Path::new("--no-bsdiff"),
        &old_p,
        &new_p,
        &delta_p,
    ]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );

    // The new version as base: wrong.
    let out_p = dir.path().join("out");
    let failed = dms(&[
        Path::new("delta"),
        Path::new("apply"),
        &new_p,
        &delta_p,
        &out_p,
    ]);
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("wrong base"), "{stderr}");
    assert!(!out_p.exists());

    // A truncated delta.
    let bytes = std::fs::read(&delta_p).unwrap();
    std::fs::write(&delta_p, &bytes[..bytes.len() / 2]).unwrap();
    let failed = dms(&[
        Path::new("delta"),
        Path::new("apply"),
        &old_p,
        &delta_p,
        &out_p,
    ]);
    assert!(!failed.status.success());
    assert!(!out_p.exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 3, "{leftovers:?}");
    assert_eq!(std::fs::read(&old_p).unwrap(), old);
}
