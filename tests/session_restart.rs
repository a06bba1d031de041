//! Broadcast sessions survive a restart of the origin: `dms serve` is
//! SIGKILLed with one session ended, one scheduled for later and one
//! running, then started again on the same data directory. The ended one
//! is listed as it was, the scheduled one still waits (same id and TSI, its
//! objects still protected from deletion), and the running one goes on the
//! air again: a `dms receive` started after the restart gets its object.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod binary;

use binary::{dms, json, publish_pattern, receive, start_origin, start_session, wait_until};

use std::time::{SystemTime, UNIX_EPOCH};

const LATER_GROUP: &str = "239.255.75.10:47520";
const RUNNING_GROUP: &str = "239.255.75.11:47521";
const DONE_GROUP: &str = "239.255.75.12:47522";

fn client<'a>(server: &'a str, data: &'a str) -> [&'a str; 4] {
    ["--server", server, "--data", data]
}

fn session(args: &[&str], client: &[&str]) -> serde_json::Value {
    let out = dms(&[&["session"][..], args, client].concat());
    assert!(
        out.status.success(),
        "dms session {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    json(&out)
}

#[test]
fn sessions_are_taken_up_again_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let data = data_dir.to_str().unwrap();
    let (server, url) = start_origin(&data_dir);
    let c = client(&url, data);
    let (bytes, id) = publish_pattern(dir.path(), &c, "fw.bin", "1.0.0", 300_000, 7);

    // Ended before the restart.
    let start = |group: &str, extra: &[&str]| start_session(&c, &id, group, extra);
    let done = start(DONE_GROUP, &["--rate", "50"]);
    let done_id = done["id"].as_str().unwrap().to_owned();
    wait_until("the first session to finish", || {
        session(&["status", &done_id], &c)["state"] == "finished"
    });
    let done_before = session(&["status", &done_id], &c);

    // Scheduled for an hour from now.
    let later_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let later = start(
        LATER_GROUP,
        &["--rate", "10", "--start-at", &later_at.to_string()],
    );
    let later_id = later["id"].as_str().unwrap().to_owned();
    assert_eq!(later["state"], "scheduled");

    // Running (slowly, many carousel rounds) when the origin dies.
    let running = start(
        RUNNING_GROUP,
        &["--rate", "2", "--repair", "20", "--carousel", "400"],
    );
    let running_id = running["id"].as_str().unwrap().to_owned();
    wait_until("the third session to run", || {
        session(&["status", &running_id], &c)["state"] == "running"
    });

    drop(server); // SIGKILL
    let (server, url) = start_origin(&data_dir);
    let c = client(&url, data);

    let done_after = session(&["status", &done_id], &c);
    assert_eq!(done_after["state"], "finished");
    assert_eq!(done_after["packets_sent"], done_before["packets_sent"]);
    assert_eq!(done_after["restarts"], 0);

    let later_after = session(&["status", &later_id], &c);
    assert_eq!(later_after["state"], "scheduled", "{later_after}");
    assert_eq!(later_after["tsi"], later["tsi"]);
    assert_eq!(later_after["start_at"], later_at);
    assert_eq!(later_after["restarts"], 1);
    // Its object is still protected.
    let delete = dms(&[&["objects", "delete", &id][..], &c[..]].concat());
    assert!(
        !delete.status.success(),
        "deleted under a scheduled session"
    );

    let running_after = session(&["status", &running_id], &c);
    assert_eq!(running_after["tsi"], running["tsi"]);
    assert_eq!(running_after["restarts"], 1);
    // It is on the air again: a receiver started now gets the object.
    let out = dir.path().join("out");
    let received = receive(RUNNING_GROUP, &out, &["--count", "1", "--timeout", "60"])
        .output()
        .unwrap();
    assert!(
        received.status.success(),
        "dms receive: {}",
        String::from_utf8_lossy(&received.stderr)
    );
    assert!(std::fs::read(out.join("fw.bin")).unwrap() == bytes);

    // A stop is kept too.
    session(&["stop", &later_id], &c);
    session(&["stop", &running_id], &c);
    wait_until("both sessions to stop", || {
        [&later_id, &running_id]
            .iter()
            .all(|id| session(&["status", id], &c)["state"] == "stopped")
    });
    drop(server);
    let (_server, url) = start_origin(&data_dir);
    let c = client(&url, data);
    let list = session(&["list"], &c);
    let mut states: Vec<(String, String)> = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap().to_owned(),
                s["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    states.sort();
    let mut expected = vec![
        (done_id, "finished".to_owned()),
        (later_id, "stopped".to_owned()),
        (running_id, "stopped".to_owned()),
    ];
    expected.sort();
    assert_eq!(states, expected);
    // Nothing protects the object any more.
    let delete = dms(&[&["objects", "delete", &id][..], &c[..]].concat());
    assert!(
        delete.status.success(),
        "{}",
        String::from_utf8_lossy(&delete.stderr)
    );
}
