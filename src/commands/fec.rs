//! `dms fec …`: measurements of the FEC codes.

use std::io::Write;

use anyhow::Context;
use clap::{Args, Subcommand};
use dms_fec::overhead::{OverheadExperiment, OverheadTally};
use rayon::prelude::*;

/// FEC subcommands.
#[derive(Debug, Subcommand)]
pub enum FecCommand {
    /// Measure a code's reception overhead (RaptorQ's or Raptor's): the
    /// fraction of random-loss trials that decode with exactly K, at most
    /// K+1 and at most K+2 received symbols. Prints CSV.
    Overhead(OverheadArgs),
}

/// Arguments of `dms fec overhead`.
#[derive(Debug, Args)]
pub struct OverheadArgs {
    /// The code measured: raptorq (RFC 6330) or raptor (RFC 5053, K 4…8192).
    #[arg(long, default_value = "raptorq")]
    fec: dms_fec::FecScheme,
    /// Source symbols per block (K), comma-separated.
    #[arg(long, value_delimiter = ',', required = true, value_parser = clap::value_parser!(u32).range(1..=56403))]
    k: Vec<u32>,
    /// Trials per K.
    #[arg(long, default_value_t = 1000)]
    trials: u64,
    /// Seed for the data and the loss patterns: the same seed gives the same CSV.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Runs a `dms fec` subcommand.
pub fn run(command: FecCommand) -> anyhow::Result<()> {
    match command {
        FecCommand::Overhead(args) => overhead(&args),
    }
}

/// A per-trial seed that does not depend on which thread runs the trial.
fn trial_seed(seed: u64, k: u32, trial: u64) -> u64 {
    // SplitMix64 finaliser over the three inputs.
    let mut z = seed ^ (u64::from(k) << 40) ^ trial.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn overhead(args: &OverheadArgs) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "k,trials,decoded_at_k,decoded_at_k1,decoded_at_k2")?;
    let scheme = args.fec;
    if let Some(&k) = args
        .k
        .iter()
        .find(|&&k| k < scheme.min_source_symbols() || k > scheme.max_source_symbols())
    {
        anyhow::bail!(
            "K = {k} is outside {scheme}'s {}..={}",
            scheme.min_source_symbols(),
            scheme.max_source_symbols()
        );
    }
    for &k in &args.k {
        let experiment =
            OverheadExperiment::with_scheme(scheme, k, trial_seed(args.seed, k, u64::MAX))
                .with_context(|| format!("encoding a {scheme} block of K = {k}"))?;
        let tally = (0..args.trials)
            .into_par_iter()
            .map(|trial| {
                let mut tally = OverheadTally::default();
                tally.record(experiment.run_trial(trial_seed(args.seed, k, trial))?);
                Ok(tally)
            })
            .try_reduce(OverheadTally::default, |a, b| Ok(a.merge(b)))
            .map_err(|e: dms_fec::FecError| anyhow::anyhow!(e))
            .with_context(|| format!("trials at K = {k}"))?;
        writeln!(
            out,
            "{k},{},{:.6},{:.6},{:.6}",
            tally.trials,
            tally.fraction(0),
            tally.fraction(1),
            tally.fraction(2)
        )?;
        out.flush()?;
    }
    Ok(())
}
