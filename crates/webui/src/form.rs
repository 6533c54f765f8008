//! Form bodies: read once by the guard (to check the CSRF token), then decoded by handlers.

use axum::extract::{FromRequest, Request};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use crate::page::{PageCtx, error_page};

/// Time allowed to receive a form.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Why a form body was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// Not `application/x-www-form-urlencoded`.
    NotAForm,
    /// Larger than the limit.
    TooLarge,
    /// Not received in time.
    Timeout,
    /// Not valid urlencoding.
    Malformed,
}

/// Time allowed to receive a form that carries a whole network configuration.
pub const LARGE_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Reads a urlencoded body of at most `limit` bytes into its raw bytes and its decoded pairs;
/// [`mamori_http::MAX_BODY_BYTES`] and 10 s for every form but those of the network
/// configuration.
pub async fn read(
    req: Request,
    limit: usize,
) -> Result<(axum::http::request::Parts, Bytes, Vec<(String, String)>), BodyError> {
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(BodyError::NotAForm);
    }
    let (parts, body) = req.into_parts();
    let limited = axum::body::to_bytes(body, limit);
    let timeout = if limit > mamori_http::MAX_BODY_BYTES {
        LARGE_BODY_TIMEOUT
    } else {
        BODY_TIMEOUT
    };
    let bytes = tokio::time::timeout(timeout, limited)
        .await
        .map_err(|_| BodyError::Timeout)?
        .map_err(|_| BodyError::TooLarge)?;
    if !well_formed(&bytes) {
        return Err(BodyError::Malformed);
    }
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_bytes(&bytes).map_err(|_| BodyError::Malformed)?;
    Ok((parts, bytes, pairs))
}

/// Whether a urlencoded body is exactly that: every `%` starts an escape of two hex digits, and
/// what it decodes to is UTF-8. The decoder we use is lenient (bad escapes stay as typed,
/// invalid UTF-8 becomes U+FFFD); a password must be checked as it was sent, or not at all.
fn well_formed(body: &[u8]) -> bool {
    let mut decoded = Vec::with_capacity(body.len());
    let mut rest = body;
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' {
            let [hi, lo, ..] = tail else { return false };
            let (Some(hi), Some(lo)) = (hex(*hi), hex(*lo)) else {
                return false;
            };
            decoded.push(hi << 4 | lo);
            rest = &tail[2..];
        } else {
            decoded.push(b);
            rest = tail;
        }
    }
    std::str::from_utf8(&decoded).is_ok()
}

fn hex(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// A decoded form. Unknown fields (the CSRF token among them) are ignored; every value a
/// handler uses is typed and bounded by `T`.
#[derive(Debug)]
pub struct Form<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Form<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        let ctx = req.extensions().get::<PageCtx>().cloned();
        // The guard has already limited and checked the body.
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let parsed = if well_formed(&bytes) {
            serde_urlencoded::from_bytes(&bytes).ok()
        } else {
            None
        };
        parsed.map(Form).ok_or_else(|| {
            let lang = ctx.as_ref().map_or(crate::i18n::Lang::En, |c| c.lang);
            error_page(
                ctx.as_ref(),
                axum::http::StatusCode::BAD_REQUEST,
                lang.pick(
                    "The form was incomplete or a value was out of range.",
                    "フォームの内容が不完全か、値が範囲外です。",
                ),
            )
        })
    }
}

/// Text of at most `MAX` characters; browsers send empty fields as empty strings, which this
/// keeps (handlers decide what empty means).
#[derive(Debug, Clone, Default)]
pub struct Field<const MAX: usize>(String);

impl<const MAX: usize> Field<MAX> {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text, or `None` if empty.
    pub fn non_empty(&self) -> Option<&str> {
        (!self.0.is_empty()).then_some(self.0.as_str())
    }
}

impl<'de, const MAX: usize> Deserialize<'de> for Field<MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.chars().count() > MAX {
            return Err(serde::de::Error::custom("too long"));
        }
        Ok(Self(s))
    }
}

/// A checkbox: present ("on") or absent.
pub fn checkbox<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let s = String::deserialize(d)?;
    Ok(s == "on")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exact_urlencoding_is_accepted() {
        assert!(well_formed(b"username=admin&password=a%20b+c"));
        assert!(well_formed("name=%E3%81%82".as_bytes()));
        assert!(well_formed("name=あ".as_bytes()));
        assert!(well_formed(b""));
        for bad in [
            &b"username=admin%FF%FE"[..],
            b"username=\xff\xfe",
            b"username=ad%zzmin",
            b"username=admin%",
            b"username=admin%4",
            b"username=%+1",
        ] {
            assert!(!well_formed(bad), "{}", String::from_utf8_lossy(bad));
        }
        assert!(!well_formed(&[b'u', b'=', 0xff, 0xfe]));
    }

    #[derive(Deserialize)]
    struct Login {
        username: Field<8>,
        #[serde(default, deserialize_with = "checkbox")]
        remember: bool,
    }

    #[test]
    fn fields_are_bounded_and_extra_fields_ignored() {
        let f: Login = serde_urlencoded::from_str("username=alice&csrf=x&remember=on").unwrap();
        assert_eq!(f.username.as_str(), "alice");
        assert!(f.remember);
        assert!(serde_urlencoded::from_str::<Login>("username=aliceandbob").is_err());
        let f: Login = serde_urlencoded::from_str("username=").unwrap();
        assert_eq!(f.username.non_empty(), None);
        assert!(!f.remember);
    }
}
