//! `dms delta make|apply`: binary deltas between two versions of a file.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand};

/// `dms delta` subcommands.
#[derive(Debug, Subcommand)]
pub enum DeltaCommand {
    /// Make a delta that turns OLD into NEW (zstd patch-from and a
    /// bsdiff-family diff with zstd streams,
    /// the smaller kept); prints sizes and ratio.
    Make(MakeArgs),
    /// Apply DELTA to OLD; writes the verified result to OUT atomically
    /// (nothing is written on a wrong base or a corrupt delta).
    Apply(ApplyArgs),
}

/// Arguments of `dms delta make`.
#[derive(Debug, Args)]
pub struct MakeArgs {
    /// The version devices have.
    old: PathBuf,
    /// The version to deliver.
    new: PathBuf,
    /// Where to write the delta.
    out: PathBuf,
    /// zstd level of the patch-from encoding (1-22).
    #[arg(long, default_value_t = 19, value_parser = clap::value_parser!(i32).range(1..=22))]
    level: i32,
    /// Do not try bsdiff (faster, sometimes larger).
    #[arg(long)]
    no_bsdiff: bool,
}

/// Arguments of `dms delta apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The installed version the delta was made from (never modified).
    old: PathBuf,
    /// The delta.
    delta: PathBuf,
    /// Where to write the new version.
    out: PathBuf,
}

/// Runs a `dms delta` subcommand.
pub fn run(command: DeltaCommand) -> anyhow::Result<()> {
    match command {
        DeltaCommand::Make(args) => make(&args),
        DeltaCommand::Apply(args) => apply(&args),
    }
}

fn make(args: &MakeArgs) -> anyhow::Result<()> {
    let opts = dms_delta::MakeOptions {
        zstd_level: args.level,
        bsdiff: !args.no_bsdiff,
        ..dms_delta::MakeOptions::default()
    };
    let start = Instant::now();
    let info = dms_delta::make(&args.old, &args.new, &args.out, &opts).with_context(|| {
        format!(
            "making a delta from {} to {}",
            args.old.display(),
            args.new.display()
        )
    })?;
    let secs = start.elapsed().as_secs_f64();
    for c in &info.candidates {
        println!("candidate {}: {} bytes", c.method, c.size);
    }
    println!("old: {} bytes", info.header.base_size);
    println!("new: {} bytes", info.header.target_size);
    println!(
        "delta: {} bytes ({}), ratio {:.4} of new, sha256 {}",
        info.delta_size,
        info.header.method,
        info.ratio(),
        hex(&info.delta_sha256)
    );
    println!("wrote {} in {secs:.2} s", args.out.display());
    Ok(())
}

fn apply(args: &ApplyArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    let header = dms_delta::apply(&args.old, &args.delta, &args.out).with_context(|| {
        format!(
            "applying {} to {}",
            args.delta.display(),
            args.old.display()
        )
    })?;
    let secs = start.elapsed().as_secs_f64();
    let delta_size = file_size(&args.delta)?;
    let ratio = if header.target_size == 0 {
        0.0
    } else {
        delta_size as f64 / header.target_size as f64
    };
    println!("old: {} bytes", header.base_size);
    println!(
        "delta: {delta_size} bytes ({}), ratio {ratio:.4} of new",
        header.method
    );
    println!(
        "new: {} bytes, sha256 {} verified",
        header.target_size,
        hex(&header.target_sha256)
    );
    println!("wrote {} in {secs:.2} s", args.out.display());
    Ok(())
}

fn file_size(path: &Path) -> anyhow::Result<u64> {
    Ok(std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
