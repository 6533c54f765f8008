//! The access guard: runs before every endpoint with that endpoint's declared access rule.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::Response;
use mamori_audit::{Event, EventKind, Outcome};
use mamori_auth::model::Channel;
use mamori_auth::{AuthError, Origin, Principal};
use serde_json::json;

use crate::SESSION_COOKIE;
use crate::error::ApiError;
use crate::extract::{Caller, ConnInfo};
use crate::registry::Access;
use crate::state::AppState;

/// The session cookie's value, if the request carries one.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
}

/// True if the connection's source is still on the management allowlist. It is checked at
/// accept; this catches connections opened before a change.
pub fn source_allowed(state: &AppState, conn: &ConnInfo) -> bool {
    conn.origin
        .source
        .is_none_or(|addr| state.auth.access().allows(addr))
}

/// The principal behind the request's session cookie. Web pages use this: they take no bearer
/// tokens, so a token cannot be replayed through a browser.
pub async fn session_principal(
    state: &AppState,
    headers: &HeaderMap,
    origin: Origin,
) -> Result<Principal, ApiError> {
    let secret = session_cookie(headers)
        .ok_or(AuthError::Unauthenticated)?
        .to_string();
    // Off the event loop: an expiry found here is written to the audit log with an fsync.
    state
        .run(move |auth| auth.authenticate_session(&secret, origin))
        .await
}

/// Records that `principal` was refused `method path` by its role.
pub fn record_denied(state: &AppState, principal: &Principal, method: &str, path: &str) {
    state.audit_record(
        Event::new(EventKind::AccessDenied, Outcome::Failure)
            .actor(principal.username.as_str())
            .source(principal.origin.label())
            .details(json!({"method": method, "path": path, "role": principal.role})),
    );
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    origin: Origin,
) -> Result<Principal, ApiError> {
    if let Some(token) = bearer(headers) {
        let token = token.to_string();
        return state
            .run(move |auth| auth.authenticate_token(&token, origin))
            .await;
    }
    session_principal(state, headers, origin).await
}

/// Checks the endpoint's access rule and hands the caller to the handler.
pub async fn guard(
    State((state, access)): State<(AppState, Access)>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let conn = req
        .extensions()
        .get::<ConnInfo>()
        .copied()
        .ok_or(ApiError::Internal("connection info missing".into()))?;
    if !source_allowed(&state, &conn) {
        return Err(ApiError::SourceNotAllowed);
    }
    match access {
        Access::Public => {}
        // Console endpoints do not exist as far as the network can tell.
        Access::Console if conn.origin.channel != Channel::Console => {
            return Err(ApiError::NotFound);
        }
        Access::Console => {}
        Access::Authenticated(requirement) => {
            let principal = authenticate(&state, req.headers(), conn.origin).await?;
            if let Err(e) = principal.check(requirement, state.auth.now()) {
                if matches!(e, AuthError::Forbidden | AuthError::TokenNotAllowed) {
                    record_denied(&state, &principal, req.method().as_str(), req.uri().path());
                }
                return Err(e.into());
            }
            req.extensions_mut().insert(Caller(principal));
        }
    }
    Ok(next.run(req).await)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn only_the_session_cookie_is_taken() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("other=1; __Host-mamori-session=abc; x=y"),
        );
        assert_eq!(session_cookie(&h), Some("abc"));
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("mamori-session=abc"),
        );
        assert_eq!(session_cookie(&h), None);
    }
}
