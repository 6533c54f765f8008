//! Input validation at the edge: typed JSON bodies with limits, and bounded text values.
//!
//! Every request body goes through [`ApiJson`]: it must be `application/json`, at most
//! [`crate::MAX_BODY_BYTES`], and decode into a type that rejects unknown fields and checks every
//! value (S3.1-38). A failure answers 4xx with a clear message and changes nothing.

use std::net::IpAddr;

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
        serde_json::from_slice(&bytes)
            .map(ApiJson)
            .map_err(|e| ApiError::BadRequest(describe_json_error(&e)))
    }
}

/// A message about bad JSON that names the problem and its place but echoes no input.
fn describe_json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof => {
            format!("malformed JSON at line {} column {}", e.line(), e.column())
        }
        // serde's data errors name the field and the expectation ("unknown field `x`,
        // expected one of ..."); they contain field names from our own schema, not values.
        Category::Data | Category::Io => {
            let msg = e.to_string();
            let msg = msg.split(" at line ").next().unwrap_or("invalid value");
            format!("invalid request: {msg}")
        }
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
}

impl ConnInfo {
    /// The peer address, if any.
    pub fn peer(&self) -> Option<IpAddr> {
        self.origin.source
    }
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

    #[test]
    fn text_debug_never_shows_the_value() {
        let t: PasswordText = serde_json::from_str("\"hunter2-secret\"").unwrap();
        assert!(!format!("{t:?}").contains("hunter2"));
    }
}
