//! Broadcast sessions through the API: a session over loopback multicast
//! received by the sans-IO FLUTE receiver, stop, the delete veto, and bad
//! bodies.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::{TestServer, data, json_of, start};
use dms_flute::AlcPacket;
use dms_flute::net::{Interface, ReceiverSocketConfig, receiver_socket};
use dms_flute::receiver::{Event, Receiver, ReceiverConfig, Verification};
use dms_origin::config::{Config, Scope, TokenConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;

fn joined(group: SocketAddr) -> UdpSocket {
    let socket = receiver_socket(
        group,
        &ReceiverSocketConfig {
            interface: Interface::V4(Ipv4Addr::LOCALHOST),
            ..Default::default()
        },
    )
    .unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    socket
}

/// What a test receiver got: verified objects by Content-Location, and
/// the Content-Locations in the order their first data packet arrived.
struct Received {
    objects: HashMap<String, Vec<u8>>,
    /// The `dms:Delta-*` attributes of each object, by Content-Location.
    deltas: HashMap<String, Option<dms_flute::fdt::FdtDelta>>,
    first_seen: Vec<String>,
}

/// Receives until `count` objects are complete with their MD5 and SHA-256
/// verified, or `timeout` passes.
fn receive(socket: UdpSocket, count: usize, timeout: Duration) -> Received {
    let mut receiver = Receiver::new(ReceiverConfig::default());
    let mut buf = vec![0u8; 65_536];
    let mut partial: HashMap<u128, Vec<u8>> = HashMap::new();
    let mut first_toi: Vec<u128> = Vec::new();
    let mut locations: HashMap<u128, String> = HashMap::new();
    let mut objects = HashMap::new();
    let mut deltas = HashMap::new();
    let deadline = Instant::now() + timeout;
    while objects.len() < count && Instant::now() < deadline {
        let Ok(n) = socket.recv(&mut buf) else {
            continue;
        };
        if let Ok(packet) = AlcPacket::decode(&buf[..n]) {
            let toi = packet.header.toi;
            if toi != 0 && !first_toi.contains(&toi) {
                first_toi.push(toi);
            }
        }
        let _ = receiver.handle_datagram(Instant::now(), &buf[..n]);
        while let Some(event) = receiver.poll_event() {
            match event {
                Event::BlockDecoded {
                    toi, offset, data, ..
                } => {
                    let object = partial.entry(toi).or_default();
                    let end = offset as usize + data.len();
                    if object.len() < end {
                        object.resize(end, 0);
                    }
                    object[offset as usize..end].copy_from_slice(&data);
                }
                Event::ObjectComplete {
                    toi,
                    info,
                    md5,
                    sha256,
                    ..
                } => {
                    assert_eq!(md5, Verification::Verified);
                    assert_eq!(sha256, Verification::Verified);
                    let location = info.content_location().unwrap().to_owned();
                    locations.insert(toi, location.clone());
                    deltas.insert(
                        location.clone(),
                        info.file.as_ref().and_then(|f| f.delta.clone()),
                    );
                    objects.insert(location, partial.remove(&toi).unwrap_or_default());
                }
                Event::ObjectFailed { info, .. } => panic!("object failed: {info:?}"),
                _ => {}
            }
        }
    }
    let first_seen = first_toi
        .iter()
        .filter_map(|t| locations.get(t).cloned())
        .collect();
    Received {
        objects,
        deltas,
        first_seen,
    }
}

async fn post_session(server: &TestServer, body: &Value) -> (StatusCode, Value) {
    json_of(
        server
            .client
            .post(server.url("/v1/sessions"))
            .bearer_auth(&server.token)
            .json(body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn session(server: &TestServer, id: &str) -> Value {
    let (status, view) = json_of(
        server
            .get(&format!("/v1/sessions/{id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    view
}

/// Polls until the session leaves `scheduled`/`running` (60 s at most).
async fn wait_ended(server: &TestServer, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let view = session(server, id).await;
        let state = view["state"].as_str().unwrap().to_owned();
        if state != "scheduled" && state != "running" {
            return view;
        }
        assert!(Instant::now() < deadline, "session did not end: {view}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn delete_object(server: &TestServer, id: &str) -> (StatusCode, Value) {
    json_of(
        server
            .client
            .delete(server.url(&format!("/v1/objects/{id}")))
            .bearer_auth(&server.token)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn stop_session(server: &TestServer, id: &str) -> (StatusCode, Value) {
    json_of(
        server
            .client
            .delete(server.url(&format!("/v1/sessions/{id}")))
            .bearer_auth(&server.token)
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_delivers_published_objects_critical_first() {
    let server = start(Config::default()).await;
    let normal = data(1_300_000, 11);
    let critical = data(400_000, 12);
    let (status, normal_obj) = server
        .publish("name=app.bin&version=1&priority=normal", normal.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{normal_obj}");
    let (status, critical_obj) = server
        .publish("name=fix.bin&version=1&priority=critical", critical.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{critical_obj}");

    let group: SocketAddr = "239.255.74.1:47411".parse().unwrap();
    let socket = joined(group);
    let receiving = std::thread::spawn(move || receive(socket, 2, Duration::from_secs(60)));

    // The normal object is named first: the session still sends the
    // critical one first. Repair symbols and a second round are margin
    // for a loaded machine dropping packets.
    let (status, view) = post_session(
        &server,
        &json!({
            "objects": [normal_obj["id"], critical_obj["id"]],
            "group": group.to_string(), "iface": "127.0.0.1",
            "rate": 40, "fec": "raptorq", "repair": 40, "carousel": 2, "tsi": 9
        }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{view}");
    assert_eq!(view["tsi"], 9);
    assert!(matches!(
        view["state"].as_str(),
        Some("scheduled" | "running")
    ));
    assert_eq!(view["objects"][0]["id"], critical_obj["id"]);
    assert_eq!(view["objects"][1]["id"], normal_obj["id"]);
    let id = view["id"].as_str().unwrap().to_owned();

    let received = tokio::task::spawn_blocking(move || receiving.join().unwrap())
        .await
        .unwrap();
    let normal_location = normal_obj["content_location"].as_str().unwrap();
    let critical_location = critical_obj["content_location"].as_str().unwrap();
    let got_normal = received.objects.get(normal_location).unwrap();
    let got_critical = received.objects.get(critical_location).unwrap();
    assert!(got_normal == &normal && got_critical == &critical);
    assert_eq!(
        hex::encode(Sha256::digest(got_normal)),
        normal_obj["sha256"].as_str().unwrap()
    );
    assert_eq!(
        hex::encode(Sha256::digest(got_critical)),
        critical_obj["sha256"].as_str().unwrap()
    );
    assert_eq!(
        received.first_seen,
        vec![critical_location.to_owned(), normal_location.to_owned()],
        "the critical object's first data packet comes first"
    );

    let view = wait_ended(&server, &id).await;
    assert_eq!(view["state"], "finished", "{view}");
    assert!(view["error"].is_null());
    assert!(view["started_at"].as_u64().unwrap() <= view["finished_at"].as_u64().unwrap());
    let packets = view["packets_sent"].as_u64().unwrap();
    let mut object_packets = 0;
    for o in view["objects"].as_array().unwrap() {
        assert_eq!(o["stored_layout"], true);
        assert!(o["packets_sent"].as_u64().unwrap() > 0);
        assert_eq!(o["packets_sent"], o["expected_packets"]);
        object_packets += o["packets_sent"].as_u64().unwrap();
    }
    assert!(packets > object_packets, "FDT packets are counted too");
    assert!(view["bytes_sent"].as_u64().unwrap() > (normal.len() + critical.len()) as u64 * 2);

    // Listed, counted in the metrics, and its objects may now be deleted.
    let (status, list) = json_of(server.get("/v1/sessions").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["sessions"][0]["id"], id.as_str());
    let metrics = server
        .get("/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("dms_sessions{state=\"finished\"} 1\n"),
        "{metrics}"
    );
    assert!(metrics.contains("dms_sessions{state=\"running\"} 0\n"));
    let (status, _) = delete_object(&server, normal_obj["id"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_ends_a_long_session_and_objects_are_kept_while_it_runs() {
    let server = start(Config::default()).await;
    let (status, obj) = server
        .publish("name=big.bin&version=1", data(600_000, 3))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{obj}");
    let object_id = obj["id"].as_str().unwrap().to_owned();
    // About 1000 rounds of 600 kB at 2 Mbit/s: hours, unless stopped.
    let (status, view) = post_session(
        &server,
        &json!({
            "objects": [object_id], "group": "239.255.74.2:47412", "iface": "127.0.0.1",
            "rate": 2, "fec": "raptorq", "repair": 10, "carousel": 1000
        }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{view}");
    let id = view["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let view = session(&server, &id).await;
        if view["state"] == "running" && view["packets_sent"].as_u64().unwrap() > 0 {
            break;
        }
        assert!(
            view["state"] == "scheduled" || view["state"] == "running",
            "{view}"
        );
        assert!(Instant::now() < deadline, "never ran: {view}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let (status, body) = delete_object(&server, &object_id).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["error"].as_str().unwrap().contains(&id), "{body}");
    let (status, _) = json_of(
        server
            .get(&format!("/v1/objects/{object_id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let (status, _) = stop_session(&server, &id).await;
    assert_eq!(status, StatusCode::OK);
    let view = wait_ended(&server, &id).await;
    assert_eq!(view["state"], "stopped", "{view}");
    let sent = view["packets_sent"].as_u64().unwrap();
    assert!(sent < view["objects"][0]["expected_packets"].as_u64().unwrap());

    let (status, body) = delete_object(&server, &object_id).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    // Stopping again leaves it as it is.
    let (status, again) = stop_session(&server, &id).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["state"], "stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_session_holds_its_objects_until_stopped() {
    let server = start(Config::default()).await;
    let (_, obj) = server
        .publish("name=later.bin&version=1", data(10_000, 4))
        .await;
    let object_id = obj["id"].as_str().unwrap().to_owned();
    let in_an_hour = time::OffsetDateTime::now_utc() + Duration::from_secs(3600);
    let (status, view) = post_session(
        &server,
        &json!({
            "objects": [object_id], "group": "239.255.74.3:47413", "iface": "127.0.0.1",
            "rate": 1, "fec": "nocode", "repair": 0, "symbol_size": 1000,
            "start_at": in_an_hour.format(&Rfc3339).unwrap()
        }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{view}");
    assert_eq!(view["start_at"], in_an_hour.unix_timestamp());
    assert_eq!(view["objects"][0]["stored_layout"], false);
    let id = view["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let view = session(&server, &id).await;
    assert_eq!(view["state"], "scheduled");
    assert_eq!(view["packets_sent"], 0);
    let (status, _) = delete_object(&server, &object_id).await;
    assert_eq!(status, StatusCode::CONFLICT);
    stop_session(&server, &id).await;
    assert_eq!(wait_ended(&server, &id).await["state"], "stopped");
    let (status, _) = delete_object(&server, &object_id).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_session_bodies_and_tokens_are_refused_with_json() {
    let config = Config {
        tokens: vec![TokenConfig {
            name: "reader".into(),
            token: "read-only-secret".into(),
            scope: Scope::ReadOnly,
        }],
        ..Config::default()
    };
    let server = start(config).await;
    let (_, obj) = server.publish("name=x.bin&version=1", data(5_000, 5)).await;
    let (_, gone) = server.publish("name=x.bin&version=2", data(5_000, 6)).await;
    let gone_id = gone["id"].as_str().unwrap();
    let (status, _) = json_of(
        server
            .client
            .patch(server.url(&format!("/v1/objects/{gone_id}")))
            .bearer_auth(&server.token)
            .json(&json!({"state": "withdrawn"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let good = json!({
        "objects": [obj["id"]], "group": "239.255.74.4:47414", "iface": "127.0.0.1",
        "rate": 1, "fec": "raptorq", "repair": 10,
        "start_at": time::OffsetDateTime::now_utc().unix_timestamp() + 3600
    });
    for (field, value, expected) in [
        ("objects", json!(["0123456789abcdef0123456789abcdef"]), 404),
        ("objects", json!([gone_id]), 404),
        ("objects", json!([]), 400),
        ("group", json!("10.1.2.3:5000"), 400),
        ("group", json!("not a group"), 400),
        ("rate", json!(0), 400),
        ("fec", json!("reed-solomon"), 422),
        ("symbol_size", json!(1402), 400),
        ("symbol_size", json!(60_000), 400),
        ("carousel", json!(0), 400),
        ("start_at", json!("next tuesday"), 400),
        ("start_at", json!("2999-01-01T00:00:00Z"), 400),
        ("repair", json!(-5), 422),
        ("unknown_field", json!(1), 422),
    ] {
        let mut body = good.clone();
        body[field] = value.clone();
        let (status, answer) = post_session(&server, &body).await;
        assert_eq!(status.as_u16(), expected, "{field} = {value}: {answer}");
        assert!(answer["error"].is_string(), "{answer}");
    }
    // The field passes its check, but a 1460-byte symbol does not fit a
    // 1472-byte datagram beside the LCT header: the sender's refusal, at
    // once.
    let mut body = good.clone();
    body["symbol_size"] = json!(1460);
    let (status, answer) = post_session(&server, &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("does not fit"),
        "{answer}"
    );
    let (status, answer) = json_of(
        server
            .client
            .post(server.url("/v1/sessions"))
            .bearer_auth(&server.token)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(status.is_client_error() && answer["error"].is_string());
    let (status, answer) = json_of(server.get("/v1/sessions/nope").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(answer["error"].is_string());

    // Read-only tokens may look, not start or stop.
    let (status, answer) = json_of(
        server
            .client
            .post(server.url("/v1/sessions"))
            .bearer_auth("read-only-secret")
            .json(&good)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    let (status, created) = post_session(&server, &good).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    let read = |path: String| {
        server
            .client
            .get(server.url(&path))
            .bearer_auth("read-only-secret")
            .send()
    };
    assert_eq!(
        read(format!("/v1/sessions/{id}")).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        read("/v1/sessions".into()).await.unwrap().status(),
        StatusCode::OK
    );
    let response = server
        .client
        .delete(server.url(&format!("/v1/sessions/{id}")))
        .bearer_auth("read-only-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = server
        .client
        .get(server.url("/v1/sessions"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(session(&server, id).await["state"], "scheduled");
    stop_session(&server, id).await;
    assert_eq!(wait_ended(&server, id).await["state"], "stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_racing_a_session_start_never_both_succeed() {
    let server = start(Config::default()).await;
    let later = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
    for round in 0..16u32 {
        let (_, obj) = server
            .publish(
                &format!("name=race.bin&version={round}"),
                data(2_000, round),
            )
            .await;
        let id = obj["id"].as_str().unwrap().to_owned();
        let body = json!({
            "objects": [id], "group": "239.255.74.5:47415", "iface": "127.0.0.1",
            "rate": 1, "fec": "raptorq", "repair": 10, "start_at": later
        });
        let ((started, session), (deleted, _)) =
            tokio::join!(post_session(&server, &body), delete_object(&server, &id));
        match (started, deleted) {
            // The session came first: the delete was vetoed.
            (StatusCode::CREATED, StatusCode::CONFLICT) => {
                let sid = session["id"].as_str().unwrap();
                stop_session(&server, sid).await;
                assert_eq!(wait_ended(&server, sid).await["state"], "stopped");
                let (status, _) = delete_object(&server, &id).await;
                assert_eq!(status, StatusCode::NO_CONTENT);
            }
            // The delete came first: the object is unknown to the session.
            (StatusCode::NOT_FOUND, StatusCode::NO_CONTENT) => {}
            other => panic!("round {round}: {other:?} {session}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_carries_the_delta_from_the_previous_version_marked_in_the_fdt() {
    let server = start(Config::default()).await;
    let v1 = data(600_000, 61);
    let mut v2 = v1.clone();
    v2[10_000..14_000].copy_from_slice(&data(4000, 62));
    let (_, o1) = server
        .publish("name=fw.bin&version=1.0.0", v1.clone())
        .await;
    let (status, o2) = server
        .publish("name=fw.bin&version=1.0.1", v2.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{o2}");
    let id2 = o2["id"].as_str().unwrap().to_owned();
    let mut delta = Value::Null;
    for _ in 0..600 {
        let response = server
            .get(&format!("/v1/objects/{id2}/deltas"))
            .send()
            .await
            .unwrap();
        let list: Value = response.json().await.unwrap();
        if let Some(d) = list["deltas"].as_array().and_then(|d| d.first()) {
            delta = d.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(delta.is_object(), "no delta made");
    let delta_id = delta["id"].as_str().unwrap().to_owned();

    let group: SocketAddr = "239.255.74.6:47416".parse().unwrap();
    let socket = joined(group);
    let receiving = std::thread::spawn(move || receive(socket, 2, Duration::from_secs(60)));
    // A base with no stored delta is skipped, not an error.
    let (status, view) = post_session(
        &server,
        &json!({
            "objects": [id2], "deltas": "previous", "delta_from": ["ab".repeat(32)],
            "group": group.to_string(), "iface": "127.0.0.1",
            "rate": 40, "fec": "raptorq", "repair": 40, "carousel": 3
        }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{view}");
    assert_eq!(view["objects"].as_array().unwrap().len(), 2, "{view}");
    // The delta goes ahead of its target.
    assert_eq!(view["objects"][0]["id"], delta_id.as_str());
    assert_eq!(
        view["objects"][0]["content_location"],
        delta["content_location"]
    );
    let received = tokio::task::spawn_blocking(move || receiving.join().unwrap())
        .await
        .unwrap();
    let target_location = o2["content_location"].as_str().unwrap();
    let delta_location = delta["content_location"].as_str().unwrap();
    assert!(received.objects[target_location] == v2);
    assert_eq!(received.deltas[target_location], None);
    let bytes = &received.objects[delta_location];
    assert_eq!(dms_delta::apply_bytes(&v1, bytes).unwrap(), v2);
    let marked = received.deltas[delta_location].clone().unwrap();
    assert_eq!(
        hex::encode(marked.base_sha256),
        o1["sha256"].as_str().unwrap()
    );
    assert_eq!(
        hex::encode(marked.target_sha256),
        o2["sha256"].as_str().unwrap()
    );
    assert_eq!(
        marked.target_manifest.as_deref(),
        o2["manifest_uri"].as_str()
    );
    wait_ended(&server, view["id"].as_str().unwrap()).await;

    // A delta can also be named by its id alone.
    let (status, view) = post_session(
        &server,
        &json!({
            "objects": [delta_id], "group": "239.255.74.7:47417", "iface": "127.0.0.1",
            "rate": 1, "fec": "raptorq", "repair": 0,
            "start_at": time::OffsetDateTime::now_utc().unix_timestamp() + 3600
        }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{view}");
    assert_eq!(view["objects"][0]["id"], delta_id.as_str());
    assert_eq!(view["objects"].as_array().unwrap().len(), 1);
    stop_session(&server, view["id"].as_str().unwrap()).await;
}
