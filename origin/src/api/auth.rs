//! Bearer-token authentication of the management API.

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use crate::config::Scope;

/// The accepted tokens (kept as SHA-256 digests).
#[derive(Clone, Debug, Default)]
pub struct Tokens {
    tokens: Vec<([u8; 32], Scope, String)>,
}

impl Tokens {
    /// No tokens (everything is refused).
    pub fn new() -> Self {
        Self::default()
    }

    /// Accepts `token` with `scope`; `name` is for logs.
    pub fn add(&mut self, token: &str, scope: Scope, name: &str) {
        self.tokens.push((
            Sha256::digest(token.as_bytes()).into(),
            scope,
            name.to_owned(),
        ));
    }

    /// Accepts the token whose SHA-256 is `digest` (a token the shared
    /// catalog keeps) with `scope`.
    pub fn add_digest(&mut self, digest: [u8; 32], scope: Scope, name: &str) {
        self.tokens.push((digest, scope, name.to_owned()));
    }

    /// Whether a token with this digest is accepted.
    pub fn has_digest(&self, digest: &[u8; 32]) -> bool {
        self.tokens.iter().any(|(d, _, _)| d == digest)
    }

    /// The scope of a presented token.
    pub fn scope_of(&self, presented: &str) -> Option<Scope> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // Comparing digests (not the secrets) with a fold keeps the time
        // independent of where the first difference is.
        self.tokens
            .iter()
            .find(|(d, _, _)| d.iter().zip(digest).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0)
            .map(|(_, scope, _)| *scope)
    }
}

/// Middleware: 401 without a valid bearer token, 403 when a read-only
/// token tries to change something.
pub async fn require_token(
    State(tokens): State<std::sync::Arc<Tokens>>,
    req: Request,
    next: Next,
) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            // The scheme name is case-insensitive (RFC 7235).
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    let Some(presented) = presented else {
        return unauthorized("missing bearer token");
    };
    let Some(scope) = tokens.scope_of(presented) else {
        return unauthorized("invalid token");
    };
    let read = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !read && scope < Scope::ReadWrite {
        return ApiError::new(StatusCode::FORBIDDEN, "token is read-only").into_response();
    }
    next.run(req).await
}

fn unauthorized(message: &str) -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}
