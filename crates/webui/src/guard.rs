//! The page guard: the web UI's side of the access check. Same decisions as the API guard
//! (the declared access rule, checked by `mamori-auth`), plus what a browser needs:
//! - every POST proves it came from our own pages: fetch metadata, `Origin`, and a CSRF token
//!   bound to the session (or, before login, to a cookie);
//! - refusals are pages and redirects in the user's language, not JSON;
//! - an action that needs a fresh re-authentication is kept (its form fields) while the user
//!   confirms their password, and then continues.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use mamori_auth::AuthError;
use mamori_http::AppState;
use mamori_http::error::ApiError;
use mamori_http::extract::ConnInfo;
use mamori_http::registry::Access;

use crate::cookies::{self, CSRF_COOKIE};
use crate::i18n::{Lang, error_message};
use crate::page::{PageCtx, error_page, see_other};
use crate::{Ui, csrf, form};

/// Wraps a page handler in the page guard (the registry's hook for UI endpoints).
pub fn layer(
    route: MethodRouter<AppState>,
    state: AppState,
    access: Access,
) -> MethodRouter<AppState> {
    route.layer(axum::middleware::from_fn_with_state((state, access), guard))
}

async fn guard(
    State((state, access)): State<(AppState, Access)>,
    req: Request,
    next: Next,
) -> Response {
    let lang = Lang::of(req.headers());
    let Some(ui) = req.extensions().get::<Arc<Ui>>().cloned() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Some(conn) = req.extensions().get::<ConnInfo>().copied() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let refuse = |status, e: &ApiError| {
        error_page(
            Some(&PageCtx {
                lang,
                csrf: String::new(),
                principal: None,
                path: "/ui/".into(),
                host: String::new(),
            }),
            status,
            &error_message(lang, e),
        )
    };
    if !mamori_http::guard::source_allowed(&state, &conn) {
        return refuse(StatusCode::FORBIDDEN, &ApiError::SourceNotAllowed);
    }
    // Static assets are the same for everyone: no session lookup, no token, no cookie (a
    // Set-Cookie on a cacheable response would be wrong anyway).
    if req.uri().path().starts_with("/assets/") && access == Access::Public {
        return if req.method() == Method::GET || req.method() == Method::HEAD {
            next.run(req).await
        } else {
            StatusCode::METHOD_NOT_ALLOWED.into_response()
        };
    }
    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD);
    let host = csrf::host(&req).unwrap_or_default().to_string();
    if unsafe_method && !csrf::same_origin(req.headers(), Some(&host)) {
        return forged(lang);
    }
    let path = req
        .uri()
        .path_and_query()
        .map_or("/ui/", |p| p.as_str())
        .to_string();

    // Who is asking. Public pages still see a session if there is one (the login page sends
    // a logged-in user home).
    let principal = match access {
        Access::Authenticated(_) => {
            match mamori_http::guard::session_principal(&state, req.headers(), conn.origin).await {
                Ok(p) => Some(p),
                Err(_) if unsafe_method => return see_other("/ui/login"),
                Err(_) => return see_other(&login_then(&path)),
            }
        }
        Access::Public if mamori_http::guard::session_cookie(req.headers()).is_some() => {
            mamori_http::guard::session_principal(&state, req.headers(), conn.origin)
                .await
                .ok()
        }
        Access::Public => None,
        // The console has no pages.
        Access::Console => return StatusCode::NOT_FOUND.into_response(),
    };

    // The token this request's forms carry: session-bound, or the pre-login cookie (minted
    // now if the browser has none yet).
    let mut minted = None;
    let token = match &principal {
        Some(p) => ui.csrf.token(p).unwrap_or_default(),
        None => match cookies::get(req.headers(), CSRF_COOKIE).filter(|v| valid_cookie_token(v)) {
            Some(v) => v.to_string(),
            None => {
                let Ok(fresh) = mamori_crypto::random::bytes::<16>() else {
                    return StatusCode::INTERNAL_SERVER_ERROR.into_response();
                };
                let fresh = data_encoding::HEXLOWER.encode(&fresh);
                minted = Some(fresh.clone());
                fresh
            }
        },
    };

    let mut req = req;
    let mut fields = Vec::new();
    // A form over the usual limit (a whole network configuration) is read one at a time, and
    // the slot is held until the answer is made: at most one such body and what is made of it
    // are in memory.
    let mut _large_slot = None;
    if unsafe_method {
        let limit = form_limit(req.uri().path(), principal.as_ref());
        if limit > mamori_http::MAX_BODY_BYTES && !declared_small(req.headers()) {
            let wait = tokio::time::timeout(form::LARGE_BODY_TIMEOUT, ui.large_forms.acquire());
            match wait.await {
                Ok(Ok(permit)) => _large_slot = Some(permit),
                _ => return refuse(StatusCode::SERVICE_UNAVAILABLE, &ApiError::Busy),
            }
        }
        let (parts, bytes, pairs) = match form::read(req, limit).await {
            Ok(x) => x,
            Err(form::BodyError::TooLarge) => {
                return refuse(StatusCode::PAYLOAD_TOO_LARGE, &ApiError::BodyTooLarge);
            }
            Err(_) => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    &ApiError::BadRequest(String::new()),
                );
            }
        };
        let offered = pairs
            .iter()
            .find(|(k, _)| k == csrf::FIELD)
            .map(|(_, v)| v.as_str());
        // A freshly minted token cannot be what the form carries.
        let expected = minted.is_none().then_some(token.as_str());
        if !csrf::matches(offered, expected) {
            return forged(lang);
        }
        fields = pairs;
        req = Request::from_parts(parts, Body::from(bytes));
    }

    let mut ctx = PageCtx {
        lang,
        csrf: token,
        principal: principal.clone(),
        path: path.clone(),
        host,
    };
    if let (Access::Authenticated(requirement), Some(p)) = (access, &principal)
        && let Err(e) = p.check(requirement, state.auth.now())
    {
        match e {
            AuthError::PasswordChangeRequired => return see_other("/ui/setup"),
            AuthError::MfaEnrollmentRequired => return see_other("/ui/account/mfa"),
            AuthError::ReauthRequired if unsafe_method => {
                return crate::pages::reauth::interrupted(&ctx, req.uri().path(), fields);
            }
            AuthError::ReauthRequired => {
                return see_other(&format!("/ui/reauth?next={}", encode(&path)));
            }
            e => {
                mamori_http::guard::record_denied(
                    &state,
                    p,
                    req.method().as_str(),
                    req.uri().path(),
                );
                ctx.principal = None;
                return error_page(
                    Some(&ctx),
                    StatusCode::FORBIDDEN,
                    &error_message(lang, &ApiError::Auth(e)),
                );
            }
        }
    }
    req.extensions_mut().insert(ctx);
    if let Some(p) = principal {
        req.extensions_mut().insert(mamori_http::extract::Caller(p));
    }
    let mut resp = next.run(req).await;
    if let Some(v) = minted {
        resp.headers_mut()
            .append(header::SET_COOKIE, cookies::set(CSRF_COOKIE, &v, None));
    }
    resp
}

/// The most a form to `path` may carry: [`mamori_http::MAX_BODY_BYTES`], except on the routes
/// that take a whole network configuration, for a session whose role may manage it.
fn form_limit(path: &str, principal: Option<&mamori_auth::Principal>) -> usize {
    let manager = principal.is_some_and(|p| {
        p.restriction.is_none() && p.role.allows(mamori_auth::model::Permission::ConfigManage)
    });
    if manager && crate::pages::config::LARGE_FORMS.contains(&path) {
        crate::pages::config::LARGE_FORM_BYTES
    } else {
        mamori_http::MAX_BODY_BYTES
    }
}

/// The request says its body fits the usual limit (HTTP framing holds it to that length).
fn declared_small(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n <= mamori_http::MAX_BODY_BYTES)
}

/// Our pre-login tokens are 32 hex digits; anything else in the cookie is replaced.
fn valid_cookie_token(v: &str) -> bool {
    v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit())
}

fn forged(lang: Lang) -> Response {
    error_page(
        Some(&PageCtx {
            lang,
            csrf: String::new(),
            principal: None,
            path: "/ui/".into(),
            host: String::new(),
        }),
        StatusCode::FORBIDDEN,
        lang.pick(
            "This form did not come from this device's own pages, or it has expired. Reload the page and try again.",
            "このフォームはこの機器の画面から送信されたものではないか、期限切れです。ページを再読み込みしてやり直してください。",
        ),
    )
}

/// The login page, coming back to `path` afterwards.
fn login_then(path: &str) -> String {
    if path == "/ui/" || !crate::page::is_local_path(path) {
        "/ui/login".into()
    } else {
        format!("/ui/login?next={}", encode(path))
    }
}

/// Percent-encodes a path for use as a query value.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
