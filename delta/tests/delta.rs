#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

//! make/apply on files and in memory: round trips on realistic edits,
//! both methods, and every kind of bad input (wrong base, corrupt body,
//! truncated delta, bad header) leaving no output and the base untouched.

use std::path::Path;

use dms_delta::{DeltaError, HEADER_LEN, Header, HeaderError, MakeOptions, Method};
use proptest::prelude::*;
use rand::{Rng, SeedableRng, rngs::StdRng};

/// Bytes shaped like a binary: runs of structured records (compressible
/// but not trivially) mixed with random stretches.
fn binary_like(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        if rng.random_bool(0.3) {
            let n = rng.random_range(16..512);
            out.extend((0..n).map(|_| rng.random::<u8>()));
        } else {
            let base: u32 = rng.random();
            for i in 0..rng.random_range(4..64u32) {
                out.extend_from_slice(&(base.wrapping_add(i * 16)).to_le_bytes());
                out.extend_from_slice(b"\x48\x89\xe5\x41");
            }
        }
    }
    out.truncate(len);
    out
}

/// A new version: some regions changed in place, some inserted, some
/// removed, and pointer-like words shifted (what recompiling does).
fn edited(old: &[u8], seed: u64) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut new = old.to_vec();
    for _ in 0..8 {
        if new.len() < 64 {
            break;
        }
        let at = rng.random_range(0..new.len() - 32);
        match rng.random_range(0..3) {
            0 => new[at..at + 32].iter_mut().for_each(|b| *b = rng.random()),
            1 => {
                let ins: Vec<u8> = (0..rng.random_range(1..2048))
                    .map(|_| rng.random())
                    .collect();
                new.splice(at..at, ins);
            }
            _ => {
                let end = (at + rng.random_range(1..2048)).min(new.len());
                new.drain(at..end);
            }
        }
    }
    // Shift every 64th little-endian word by a constant.
    for chunk in new.chunks_mut(256) {
        if chunk.len() >= 4 {
            let w = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]).wrapping_add(0x40);
            chunk[..4].copy_from_slice(&w.to_le_bytes());
        }
    }
    new
}

fn write(dir: &Path, name: &str, data: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

/// Files in `dir` other than the given ones (temporary leftovers).
fn others(dir: &Path, known: &[&Path]) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !known.contains(&p.as_path()))
        .map(|p| p.display().to_string())
        .collect()
}

#[test]
fn file_round_trip_is_small_and_exact() {
    let dir = tempfile::tempdir().unwrap();
    let old = binary_like(1 << 20, 1);
    let new = edited(&old, 2);
    let old_p = write(dir.path(), "old", &old);
    let new_p = write(dir.path(), "new", &new);
    let delta_p = dir.path().join("delta");
    let out_p = dir.path().join("out");
    let info = dms_delta::make(&old_p, &new_p, &delta_p, &MakeOptions::default()).unwrap();
    assert_eq!(info.candidates.len(), 2);
    assert_eq!(info.delta_size, std::fs::metadata(&delta_p).unwrap().len());
    assert!(info.ratio() < 0.2, "ratio {}", info.ratio());
    let smallest = info.candidates.iter().map(|c| c.size).min().unwrap();
    assert_eq!(info.delta_size, smallest);
    let header = dms_delta::apply(&old_p, &delta_p, &out_p).unwrap();
    assert_eq!(header, info.header);
    assert_eq!(std::fs::read(&out_p).unwrap(), new);
    assert_eq!(dms_delta::read_header(&delta_p).unwrap(), info.header);
    assert_eq!(std::fs::read(&old_p).unwrap(), old);
    assert!(others(dir.path(), &[&old_p, &new_p, &delta_p, &out_p]).is_empty());
}

#[test]
fn each_method_round_trips() {
    let old = binary_like(200_000, 3);
    let new = edited(&old, 4);
    let zstd_only = MakeOptions {
        bsdiff: false,
        ..MakeOptions::default()
    };
    let (delta, info) = dms_delta::make_bytes(&old, &new, &zstd_only).unwrap();
    assert_eq!(info.header.method, Method::ZstdRef);
    assert_eq!(dms_delta::apply_bytes(&old, &delta).unwrap(), new);
    // bsdiff is chosen when it is smaller: force it by hand-building its delta.
    let (_, both) = dms_delta::make_bytes(&old, &new, &MakeOptions::default()).unwrap();
    assert!(
        both.candidates
            .iter()
            .any(|c| c.method == Method::BsdiffZstd)
    );
    let tiny = MakeOptions {
        zstd_level: 1,
        ..MakeOptions::default()
    };
    let (delta, info) = dms_delta::make_bytes(&old, &new, &tiny).unwrap();
    assert_eq!(dms_delta::apply_bytes(&old, &delta).unwrap(), new);
    assert_eq!(info.header.method, Header::parse(&delta).unwrap().method);
}

#[test]
fn bsdiff_body_round_trips() {
    // Small text-like edits where bsdiff's byte-wise add wins over zstd.
    let old: Vec<u8> = (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let new: Vec<u8> = (0..100_000u32)
        .flat_map(|i| (i + 3).to_le_bytes())
        .collect();
    let (delta, info) = dms_delta::make_bytes(&old, &new, &MakeOptions::default()).unwrap();
    let bs = info
        .candidates
        .iter()
        .find(|c| c.method == Method::BsdiffZstd)
        .unwrap();
    let zs = info
        .candidates
        .iter()
        .find(|c| c.method == Method::ZstdRef)
        .unwrap();
    assert_eq!(
        info.header.method,
        if bs.size < zs.size {
            Method::BsdiffZstd
        } else {
            Method::ZstdRef
        }
    );
    assert_eq!(dms_delta::apply_bytes(&old, &delta).unwrap(), new);
}

#[test]
fn empty_versions() {
    for (old, new) in [
        (vec![], vec![]),
        (vec![], b"hello".to_vec()),
        (b"hello".to_vec(), vec![]),
    ] {
        let (delta, info) = dms_delta::make_bytes(&old, &new, &MakeOptions::default()).unwrap();
        assert_eq!(info.header.target_size, new.len() as u64);
        assert_eq!(dms_delta::apply_bytes(&old, &delta).unwrap(), new);
    }
}

#[test]
fn wrong_base_is_refused_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let old = binary_like(100_000, 5);
    let new = edited(&old, 6);
    let other = edited(&old, 7);
    let old_p = write(dir.path(), "old", &old);
    let new_p = write(dir.path(), "new", &new);
    let other_p = write(dir.path(), "other", &other);
    let delta_p = dir.path().join("delta");
    let out_p = write(dir.path(), "out", b"previous content");
    dms_delta::make(&old_p, &new_p, &delta_p, &MakeOptions::default()).unwrap();
    let err = dms_delta::apply(&other_p, &delta_p, &out_p).unwrap_err();
    assert!(matches!(err, DeltaError::WrongBase { .. }), "{err}");
    // Same size, one byte different.
    let mut flipped = old.clone();
    flipped[500] ^= 1;
    let flipped_p = write(dir.path(), "flipped", &flipped);
    let err = dms_delta::apply(&flipped_p, &delta_p, &out_p).unwrap_err();
    assert!(matches!(err, DeltaError::WrongBase { .. }), "{err}");
    assert_eq!(std::fs::read(&out_p).unwrap(), b"previous content");
    assert_eq!(std::fs::read(&other_p).unwrap(), other);
    assert!(
        others(
            dir.path(),
            &[&old_p, &new_p, &other_p, &delta_p, &out_p, &flipped_p]
        )
        .is_empty()
    );
}

#[test]
fn output_equal_to_base_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let old = binary_like(10_000, 8);
    let new = edited(&old, 9);
    let old_p = write(dir.path(), "old", &old);
    let new_p = write(dir.path(), "new", &new);
    let delta_p = dir.path().join("delta");
    dms_delta::make(&old_p, &new_p, &delta_p, &MakeOptions::default()).unwrap();
    let err = dms_delta::apply(&old_p, &delta_p, &dir.path().join(".").join("old")).unwrap_err();
    assert!(matches!(err, DeltaError::OutputIsBase(_)), "{err}");
    assert_eq!(std::fs::read(&old_p).unwrap(), old);
}

#[test]
fn truncated_and_corrupt_deltas_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let old = binary_like(300_000, 10);
    let new = edited(&old, 11);
    let old_p = write(dir.path(), "old", &old);
    for opts in [
        MakeOptions {
            bsdiff: false,
            ..MakeOptions::default()
        },
        MakeOptions {
            zstd_level: 1,
            ..MakeOptions::default()
        },
    ] {
        let (delta, info) = dms_delta::make_bytes(&old, &new, &opts).unwrap();
        let mut bads: Vec<(String, Vec<u8>)> = vec![
            ("header only".into(), delta[..HEADER_LEN].to_vec()),
            ("half header".into(), delta[..HEADER_LEN / 2].to_vec()),
            (
                "half body".into(),
                delta[..HEADER_LEN + (delta.len() - HEADER_LEN) / 2].to_vec(),
            ),
            ("last byte cut".into(), delta[..delta.len() - 1].to_vec()),
        ];
        for at in [
            HEADER_LEN + 5,
            HEADER_LEN + (delta.len() - HEADER_LEN) / 3,
            delta.len() - 2,
        ] {
            let mut b = delta.clone();
            b[at] ^= 0x55;
            bads.push((format!("flip at {at}"), b));
        }
        let mut wrong_target = delta.clone();
        wrong_target[60] ^= 1;
        bads.push(("target hash".into(), wrong_target));
        let mut short_target = delta.clone();
        short_target[52..60].copy_from_slice(&(new.len() as u64 - 1).to_le_bytes());
        bads.push(("target size".into(), short_target));
        for (what, bad) in bads {
            let delta_p = write(dir.path(), "bad", &bad);
            let out_p = dir.path().join("out");
            let err = match dms_delta::apply(&old_p, &delta_p, &out_p) {
                // A change in bits the format ignores (padding at the end
                // of a compressed stream) still decodes to the verified
                // target: that is a success, never a wrong output.
                Ok(_) if what.starts_with("flip") || what == "last byte cut" => {
                    assert_eq!(std::fs::read(&out_p).unwrap(), new, "{what}");
                    std::fs::remove_file(&out_p).unwrap();
                    continue;
                }
                Ok(_) => panic!("{what}: accepted"),
                Err(e) => e,
            };
            assert!(
                matches!(
                    err,
                    DeltaError::Corrupt(_)
                        | DeltaError::TargetMismatch { .. }
                        | DeltaError::Header(_)
                ),
                "{:?} {what}: {err}",
                info.header.method
            );
            assert!(!out_p.exists(), "{what}: output written");
            assert!(
                others(dir.path(), &[&old_p, &delta_p]).is_empty(),
                "{what}: leftovers"
            );
        }
    }
    assert_eq!(std::fs::read(&old_p).unwrap(), old);
}

#[test]
fn not_a_delta() {
    let err = dms_delta::apply_bytes(b"base", &[b'P'; 200]).unwrap_err();
    assert!(
        matches!(err, DeltaError::Header(HeaderError::BadMagic)),
        "{err}"
    );
    let err = dms_delta::apply_bytes(b"base", b"DMSDELTA").unwrap_err();
    assert!(
        matches!(err, DeltaError::Header(HeaderError::Truncated)),
        "{err}"
    );
}

#[test]
fn missing_input_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = dms_delta::make(
        &dir.path().join("nope"),
        &dir.path().join("nope2"),
        &dir.path().join("out"),
        &MakeOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, DeltaError::Io { .. }), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Any edit script on binary-like data round-trips through both methods.
    #[test]
    fn round_trip_any_edit(len in 0usize..60_000, seed in any::<u64>(), edit_seed in any::<u64>()) {
        let old = binary_like(len, seed);
        let new = edited(&old, edit_seed);
        let (delta, info) = dms_delta::make_bytes(&old, &new, &MakeOptions { zstd_level: 3, ..MakeOptions::default() }).unwrap();
        prop_assert_eq!(dms_delta::apply_bytes(&old, &delta).unwrap(), new.clone());
        // The other method too.
        let zstd_only = MakeOptions { zstd_level: 3, bsdiff: false, ..MakeOptions::default() };
        let (delta, _) = dms_delta::make_bytes(&old, &new, &zstd_only).unwrap();
        prop_assert_eq!(dms_delta::apply_bytes(&old, &delta).unwrap(), new);
        prop_assert!(info.delta_size <= info.candidates.iter().map(|c| c.size).max().unwrap());
    }

    /// Arbitrary bytes after a valid header never panic and never pass as
    /// the target unless they decode to it.
    #[test]
    fn garbage_bodies_fail(body in proptest::collection::vec(any::<u8>(), 0..2000), method in prop::sample::select(vec![1u8, 2, 3])) {
        let old = binary_like(5000, 1);
        let new = edited(&old, 2);
        let (delta, _) = dms_delta::make_bytes(&old, &new, &MakeOptions::default()).unwrap();
        let mut bad = delta[..HEADER_LEN].to_vec();
        bad[9] = method;
        bad.extend_from_slice(&body);
        prop_assert!(dms_delta::apply_bytes(&old, &bad).is_err());
    }
}

#[test]
fn the_slow_zstd_level_runs_only_when_the_probe_may_win() {
    let old = binary_like(300_000, 21);
    let new = edited(&old, 22);
    // Always retry: probe, full level and bsdiff, the smallest kept.
    let always = MakeOptions {
        zstd_retry_percent: u32::MAX,
        ..MakeOptions::default()
    };
    let (delta, info) = dms_delta::make_bytes(&old, &new, &always).unwrap();
    let methods: Vec<Method> = info.candidates.iter().map(|c| c.method).collect();
    assert_eq!(
        methods,
        [Method::ZstdRef, Method::ZstdRef, Method::BsdiffZstd]
    );
    let smallest = info.candidates.iter().map(|c| c.size).min().unwrap();
    assert_eq!(info.delta_size, smallest);
    assert_eq!(dms_delta::apply_bytes(&old, &delta).unwrap(), new);
    // Never retry: the probe and bsdiff only.
    let never = MakeOptions {
        zstd_retry_percent: 0,
        ..MakeOptions::default()
    };
    let (delta, info) = dms_delta::make_bytes(&old, &new, &never).unwrap();
    let methods: Vec<Method> = info.candidates.iter().map(|c| c.method).collect();
    assert_eq!(methods, [Method::ZstdRef, Method::BsdiffZstd]);
    assert_eq!(dms_delta::apply_bytes(&old, &delta).unwrap(), new);
    // A level at or below the probe's: one zstd run at that level.
    let low = MakeOptions {
        zstd_level: 3,
        zstd_retry_percent: u32::MAX,
        ..MakeOptions::default()
    };
    let (_, info) = dms_delta::make_bytes(&old, &new, &low).unwrap();
    assert_eq!(info.candidates.len(), 2);
    // Without bsdiff: zstd at the full level alone.
    let zstd_only = MakeOptions {
        bsdiff: false,
        ..MakeOptions::default()
    };
    let (_, info) = dms_delta::make_bytes(&old, &new, &zstd_only).unwrap();
    assert_eq!(info.candidates.len(), 1);
}
