//! What one UE receives of one broadcast and what it then asks the repair
//! service for, under a loss model.
//!
//! The broadcast is what the origin sends (one carousel round): the
//! object's source blocks one after the other, each as its K source symbols
//! then ⌈K·pct/100⌉ repair symbols, one symbol per packet, cut by dms-fec's
//! own [`Oti::for_object`] so K and the block count are the real ones.
//!
//! The repair is what the UE agent asks (`peer/src/agent/repair.rs`): per
//! block that did not decode, `max(1, K − received)` fresh repair symbols a
//! round (its margin is 0), until it decodes (at most six rounds, then the
//! whole object is downloaded).
//!
//! Three ways of drawing how many packets of each block a UE lost:
//! - [`Model::Exact`]: packet by packet (a Bernoulli draw per packet, or
//!   the same two-state Gilbert–Elliott chain as `dms receive --drop`);
//!   work ∝ packets.
//! - [`Model::Binomial`] (i.i.d. loss): losses of a block of n packets are
//!   Binomial(n, p), drawn from a precomputed alias table; work ∝ blocks.
//! - [`Model::Runs`] (bursts): the chain's alternating runs of kept and
//!   lost packets have geometric lengths, so the UE walks run by run; work
//!   ∝ runs (≈ 2·p/burst per packet).
//!
//! All three give the same distribution (the exact ones by construction,
//! which the unit tests check).

use std::collections::HashMap;

use anyhow::{Context, bail};
use dms_fec::{BlockSize, FecScheme, Oti};
use rand::distr::Distribution;
use rand::rngs::SmallRng;
use rand::{Rng, RngCore};
use rand_distr::weighted::WeightedAliasIndex;

/// Symbols asked beyond what each block needs (`MARGIN` of the UE agent).
pub const MARGIN: u32 = 0;

/// Rounds of symbol repair before the agent downloads the whole object.
pub const ROUNDS: u32 = 6;

/// Probability that a RaptorQ block is not decoded holding K + j symbols,
/// for j = 0, 1, 2 (0 from K + 2 on). Measured with `dms fec overhead`
/// (≈ 99.5 % decode at exactly K, all but a few in a million at K + 1, all
/// of 324 000 trials at K + 2). A block with every source symbol never
/// fails (it needs no solve).
pub const FAIL_AT_K_PLUS: [f64; 3] = [5e-3, 5e-6, 0.0];

/// The packet-loss process each UE sees.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Loss {
    /// Long-run fraction of packets lost, in `[0, 1]`.
    pub rate: f64,
    /// Mean burst length (Gilbert–Elliott) or `None` for i.i.d. loss.
    pub burst: Option<f64>,
}

impl Loss {
    /// The chain's switching probabilities `(enter, leave)` per packet,
    /// as in `dms receive --drop RATE,BURST`.
    fn switching(&self, burst: f64) -> (f64, f64) {
        let leave = 1.0 / burst;
        let enter = if self.rate >= 1.0 {
            1.0
        } else {
            (leave * self.rate / (1.0 - self.rate)).min(1.0)
        };
        (enter, leave)
    }
}

/// How loss is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    /// Packet by packet.
    Exact,
    /// Binomial losses per block (i.i.d. loss only).
    Binomial,
    /// Geometric runs of kept and lost packets (bursts only).
    Runs,
}

impl Model {
    /// The model's name in outputs.
    pub fn name(self) -> &'static str {
        match self {
            Model::Exact => "exact",
            Model::Binomial => "binomial",
            Model::Runs => "runs",
        }
    }
}

/// One source block as broadcast.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    /// Source symbols (K).
    pub k: u32,
    /// Packets sent: K + repair symbols.
    pub n: u32,
}

/// What the origin broadcasts of the object at one repair overhead.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Object size in bytes.
    pub size: u64,
    /// Symbol size T.
    pub symbol_size: u16,
    /// Repair overhead, percent of K.
    pub repair_percent: u32,
    /// The blocks in sending order.
    pub blocks: Vec<Block>,
}

impl Plan {
    /// The origin's layout of an object of `size` bytes (RaptorQ, blocks
    /// of at most `block_bytes`) with `repair_percent` repair symbols.
    pub fn new(
        size: u64,
        symbol_size: u16,
        block_bytes: u64,
        repair_percent: u32,
    ) -> anyhow::Result<Self> {
        let oti = Oti::for_object(
            FecScheme::RaptorQ,
            size,
            symbol_size,
            BlockSize::Bytes(block_bytes),
        )
        .context("FEC layout")?;
        let layout = oti.layout();
        let room = FecScheme::RaptorQ.esi_limit();
        let blocks = (0..layout.block_count())
            .map(|sbn| {
                let k = layout.source_symbols(sbn).context("block out of range")?;
                // As the sender: ⌈K·pct/100⌉, limited by the ESI space.
                let repair = (u64::from(k) * u64::from(repair_percent))
                    .div_ceil(100)
                    .min(u64::from(room.saturating_sub(k)));
                Ok(Block {
                    k,
                    n: k + repair as u32,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Plan {
            size,
            symbol_size,
            repair_percent,
            blocks,
        })
    }

    /// Packets broadcast.
    pub fn packets(&self) -> u64 {
        self.blocks.iter().map(|b| u64::from(b.n)).sum()
    }
}

/// What one UE needed from repair.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UeOutcome {
    /// Repair symbols received over all rounds.
    pub symbols: u64,
    /// Packets of the broadcast it lost.
    pub lost: u64,
    /// Symbol repair gave up and it downloaded the whole object.
    pub download: bool,
}

impl UeOutcome {
    /// Repair bytes, as the agent's reception report counts them.
    pub fn bytes(&self, plan: &Plan) -> u64 {
        self.symbols * u64::from(plan.symbol_size) + if self.download { plan.size } else { 0 }
    }
}

/// A sampler of lost packets per block, built once per plan and loss.
#[derive(Debug)]
pub struct Simulator {
    plan: Plan,
    loss: Loss,
    model: Model,
    /// Binomial(n, p) alias tables by n: (lowest count, table).
    tables: HashMap<u32, (u32, WeightedAliasIndex<f64>)>,
}

impl Simulator {
    /// A simulator of `plan` under `loss` with `model`.
    pub fn new(plan: Plan, loss: Loss, model: Model) -> anyhow::Result<Self> {
        if !(0.0..=1.0).contains(&loss.rate) {
            bail!("loss rate {} outside 0..=1", loss.rate);
        }
        match (model, loss.burst) {
            (Model::Binomial, Some(_)) => bail!("the binomial model is for i.i.d. loss"),
            (Model::Runs, None) => bail!("the runs model is for bursty loss"),
            _ => {}
        }
        let mut tables = HashMap::new();
        if model == Model::Binomial && loss.rate > 0.0 && loss.rate < 1.0 {
            for b in &plan.blocks {
                if let std::collections::hash_map::Entry::Vacant(e) = tables.entry(b.n) {
                    e.insert(binomial_table(b.n, loss.rate)?);
                }
            }
        }
        Ok(Simulator {
            plan,
            loss,
            model,
            tables,
        })
    }

    /// Draws one UE: its losses per block (into `lost`, one per block), then
    /// its repair.
    pub fn ue(&self, rng: &mut SmallRng, lost: &mut Vec<u32>) -> UeOutcome {
        lost.clear();
        lost.resize(self.plan.blocks.len(), 0);
        self.draw_losses(rng, lost);
        let mut outcome = UeOutcome::default();
        for (block, &l) in self.plan.blocks.iter().zip(lost.iter()) {
            outcome.lost += u64::from(l);
            let (symbols, download) = block_repair(*block, l, rng);
            outcome.symbols += u64::from(symbols);
            outcome.download |= download;
        }
        outcome
    }

    fn draw_losses(&self, rng: &mut SmallRng, lost: &mut [u32]) {
        let rate = self.loss.rate;
        if rate <= 0.0 {
            return;
        }
        if rate >= 1.0 {
            for (l, b) in lost.iter_mut().zip(&self.plan.blocks) {
                *l = b.n;
            }
            return;
        }
        match (self.model, self.loss.burst) {
            (Model::Exact, None) => {
                // u64 threshold: a packet is lost when a uniform u64 < it.
                let threshold = (rate * 2f64.powi(64)) as u64;
                for (l, b) in lost.iter_mut().zip(&self.plan.blocks) {
                    *l = (0..b.n).filter(|_| rng.next_u64() < threshold).count() as u32;
                }
            }
            (Model::Exact, Some(burst)) => {
                let (enter, leave) = self.loss.switching(burst);
                // The state before the first packet, from the chain's
                // stationary distribution (a UE tunes in mid-stream).
                let mut in_burst = rng.random::<f64>() < rate;
                for (l, b) in lost.iter_mut().zip(&self.plan.blocks) {
                    for _ in 0..b.n {
                        let flip = if in_burst { leave } else { enter };
                        if rng.random::<f64>() < flip {
                            in_burst = !in_burst;
                        }
                        *l += u32::from(in_burst);
                    }
                }
            }
            (Model::Binomial, _) => {
                for (l, b) in lost.iter_mut().zip(&self.plan.blocks) {
                    if let Some((low, table)) = self.tables.get(&b.n) {
                        *l = low + table.sample(rng) as u32;
                    }
                }
            }
            (Model::Runs, Some(burst)) => self.draw_runs(rng, burst, lost),
            (Model::Runs, None) => {}
        }
    }

    /// Walks the chain run by run: each run's length is geometric (the
    /// chain leaves a state with a fixed probability per packet).
    fn draw_runs(&self, rng: &mut SmallRng, burst: f64, lost: &mut [u32]) {
        let (enter, leave) = self.loss.switching(burst);
        let (enter, leave) = (Geometric::new(enter), Geometric::new(leave));
        let total = self.plan.packets();
        let mut in_burst = rng.random::<f64>() < self.loss.rate;
        let mut pos = 0u64;
        let mut block = 0usize;
        let mut block_end = self.plan.blocks.first().map_or(0, |b| u64::from(b.n));
        let mut first = true;
        while pos < total {
            let run = if in_burst { leave } else { enter };
            // The chain may flip at the very first packet, so the first
            // run may be empty; every later run holds at least one packet.
            let len = if first {
                first = false;
                run.sample(rng)
            } else {
                run.sample(rng).saturating_add(1)
            };
            let end = pos.saturating_add(len).min(total);
            if in_burst {
                // Spread [pos, end) over the blocks it covers.
                let mut at = pos;
                while at < end {
                    while at >= block_end {
                        block += 1;
                        block_end += self.plan.blocks.get(block).map_or(0, |b| u64::from(b.n));
                    }
                    let upto = end.min(block_end);
                    if let Some(l) = lost.get_mut(block) {
                        *l += (upto - at) as u32;
                    }
                    at = upto;
                }
            }
            pos = end;
            in_burst = !in_burst;
        }
    }
}

/// Failures before the first success of Bernoulli(`p`) trials:
/// ⌊E / −ln(1 − p)⌋ for an exponential E (P(X ≥ k) = (1 − p)^k), which
/// the ziggurat draws faster than a logarithm.
#[derive(Clone, Copy, Debug)]
struct Geometric {
    /// 1 / −ln(1 − p): 0 for p = 1, infinite for p = 0.
    scale: f64,
}

impl Geometric {
    fn new(p: f64) -> Self {
        let scale = if p >= 1.0 {
            0.0
        } else if p <= 0.0 {
            f64::INFINITY
        } else {
            -1.0 / (-p).ln_1p()
        };
        Geometric { scale }
    }

    fn sample(self, rng: &mut SmallRng) -> u64 {
        let e: f64 = rng.sample(rand_distr::Exp1);
        // `as` saturates: an infinite run is u64::MAX packets.
        (e * self.scale) as u64
    }
}

/// The Binomial(n, p) pmf as an alias table over the counts that carry
/// any weight (tails below 1e-18 of the mode are cut).
fn binomial_table(n: u32, p: f64) -> anyhow::Result<(u32, WeightedAliasIndex<f64>)> {
    // ln pmf(k) by the ratio pmf(k+1)/pmf(k) = (n−k)/(k+1) · p/(1−p).
    let ratio = p.ln() - (-p).ln_1p();
    let mut log_pmf = Vec::with_capacity(n as usize + 1);
    let mut lp = f64::from(n) * (-p).ln_1p();
    for k in 0..=n {
        log_pmf.push(lp);
        lp += (f64::from(n - k)).ln() - (f64::from(k) + 1.0).ln() + ratio;
    }
    let max = log_pmf.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let keep = |lp: f64| lp - max > -41.5; // e^-41.5 ≈ 1e-18
    let low = log_pmf.iter().position(|&lp| keep(lp)).unwrap_or(0);
    let high = log_pmf
        .iter()
        .rposition(|&lp| keep(lp))
        .unwrap_or(n as usize);
    let weights: Vec<f64> = log_pmf[low..=high]
        .iter()
        .map(|&lp| (lp - max).exp())
        .collect();
    let table = WeightedAliasIndex::new(weights)
        .map_err(|e| anyhow::anyhow!("binomial table for n = {n}, p = {p}: {e}"))?;
    Ok((low as u32, table))
}

/// Whether a block holding `have` symbols (K ≤ have) fails to decode.
fn fails(rng: &mut SmallRng, k: u32, have: u32) -> bool {
    let extra = (have - k) as usize;
    match FAIL_AT_K_PLUS.get(extra) {
        Some(&f) if f > 0.0 => rng.random::<f64>() < f,
        _ => false,
    }
}

/// Repair symbols the agent receives for one block that lost `lost` of its
/// packets, and whether it gave up (the six rounds were not enough).
pub fn block_repair(block: Block, lost: u32, rng: &mut SmallRng) -> (u32, bool) {
    if lost == 0 {
        // Every source symbol arrived: no solve, nothing to ask.
        return (0, false);
    }
    let mut have = block.n - lost;
    if have >= block.k && !fails(rng, block.k, have) {
        return (0, false);
    }
    let mut asked = 0;
    for _ in 0..ROUNDS {
        // symbols_needed: K − received before K, 1 once it holds K or more.
        let ask = block.k.saturating_sub(have).max(1) + MARGIN;
        asked += ask;
        have += ask;
        if !fails(rng, block.k, have) {
            return (asked, false);
        }
    }
    (asked, true)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
    use super::*;
    use rand::SeedableRng;

    fn mean_repair(plan: &Plan, loss: Loss, model: Model, ues: u64) -> (f64, f64) {
        let sim = Simulator::new(plan.clone(), loss, model).unwrap();
        let mut lost = Vec::new();
        let (mut sum, mut lost_sum) = (0f64, 0f64);
        for ue in 0..ues {
            let mut rng = SmallRng::seed_from_u64(ue * 7919 + 13);
            let o = sim.ue(&mut rng, &mut lost);
            sum += o.bytes(plan) as f64;
            lost_sum += o.lost as f64;
        }
        (sum / ues as f64, lost_sum / ues as f64)
    }

    #[test]
    fn the_plan_is_the_origins_layout() {
        // 4 MiB at T = 1400 in ~1 MiB blocks: 2996 symbols in 5 blocks.
        let plan = Plan::new(4 << 20, 1400, 1 << 20, 5).unwrap();
        assert_eq!(plan.blocks.len(), 5);
        let k: u32 = plan.blocks.iter().map(|b| b.k).sum();
        assert_eq!(k, (4u32 << 20).div_ceil(1400));
        for b in &plan.blocks {
            assert_eq!(b.n - b.k, (b.k * 5).div_ceil(100));
        }
    }

    #[test]
    fn no_loss_needs_no_repair() {
        let plan = Plan::new(3 << 20, 1400, 1 << 20, 0).unwrap();
        for model in [Model::Exact, Model::Binomial] {
            let loss = Loss {
                rate: 0.0,
                burst: None,
            };
            assert_eq!(mean_repair(&plan, loss, model, 50), (0.0, 0.0));
        }
        let loss = Loss {
            rate: 0.0,
            burst: Some(10.0),
        };
        assert_eq!(mean_repair(&plan, loss, Model::Runs, 50), (0.0, 0.0));
    }

    #[test]
    fn total_loss_repairs_every_block_whole() {
        let plan = Plan::new(3 << 20, 1400, 1 << 20, 10).unwrap();
        // K per block, one more for each block whose solve at K fails
        // (about 0.5 %).
        let want: u64 = plan.blocks.iter().map(|b| u64::from(b.k + MARGIN)).sum();
        let blocks = plan.blocks.len() as u64;
        for (model, burst) in [
            (Model::Exact, None),
            (Model::Binomial, None),
            (Model::Runs, Some(10.0)),
            (Model::Exact, Some(10.0)),
        ] {
            let sim = Simulator::new(plan.clone(), Loss { rate: 1.0, burst }, model).unwrap();
            let mut lost = Vec::new();
            for ue in 0..20 {
                let o = sim.ue(&mut SmallRng::seed_from_u64(ue), &mut lost);
                assert_eq!(o.lost, plan.packets());
                assert!((want..=want + blocks).contains(&o.symbols), "{model:?}");
                assert!(!o.download);
            }
        }
    }

    #[test]
    fn binomial_agrees_with_exact_iid() {
        let plan = Plan::new(2 << 20, 1400, 1 << 20, 5).unwrap();
        let loss = Loss {
            rate: 0.05,
            burst: None,
        };
        let (exact, exact_lost) = mean_repair(&plan, loss, Model::Exact, 4000);
        let (stat, stat_lost) = mean_repair(&plan, loss, Model::Binomial, 4000);
        let packets = plan.packets() as f64;
        assert!((exact_lost / packets - 0.05).abs() < 0.002, "{exact_lost}");
        assert!((stat_lost / packets - 0.05).abs() < 0.002, "{stat_lost}");
        // Per-UE repair has a std of ~15 kB here; means of 4000 agree
        // within ~0.5 kB (3σ of the difference).
        assert!(exact > 10_000.0, "{exact}");
        assert!(
            (exact - stat).abs() / exact < 0.05,
            "exact {exact} binomial {stat}"
        );
    }

    #[test]
    fn runs_agree_with_the_exact_chain() {
        let plan = Plan::new(2 << 20, 1400, 1 << 20, 10).unwrap();
        let loss = Loss {
            rate: 0.05,
            burst: Some(10.0),
        };
        let (exact, exact_lost) = mean_repair(&plan, loss, Model::Exact, 4000);
        let (runs, runs_lost) = mean_repair(&plan, loss, Model::Runs, 4000);
        let packets = plan.packets() as f64;
        assert!((exact_lost / packets - 0.05).abs() < 0.005, "{exact_lost}");
        assert!((runs_lost / packets - 0.05).abs() < 0.005, "{runs_lost}");
        assert!(exact > 1_000.0, "{exact}");
        assert!(
            (exact - runs).abs() / exact < 0.1,
            "exact {exact} runs {runs}"
        );
    }

    #[test]
    fn geometric_runs_have_the_right_mean() {
        let mut rng = SmallRng::seed_from_u64(5);
        for p in [0.5, 0.1, 0.005] {
            let g = Geometric::new(p);
            let n = 200_000;
            let mean = (0..n).map(|_| g.sample(&mut rng) as f64).sum::<f64>() / f64::from(n);
            let want = (1.0 - p) / p;
            assert!(
                (mean - want).abs() < 0.02 * want + 0.01,
                "p {p}: {mean} vs {want}"
            );
        }
        assert_eq!(Geometric::new(1.0).sample(&mut rng), 0);
    }

    #[test]
    fn a_block_short_of_k_asks_its_gap() {
        let block = Block { k: 100, n: 105 };
        let mut rng = SmallRng::seed_from_u64(1);
        // 10 lost: 95 held, 5 missing, ask 5 (and 1 more when the solve at
        // K fails).
        let mut asks = (0..1000).map(|_| block_repair(block, 10, &mut rng).0);
        assert!(asks.all(|a| a == 5 || a == 6 || a == 7));
        // 5 lost: exactly K held, decodes but for ~0.5 %, then asks 1.
        let ones = (0..100_000)
            .filter(|_| block_repair(block, 5, &mut rng).0 == 1)
            .count();
        assert!((200..900).contains(&ones), "{ones}");
    }
}
