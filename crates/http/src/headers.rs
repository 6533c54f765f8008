//! Security headers on every response, and nothing that names the software.

use axum::http::{HeaderName, HeaderValue, header};
use axum::response::Response;

const HEADERS: &[(HeaderName, &str)] = &[
    (header::STRICT_TRANSPORT_SECURITY, "max-age=31536000"),
    (header::CONTENT_SECURITY_POLICY, CSP),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    // same-origin, not no-referrer: under no-referrer a browser sends `Origin: null` on our own
    // form posts, and the origin check of state-changing requests needs the real one.
    (header::REFERRER_POLICY, "same-origin"),
];

/// The Content-Security-Policy of every response: no inline script or style, no framing.
pub const CSP: &str = "default-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Adds the security headers and strips any `Server` header.
pub async fn add(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    for (name, value) in HEADERS {
        h.insert(name.clone(), HeaderValue::from_static(value));
    }
    h.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    );
    // Nothing is cached unless a handler says so (only the UI's static assets do).
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    h.remove(header::SERVER);
    resp
}
