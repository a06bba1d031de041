//! The demo's results: a table for people, JSON for scripts.

use serde_json::{Value, json};

use super::Outcome;
use super::fleet::UeResult;

/// Whether a UE ended with the published object, verified against the
/// signed manifest by its agent and against the published SHA-256 here.
pub fn verified(ue: &UeResult) -> bool {
    ue.sha256_matches
        && ue.report.as_ref().is_ok_and(|r| {
            r.is_complete() && r.objects.iter().any(|o| o.verified && o.manifest_verified)
        })
}

/// Per-UE figures.
struct Row {
    broadcast: u64,
    peers: u64,
    repair: u64,
    missed: u64,
    dropped: u64,
    seconds: Option<f64>,
}

fn row(ue: &UeResult) -> Row {
    match &ue.report {
        Ok(r) => {
            let bytes = r.bytes();
            Row {
                broadcast: bytes.broadcast,
                peers: bytes.peers,
                repair: bytes.repair,
                missed: r.missed_bytes(),
                dropped: r.stats.dropped_injected,
                seconds: r
                    .objects
                    .iter()
                    .filter_map(|o| o.time_to_complete)
                    .map(|t| t.as_secs_f64())
                    .reduce(f64::max),
            }
        }
        Err(_) => Row {
            broadcast: 0,
            peers: 0,
            repair: 0,
            missed: 0,
            dropped: 0,
            seconds: None,
        },
    }
}

/// Totals over the fleet.
struct Totals {
    peers: u64,
    repair: u64,
    missed: u64,
    unicast_only: u64,
    verified: usize,
}

fn totals(outcome: &Outcome) -> Totals {
    let rows: Vec<Row> = outcome.ues.iter().map(row).collect();
    Totals {
        peers: rows.iter().map(|r| r.peers).sum(),
        repair: rows.iter().map(|r| r.repair).sum(),
        missed: rows.iter().map(|r| r.missed).sum(),
        unicast_only: outcome.size * outcome.ues.len() as u64,
        verified: outcome.ues.iter().filter(|u| verified(u)).count(),
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.2}", bytes as f64 / f64::from(1 << 20))
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".into()
    } else {
        format!("{:.1} %", part as f64 * 100.0 / whole as f64)
    }
}

/// The table: one line per UE, then the totals and the offload.
pub fn render(outcome: &Outcome) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{:<6} {:<16} {:>8} {:>14} {:>10} {:>11} {:>8}  {}\n",
        "UE", "loss", "dropped", "broadcast MiB", "peers MiB", "repair MiB", "time s", "result"
    ));
    for (i, ue) in outcome.ues.iter().enumerate() {
        let r = row(ue);
        let result = match (&ue.report, verified(ue)) {
            (_, true) => "verified".to_owned(),
            (Err(e), false) => format!("FAILED: {e}"),
            (Ok(_), false) => "FAILED".to_owned(),
        };
        out.push_str(&format!(
            "{:<6} {:<16} {:>8} {:>14} {:>10} {:>11} {:>8}  {}\n",
            format!("ue-{:02}", i + 1),
            ue.loss.describe(),
            r.dropped,
            mib(r.broadcast),
            mib(r.peers),
            mib(r.repair),
            r.seconds.map_or("-".into(), |s| format!("{s:.1}")),
            result
        ));
    }
    let t = totals(outcome);
    let repaired = t.peers + t.repair;
    out.push_str(&format!(
        "\n{} of {} UEs verified against the signed manifest, in {:.1} s.\n",
        t.verified,
        outcome.ues.len(),
        outcome.elapsed.as_secs_f64()
    ));
    out.push_str(&format!(
        "Broadcast: {} MiB sent once for {} UEs. Repair: {} MiB from peers ({}), {} MiB from the repair service; {:.3} × the bytes the UEs missed.\n",
        mib(outcome.broadcast_sent),
        outcome.ues.len(),
        mib(t.peers),
        percent(t.peers, repaired),
        mib(t.repair),
        if t.missed > 0 { repaired as f64 / t.missed as f64 } else { 0.0 },
    ));
    let origin_total = outcome.broadcast_sent + t.repair;
    out.push_str(&format!(
        "Origin: {} MiB unicast against {} MiB for plain unicast ({} UEs × {} MiB): {} offloaded; {} MiB sent in all ({:.1} × less).\n",
        mib(t.repair),
        mib(t.unicast_only),
        outcome.ues.len(),
        mib(outcome.size),
        percent(t.unicast_only.saturating_sub(t.repair), t.unicast_only),
        mib(origin_total),
        if origin_total > 0 { t.unicast_only as f64 / origin_total as f64 } else { 0.0 },
    ));
    out.push_str(&format!(
        "Reception reports at the origin: {} devices.\n",
        outcome.devices_reported
    ));
    out
}

/// The results as JSON.
pub fn json(outcome: &Outcome) -> Value {
    let t = totals(outcome);
    let ues: Vec<Value> = outcome
        .ues
        .iter()
        .enumerate()
        .map(|(i, ue)| {
            let r = row(ue);
            json!({
                "ue": format!("ue-{:02}", i + 1),
                "loss": ue.loss.rate,
                "mean_burst": ue.loss.mean_burst,
                "dropped_datagrams": r.dropped,
                "bytes": { "broadcast": r.broadcast, "peers": r.peers, "repair": r.repair },
                "missed_bytes": r.missed,
                "seconds_to_complete": r.seconds,
                "verified": verified(ue),
                "error": ue.report.as_ref().err(),
            })
        })
        .collect();
    json!({
        "ues": ues,
        "size": outcome.size,
        "peers": outcome.peers,
        "all_verified": t.verified == outcome.ues.len(),
        "verified": t.verified,
        "broadcast_bytes_sent": outcome.broadcast_sent,
        "peer_bytes": t.peers,
        "repair_bytes": t.repair,
        "missed_bytes": t.missed,
        "unicast_only_bytes": t.unicast_only,
        "devices_reported": outcome.devices_reported,
        "seconds": outcome.elapsed.as_secs_f64(),
    })
}
