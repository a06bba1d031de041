//! The `dms delta make|apply` command lines on the library alone, so that
//! `benches/delta_releases.sh` can measure a release build of this crate
//! without building the whole `dms` binary:
//!
//! ```text
//! cargo build --release -p dms-delta --example delta_cli
//! DMS=target/release/examples/delta_cli bash benches/delta_releases.sh
//! ```
//!
//! `delta_cli delta make OLD NEW OUT [--no-bsdiff]` and
//! `delta_cli delta apply OLD DELTA OUT` (default options otherwise).
#![allow(clippy::unwrap_used)] // example code: a failed unwrap is a usage error
use std::path::Path;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let no_bsdiff = args.iter().any(|a| a == "--no-bsdiff");
    let args: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| *a != "--no-bsdiff")
        .collect();
    match args.as_slice() {
        ["delta", "make", old, new, out] => {
            let opts = dms_delta::MakeOptions {
                bsdiff: !no_bsdiff,
                ..dms_delta::MakeOptions::default()
            };
            let info = dms_delta::make(Path::new(old), Path::new(new), Path::new(out), &opts)
                .unwrap_or_else(|e| fail(&e));
            for c in &info.candidates {
                println!("candidate {}: {} bytes", c.method, c.size);
            }
            println!("delta: {} bytes ({})", info.delta_size, info.header.method);
        }
        ["delta", "apply", old, delta, out] => {
            let header = dms_delta::apply(Path::new(old), Path::new(delta), Path::new(out))
                .unwrap_or_else(|e| fail(&e));
            println!("new: {} bytes verified", header.target_size);
        }
        _ => {
            eprintln!(
                "usage: delta_cli delta make OLD NEW OUT [--no-bsdiff] | delta apply OLD DELTA OUT"
            );
            std::process::exit(2);
        }
    }
}

fn fail(e: &dms_delta::DeltaError) -> ! {
    eprintln!("error: {e}");
    std::process::exit(1);
}
