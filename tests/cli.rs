//! The `dms` binary as a user runs it.
#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::process::Command;

fn dms(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dms"))
        .args(args)
        .output()
        .expect("run dms")
}

#[test]
fn help_and_version() {
    let help = dms(&["--help"]);
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("fec"));
    let version = dms(&["--version"]);
    assert!(version.status.success());
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("dms {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn fec_overhead_prints_reproducible_csv() {
    let args = [
        "fec", "overhead", "--k", "10,100", "--trials", "60", "--seed", "7",
    ];
    let first = dms(&args);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let csv = String::from_utf8(first.stdout).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("k,trials,decoded_at_k,decoded_at_k1,decoded_at_k2")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 2);
    for (row, k) in rows.iter().zip(["10", "100"]) {
        assert_eq!(row[0], k);
        assert_eq!(row[1], "60");
        let fractions: Vec<f64> = row[2..].iter().map(|v| v.parse().unwrap()).collect();
        // Cumulative, within [0, 1], and RaptorQ decodes nearly always by K+2.
        assert!(fractions.windows(2).all(|w| w[0] <= w[1]), "{row:?}");
        assert!(fractions.iter().all(|f| (0.0..=1.0).contains(f)));
        assert!(fractions[2] > 0.95, "{row:?}");
    }
    // Same seed, same output, whatever the thread scheduling.
    assert_eq!(String::from_utf8(dms(&args).stdout).unwrap(), csv);
}

#[test]
fn fec_overhead_measures_raptor() {
    let args = [
        "fec", "overhead", "--fec", "raptor", "--k", "10,50", "--trials", "200", "--seed", "3",
    ];
    let out = dms(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<Vec<f64>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), 2);
    for row in &rows {
        // A GF(2) code: well under RaptorQ's ~99 % at K, more with each
        // symbol past it.
        assert!(
            row[2] < 0.6 && row[2] < row[3] && row[3] < row[4],
            "{row:?}"
        );
    }
    // Raptor's K is 4..=8192.
    for k in ["3", "8193"] {
        let out = dms(&[
            "fec", "overhead", "--fec", "raptor", "--k", k, "--trials", "1",
        ]);
        assert!(!out.status.success(), "K = {k}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("raptor"));
    }
}

#[test]
fn fec_overhead_rejects_bad_k() {
    let out = dms(&["fec", "overhead", "--k", "0", "--trials", "1"]);
    assert!(!out.status.success());
    let out = dms(&["fec", "overhead", "--k", "56404", "--trials", "1"]);
    assert!(!out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).is_empty());
}
