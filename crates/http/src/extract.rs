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
    decode_json_as(bytes).map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// [`decode_json`] with the refusal typed, for the web UI, which words it in its reader's
/// language.
pub fn decode_json_as<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, JsonRefusal> {
    // A body is always a JSON object: serde would also accept a positional array for a
    // struct, which the schema does not allow. Decoding straight from the text (not via a
    // JSON value) keeps serde's refusal of duplicate fields.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(JsonRefusal::NotAnObject);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        use serde_json::error::Category;
        let inner = e.inner();
        match inner.classify() {
            Category::Syntax | Category::Eof | Category::Io => JsonRefusal::Malformed {
                line: inner.line(),
                column: inner.column(),
            },
            Category::Data => classify(e.path(), inner),
        }
    })?;
    de.end().map_err(|_| JsonRefusal::TrailingData)?;
    Ok(value)
}

/// Why a body is not the JSON an endpoint takes. The API answers with the English `Display`;
/// the web UI words each kind in its reader's language. None repeats the input (S3.1-24,
/// S3.1-38 R2 E).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonRefusal {
    /// Not a JSON object (an array, a scalar, nothing).
    #[error("the body must be a JSON object")]
    NotAnObject,
    /// Not JSON, or cut short.
    #[error("malformed JSON at line {line} column {column}")]
    Malformed {
        /// The line (from 1).
        line: usize,
        /// The column (from 1).
        column: usize,
    },
    /// Something follows the object.
    #[error("trailing data after the JSON object")]
    TrailingData,
    /// A field the object may not have. The name the client sent is not repeated: `parent` is
    /// the object that holds it.
    #[error("unknown field in {}; expected {expected}", .parent.place())]
    UnknownField {
        /// The object holding the unknown field.
        parent: JsonPath,
        /// serde's list of the allowed names (our own field names).
        expected: String,
    },
    /// A word that is not one of the allowed ones.
    #[error("{} must be {expected}", .at.place())]
    UnknownVariant {
        /// The value's place.
        at: JsonPath,
        /// serde's list of the allowed words (our own).
        expected: String,
    },
    /// A required field is absent.
    #[error("missing field `{name}`")]
    MissingField {
        /// Its name (ours).
        name: String,
    },
    /// A value of another JSON type, or a number out of range for its field.
    #[error("{} must be {kind}", .at.place())]
    WrongType {
        /// The value's place.
        at: JsonPath,
        /// The JSON expected.
        kind: JsonKind,
    },
    /// A value its type's own check refused; `message` is that check's words, which say
    /// nothing about the input.
    #[error("{}: {message}", .at.place())]
    Refused {
        /// The value's place.
        at: JsonPath,
        /// The check's words.
        message: String,
    },
}

/// A place in a JSON document, as serde's path names it (`interfaces[0].name`) and as steps.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JsonPath {
    /// serde's text for it; empty or `.` for the whole body.
    pub text: String,
    /// The keys and indices from the top.
    pub steps: Vec<JsonStep>,
}

/// One step into a JSON document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonStep {
    /// A field of an object (or a variant's name).
    Key(String),
    /// An element of an array.
    Index(usize),
}

impl JsonPath {
    /// Whether this is the whole body.
    pub fn is_body(&self) -> bool {
        self.text.is_empty() || self.text == "."
    }

    /// How a message names the place: "the body" or the path in backquotes.
    fn place(&self) -> String {
        if self.is_body() {
            "the body".to_string()
        } else {
            format!("`{}`", self.text)
        }
    }

    fn of(path: &serde_path_to_error::Path) -> Self {
        use serde_path_to_error::Segment;
        let steps = path
            .iter()
            .filter_map(|s| match s {
                Segment::Seq { index } => Some(JsonStep::Index(*index)),
                Segment::Map { key } => Some(JsonStep::Key(key.clone())),
                Segment::Enum { variant } => Some(JsonStep::Key(variant.clone())),
                _ => None,
            })
            .collect();
        Self {
            text: path.to_string(),
            steps,
        }
    }

    /// The object holding the last step (the body for a top-level field).
    fn parent(&self) -> Self {
        let mut steps = self.steps.clone();
        steps.pop();
        Self {
            text: self
                .text
                .rsplit_once('.')
                .map_or(String::new(), |(p, _)| p.to_string()),
            steps,
        }
    }
}

/// A kind of JSON value, as a refusal names what was expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonKind {
    /// A string.
    String,
    /// `true` or `false`.
    Bool,
    /// A whole number within the field's range.
    Number,
    /// An array.
    Array,
    /// An object.
    Object,
    /// Anything else the documentation gives.
    Other,
}

impl std::fmt::Display for JsonKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::String => "a string",
            Self::Bool => "true or false",
            Self::Number => "a whole number in range",
            Self::Array => "an array",
            Self::Object => "an object",
            Self::Other => "a value of the documented type",
        })
    }
}

/// A refused value in our terms: the field and what JSON is expected, no echo of the input, no
/// implementation type names. serde tells its kinds of data error apart only in its message,
/// so that is read here, once.
fn classify(path: &serde_path_to_error::Path, e: &serde_json::Error) -> JsonRefusal {
    let msg = e.to_string();
    let msg = msg.split(" at line ").next().unwrap_or_default();
    let at = JsonPath::of(path);
    // The expectation part of serde's message lists our own field or variant names.
    let expected = msg
        .split_once("expected ")
        .map_or("", |(_, x)| x)
        .to_string();
    if msg.starts_with("unknown field") {
        // The path ends in the unknown name the client sent: do not repeat it.
        return JsonRefusal::UnknownField {
            parent: at.parent(),
            expected,
        };
    }
    if msg.starts_with("unknown variant") {
        return JsonRefusal::UnknownVariant { at, expected };
    }
    if let Some(name) = msg
        .strip_prefix("missing field `")
        .and_then(|r| r.strip_suffix('`'))
    {
        return JsonRefusal::MissingField {
            name: name.to_string(),
        };
    }
    if ["invalid type", "invalid value", "invalid length"]
        .iter()
        .any(|p| msg.starts_with(p))
    {
        return JsonRefusal::WrongType {
            at,
            kind: json_kind(&expected),
        };
    }
    // Our own validation messages (lengths, formats) say nothing about the input.
    JsonRefusal::Refused {
        at,
        message: msg.to_string(),
    }
}

/// What serde's expectation means in JSON terms.
fn json_kind(expected: &str) -> JsonKind {
    let e = expected.to_ascii_lowercase();
    let is = |words: &[&str]| words.iter().any(|w| e.contains(w));
    if is(&["string", "char"]) {
        JsonKind::String
    } else if is(&["bool"]) {
        JsonKind::Bool
    } else if is(&[
        "u8", "u16", "u32", "u64", "usize", "i32", "i64", "integer", "number",
    ]) {
        JsonKind::Number
    } else if is(&["sequence", "array", "elements"]) {
        JsonKind::Array
    } else if is(&["struct", "map"]) {
        JsonKind::Object
    } else {
        JsonKind::Other
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
        classify(e.path(), e.inner()).to_string()
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
