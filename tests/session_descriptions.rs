//! The session descriptions the origin serves for a 3GPP MBMS client:
//! `dms session start` with APD settings on a real origin, then the SDP,
//! APD and USD fetched over HTTPS (curl) and read back by our parsers;
//! the SDP parsed by sdp-transform (npm, `DMS_TEST_SDP_TRANSFORM` from
//! `.ci/setup.d/60-sdp.sh`) and the XML checked for the TS 26.346 element
//! names and namespaces by Python's xml.etree (parsers we did not write).
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod binary;

use std::process::Command;

use binary::{dms, json, publish_pattern, start_origin};
use dms_flute::mbms::{
    AssociatedProcedures, ReportType, SessionDescription, UserServiceBundle, apd, usd,
};

fn fetch(url: &str, cacert: &std::path::Path) -> (String, String) {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--fail",
            "--cacert",
            cacert.to_str().unwrap(),
            "-w",
            "\n%{content_type}",
            url,
        ])
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, content_type) = text.rsplit_once('\n').unwrap();
    (body.to_string(), content_type.to_string())
}

fn required() -> bool {
    std::env::var("DMS_TEST_REQUIRE_SERVICES").as_deref() == Ok("1")
}

/// Runs `program -e|-c script` with `input` on stdin; None (after saying
/// why) when the program is missing and services are not required.
fn run_with_input(program: &str, flag: &str, script: &str, input: &str) -> Option<String> {
    use std::io::Write;
    let Ok(mut child) = Command::new(program)
        .args([flag, script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        assert!(!required(), "{program} is missing");
        eprintln!("skipped: no {program}");
        return None;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{program}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

fn python(script: &str, input: &str) -> Option<String> {
    run_with_input("python3", "-c", script, input)
}

/// The SDP as sdp-transform parses it (JSON), or None (said why) when
/// `DMS_TEST_SDP_TRANSFORM` is unset.
fn sdp_transform(sdp: &str) -> Option<serde_json::Value> {
    let Ok(module) = std::env::var("DMS_TEST_SDP_TRANSFORM") else {
        assert!(
            !required(),
            "DMS_TEST_SDP_TRANSFORM is unset (.ci/setup.d/60-sdp.sh)"
        );
        eprintln!("skipped: DMS_TEST_SDP_TRANSFORM unset: no sdp-transform to parse the SDP with");
        return None;
    };
    let script = format!(
        "const t = require({module:?}); let s = ''; \
         process.stdin.on('data', d => s += d).on('end', () => console.log(JSON.stringify(t.parse(s))));"
    );
    let out = run_with_input("node", "-e", &script, sdp)?;
    Some(serde_json::from_str(&out).unwrap())
}

const TAGS: &str = "import sys, xml.etree.ElementTree as ET\n\
root = ET.fromstring(sys.stdin.read())\n\
for e in root.iter():\n    print(e.tag, ' '.join(sorted(e.attrib)))\n";

#[test]
fn a_session_serves_its_sdp_apd_and_usd() {
    if Command::new("curl").arg("--version").output().is_err() {
        assert!(
            std::env::var("DMS_TEST_REQUIRE_SERVICES").as_deref() != Ok("1"),
            "curl is missing"
        );
        eprintln!("skipped: no curl to fetch the descriptions with");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (_server, server) = start_origin(&data);
    let cacert = data.join("tls/cert.pem");
    let client = [
        "--server",
        server.as_str(),
        "--data",
        data.to_str().unwrap(),
    ];
    let (_, id) = publish_pattern(dir.path(), &client, "fw.bin", "1.0.0", 100_000, 13);
    // Scheduled an hour ahead: nothing is sent while the descriptions are read.
    let start_at = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600)
        .to_string();
    let session = json(&dms(&[
        "session",
        "start",
        "--objects",
        &id,
        "--group",
        "239.255.7.9:4567",
        "--iface",
        "127.0.0.1",
        "--rate",
        "8",
        "--fec",
        "raptorq",
        "--tsi",
        "4242",
        "--start-at",
        &start_at,
        "--repair-server",
        "https://r1.example/repair",
        "--repair-server",
        "https://r2.example/repair",
        "--backoff-offset",
        "3",
        "--backoff-window",
        "7",
        "--report-sample",
        "25",
        "--report-type",
        "StaR",
        "--server",
        &server,
        "--data",
        data.to_str().unwrap(),
    ]));
    let sid = session["id"].as_str().unwrap().to_owned();
    let sdp_uri = session["sdp_uri"].as_str().unwrap();
    assert_eq!(sdp_uri, format!("{server}/sdp/{sid}"));
    assert_eq!(session["apd_uri"], format!("{server}/apd/{sid}"));
    assert_eq!(session["usd_uri"], format!("{server}/usd/{sid}"));

    let (text, content_type) = fetch(sdp_uri, &cacert);
    assert_eq!(content_type, "application/sdp");
    let sdp = SessionDescription::parse(text.as_bytes()).unwrap();
    assert_eq!(sdp.group.to_string(), "239.255.7.9");
    assert_eq!((sdp.port, sdp.tsi), (4567, 4242));
    assert_eq!(sdp.sources, vec![std::net::Ipv4Addr::LOCALHOST]);
    assert_eq!(sdp.fec, dms_fec::FecScheme::RaptorQ);
    assert_eq!(sdp.bandwidth_kbps, Some(8000));
    assert_eq!(sdp.start, Some(start_at.parse().unwrap()));
    if let Some(parsed) = sdp_transform(&text) {
        let ntp_start = start_at.parse::<u64>().unwrap() + 2_208_988_800;
        assert_eq!(parsed["version"], 0, "{parsed}");
        assert_eq!(parsed["timing"]["start"], ntp_start, "{parsed}");
        assert_eq!(parsed["timing"]["stop"], 0, "{parsed}");
        assert_eq!(parsed["connection"]["version"], 4, "{parsed}");
        assert_eq!(parsed["connection"]["ip"], "239.255.7.9/1", "{parsed}");
        let filter = &parsed["sourceFilter"];
        assert_eq!(filter["filterMode"], "incl", "{parsed}");
        assert_eq!(filter["destAddress"], "239.255.7.9", "{parsed}");
        assert_eq!(filter["srcList"], "127.0.0.1", "{parsed}");
        let media = &parsed["media"][0];
        assert_eq!(media["type"], "application", "{parsed}");
        assert_eq!(media["port"], 4567, "{parsed}");
        assert_eq!(media["protocol"], "FLUTE/UDP", "{parsed}");
        assert_eq!(media["bandwidth"][0]["type"], "AS", "{parsed}");
        assert_eq!(media["bandwidth"][0]["limit"], 8000, "{parsed}");
        // The FLUTE attributes are not in its grammar: it keeps them as
        // attribute lines, which shows they are well-formed a= lines.
        let session_attrs: Vec<&str> = parsed["invalid"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|a| a["value"].as_str())
            .collect();
        assert!(session_attrs.contains(&"flute-tsi:4242"), "{parsed}");
        assert!(
            session_attrs.contains(&"FEC-declaration:0 encoding-id=6"),
            "{parsed}"
        );
        assert!(
            media["invalid"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["value"] == "FEC:0"),
            "{parsed}"
        );
    }

    // The object's JSON names the session that carries it.
    let object = json(&dms(&[
        "objects",
        "show",
        &id,
        "--server",
        &server,
        "--data",
        data.to_str().unwrap(),
    ]));
    let carried = object["sessions"].as_array().unwrap();
    assert_eq!(carried.len(), 1, "{object}");
    assert_eq!(carried[0]["id"], sid.as_str());
    assert_eq!(carried[0]["state"], "scheduled");
    assert_eq!(carried[0]["sdp_uri"], sdp_uri);
    assert_eq!(carried[0]["apd_uri"], session["apd_uri"]);
    assert_eq!(carried[0]["usd_uri"], session["usd_uri"]);

    let (xml, content_type) = fetch(session["apd_uri"].as_str().unwrap(), &cacert);
    assert_eq!(content_type, apd::CONTENT_TYPE);
    let procedures = AssociatedProcedures::parse(xml.as_bytes()).unwrap();
    let repair = procedures.file_repair.unwrap();
    assert_eq!(
        repair.service_uris,
        ["https://r1.example/repair", "https://r2.example/repair"]
    );
    assert_eq!((repair.offset_time, repair.random_time_period), (3, 7));
    let report = procedures.reception_report.unwrap();
    assert_eq!(report.sample_percentage, 25.0);
    assert_eq!(report.report_type, ReportType::StaR);
    assert_eq!(report.service_uris, [format!("{server}/report")]);
    if let Some(tags) = python(TAGS, &xml) {
        let ns = "{urn:3GPP:metadata:2005:MBMS:associatedProcedure}";
        assert!(
            tags.contains(&format!("{ns}associatedProcedureDescription")),
            "{tags}"
        );
        assert!(
            tags.contains(&format!("{ns}postFileRepair offsetTime randomTimePeriod")),
            "{tags}"
        );
        assert!(
            tags.contains(&format!(
                "{ns}postReceptionReport offsetTime randomTimePeriod reportType samplePercentage"
            )),
            "{tags}"
        );
        assert_eq!(
            tags.matches(&format!("{ns}serviceURI")).count(),
            3,
            "{tags}"
        );
    }

    let (xml, content_type) = fetch(session["usd_uri"].as_str().unwrap(), &cacert);
    assert_eq!(content_type, usd::CONTENT_TYPE);
    let bundle = UserServiceBundle::parse(xml.as_bytes()).unwrap();
    let service = &bundle.services[0];
    assert_eq!(service.delivery_methods[0].session_description_uri, sdp_uri);
    assert_eq!(
        service.delivery_methods[0]
            .associated_procedure_description_uri
            .as_deref(),
        session["apd_uri"].as_str()
    );
    assert_eq!(
        service.schedule.unwrap().start,
        start_at.parse::<u64>().unwrap()
    );
    if let Some(tags) = python(TAGS, &xml) {
        let ns = "{urn:3GPP:metadata:2005:MBMS:userServiceDescription}";
        assert!(tags.contains(&format!("{ns}bundleDescription")), "{tags}");
        assert!(
            tags.contains(&format!("{ns}userServiceDescription serviceId")),
            "{tags}"
        );
        assert!(
            tags.contains(&format!(
                "{ns}deliveryMethod associatedProcedureDescriptionURI sessionDescriptionURI"
            )),
            "{tags}"
        );
    }

    // A restarted origin keeps the session's procedures (sessions/{id}.json).
    drop(_server);
    let (_server, server) = start_origin(&data);
    let (xml, _) = fetch(&format!("{server}/apd/{sid}"), &cacert);
    let kept = AssociatedProcedures::parse(xml.as_bytes()).unwrap();
    let repair = kept.file_repair.unwrap();
    assert_eq!(
        repair.service_uris,
        ["https://r1.example/repair", "https://r2.example/repair"]
    );
    assert_eq!((repair.offset_time, repair.random_time_period), (3, 7));
    let report = kept.reception_report.unwrap();
    assert_eq!(
        (report.sample_percentage, report.report_type),
        (25.0, ReportType::StaR)
    );

    // An unknown session is a 404 on each.
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--cacert",
            cacert.to_str().unwrap(),
        ])
        .arg(format!("{server}/sdp/0123"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "404");
    let _ = json(&dms(&[
        "session",
        "stop",
        &sid,
        "--server",
        &server,
        "--data",
        data.to_str().unwrap(),
    ]));
    // Once ended, the object lists it no more and its SDP says it ended.
    binary::wait_until("the session's end", || {
        let status = json(&dms(&[
            "session",
            "status",
            &sid,
            "--server",
            &server,
            "--data",
            data.to_str().unwrap(),
        ]));
        status["state"] == "stopped"
    });
    let object = json(&dms(&[
        "objects",
        "show",
        &id,
        "--server",
        &server,
        "--data",
        data.to_str().unwrap(),
    ]));
    assert_eq!(object["sessions"], serde_json::json!([]), "{object}");
    let (text, _) = fetch(&format!("{server}/sdp/{sid}"), &cacert);
    let ended = SessionDescription::parse(text.as_bytes()).unwrap();
    assert!(ended.stop.is_some(), "{text}");
}
