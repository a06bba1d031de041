//! Reception reports on a real server: XML and JSON in, summary out.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::sync::Arc;

use common::{TestSource, bytes, get, request, serve};
use dms_repair::{RedbReports, ReportStore, ServiceConfig, reports_router, router};

#[tokio::test]
async fn reports_round_trip_to_the_summary() {
    let source = TestSource::new();
    let info = source.add("obj9", "a.bin", &bytes(5000, 9), 64, 50);
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(redb::Database::create(dir.path().join("reports.redb")).unwrap());
    let store: Arc<dyn ReportStore> = Arc::new(RedbReports::new(db));
    let app = router(
        source.clone(),
        Some(store.clone()),
        ServiceConfig::default(),
    )
    .merge(reports_router(store));
    let base = serve(app).await;
    let url = format!("{base}/report");

    let json = serde_json::json!({
        "object": "obj9", "device": "dev-1", "success": true,
        "bytes": {"broadcast": 4000, "peers": 600, "repair": 400},
        "seconds_to_complete": 12.5
    });
    let a = request(
        "POST",
        &url,
        &[("content-type", "application/json")],
        json.to_string().as_bytes(),
    )
    .await;
    assert_eq!(a.status, 200, "{:?}", a.body);

    let xml = format!(
        r#"<receptionReport xmlns="urn:3gpp:metadata:2008:MBMS:receptionreport">
             <statisticalReport clientId="dev-2"><fileURI receptionSuccess="false">{0}</fileURI>
             <fileURI>http://unknown.example/x</fileURI></statisticalReport></receptionReport>"#,
        info.content_location
    );
    let a = request(
        "POST",
        &url,
        &[("content-type", "application/xml")],
        xml.as_bytes(),
    )
    .await;
    assert_eq!(a.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(v["stored"], 1);

    // A RAck without clientId is keyed by the client address.
    let rack = format!(
        "<receptionReport><receptionAcknowledgement><fileURI>{}</fileURI></receptionAcknowledgement></receptionReport>",
        info.content_location
    );
    assert_eq!(
        request("POST", &url, &[], rack.as_bytes()).await.status,
        200
    );

    let s = get(&format!("{base}/v1/reports?object=obj9"), &[]).await;
    assert_eq!(s.status, 200);
    let s: serde_json::Value = serde_json::from_slice(&s.body).unwrap();
    assert_eq!(s["devices"], 3);
    assert_eq!(s["succeeded"], 2);
    assert_eq!(s["bytes"]["broadcast"], 4000);
    assert_eq!(s["bytes"]["peers"], 600);
    assert_eq!(s["bytes"]["repair"], 400);
    assert_eq!(s["mean_seconds_to_complete"], 12.5);

    // Errors are JSON 4xx.
    for (body, status) in [
        (r#"{"object":"nope","device":"d","success":true}"#, 404),
        (r#"{"device":"d","success":true}"#, 400),
        (r#"{"object":"obj9""#, 400),
        ("<notAReport/>", 400),
    ] {
        let a = request("POST", &url, &[], body.as_bytes()).await;
        assert_eq!(a.status, status, "{body}");
        let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
        assert!(v["error"].is_string());
    }
    assert_eq!(get(&format!("{base}/v1/reports"), &[]).await.status, 400);
}
