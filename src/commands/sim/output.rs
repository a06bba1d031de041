//! What `dms sim` writes: the per-row figures, CSV, JSON and the table.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use super::model::Plan;

/// The parts of a row that come from the arguments.
#[derive(Debug)]
pub struct Meta {
    /// UEs simulated.
    pub ues: u64,
    /// Loss, percent.
    pub loss_percent: f64,
    /// Mean burst length, `None` for i.i.d. loss.
    pub burst_length: Option<f64>,
    /// The model that ran.
    pub model: &'static str,
    /// Fraction of UEs with peers.
    pub peers: f64,
}

/// One loss rate × one repair overhead.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// UEs simulated.
    pub ues: u64,
    /// Object size in bytes.
    pub size_bytes: u64,
    /// Symbol size T.
    pub symbol_size: u16,
    /// Source blocks.
    pub blocks: usize,
    /// Largest K.
    pub k_max: u32,
    /// Smallest K.
    pub k_min: u32,
    /// Packet loss, percent.
    pub loss_percent: f64,
    /// Mean burst length (0 for i.i.d. loss).
    pub burst_length: f64,
    /// FEC repair overhead, percent of K.
    pub repair_percent: u32,
    /// Which model ran.
    pub model: &'static str,
    /// Packets broadcast (one symbol each).
    pub broadcast_packets: u64,
    /// Symbol bytes broadcast (packets × T).
    pub broadcast_bytes: u64,
    /// Mean repair bytes per UE.
    pub repair_mean_bytes: f64,
    /// Standard deviation of the repair bytes per UE.
    pub repair_std_bytes: f64,
    /// Median repair bytes per UE.
    pub repair_p50_bytes: u64,
    /// 99th percentile of repair bytes per UE.
    pub repair_p99_bytes: u64,
    /// Most repair bytes of one UE.
    pub repair_max_bytes: u64,
    /// UEs that asked for any repair.
    pub ues_repairing: u64,
    /// UEs whose symbol repair gave up (whole-object download).
    pub ues_downloading: u64,
    /// Fraction of UEs with peers.
    pub peers_fraction: f64,
    /// Repair bytes of all UEs (what the origin would send without peers).
    pub origin_repair_bytes_no_peers: u64,
    /// Repair bytes the origin sends (UEs without peers).
    pub origin_repair_bytes: u64,
    /// Repair bytes peers send.
    pub peer_repair_bytes: u64,
    /// Broadcast + origin repair.
    pub origin_total_bytes: u64,
    /// Unicast only: every UE downloads the object (UEs × size).
    pub unicast_baseline_bytes: u64,
    /// 1 − origin total / unicast baseline: the share of the unicast bytes
    /// the origin does not send.
    pub offload: f64,
    /// Seconds this row took.
    pub seconds: f64,
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Row {
    /// The figures of one row from each UE's (repair bytes, downloaded,
    /// has peers).
    pub fn new(meta: &Meta, plan: &Plan, outcomes: Vec<(u64, bool, bool)>, seconds: f64) -> Self {
        let n = outcomes.len().max(1) as f64;
        let total: u64 = outcomes.iter().map(|o| o.0).sum();
        let from_peers: u64 = outcomes.iter().filter(|o| o.2).map(|o| o.0).sum();
        let mean = total as f64 / n;
        let var = outcomes
            .iter()
            .map(|o| (o.0 as f64 - mean).powi(2))
            .sum::<f64>()
            / (n - 1.0).max(1.0);
        let repairing = outcomes.iter().filter(|o| o.0 > 0).count() as u64;
        let downloading = outcomes.iter().filter(|o| o.1).count() as u64;
        let mut bytes: Vec<u64> = outcomes.into_iter().map(|o| o.0).collect();
        bytes.sort_unstable();
        let packets = plan.packets();
        let broadcast_bytes = packets * u64::from(plan.symbol_size);
        let origin_repair = total - from_peers;
        let baseline = meta.ues.saturating_mul(plan.size);
        Row {
            ues: meta.ues,
            size_bytes: plan.size,
            symbol_size: plan.symbol_size,
            blocks: plan.blocks.len(),
            k_max: plan.blocks.iter().map(|b| b.k).max().unwrap_or(0),
            k_min: plan.blocks.iter().map(|b| b.k).min().unwrap_or(0),
            loss_percent: meta.loss_percent,
            burst_length: meta.burst_length.unwrap_or(0.0),
            repair_percent: plan.repair_percent,
            model: meta.model,
            broadcast_packets: packets,
            broadcast_bytes,
            repair_mean_bytes: mean,
            repair_std_bytes: var.sqrt(),
            repair_p50_bytes: percentile(&bytes, 0.5),
            repair_p99_bytes: percentile(&bytes, 0.99),
            repair_max_bytes: bytes.last().copied().unwrap_or(0),
            ues_repairing: repairing,
            ues_downloading: downloading,
            peers_fraction: meta.peers,
            origin_repair_bytes_no_peers: total,
            origin_repair_bytes: origin_repair,
            peer_repair_bytes: from_peers,
            origin_total_bytes: broadcast_bytes + origin_repair,
            unicast_baseline_bytes: baseline,
            offload: 1.0 - (broadcast_bytes + origin_repair) as f64 / baseline.max(1) as f64,
            seconds,
        }
    }
}

/// Everything one run found.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// The model that ran (`exact`, `binomial`, `runs`).
    pub model: String,
    /// What the model does.
    pub model_description: String,
    /// How peers are modelled.
    pub peers_model: String,
    /// How decoding and the agent's repair are modelled.
    pub decode_failure: String,
    /// Seconds the whole run took.
    pub seconds: f64,
    /// One per loss rate × overhead.
    pub rows: Vec<Row>,
}

/// One UE at one loss rate and overhead.
#[derive(Debug, Serialize)]
pub struct UeRow {
    /// Loss, percent.
    pub loss_percent: f64,
    /// FEC repair overhead, percent of K.
    pub repair_percent: u32,
    /// The UE's index.
    pub ue: u64,
    /// Its repair bytes.
    pub repair_bytes: u64,
    /// Whether it downloaded the whole object.
    pub download: bool,
    /// Whether peers served it.
    pub peers: bool,
}

/// Writes `path` atomically (temp file in the same directory, fsync,
/// rename).
pub fn write_atomic(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a file in {}", dir.display()))?;
    temp.write_all(data)?;
    // Results are for reading by anyone (a temp file starts as 0600).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        temp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    temp.as_file().sync_all()?;
    temp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn csv_bytes<T: Serialize>(rows: &[T]) -> anyhow::Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for row in rows {
        w.serialize(row)?;
    }
    w.into_inner().map_err(|e| anyhow::anyhow!("CSV: {e}"))
}

/// `sim.csv`: one row per loss × overhead.
pub fn write_csv(path: &Path, rows: &[Row]) -> anyhow::Result<()> {
    write_atomic(path, &csv_bytes(rows)?)
}

/// `ues.csv`: one row per UE × loss × overhead.
pub fn write_ue_csv(path: &Path, rows: &[UeRow]) -> anyhow::Result<()> {
    write_atomic(path, &csv_bytes(rows)?)
}

/// Bytes with a binary unit, for people.
pub fn human(bytes: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// The summary table on stdout.
pub fn print_table(summary: &Summary) {
    if let Some(first) = summary.rows.first() {
        println!(
            "{} UEs, object {} ({} B) in {} blocks of K {}..{} (T = {}); model {}: {}",
            first.ues,
            human(first.size_bytes as f64),
            first.size_bytes,
            first.blocks,
            first.k_min,
            first.k_max,
            first.symbol_size,
            summary.model,
            summary.model_description
        );
        println!("peers: {}", summary.peers_model);
        println!("decoding: {}", summary.decode_failure);
    }
    println!(
        "{:>6} {:>7} {:>12} {:>12} {:>12} {:>12} {:>10} {:>13} {:>13} {:>8}",
        "loss%",
        "repair%",
        "broadcast",
        "mean/UE",
        "p99/UE",
        "max/UE",
        "repairing",
        "origin total",
        "unicast only",
        "offload"
    );
    for r in &summary.rows {
        println!(
            "{:>6} {:>7} {:>12} {:>12} {:>12} {:>12} {:>10} {:>13} {:>13} {:>7.3}%",
            r.loss_percent,
            r.repair_percent,
            human(r.broadcast_bytes as f64),
            human(r.repair_mean_bytes),
            human(r.repair_p99_bytes as f64),
            human(r.repair_max_bytes as f64),
            r.ues_repairing,
            human(r.origin_total_bytes as f64),
            human(r.unicast_baseline_bytes as f64),
            r.offload * 100.0
        );
    }
    println!("simulated in {:.2} s", summary.seconds);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), 50);
        assert_eq!(percentile(&v, 0.99), 99);
        assert_eq!(percentile(&v, 1.0), 100);
        assert_eq!(percentile(&[7], 0.99), 7);
        assert_eq!(percentile(&[], 0.5), 0);
    }
}
