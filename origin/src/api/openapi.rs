//! `/v1/openapi.json`: the OpenAPI document, generated from the handlers'
//! annotations (utoipa).

use axum::Json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{objects, sessions};

/// The OpenAPI description of the management API.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "dms origin management API"),
    paths(
        objects::create,
        objects::list,
        objects::show,
        objects::patch,
        objects::delete,
        objects::notifications,
        objects::name_history,
        super::deltas::list_route,
        objects::keys,
        super::scrub::run,
        sessions::create,
        sessions::list,
        sessions::show,
        sessions::stop,
        document,
        super::metrics_text,
        super::public::dd,
        super::public::manifest,
        super::public::notify,
        super::health::healthz,
        super::health::readyz,
        super::describe::sdp_route,
        super::describe::apd_route,
        super::describe::usd_route,
    ),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// This document.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    responses((status = 200, description = "The OpenAPI document")),
    security(("bearer" = []))
)]
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
