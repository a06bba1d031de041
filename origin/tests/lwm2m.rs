//! LwM2M Firmware Update results (Object 5) posted to installNotifyURI and
//! shown per device in the management API, beside DL-OTA status lines; and
//! package URIs in an object's JSON.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::{json_of, start};
use dms_origin::config::Config;
use reqwest::StatusCode;

#[tokio::test]
async fn update_results_are_recorded_per_device() {
    let server = start(Config::default()).await;
    let (status, obj) = server
        .publish("name=fw.bin&version=1.0.0", common::data(5000, 1))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = obj["id"].as_str().unwrap();
    // Without CoAP served, the package URIs are the HTTPS one alone.
    assert_eq!(
        obj["package_uris"],
        serde_json::json!({ "https": obj["uri"] })
    );
    let notify = obj["notify_uri"].as_str().unwrap();
    let post = |device: &str, content_type: &str, body: &str| {
        server
            .client
            .post(format!("{notify}?device={device}"))
            .header("content-type", content_type)
            .body(body.to_owned())
            .send()
    };
    // A device mid-download, then the same device installed; another
    // failed its integrity check; a third reports a DL-OTA status line.
    let senml = r#"[{"bn":"/5/0/","n":"3","v":1},{"n":"5","v":0}]"#;
    for (device, content_type, body) in [
        ("ue-1", "application/senml+json", senml),
        ("ue-2", "text/plain", "/5/0/3=0\n/5/0/5=5\n"),
        ("ue-3", "text/plain", "954 Loader Error"),
    ] {
        let r = post(device, content_type, body).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{device}");
    }
    let notes = || async {
        let (status, notes) = json_of(
            server
                .get(&format!("/v1/objects/{id}/notifications"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let mut notes = notes.as_array().unwrap().clone();
        notes.sort_by_key(|n| n["device"].as_str().unwrap().to_owned());
        notes
    };
    let n = notes().await;
    assert_eq!(n[0]["outcome"], "in_progress");
    assert_eq!(n[0]["lwm2m"]["state"], 1);
    assert_eq!(n[1]["outcome"], "failed");
    assert_eq!(n[1]["lwm2m"]["update_result"], 5);
    assert_eq!(
        n[1]["lwm2m"]["update_result_text"],
        "Integrity check failure for new downloaded package"
    );
    assert_eq!(
        (n[2]["code"].as_u64(), n[2]["outcome"].as_str()),
        (Some(954), Some("failed"))
    );
    let r = post(
        "ue-1",
        "application/senml+json",
        r#"[{"n":"/5/0/5","v":1}]"#,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let n = notes().await;
    assert_eq!(
        (n[0]["device"].as_str(), n[0]["outcome"].as_str()),
        (Some("ue-1"), Some("succeeded"))
    );
    assert_eq!(n[0]["lwm2m"]["update_result"], 1);
    // Bad reports are 400 with a JSON error; nothing is recorded.
    for body in [
        "/5/0/5=42",
        "[{\"n\":\"/5/0/3\",\"v\":1}]",
        "[not json",
        "/5/0/5=x",
    ] {
        let (status, error) = json_of(post("ue-9", "text/plain", body).await.unwrap()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            error["error"].as_str().unwrap().contains("LwM2M"),
            "{error}"
        );
    }
    assert_eq!(notes().await.len(), 3);
}
