//! Arbitrary bytes as what a client sends the origin's API: the query
//! string of every route that takes one (parsed as axum's `Query` does),
//! and the JSON bodies (a session request, then its validation; an object
//! patch), and an LwM2M report posted to installNotifyURI. Nothing may
//! panic; a validated session request keeps its invariants.
#![no_main]

use axum::extract::Query;
use axum::http::Uri;
use dms_origin::api::objects::{CreateParams, ListParams, PatchBody};
use dms_origin::api::public::{DdParams, NotifyParams};
use dms_origin::sessions::SessionRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(uri) = format!("/v1/objects?{text}").parse::<Uri>() {
            let _ = Query::<CreateParams>::try_from_uri(&uri);
            let _ = Query::<ListParams>::try_from_uri(&uri);
            let _ = Query::<DdParams>::try_from_uri(&uri);
            let _ = Query::<NotifyParams>::try_from_uri(&uri);
        }
        if dms_origin::lwm2m::is_report(text) {
            let _ = dms_origin::lwm2m::parse_report(text);
        }
    }
    if let Ok(request) = serde_json::from_slice::<SessionRequest>(data)
        && let Ok(spec) = request.validate()
    {
        assert!(!spec.objects.is_empty());
    }
    let _ = serde_json::from_slice::<PatchBody>(data);
});
