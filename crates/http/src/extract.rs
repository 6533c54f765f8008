//! Input validation at the edge: typed JSON bodies with limits, and bounded text values.
//!
//! Every request body goes through [`ApiJson`]: it must be `application/json`, at most
//! [`crate::MAX_BODY_BYTES`], and decode into a type that rejects unknown fields and checks every
//! value (S3.1-38). A failure answers 4xx with a clear message and changes nothing.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts};
use bytes::Bytes;
use mamori_auth::{Origin, Principal};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::ApiError;

/// Time allowed to receive a request body.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A JSON body, validated.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        // A body dripped in slowly holds a connection; it gets a deadline of its own.
        let bytes = tokio::time::timeout(BODY_TIMEOUT, Bytes::from_request(req, state))
            .await
            .map_err(|_| ApiError::BodyTimeout)?
            .map_err(|_| ApiError::BodyTooLarge)?;
        decode_json(&bytes).map(ApiJson)
    }
}

/// Decodes a JSON object body the way [`ApiJson`] does (an object only, no duplicate or unknown
/// fields, no trailing data; messages name the field and never echo the input), for handlers
/// that read a larger body themselves.
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // A body is always a JSON object: serde would also accept a positional array for a
    // struct, which the schema does not allow. Decoding straight from the text (not via a
    // JSON value) keeps serde's refusal of duplicate fields.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::BadRequest(
            "the body must be a JSON object".into(),
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        use serde_json::error::Category;
        let inner = e.inner();
        ApiError::BadRequest(match inner.classify() {
            Category::Syntax | Category::Eof | Category::Io => format!(
                "malformed JSON at line {} column {}",
                inner.line(),
                inner.column()
            ),
            Category::Data => describe(e.path(), inner),
        })
    })?;
    de.end()
        .map_err(|_| ApiError::BadRequest("trailing data after the JSON object".into()))?;
    Ok(value)
}

/// A message about a bad value that names the field and what JSON is expected, in our words:
/// no echo of the input, no implementation type names (S3.1-24, S3.1-38 R2 E).
fn describe(path: &serde_path_to_error::Path, e: &serde_json::Error) -> String {
    let msg = e.to_string();
    let msg = msg.split(" at line ").next().unwrap_or_default();
    let field = path.to_string();
    let at = if field == "." || field.is_empty() {
        "the body".to_string()
    } else {
        format!("`{field}`")
    };
    // The expectation part of serde's message lists our own field or variant names.
    let expected = msg.split_once("expected ").map_or("", |(_, x)| x);
    if msg.starts_with("unknown field") {
        // The path ends in the unknown name the client sent: do not repeat it.
        let parent = field
            .rsplit_once('.')
            .map_or("the body".to_string(), |(p, _)| format!("`{p}`"));
        return format!("unknown field in {parent}; expected {expected}");
    }
    if msg.starts_with("unknown variant") {
        return format!("{at} must be {expected}");
    }
    if msg.starts_with("missing field") {
        return msg.to_string();
    }
    if ["invalid type", "invalid value", "invalid length"]
        .iter()
        .any(|p| msg.starts_with(p))
    {
        return format!("{at} must be {}", json_kind(expected));
    }
    // Our own validation messages (lengths, formats) say nothing about the input.
    format!("{at}: {msg}")
}

/// What serde's expectation means in JSON terms.
fn json_kind(expected: &str) -> &'static str {
    let e = expected.to_ascii_lowercase();
    let is = |words: &[&str]| words.iter().any(|w| e.contains(w));
    if is(&["string", "char"]) {
        "a string"
    } else if is(&["bool"]) {
        "true or false"
    } else if is(&[
        "u8", "u16", "u32", "u64", "usize", "i32", "i64", "integer", "number",
    ]) {
        "a whole number in range"
    } else if is(&["sequence", "array", "elements"]) {
        "an array"
    } else if is(&["struct", "map"]) {
        "an object"
    } else {
        "a value of the documented type"
    }
}

/// A path parameter. A value that does not even decode (bad percent-encoding, not UTF-8)
/// names nothing that exists: 404, in the API's JSON error format.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|_| ApiError::NotFound)
    }
}

/// A query string, decoded into a type that rejects unknown parameters. Errors are the API's
/// JSON errors and do not repeat the input.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|_| {
                ApiError::BadRequest("invalid query string; see the API documentation".into())
            })
    }
}

/// Text with a length between `MIN` and `MAX` characters and no control characters.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Text<const MIN: usize, const MAX: usize>(String);

impl<const MIN: usize, const MAX: usize> Text<MIN, MAX> {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<const MIN: usize, const MAX: usize> std::fmt::Debug for Text<MIN, MAX> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Text often holds passwords; never print it.
        write!(f, "Text(<{} chars>)", self.0.chars().count())
    }
}

impl<'de, const MIN: usize, const MAX: usize> Deserialize<'de> for Text<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let n = s.chars().count();
        if n < MIN || n > MAX {
            return Err(serde::de::Error::custom(format!(
                "text must be {MIN} to {MAX} characters long"
            )));
        }
        if s.chars().any(char::is_control) {
            return Err(serde::de::Error::custom(
                "text must not contain control characters",
            ));
        }
        Ok(Text(s))
    }
}

impl<const MIN: usize, const MAX: usize> JsonSchema for Text<MIN, MAX> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("Text_{MIN}_{MAX}").into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "minLength": MIN, "maxLength": MAX})
    }
}

/// A password field: 1–128 characters (the policy decides what is acceptable).
pub type PasswordText = Text<1, 128>;

/// How a connection reached the device; inserted into every request by the listener.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// Channel and peer address.
    pub origin: Origin,
    /// The device's address and port the connection arrived at (none on the console): what
    /// the anti-lockout check of a network change protects.
    pub local: Option<std::net::SocketAddr>,
}

/// The authenticated caller, placed in the request by the access guard.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or(ApiError::Internal("endpoint has no access guard".into()))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ConnInfo {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<ConnInfo>()
            .copied()
            .ok_or(ApiError::Internal("connection info missing".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_enforces_length_and_control_characters() {
        type T = Text<1, 5>;
        assert!(serde_json::from_str::<T>("\"abc\"").is_ok());
        assert!(serde_json::from_str::<T>("\"\"").is_err());
        assert!(serde_json::from_str::<T>("\"abcdef\"").is_err());
        assert!(serde_json::from_str::<T>("\"a\\nb\"").is_err());
        // Length counts characters, not bytes.
        assert!(serde_json::from_str::<T>("\"まもりです\"").is_ok());
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Probe {
        name: Text<1, 8>,
        count: u32,
        role: mamori_auth::model::Role,
    }

    fn refusal(body: &str) -> String {
        let value: serde_json::Value = serde_json::from_str(body).unwrap();
        let e = serde_path_to_error::deserialize::<_, Probe>(value).unwrap_err();
        describe(e.path(), e.inner())
    }

    /// S3.1-38 R2 E: a refusal names the field and the JSON expected, never the input or a
    /// Rust type.
    #[test]
    fn refusals_name_the_field_but_echo_no_input_and_no_rust_type() {
        let cases = [
            (
                r#"{"name": 12345678, "count": 1, "role": "admin"}"#,
                "`name` must be a string",
            ),
            (
                r#"{"name": "a", "count": "secret-x", "role": "admin"}"#,
                "`count` must be a whole number",
            ),
            (
                r#"{"name": "a", "count": -5, "role": "admin"}"#,
                "`count` must be a whole number",
            ),
            (
                r#"{"name": "a", "count": 1, "role": "secret-x"}"#,
                "`role` must be one of",
            ),
            (
                r#"{"name": "a", "count": 1, "role": "admin", "secret-x": 1}"#,
                "unknown field in the body",
            ),
            (r#"{"name": "a", "count": 1}"#, "missing field `role`"),
        ];
        for (body, want) in cases {
            let msg = refusal(body);
            assert!(msg.starts_with(want), "{body} -> {msg}");
            for leak in [
                "secret-x", "12345678", "-5", "u32", "Probe", "Role", "struct",
            ] {
                assert!(!msg.contains(leak), "{body} -> {msg} leaks {leak}");
            }
        }
    }

    #[test]
    fn text_debug_never_shows_the_value() {
        let t: PasswordText = serde_json::from_str("\"hunter2-secret\"").unwrap();
        assert!(!format!("{t:?}").contains("hunter2"));
    }
}
