//! `dms sim` end to end: the binary writes a CSV with a row per loss ×
//! overhead, a per-UE CSV, JSON and an SVG plot, says which model ran, and
//! refuses bad arguments.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod binary;

use binary::{dms, json};

fn rows(path: &std::path::Path) -> Vec<csv::StringRecord> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    reader.records().map(|r| r.unwrap()).collect()
}

fn column(path: &std::path::Path, name: &str) -> Vec<String> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let i = reader
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name}"));
    reader
        .records()
        .map(|r| r.unwrap().get(i).unwrap().to_owned())
        .collect()
}

#[test]
fn a_small_run_writes_csv_json_and_svg() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let run = dms(&[
        "sim",
        "--ues",
        "300",
        "--size",
        "1MiB",
        "--loss",
        "1,10",
        "--repair",
        "0,5,20",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("model exact"), "{stdout}");

    let csv = out.join("sim.csv");
    assert_eq!(rows(&csv).len(), 6);
    assert!(column(&csv, "model").iter().all(|m| m == "exact"));
    // 1 MiB at T = 1400: 749 symbols; at most 748 a block, so two.
    assert!(column(&csv, "blocks").iter().all(|k| k == "2"));
    assert!(column(&csv, "k_max").iter().all(|k| k == "375"));
    let mean: Vec<f64> = column(&csv, "repair_mean_bytes")
        .iter()
        .map(|v| v.parse().unwrap())
        .collect();
    // Loss 1 % without FEC overhead: every UE repairs its ~7.5 lost
    // symbols; with 20 % overhead none does. More loss, more repair.
    assert!(
        mean[0] > 5.0 * 1400.0 && mean[0] < 12.0 * 1400.0,
        "{mean:?}"
    );
    assert_eq!(mean[2], 0.0, "{mean:?}");
    assert!(mean[3] > mean[0] && mean[3] > mean[4], "{mean:?}");
    let baseline: Vec<u64> = column(&csv, "unicast_baseline_bytes")
        .iter()
        .map(|v| v.parse().unwrap())
        .collect();
    assert!(baseline.iter().all(|&b| b == 300 << 20));

    // One row per UE, loss and overhead.
    assert_eq!(rows(&out.join("ues.csv")).len(), 300 * 6);

    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("sim.json")).unwrap()).unwrap();
    assert_eq!(summary["model"], "exact");
    assert_eq!(summary["rows"].as_array().unwrap().len(), 6);
    assert!(summary["seconds"].as_f64().unwrap() > 0.0);

    let svg = std::fs::read_to_string(out.join("sim.svg")).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
    assert!(svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("unicast only"));
    assert!(svg.contains("loss 10 %"));
}

#[test]
fn statistical_runs_for_bursts_and_peers_take_repair_off_the_origin() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let summary = json(&dms(&[
        "sim",
        "--ues",
        "2000",
        "--size",
        "3MiB",
        "--loss",
        "5",
        "--burst",
        "--burst-length",
        "8",
        "--repair",
        "5",
        "--peers",
        "0.5",
        "--model",
        "statistical",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]));
    assert_eq!(summary["model"], "runs");
    let row = &summary["rows"][0];
    assert_eq!(row["burst_length"], 8.0);
    let all = row["origin_repair_bytes_no_peers"].as_u64().unwrap();
    let origin = row["origin_repair_bytes"].as_u64().unwrap();
    let peers = row["peer_repair_bytes"].as_u64().unwrap();
    assert!(all > 0);
    assert_eq!(origin + peers, all);
    // Half the UEs have peers: the origin sends about half.
    let share = origin as f64 / all as f64;
    assert!((0.4..0.6).contains(&share), "{share}");
    assert!(out.join("sim.svg").exists());
    // No per-UE file is asked for past 10 000 UEs, but 2000 get one.
    assert!(out.join("ues.csv").exists());
}

#[test]
fn bad_arguments_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let out = out.to_str().unwrap();
    for args in [
        &["sim", "--size", "1MiB", "--loss", "101", "--out", out][..],
        &["sim", "--size", "1 parsec", "--loss", "5", "--out", out][..],
        &[
            "sim", "--size", "1MiB", "--loss", "5", "--peers", "2", "--out", out,
        ][..],
        &[
            "sim",
            "--size",
            "1MiB",
            "--loss",
            "5",
            "--burst-length",
            "4",
            "--out",
            out,
        ][..],
    ] {
        let run = dms(args);
        assert!(!run.status.success(), "{args:?} was accepted");
    }
}
