//! `dms sim`: a research simulator of FEC and repair for a population of
//! UEs receiving one broadcast — no sockets, no files but its outputs.
//!
//! For each loss rate and each FEC repair overhead it draws every UE's
//! losses per block ([`model`]), applies the UE agent's repair rule, and
//! sums what the origin sends: the broadcast once, plus unicast repair for
//! the UEs that peers do not serve. Outputs go to `--out`: `sim.csv` (one
//! row per loss × overhead), `sim.json`, `sim.svg` (origin bytes against
//! overhead beside the unicast-only baseline) and, for small runs,
//! `ues.csv` (one row per UE).

mod model;
mod output;
mod plot;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use rayon::prelude::*;

use model::{Loss, Model, Plan, Simulator};
use output::{Row, Summary};

/// Above this many packet draws (UEs × packets × overheads × loss rates)
/// `--model auto` picks the statistical models.
const EXACT_WORK_LIMIT: f64 = 3e8;

/// Up to this many UEs the per-UE CSV is written.
const PER_UE_LIMIT: u64 = 10_000;

/// Arguments of `dms sim`.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// UEs receiving the broadcast (up to 10 000 000).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    ues: u64,
    /// Object size: bytes, or with a unit (KiB, MiB, GiB; kB, MB, GB).
    #[arg(long, value_parser = super::units::parse_size)]
    size: u64,
    /// Packet loss each UE sees, percent; a comma-separated list gives one
    /// line per rate in the plot.
    #[arg(long, value_delimiter = ',', required = true, value_parser = parse_percent)]
    loss: Vec<f64>,
    /// Bursty loss (Gilbert–Elliott, as `dms receive --drop RATE,BURST`)
    /// instead of independent losses.
    #[arg(long)]
    burst: bool,
    /// Mean burst length in packets, with `--burst`.
    #[arg(long, default_value_t = 10.0, requires = "burst", value_parser = parse_burst)]
    burst_length: f64,
    /// FEC repair overheads to simulate, percent of K (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "0,2,5,10,15,20,30", value_parser = clap::value_parser!(u32).range(0..=1000))]
    repair: Vec<u32>,
    /// Fraction of UEs with peer connectivity (0..1): such a UE gets all
    /// its repair symbols from peers (any peer that decoded a block makes
    /// fresh symbols for it), the others from the origin.
    #[arg(long, default_value_t = 0.0, value_parser = parse_fraction)]
    peers: f64,
    /// Seed: the same seed and arguments give the same outputs.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Symbol size T in bytes (the origin's default is 1400).
    #[arg(long, default_value_t = 1400, value_parser = clap::value_parser!(u16).range(4..))]
    symbol_size: u16,
    /// Target source block size in bytes (the origin's default, ~1 MiB).
    #[arg(long, default_value_t = dms_fec::DEFAULT_BLOCK_BYTES, value_parser = super::units::parse_size)]
    block_bytes: u64,
    /// Loss model: `exact` (packet by packet), `statistical` (binomial per
    /// block, or geometric runs for bursts), `auto` (exact when small).
    #[arg(long, value_enum, default_value_t = ModelChoice::Auto)]
    model: ModelChoice,
    /// Output directory (created).
    #[arg(long)]
    out: PathBuf,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// `--model`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModelChoice {
    /// Exact when UEs × packets is small, else statistical.
    Auto,
    /// Packet by packet.
    Exact,
    /// Binomial per block (i.i.d.) or geometric runs (bursts).
    Statistical,
}

fn parse_percent(s: &str) -> Result<f64, String> {
    let v: f64 = s.trim().parse().map_err(|_| format!("bad percent {s:?}"))?;
    if !(0.0..=100.0).contains(&v) {
        return Err(format!("percent {v} outside 0..=100"));
    }
    Ok(v)
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("bad fraction {s:?}"))?;
    if !(0.0..=1.0).contains(&v) {
        return Err(format!("fraction {v} outside 0..=1"));
    }
    Ok(v)
}

fn parse_burst(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("bad burst length {s:?}"))?;
    if !(v >= 1.0 && v.is_finite()) {
        return Err("burst length must be ≥ 1".into());
    }
    Ok(v)
}

/// SplitMix64 over the inputs: independent streams per UE that do not
/// depend on which thread runs them.
fn mix(seed: u64, a: u64, b: u64) -> u64 {
    let mut z =
        seed ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Whether UE `ue` has peers: the same UEs at every loss and overhead.
fn has_peers(seed: u64, ue: u64, fraction: f64) -> bool {
    (mix(seed ^ 0x7065_6572, ue, u64::MAX) >> 11) as f64 / (1u64 << 53) as f64 <= fraction
        && fraction > 0.0
}

/// The model that runs for these arguments.
fn choose_model(args: &SimArgs, packets: u64) -> Model {
    let statistical = if args.burst {
        Model::Runs
    } else {
        Model::Binomial
    };
    match args.model {
        ModelChoice::Exact => Model::Exact,
        ModelChoice::Statistical => statistical,
        ModelChoice::Auto => {
            let work = args.ues as f64
                * packets as f64
                * args.repair.len() as f64
                * args.loss.len() as f64;
            if work <= EXACT_WORK_LIMIT {
                Model::Exact
            } else {
                statistical
            }
        }
    }
}

/// Runs `dms sim`.
pub fn run(args: SimArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut repair = args.repair.clone();
    repair.sort_unstable();
    repair.dedup();
    if repair.is_empty() {
        bail!("--repair: give at least one overhead");
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let plans = repair
        .iter()
        .map(|&r| Plan::new(args.size, args.symbol_size, args.block_bytes, r))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let max_packets = plans.iter().map(Plan::packets).max().unwrap_or(0);
    let model = choose_model(&args, max_packets);
    let per_ue = args.ues <= PER_UE_LIMIT;
    let mut rows = Vec::new();
    let mut ue_rows = Vec::new();
    for (li, &loss_percent) in args.loss.iter().enumerate() {
        let loss = Loss {
            rate: loss_percent / 100.0,
            burst: args.burst.then_some(args.burst_length),
        };
        for plan in &plans {
            let row_started = Instant::now();
            let sim = Simulator::new(plan.clone(), loss, model)?;
            // Each UE's stream depends on the loss rate and the UE only:
            // the same UE is compared across overheads (common random
            // numbers keep the curves smooth).
            let outcomes: Vec<(u64, bool, bool)> = (0..args.ues)
                .into_par_iter()
                .map_init(Vec::new, |lost, ue| {
                    let mut rng = SmallRng::seed_from_u64(mix(args.seed, li as u64, ue));
                    let o = sim.ue(&mut rng, lost);
                    (
                        o.bytes(plan),
                        o.download,
                        has_peers(args.seed, ue, args.peers),
                    )
                })
                .collect();
            if per_ue {
                ue_rows.extend(outcomes.iter().enumerate().map(
                    |(ue, &(bytes, download, peer))| output::UeRow {
                        loss_percent,
                        repair_percent: plan.repair_percent,
                        ue: ue as u64,
                        repair_bytes: bytes,
                        download,
                        peers: peer,
                    },
                ));
            }
            rows.push(Row::new(
                &args_meta(&args, loss_percent, model),
                plan,
                outcomes,
                row_started.elapsed().as_secs_f64(),
            ));
        }
    }
    let summary = Summary {
        model: model.name().to_owned(),
        model_description: describe(model, &args),
        peers_model: format!(
            "a fraction {} of UEs (drawn per UE) has peers and gets all its repair from them; the others from the origin",
            args.peers
        ),
        decode_failure: format!(
            "RaptorQ not decoded holding K, K+1, K+2 symbols: {:?} (from `dms fec overhead`); the agent asks max(1, K − received) + {} symbols a block a round, up to {} rounds, then downloads the object",
            model::FAIL_AT_K_PLUS,
            model::MARGIN,
            model::ROUNDS
        ),
        seconds: started.elapsed().as_secs_f64(),
        rows,
    };
    output::write_csv(&args.out.join("sim.csv"), &summary.rows)?;
    if per_ue {
        output::write_ue_csv(&args.out.join("ues.csv"), &ue_rows)?;
    }
    plot::write_svg(&args.out.join("sim.svg"), &summary)?;
    let json = serde_json::to_vec_pretty(&summary)?;
    output::write_atomic(&args.out.join("sim.json"), &json)?;
    if args.json {
        println!("{}", String::from_utf8_lossy(&json));
    } else {
        output::print_table(&summary);
        println!("wrote {}", args.out.display());
    }
    Ok(())
}

/// The parts of a row that come from the arguments.
fn args_meta(args: &SimArgs, loss_percent: f64, model: Model) -> output::Meta {
    output::Meta {
        ues: args.ues,
        loss_percent,
        burst_length: args.burst.then_some(args.burst_length),
        model: model.name(),
        peers: args.peers,
    }
}

fn describe(model: Model, args: &SimArgs) -> String {
    let loss = if args.burst {
        format!(
            "Gilbert–Elliott bursts of mean {} packets (as `dms receive --drop RATE,{}`), stationary start",
            args.burst_length, args.burst_length
        )
    } else {
        "independent losses (as `dms receive --drop RATE`)".to_owned()
    };
    let how = match model {
        Model::Exact => "exact: every packet drawn",
        Model::Binomial => "binomial: lost packets per block ~ Binomial(n, p), from an alias table",
        Model::Runs => "runs: kept/lost runs of geometric length walked run by run",
    };
    format!("{how}; {loss}; one carousel round, blocks sent one after another")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
    use super::*;

    #[test]
    fn peers_are_the_asked_fraction() {
        let n = (0..100_000).filter(|&ue| has_peers(3, ue, 0.3)).count();
        assert!((29_000..31_000).contains(&n), "{n}");
        assert!(!(0..1000).any(|ue| has_peers(3, ue, 0.0)));
        assert!((0..1000).all(|ue| has_peers(3, ue, 1.0)));
    }
}
