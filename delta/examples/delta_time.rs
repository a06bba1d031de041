//! Times `make_bytes` (default options) and `apply_bytes` on one pair of
//! files, in memory (what `dms delta make|apply` do, without the file I/O):
//!
//! ```text
//! cargo run --release -p dms-delta --example delta_time -- OLD NEW [no-probe]
//! ```
//!
//! `no-probe` runs zstd at level 19 beside bsdiff every time (the behaviour
//! before the probe), for comparison. The environment variables
//! `DIFF_LEVEL`, `EXTRA_LEVEL`, `PROBE_LEVEL`, `RETRY_PERCENT` and
//! `THREADS` override the matching [`dms_delta::MakeOptions`] fields.
#![allow(clippy::unwrap_used)] // example code: a failed unwrap is a usage error
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !(3..=4).contains(&args.len()) {
        eprintln!("usage: delta_time OLD NEW [no-probe]");
        std::process::exit(2);
    }
    let old = std::fs::read(&args[1]).unwrap();
    let new = std::fs::read(&args[2]).unwrap();
    let mb = new.len() as f64 / 1e6;
    let mut opts = dms_delta::MakeOptions::default();
    let env = |name: &str| std::env::var(name).ok().map(|v| v.parse::<i64>().unwrap());
    if let Some(v) = env("DIFF_LEVEL") {
        opts.bsdiff_diff_level = v as i32;
    }
    if let Some(v) = env("EXTRA_LEVEL") {
        opts.bsdiff_extra_level = v as i32;
    }
    if let Some(v) = env("PROBE_LEVEL") {
        opts.zstd_probe_level = v as i32;
    }
    if let Some(v) = env("RETRY_PERCENT") {
        opts.zstd_retry_percent = v as u32;
    }
    if let Some(v) = env("THREADS") {
        opts.threads = v as usize;
    }
    if args.get(3).map(String::as_str) == Some("no-probe") {
        opts.zstd_probe_level = opts.zstd_level;
    }
    let t = Instant::now();
    let (delta, info) = dms_delta::make_bytes(&old, &new, &opts).unwrap();
    let s = t.elapsed().as_secs_f64();
    println!(
        "make: {} B ({:?}) {s:.2} s {:.1} MB/s; candidates {:?}",
        delta.len(),
        info.header.method,
        mb / s,
        info.candidates
    );
    for _ in 0..2 {
        let t = Instant::now();
        let out = dms_delta::apply_bytes(&old, &delta).unwrap();
        let s = t.elapsed().as_secs_f64();
        assert!(out == new);
        println!("apply: {s:.3} s {:.1} MB/s", mb / s);
    }
}
