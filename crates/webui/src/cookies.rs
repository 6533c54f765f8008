//! The UI's cookies. All are `__Host-` (Secure, Path=/, no Domain), HttpOnly and
//! SameSite=Strict: scripts cannot read them and other sites cannot send them.

use axum::http::{HeaderMap, HeaderValue, header};

/// The pre-login CSRF cookie (double submit: the form carries the same value).
pub const CSRF_COOKIE: &str = "__Host-csrf";
/// The pending-login cookie between the password and the second factor.
pub const LOGIN_COOKIE: &str = "__Host-login";

/// The value of cookie `name`, if the request carries it.
pub fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// `Set-Cookie` for `name=value`, living `max_age` seconds (or the browser session).
pub fn set(name: &str, value: &str, max_age: Option<u64>) -> HeaderValue {
    let age = max_age
        .map(|s| format!("; Max-Age={s}"))
        .unwrap_or_default();
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Secure; HttpOnly; SameSite=Strict{age}"
    ))
    // Values are ours (hex, base32, language tags); a bad one is a bug, and no cookie is
    // the safe outcome.
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `Set-Cookie` that removes `name`.
pub fn clear(name: &str) -> HeaderValue {
    set(name, "", Some(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_host_only_secure_httponly_strict() {
        let v = set(CSRF_COOKIE, "abc", Some(60));
        let v = v.to_str().unwrap();
        assert!(v.starts_with("__Host-csrf=abc; Path=/; Secure; HttpOnly; SameSite=Strict"));
        assert!(!v.contains("Domain"));
    }

    #[test]
    fn a_value_that_could_inject_attributes_gives_no_cookie() {
        assert_eq!(set("x", "a\r\nSet-Cookie: y=1", None), "");
    }

    #[test]
    fn a_prefix_of_another_name_does_not_match() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("x__Host-csrf=1; __Host-csrf=2"),
        );
        assert_eq!(get(&h, CSRF_COOKIE), Some("2"));
    }
}
