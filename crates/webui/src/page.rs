//! What every page shares: the request context the guard hands over, the frame (layout), and
//! the ways a handler answers (a page, a redirect, an error page).

use askama::Template;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mamori_auth::Principal;
use mamori_auth::model::{Permission, Role};

use crate::i18n::{Common, Lang};

/// What the guard learned about a page request.
#[derive(Debug, Clone)]
pub struct PageCtx {
    /// The language to answer in.
    pub lang: Lang,
    /// The token forms on this page must carry.
    pub csrf: String,
    /// The caller, on pages that need one.
    pub principal: Option<Principal>,
    /// The request path (for "come back here" links).
    pub path: String,
    /// The authority the browser used (for WebAuthn: the relying party must match it).
    pub host: String,
}

impl<S: Send + Sync> FromRequestParts<S> for PageCtx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        parts
            .extensions
            .get::<PageCtx>()
            .cloned()
            .ok_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response())
    }
}

impl PageCtx {
    /// The caller; pages behind an authenticated access rule always have one.
    pub fn caller(&self) -> Option<&Principal> {
        self.principal.as_ref()
    }

    /// The frame for a page, with `active` marking the navigation entry.
    pub fn layout(&self, active: &'static str) -> Layout {
        let role = self.principal.as_ref().map(|p| p.role);
        let restricted = self
            .principal
            .as_ref()
            .is_some_and(|p| p.restriction.is_some());
        Layout {
            lang: self.lang.tag(),
            c: self.lang.common(),
            csrf: self.csrf.clone(),
            username: self.principal.as_ref().map(|p| p.username.to_string()),
            show_nav: self.principal.is_some() && !restricted,
            can_users: role.is_some_and(|r| r.allows(Permission::UsersManage)),
            can_access: role.is_some_and(|r| r.allows(Permission::SecurityManage)),
            can_audit: role.is_some_and(|r| r.allows(Permission::AuditRead)),
            can_config: role.is_some_and(|r| r.allows(Permission::ConfigRead)),
            role: role.map_or("", Role::as_str),
            active,
            path: self.path.clone(),
            other_lang: self.lang.other().tag(),
            other_lang_name: self.lang.other().name(),
            assets: crate::assets::VERSION.as_str(),
        }
    }
}

/// The frame around every page (base.html).
#[derive(Debug)]
pub struct Layout {
    pub lang: &'static str,
    pub c: &'static Common,
    pub csrf: String,
    pub username: Option<String>,
    pub show_nav: bool,
    pub can_users: bool,
    pub can_access: bool,
    pub can_audit: bool,
    pub can_config: bool,
    pub role: &'static str,
    pub active: &'static str,
    pub path: String,
    pub other_lang: &'static str,
    pub other_lang_name: &'static str,
    pub assets: &'static str,
}

/// A unix time as the UI shows it: `2026-11-22 10:04 UTC`.
pub fn when(unix: u64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    i64::try_from(unix)
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// An RFC 3339 time to the second, as the UI shows it: `2026-11-22 10:04:05 UTC`.
pub fn when_precise(rfc3339: &str) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| rfc3339.to_string())
}

/// Renders a template as a 200 page.
pub fn render(t: &impl Template) -> Response {
    render_status(StatusCode::OK, t)
}

/// Renders a template with a status code.
pub fn render_status(status: StatusCode, t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            )],
            html,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering a page failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// 303 See Other to a path of ours.
pub fn see_other(path: &str) -> Response {
    let location = if is_local_path(path) { path } else { "/ui/" };
    (
        StatusCode::SEE_OTHER,
        [(
            header::LOCATION,
            HeaderValue::from_str(location).unwrap_or(HeaderValue::from_static("/ui/")),
        )],
    )
        .into_response()
}

/// True for paths this UI may send a browser to after login, re-authentication or a language
/// change: our own pages only, never another host (`//evil`, `/\evil`) or a scheme.
pub fn is_local_path(path: &str) -> bool {
    path.starts_with("/ui/")
        && path.len() <= 256
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-_.?=&%".contains(&b))
        && !path.contains("//")
        && !path.contains("..")
        // Our own paths never need escapes; a browser reads `%2e%2e` as `..`.
        && !path.split('?').next().unwrap_or_default().contains('%')
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    layout: Layout,
    message: &'a str,
}

/// An error page in the caller's language. Without a context (the guard failed before it
/// could build one) the page is English and carries no form.
pub fn error_page(ctx: Option<&PageCtx>, status: StatusCode, message: &str) -> Response {
    let fallback;
    let ctx = match ctx {
        Some(c) => c,
        None => {
            fallback = PageCtx {
                lang: Lang::En,
                csrf: String::new(),
                principal: None,
                path: "/ui/".into(),
                host: String::new(),
            };
            &fallback
        }
    };
    render_status(
        status,
        &ErrorPage {
            layout: ctx.layout(""),
            message,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_time_is_shown_to_the_second_in_utc() {
        assert_eq!(
            when_precise("2026-12-06T00:45:20.590060384Z"),
            "2026-12-06 00:45:20 UTC"
        );
        assert_eq!(when_precise("not a time"), "not a time");
    }

    #[test]
    fn only_our_own_pages_are_redirect_targets() {
        assert!(is_local_path("/ui/users"));
        assert!(is_local_path("/ui/reauth?next=/ui/users"));
        assert!(is_local_path("/ui/reauth?next=%2Fui%2Fusers"));
        assert!(!is_local_path("/ui/%2e%2e/%2e%2e/api/v1/users"));
        assert!(!is_local_path("/ui/%2E%2E/api"));
        for bad in [
            "//evil.example/",
            "/\\evil.example",
            "https://evil.example/ui/",
            "/ui//evil.example",
            "/ui/../api/v1/users",
            "/api/v1/users",
            "/ui/\r\nSet-Cookie:x=1",
            "javascript:alert(1)",
            "",
        ] {
            assert!(!is_local_path(bad), "{bad}");
        }
    }

    #[test]
    fn a_redirect_to_elsewhere_goes_home() {
        let r = see_other("https://evil.example/");
        assert_eq!(r.headers()[header::LOCATION], "/ui/");
    }
}
