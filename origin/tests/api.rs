#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

//! The management and public API over real TLS on loopback.

mod common;

use common::{data, json_of, start};
use dms_origin::config::{Config, Scope, TokenConfig};
use dms_repair::manifest::{SignedManifest, public_key_from_pem};
use quick_xml::events::Event;
use reqwest::StatusCode;
use sha2::{Digest, Sha256};

/// Text of each element of a download descriptor, by local name.
fn dd_fields(xml: &str) -> std::collections::BTreeMap<String, String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out = std::collections::BTreeMap::new();
    let mut current = String::new();
    let mut root_ns = None;
    loop {
        match reader.read_event().unwrap() {
            Event::Start(e) => {
                current = String::from_utf8(e.local_name().as_ref().to_vec()).unwrap();
                if current == "media" {
                    root_ns = e
                        .try_get_attribute("xmlns")
                        .unwrap()
                        .map(|a| String::from_utf8(a.value.to_vec()).unwrap());
                }
            }
            Event::Text(t) => {
                let text = t.decode().unwrap();
                if !text.trim().is_empty() {
                    out.insert(current.clone(), text.into_owned());
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    out.insert("xmlns".into(), root_ns.unwrap_or_default());
    out
}

#[tokio::test]
async fn publish_list_get_dd_manifest_and_download_over_tls() {
    let server = start(Config::default()).await;
    let bytes = data(2_600_000, 7);
    let (status, obj) = server
        .publish(
            "name=fw.bin&version=1.2.0&kind=firmware&priority=high",
            bytes.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{obj}");
    let id = obj["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 32);
    assert_eq!(obj["name"], "fw.bin");
    assert_eq!(obj["version"], "1.2.0");
    assert_eq!(obj["kind"], "firmware");
    assert_eq!(obj["priority"], "high");
    assert_eq!(obj["size"], 2_600_000);
    assert_eq!(obj["sha256"], hex::encode(Sha256::digest(&bytes)));
    let base = &server.base;
    assert_eq!(obj["uri"], format!("{base}/dl/{id}/fw.bin"));
    assert_eq!(obj["content_location"], obj["uri"]);
    assert_eq!(obj["dd_uri"], format!("{base}/dd/{id}"));
    assert_eq!(obj["manifest_uri"], format!("{base}/manifest/{id}"));
    assert_eq!(obj["repair_uri"], format!("{base}/repair"));
    assert_eq!(obj["report_uri"], format!("{base}/report"));
    assert_eq!(obj["fec"]["encoding_id"], 6);
    assert_eq!(obj["fec"]["symbol_size"], 1400);
    assert_eq!(obj["fec"]["source_blocks"], 3);
    for key in [
        "uri",
        "dd_uri",
        "manifest_uri",
        "repair_uri",
        "report_uri",
        "notify_uri",
    ] {
        assert!(obj[key].as_str().unwrap().len() <= 255);
    }

    // Listed and shown; the answer is over HTTP/2.
    let response = server
        .get("/v1/objects?kind=firmware")
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    let (status, list) = json_of(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["total"], 1);
    assert_eq!(list["objects"][0], obj);
    let (_, shown) = json_of(
        server
            .get(&format!("/v1/objects/{id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(shown, obj);
    let (_, history) = json_of(server.get("/v1/names/fw.bin").send().await.unwrap()).await;
    assert_eq!(history["latest"]["id"], id.as_str());

    // The download descriptor.
    let response = server
        .client
        .get(obj["dd_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "application/vnd.oma.dd+xml"
    );
    let dd = dd_fields(&response.text().await.unwrap());
    assert_eq!(dd["xmlns"], "http://www.openmobilealliance.org/xmlns/dd");
    assert_eq!(dd["DDVersion"], "1.0");
    assert_eq!(dd["objectURI"], obj["uri"].as_str().unwrap());
    assert_eq!(dd["size"], "2600000");
    assert_eq!(dd["type"], "application/octet-stream");
    assert_eq!(dd["installNotifyURI"], obj["notify_uri"].as_str().unwrap());
    assert!(dd.contains_key("name"));

    // The manifest verifies with DATA/origin.pub and covers the bytes.
    let public = public_key_from_pem(
        &std::fs::read_to_string(server.data.path().join("origin.pub")).unwrap(),
    )
    .unwrap();
    let manifest_bytes = server
        .client
        .get(obj["manifest_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let manifest = SignedManifest::from_json(&manifest_bytes).unwrap();
    let body = manifest.verify(&public).unwrap();
    assert_eq!(body.size, 2_600_000);
    assert_eq!(body.sha256, <[u8; 32]>::from(Sha256::digest(&bytes)));
    let layout = body.oti.layout();
    assert_eq!(body.block_sha256.len(), 3);
    for (sbn, hash) in body.block_sha256.iter().enumerate() {
        let r = layout.block_range(sbn as u32).unwrap();
        assert_eq!(
            hash[..],
            Sha256::digest(&bytes[r.start as usize..r.end as usize])[..]
        );
    }
    let (_, keys) = json_of(server.get("/v1/keys").send().await.unwrap()).await;
    assert_eq!(
        keys["keys"][0]["public_key"],
        hex::encode(public.as_bytes())
    );
    assert_eq!(keys["keys"][0]["id"], manifest.key_id);

    // The download matches.
    let response = server
        .client
        .get(obj["uri"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.bytes().await.unwrap()[..], bytes[..]);

    // installNotifyURI records a device's status.
    let response = server
        .client
        .post(format!(
            "{}?device=imei-1",
            obj["notify_uri"].as_str().unwrap()
        ))
        .body("900 Success\n")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (_, notes) = json_of(
        server
            .get(&format!("/v1/objects/{id}/notifications"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(notes[0]["device"], "imei-1");
    assert_eq!(notes[0]["code"], 900);

    // Metrics.
    let text = server
        .get("/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("dms_objects 1\n"), "{text}");
    assert!(text.contains("dms_stored_bytes 2600000\n"), "{text}");
    assert!(
        text.contains("dms_http_requests_total{status=\"201\"} 1\n"),
        "{text}"
    );

    // Withdrawn: no longer served; deleted: gone, blob removed.
    let (status, patched) = json_of(
        server
            .client
            .patch(server.url(&format!("/v1/objects/{id}")))
            .bearer_auth(&server.token)
            .json(&serde_json::json!({"state": "withdrawn", "metadata": {"model": "X1"}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(patched["state"], "withdrawn");
    assert_eq!(patched["metadata"]["model"], "X1");
    let response = server
        .client
        .get(obj["dd_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = server
        .client
        .delete(server.url(&format!("/v1/objects/{id}")))
        .bearer_auth(&server.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (status, _) = json_of(
        server
            .get(&format!("/v1/objects/{id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(server.repo.catalog().stats().unwrap().stored_bytes, 0);
}

fn nothing_stored(server: &common::TestServer) {
    let stats = server.repo.catalog().stats().unwrap();
    assert_eq!(stats.objects, 0);
    let blobs = server.data.path().join("blobs");
    for entry in std::fs::read_dir(&blobs).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(
            std::fs::read_dir(&path).unwrap().count(),
            0,
            "{} not empty",
            path.display()
        );
    }
}

#[tokio::test]
async fn bad_input_gets_4xx_json_and_stores_nothing() {
    let reader_token = "read-only-token-0123456789";
    let config = Config {
        quota_bytes: Some(100_000),
        tokens: vec![TokenConfig {
            name: "reader".into(),
            token: reader_token.into(),
            scope: Scope::ReadOnly,
        }],
        ..Config::default()
    };
    let server = start(config).await;
    let post = |query: &str| {
        server
            .client
            .post(server.url(&format!("/v1/objects?{query}")))
    };
    let ok_query = "name=a&version=1";

    // Tokens.
    let cases = [
        (post(ok_query).body("x"), StatusCode::UNAUTHORIZED),
        (
            post(ok_query).bearer_auth("wrong-token").body("x"),
            StatusCode::UNAUTHORIZED,
        ),
        (
            post(ok_query).bearer_auth(reader_token).body("x"),
            StatusCode::FORBIDDEN,
        ),
        (
            server.client.get(server.url("/v1/objects")),
            StatusCode::UNAUTHORIZED,
        ),
        (
            server.client.get(server.url("/metrics")),
            StatusCode::UNAUTHORIZED,
        ),
    ];
    for (request, expected) in cases {
        let (status, body) = json_of(request.send().await.unwrap()).await;
        assert_eq!(status, expected, "{body}");
        assert!(body["error"].is_string(), "{body}");
    }
    // A read-only token reads.
    let response = server
        .client
        .get(server.url("/v1/objects"))
        .bearer_auth(reader_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // The scheme name is case-insensitive.
    let response = server
        .client
        .get(server.url("/v1/objects"))
        .header("authorization", format!("bearer {reader_token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // Malformed queries, path tricks, empty and oversized bodies.
    let bad = [
        ("version=1", 10, StatusCode::BAD_REQUEST),
        ("name=a", 10, StatusCode::BAD_REQUEST),
        ("name=a&version=1&kind=bogus", 10, StatusCode::BAD_REQUEST),
        (
            "name=a&version=1&priority=urgent",
            10,
            StatusCode::BAD_REQUEST,
        ),
        ("name=a&version=1&extra=1", 10, StatusCode::BAD_REQUEST),
        (
            "name=..%2F..%2Fetc%2Fpasswd&version=1",
            10,
            StatusCode::BAD_REQUEST,
        ),
        ("name=a%2Fb&version=1", 10, StatusCode::BAD_REQUEST),
        ("name=.hidden&version=1", 10, StatusCode::BAD_REQUEST),
        ("name=a&version=..", 10, StatusCode::BAD_REQUEST),
        ("name=a%00b&version=1", 10, StatusCode::BAD_REQUEST),
        ("name=a&version=1", 0, StatusCode::BAD_REQUEST),
        ("name=a&version=1", 300_000, StatusCode::PAYLOAD_TOO_LARGE),
    ];
    for (query, len, expected) in bad {
        let (status, body) = server.publish(query, data(len, 3)).await;
        assert_eq!(status, expected, "{query}: {body}");
        assert!(body["error"].is_string(), "{query}: {body}");
    }
    for query in ["limit=abc", "limit=0", "state=gone", "offset=-1"] {
        let (status, body) = json_of(
            server
                .get(&format!("/v1/objects?{query}"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert!(body["error"].is_string());
    }

    // Unknown ids, everywhere.
    let unknown = "0123456789abcdef0123456789abcdef";
    for path in [
        format!("/v1/objects/{unknown}"),
        format!("/v1/objects/{unknown}/notifications"),
        format!("/dd/{unknown}"),
        format!("/manifest/{unknown}"),
        format!("/dl/{unknown}/a"),
        "/v1/names/nobody".to_owned(),
        "/no/such/route".to_owned(),
    ] {
        let (status, body) = json_of(server.get(&path).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert!(body["error"].is_string(), "{path}");
    }
    let (status, _) = json_of(
        server
            .client
            .delete(server.url(&format!("/v1/objects/{unknown}")))
            .bearer_auth(&server.token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = json_of(
        server
            .client
            .patch(server.url(&format!("/v1/objects/{unknown}")))
            .bearer_auth(&server.token)
            .header("content-type", "application/json")
            .body("{\"state\": \"exploded\"}")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(status.is_client_error(), "{status}: {body}");
    assert!(body["error"].is_string());
    let (status, _) = json_of(
        server
            .client
            .post(server.url(&format!("/notify/{unknown}")))
            .body("900 Success")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    nothing_stored(&server);

    // Bad notify lines and duplicate versions on a real object.
    let (status, obj) = server.publish(ok_query, b"payload".to_vec()).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = server.publish(ok_query, b"other payload".to_vec()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let notify = obj["notify_uri"].as_str().unwrap();
    for line in ["200 OK", "hello", ""] {
        let (status, body) =
            json_of(server.client.post(notify).body(line).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{line:?}: {body}");
    }
    let (status, _) = json_of(
        server
            .get(&format!("/dl/{}/wrong-name", obj["id"].as_str().unwrap()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(server.repo.catalog().stats().unwrap().objects, 1);
}

#[tokio::test]
async fn openapi_document_describes_the_served_routes() {
    let server = start(Config::default()).await;
    let (status, doc) = json_of(server.get("/v1/openapi.json").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let paths = doc["paths"].as_object().unwrap();
    for expected in [
        "/v1/objects",
        "/v1/objects/{id}",
        "/v1/keys",
        "/v1/openapi.json",
        "/metrics",
    ] {
        assert!(
            paths.contains_key(expected),
            "{expected} missing from the document"
        );
    }
    assert!(doc["components"]["schemas"]["ObjectView"].is_object());
    // Every documented operation is routed: it never falls through to the
    // router's "no such route" nor answers 405.
    let mut operations = 0;
    for (path, item) in paths {
        let concrete = path
            .replace("{id}", "0123456789abcdef0123456789abcdef")
            .replace("{name}", "nobody");
        for method in ["get", "post", "patch", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            operations += 1;
            let response = server
                .client
                .request(
                    method.to_uppercase().parse().unwrap(),
                    server.url(&concrete),
                )
                .bearer_auth(&server.token)
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body = response.text().await.unwrap();
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert!(
                !body.contains(dms_origin::api::NO_ROUTE),
                "{method} {path} is documented but not routed"
            );
        }
    }
    assert!(operations >= 10, "{operations}");
}

#[tokio::test]
async fn plain_http_with_a_configured_base_url() {
    let data = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let opts = dms_origin::server::ServeOptions {
        data: data.path().to_path_buf(),
        listen: addr,
        config: Config {
            base_url: Some("https://cdn.example.net/dms/".into()),
            ..Config::default()
        },
        tls: None,
        insecure_http: true,
        coap: Default::default(),
    };
    let origin = tokio::task::spawn_blocking(move || dms_origin::server::prepare(&opts).unwrap())
        .await
        .unwrap();
    assert!(origin.tls.is_none());
    assert!(!data.path().join("tls").exists());
    let (_tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(dms_origin::http::serve(
        listener,
        origin.app,
        None,
        async move {
            let _ = rx.await;
        },
    ));
    let token = std::fs::read_to_string(data.path().join("admin.token")).unwrap();
    // reqwest's "no provider" rustls feature needs a TLS configuration even
    // for plain HTTP: one with no roots.
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .build()
        .unwrap();
    let (status, obj) = json_of(
        client
            .post(format!(
                "http://{addr}/v1/objects?name=cfg.toml&version=3&kind=config"
            ))
            .bearer_auth(token.trim())
            .body("key = 1\n")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{obj}");
    let id = obj["id"].as_str().unwrap();
    assert_eq!(
        obj["uri"],
        format!("https://cdn.example.net/dms/dl/{id}/cfg.toml")
    );
    assert_eq!(
        obj["dd_uri"],
        format!("https://cdn.example.net/dms/dd/{id}")
    );
    // Behind the proxy, the same paths are served without the base's path.
    let bytes = client
        .get(format!("http://{addr}/dl/{id}/cfg.toml"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&bytes[..], b"key = 1\n");
}

#[tokio::test]
async fn too_long_base_url_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let opts = dms_origin::server::ServeOptions {
        data: data.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        config: Config {
            base_url: Some(format!("https://{}.example", "a".repeat(200))),
            ..Config::default()
        },
        tls: None,
        insecure_http: false,
        coap: Default::default(),
    };
    let err = dms_origin::server::prepare(&opts).unwrap_err();
    assert!(err.to_string().contains("base URL"), "{err}");
}
