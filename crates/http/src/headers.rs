//! Security headers on every response, and nothing that names the software.

use axum::http::{HeaderName, HeaderValue, header};
use axum::response::Response;

const HEADERS: &[(HeaderName, &str)] = &[
    (header::STRICT_TRANSPORT_SECURITY, "max-age=31536000"),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::CACHE_CONTROL, "no-store"),
];

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
    h.remove(header::SERVER);
    resp
}
