//! `dms demo` end to end at a small size: a real origin (HTTPS, redb), a
//! real loopback multicast session and real UE agents with libp2p peers.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod binary;

use binary::{dms, json};

/// Four UEs at 5 % loss and one at 30 % bursty loss, peers on: every UE
/// ends with the verified object, and the bytes add up.
#[test]
fn demo_delivers_a_verified_object_to_every_ue() {
    let size: u64 = 3 << 20;
    let out = dms(&[
        "demo",
        "--ues",
        "4",
        "--size",
        "3MiB",
        "--rate",
        "80",
        "--outlier",
        "30,10",
        "--json",
        "--timeout",
        "180",
    ]);
    let v = json(&out);
    let ues = v["ues"].as_array().unwrap();
    assert_eq!(ues.len(), 5, "{v}");
    assert_eq!(v["all_verified"], true, "{v}");
    assert_eq!(v["size"], size);
    for ue in ues {
        assert_eq!(ue["verified"], true, "{ue}");
        let bytes = &ue["bytes"];
        let got = bytes["broadcast"].as_u64().unwrap()
            + bytes["peers"].as_u64().unwrap()
            + bytes["repair"].as_u64().unwrap();
        // Whatever the mix, a UE received at least the object.
        assert!(got >= size, "{ue}");
    }
    // The cell-edge UE lost enough that it needed repair.
    let edge = &ues[4];
    assert!(edge["dropped_datagrams"].as_u64().unwrap() > 0, "{edge}");
    assert!(
        edge["bytes"]["peers"].as_u64().unwrap() + edge["bytes"]["repair"].as_u64().unwrap() > 0,
        "{edge}"
    );
    // Every UE reported to the origin; the origin sent far less than
    // unicast to each would have.
    assert_eq!(v["devices_reported"], 5, "{v}");
    let unicast = v["unicast_only_bytes"].as_u64().unwrap();
    assert_eq!(unicast, 5 * size);
    assert!(v["repair_bytes"].as_u64().unwrap() < unicast / 2, "{v}");
}

/// With peers off, repair comes from the repair service alone.
#[test]
fn demo_without_peers_repairs_from_the_service() {
    let out = dms(&[
        "demo", "--ues", "2", "--size", "1MiB", "--rate", "40", "--loss", "10", "--peers", "off",
        "--json",
    ]);
    let v = json(&out);
    assert_eq!(v["all_verified"], true, "{v}");
    assert_eq!(v["peer_bytes"], 0, "{v}");
    assert!(v["repair_bytes"].as_u64().unwrap() > 0, "{v}");
}

/// Bad arguments are refused before anything starts.
#[test]
fn demo_refuses_bad_sizes() {
    let out = dms(&["demo", "--size", "12 parsecs"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown unit"));
}

/// The fleet of the UE agent's issue: 20 UEs at 5 % i.i.d. loss and one at
/// 30 % bursty loss, peers on: every UE ends with the exact object, and at
/// least 90 % of the repair bytes come from peers.
#[test]
fn twenty_ues_repair_mostly_from_each_other() {
    let out = dms(&[
        "demo",
        "--ues",
        "20",
        "--size",
        "4MiB",
        "--rate",
        "100",
        "--outlier",
        "30,10",
        "--json",
        "--timeout",
        "240",
    ]);
    let v = json(&out);
    assert_eq!(v["all_verified"], true, "{v}");
    assert_eq!(v["ues"].as_array().unwrap().len(), 21);
    let peers = v["peer_bytes"].as_u64().unwrap();
    let service = v["repair_bytes"].as_u64().unwrap();
    assert!(peers > 0, "{v}");
    assert!(
        peers as f64 >= 0.9 * (peers + service) as f64,
        "peers {peers} B, repair service {service} B"
    );
}
