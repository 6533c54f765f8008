//! Cross-site request forgery defences, on top of SameSite=Strict cookies:
//! - the browser's own word: `Sec-Fetch-Site` and `Origin` must say the request came from
//!   this origin;
//! - a token in every form: bound to the session (an HMAC of its id under a per-process key),
//!   or before login equal to a random cookie (double submit).

use axum::http::{HeaderMap, header};
use data_encoding::HEXLOWER;
use mamori_auth::{Principal, service::Via};
use mamori_crypto::digest;

/// Name of the form field that carries the token.
pub const FIELD: &str = "csrf";

/// The per-process key tokens are derived under. Sessions live in memory, so tokens need not
/// outlive the process either.
pub struct CsrfKey([u8; 32]);

impl CsrfKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self, mamori_crypto::CryptoError> {
        Ok(Self(mamori_crypto::random::bytes::<32>()?))
    }

    /// The token for a session; `None` for a principal without one (API tokens never reach
    /// pages).
    pub fn token(&self, p: &Principal) -> Option<String> {
        match &p.via {
            Via::Session { hash, .. } => {
                let mut msg = b"mamori/ui/csrf/".to_vec();
                msg.extend_from_slice(hash);
                Some(HEXLOWER.encode(&digest::hmac_sha256(&self.0, &msg)))
            }
            Via::Token { .. } => None,
        }
    }
}

/// True if `offered` equals `expected`, in constant time.
pub fn matches(offered: Option<&str>, expected: Option<&str>) -> bool {
    match (offered, expected) {
        (Some(o), Some(e)) if !e.is_empty() => digest::constant_time_eq(o.as_bytes(), e.as_bytes()),
        _ => false,
    }
}

/// True unless the browser says the request came from another site. Browsers send
/// `Sec-Fetch-Site` on every request (all current engines); `Origin` on every POST.
/// `host` is the request's authority (the Host header on HTTP/1.1, `:authority` on HTTP/2).
pub fn same_origin(headers: &HeaderMap, host: Option<&str>) -> bool {
    let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if let Some(site) = site
        && !matches!(site, "same-origin" | "none")
    {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        // Not a browser form post (a test client, curl): the token still has to match.
        return true;
    };
    match (origin.to_str().ok(), host) {
        // A browser serialises the origin as "null" under some referrer policies and after
        // some redirects; then only its fetch metadata can say the post came from our pages.
        (Some("null"), _) => site == Some("same-origin"),
        (Some(o), Some(h)) => o.strip_prefix("https://") == Some(h),
        _ => false,
    }
}

/// The authority a request was sent to.
pub fn host<B>(req: &axum::http::Request<B>) -> Option<&str> {
    req.uri().authority().map(|a| a.as_str()).or_else(|| {
        req.headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
    })
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.insert(*n, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn a_cross_site_request_is_refused() {
        let host = Some("192.0.2.1:8443");
        assert!(!same_origin(
            &headers(&[("sec-fetch-site", "cross-site")]),
            host
        ));
        assert!(!same_origin(
            &headers(&[("sec-fetch-site", "same-site")]),
            host
        ));
        assert!(!same_origin(
            &headers(&[("origin", "https://evil.example")]),
            host
        ));
        assert!(!same_origin(
            &headers(&[("origin", "http://192.0.2.1:8443")]),
            host
        ));
        assert!(!same_origin(
            &headers(&[("origin", "https://192.0.2.1:8443")]),
            None
        ));
    }

    #[test]
    fn a_same_origin_request_passes() {
        let host = Some("192.0.2.1:8443");
        assert!(same_origin(
            &headers(&[
                ("sec-fetch-site", "same-origin"),
                ("origin", "https://192.0.2.1:8443")
            ]),
            host
        ));
        assert!(same_origin(&HeaderMap::new(), host));
    }

    #[test]
    fn an_opaque_origin_needs_fetch_metadata_saying_same_origin() {
        let host = Some("192.0.2.1:8443");
        assert!(same_origin(
            &headers(&[("sec-fetch-site", "same-origin"), ("origin", "null")]),
            host
        ));
        assert!(!same_origin(&headers(&[("origin", "null")]), host));
        assert!(!same_origin(
            &headers(&[("sec-fetch-site", "none"), ("origin", "null")]),
            host
        ));
        assert!(!same_origin(
            &headers(&[("sec-fetch-site", "cross-site"), ("origin", "null")]),
            host
        ));
    }

    #[test]
    fn tokens_must_be_present_and_equal() {
        assert!(matches(Some("ab"), Some("ab")));
        assert!(!matches(Some("ab"), Some("ac")));
        assert!(!matches(None, Some("ab")));
        assert!(!matches(Some(""), Some("")));
        assert!(!matches(Some("ab"), None));
    }
}
