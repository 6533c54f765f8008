//! The interface registry: every endpoint, declared once, with its access rule and schemas.
//!
//! The router, the access guard, the OpenAPI document and the evidence lists (unauthenticated
//! endpoints, input validation) are all generated from [`endpoints`]. An endpoint that is not
//! here does not exist.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::routing::{MethodRouter, delete, get, patch, post, put};
use mamori_auth::model::Permission;
use mamori_auth::service::{Allowed, Requirement};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Serialize;

use crate::error::ApiError;
use crate::handlers::{audit, auth, console, device, mfa, sessions, settings, tls, tokens, users};
use crate::state::AppState;
use crate::{MAX_BODY_BYTES, guard, headers};

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Access {
    /// Anyone, without authentication. Kept to the minimum (S3.1-24).
    Public,
    /// An authenticated principal meeting the requirement.
    Authenticated(Requirement),
    /// Only the local console socket.
    Console,
}

type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// One endpoint.
pub struct Endpoint {
    /// HTTP method.
    pub method: Method,
    /// Path (axum syntax, `{param}`).
    pub path: &'static str,
    /// Access rule.
    pub access: Access,
    /// One line for the OpenAPI document.
    pub summary: &'static str,
    /// Request body schema, if the endpoint takes a body.
    pub request: Option<SchemaFn>,
    /// Response body schema, if it answers with JSON.
    pub response: Option<SchemaFn>,
    /// The largest request body it reads, in bytes: [`MAX_BODY_BYTES`] unless declared
    /// otherwise (published as `x-mamori-max-body-bytes` for an endpoint with a body). None for
    /// pages, whose guard sets the limit per form.
    pub max_body_bytes: Option<usize>,
    /// The JSON API or a page of the web UI (pages are left out of the OpenAPI document).
    pub surface: Surface,
    route: fn() -> MethodRouter<AppState>,
    guard: GuardLayer,
}

/// Which face of the management interface an endpoint belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Surface {
    /// The JSON API under `/api/v1` (and the liveness probe).
    Api,
    /// The server-rendered web UI and its assets.
    Page,
}

/// Wraps an endpoint's handler in the guard that enforces its access rule. The JSON API and
/// the web UI have one each: same decisions, different ways of saying no.
pub type GuardLayer = fn(MethodRouter<AppState>, AppState, Access) -> MethodRouter<AppState>;

fn api_guard(
    route: MethodRouter<AppState>,
    state: AppState,
    access: Access,
) -> MethodRouter<AppState> {
    route.layer(axum::middleware::from_fn_with_state(
        (state, access),
        guard::guard,
    ))
}

impl Endpoint {
    /// A web UI endpoint, guarded by `guard` (the UI's own). Used by the web UI crate, which
    /// depends on this one.
    pub fn page(
        method: Method,
        path: &'static str,
        access: Access,
        summary: &'static str,
        route: fn() -> MethodRouter<AppState>,
        guard: GuardLayer,
    ) -> Self {
        Endpoint {
            method,
            path,
            access,
            summary,
            request: None,
            response: None,
            max_body_bytes: None,
            surface: Surface::Page,
            route,
            guard,
        }
    }
}

fn schema<T: JsonSchema>() -> Option<SchemaFn> {
    Some(|g| g.subschema_for::<T>())
}

/// Access for an endpoint that needs `permission`.
pub const fn needs(permission: Permission) -> Access {
    Access::Authenticated(Requirement {
        permission,
        reauth: false,
        allowed_when: Allowed::Unrestricted,
    })
}

/// Access for an endpoint that needs `permission` and a fresh re-authentication.
pub const fn needs_reauth(permission: Permission) -> Access {
    Access::Authenticated(Requirement {
        permission,
        reauth: true,
        allowed_when: Allowed::Unrestricted,
    })
}

/// Access for an endpoint acting on the caller's own account.
pub const fn own(allowed_when: Allowed, reauth: bool) -> Access {
    Access::Authenticated(Requirement {
        permission: Permission::OwnAccount,
        reauth,
        allowed_when,
    })
}

macro_rules! endpoint {
    ($method:ident $path:literal, $access:expr, $summary:literal, $route:expr, req = $req:expr, resp = $resp:expr) => {
        endpoint!($method $path, $access, $summary, $route, req = $req, resp = $resp,
            max_body = MAX_BODY_BYTES)
    };
    ($method:ident $path:literal, $access:expr, $summary:literal, $route:expr, req = $req:expr, resp = $resp:expr, max_body = $max:expr) => {
        Endpoint {
            method: Method::$method,
            path: $path,
            access: $access,
            summary: $summary,
            request: $req,
            response: $resp,
            max_body_bytes: Some($max),
            surface: Surface::Api,
            route: || $route,
            guard: api_guard,
        }
    };
}

/// Every endpoint of the management interface.
pub fn endpoints() -> Vec<Endpoint> {
    use Permission::*;
    vec![
        endpoint!(GET "/healthz", Access::Public, "Liveness probe; answers `ok` and nothing else.",
            get(|| async { "ok" }), req = None, resp = None),
        endpoint!(POST "/api/v1/auth/login", Access::Public, "Log in; sets the session cookie.",
            post(auth::login), req = schema::<auth::LoginRequest>(),
            resp = schema::<mamori_auth::service::SessionInfo>()),
        endpoint!(POST "/api/v1/auth/logout", own(Allowed::Always, false), "End the session.",
            post(auth::logout), req = None, resp = None),
        endpoint!(GET "/api/v1/auth/session", own(Allowed::Always, false), "The caller's session.",
            get(auth::session), req = None, resp = schema::<mamori_auth::service::SessionInfo>()),
        endpoint!(POST "/api/v1/auth/password", own(Allowed::DuringPasswordChange, false),
            "Change the caller's password (needs the current one).",
            post(auth::change_password), req = schema::<auth::PasswordChange>(), resp = None),
        endpoint!(POST "/api/v1/auth/reauth", own(Allowed::DuringMfaEnrollment, false),
            "Re-authenticate for sensitive operations (valid 5 minutes).",
            post(auth::reauth), req = schema::<auth::ReauthRequest>(),
            resp = schema::<auth::ReauthResponse>()),
        endpoint!(POST "/api/v1/auth/mfa/totp/enroll", own(Allowed::DuringMfaEnrollment, true),
            "Start TOTP enrolment.", post(mfa::enroll), req = None,
            resp = schema::<mamori_auth::service::TotpEnrollment>()),
        endpoint!(POST "/api/v1/auth/mfa/totp/verify", own(Allowed::DuringMfaEnrollment, false),
            "Confirm TOTP enrolment; returns recovery codes once.", post(mfa::verify),
            req = schema::<mfa::VerifyRequest>(), resp = schema::<mfa::VerifyResponse>()),
        endpoint!(POST "/api/v1/auth/mfa/totp/disable", own(Allowed::Unrestricted, true),
            "Remove the caller's second factor.", post(mfa::disable), req = None, resp = None),
        endpoint!(GET "/api/v1/sessions", own(Allowed::Unrestricted, false),
            "The caller's sessions.", get(sessions::list), req = None,
            resp = schema::<Vec<mamori_auth::service::SessionListing>>()),
        endpoint!(DELETE "/api/v1/sessions/{id}", own(Allowed::Unrestricted, false),
            "Revoke one of the caller's sessions.", delete(sessions::revoke), req = None, resp = None),
        endpoint!(GET "/api/v1/tokens", own(Allowed::Unrestricted, false),
            "The caller's API tokens.", get(tokens::list), req = None,
            resp = schema::<Vec<mamori_auth::service::TokenListing>>()),
        endpoint!(POST "/api/v1/tokens", own(Allowed::Unrestricted, true),
            "Create an API token; the secret is shown once.", post(tokens::create),
            req = schema::<tokens::CreateToken>(), resp = schema::<mamori_auth::service::NewToken>()),
        endpoint!(DELETE "/api/v1/tokens/{id}", own(Allowed::Unrestricted, false),
            "Revoke one of the caller's tokens.", delete(tokens::revoke), req = None, resp = None),
        endpoint!(GET "/api/v1/device", needs(DeviceRead),
            "Model, serial, firmware version, uptime and time.", get(device::device), req = None,
            resp = schema::<device::DeviceInfo>()),
        endpoint!(GET "/api/v1/status", needs(DeviceRead),
            "Device, process separation, TLS and notices.", get(device::status), req = None, resp = None),
        endpoint!(GET "/api/v1/users", needs(UsersManage), "All users.", get(users::list),
            req = None, resp = schema::<Vec<mamori_auth::service::UserListing>>()),
        endpoint!(POST "/api/v1/users", needs_reauth(UsersManage), "Create a user.",
            post(users::create), req = schema::<users::CreateUser>(), resp = schema::<users::CreatedUser>()),
        endpoint!(PATCH "/api/v1/users/{username}", needs_reauth(UsersManage),
            "Change a user's role or enabled state.", patch(users::update),
            req = schema::<users::UpdateUser>(), resp = None),
        endpoint!(DELETE "/api/v1/users/{username}", needs_reauth(UsersManage), "Delete a user.",
            delete(users::delete), req = None, resp = None),
        endpoint!(POST "/api/v1/users/{username}/reset", needs_reauth(UsersManage),
            "Reset a user's credential to a one-time password.", post(users::reset),
            req = schema::<users::ResetRequest>(), resp = schema::<users::OneTimePassword>()),
        endpoint!(GET "/api/v1/settings/auth", needs(SecurityManage), "The authentication policy.",
            get(settings::get_auth), req = None,
            resp = schema::<mamori_auth::settings::AuthSettings>()),
        endpoint!(PUT "/api/v1/settings/auth", needs_reauth(SecurityManage),
            "Replace the authentication policy.", put(settings::put_auth),
            req = schema::<mamori_auth::settings::AuthSettings>(), resp = None),
        endpoint!(GET "/api/v1/settings/access", needs(SecurityManage),
            "The management source allowlist.", get(settings::get_access), req = None,
            resp = schema::<mamori_auth::settings::AccessPolicy>()),
        endpoint!(PUT "/api/v1/settings/access", needs_reauth(SecurityManage),
            "Replace the management source allowlist.", put(settings::put_access),
            req = schema::<settings::PutAccess>(), resp = None),
        endpoint!(GET "/api/v1/settings/tls", needs(SecurityManage),
            "TLS options of the management listener and the suites offered.", get(tls::get),
            req = None, resp = None),
        endpoint!(PUT "/api/v1/settings/tls", needs_reauth(SecurityManage),
            "Change the TLS options (within the crypto policy).", put(tls::put),
            req = schema::<tls::TlsSettings>(), resp = None),
        endpoint!(GET "/api/v1/audit/events", needs(AuditRead),
            "The newest audit records, filtered (`?limit=1..1000&since=&until=&event=a,b&actor=&outcome=&from_seq=`).",
            get(audit::events), req = None, resp = None),
        endpoint!(GET "/api/v1/audit/export", needs(AuditRead),
            "Every matching audit record as JSON lines (same filters, no limit); recorded.",
            get(audit::export), req = None, resp = None),
        endpoint!(GET "/api/v1/audit/status", needs(AuditRead),
            "Audit log fill level, sequence range, epoch, unforwarded overwrites, write errors.",
            get(audit::status), req = None, resp = None),
        endpoint!(POST "/api/v1/audit/purge", needs_reauth(SecurityManage),
            "Destroy personal data (actor, source) of audit records before a date (S3.1-41).",
            post(audit::purge), req = schema::<audit::PurgeRequest>(), resp = None),
        endpoint!(GET "/api/v1/settings/forwarding", needs(SecurityManage),
            "The syslog collectors the audit log is forwarded to.",
            get(crate::handlers::forwarding::get), req = None,
            resp = schema::<crate::handlers::forwarding::ForwardingSettings>()),
        endpoint!(PUT "/api/v1/settings/forwarding", needs_reauth(SecurityManage),
            "Replace the syslog collectors (TLS; plain text only with `insecure_plaintext`); recorded.",
            put(crate::handlers::forwarding::put),
            req = schema::<crate::handlers::forwarding::ForwardingSettings>(), resp = None),
        endpoint!(GET "/api/v1/audit/forwarding", needs(AuditRead),
            "Forwarding status per collector: link, TLS, cursor, lag, last error.",
            get(crate::handlers::forwarding::status), req = None, resp = None),
        endpoint!(GET "/api/v1/time", needs(DeviceRead),
            "Time: synchronised or not, reference, offset, sources with their NTS state, the device's clock.",
            get(crate::handlers::time::status), req = None,
            resp = schema::<crate::handlers::time::TimeOverview>()),
        endpoint!(GET "/api/v1/settings/time", needs(SecurityManage),
            "The time servers (NTP, NTS) and the synchronisation policy.",
            get(crate::handlers::time::get), req = None, resp = schema::<mamori_time::TimeConfig>()),
        endpoint!(PUT "/api/v1/settings/time", needs_reauth(SecurityManage),
            "Replace the time servers and policy (no servers: synchronisation off); chronyd restarts; recorded.",
            put(crate::handlers::time::put), req = schema::<mamori_time::TimeConfig>(),
            resp = schema::<crate::handlers::time::TimeApplied>()),
        endpoint!(POST "/api/v1/time/set", needs_reauth(SecurityManage),
            "Set the clock by hand (RFC 3339); refused with 409 while NTP runs unless `force`; recorded as time_changed.",
            post(crate::handlers::time::set), req = schema::<crate::handlers::time::SetTimeRequest>(),
            resp = schema::<mamori_time::ManualStep>()),
        endpoint!(GET "/api/v1/system/ports", needs(AuditRead),
            "Open ports and sockets: the listener registry checked against the live sockets of the device's network namespace (TCP, UDP, IPv4, IPv6).",
            get(crate::handlers::ports::get), req = None,
            resp = schema::<crate::handlers::ports::Ports>()),
        endpoint!(GET "/api/v1/config", needs(ConfigRead),
            "The running network configuration, its revision, the rescue revision and any commit waiting for confirmation.",
            get(crate::handlers::config::running), req = None,
            resp = schema::<crate::handlers::config::Running>()),
        endpoint!(GET "/api/v1/config/revisions", needs(ConfigRead),
            "The configuration history, newest first (author, channel, time, comment).",
            get(crate::handlers::config::history), req = None,
            resp = schema::<crate::handlers::config::History>()),
        endpoint!(GET "/api/v1/config/revisions/{id}", needs(ConfigRead),
            "One revision, whole.", get(crate::handlers::config::revision), req = None, resp = None),
        endpoint!(GET "/api/v1/config/diff", needs(ConfigRead),
            "A unified diff between two revisions (`?from=A&to=B`, `to` defaults to the running one).",
            get(crate::handlers::config::diff), req = None, resp = None),
        endpoint!(POST "/api/v1/config/check", needs(ConfigManage),
            "Validate a candidate, check it keeps this session's management access, dry-run it (nft -c) and diff it against the running configuration; changes nothing.",
            post(crate::handlers::config::check),
            req = schema::<crate::handlers::config::CommitRequest>(),
            resp = schema::<crate::handlers::config::CheckAnswer>(),
            max_body = crate::handlers::config::CONFIG_BODY_BYTES),
        endpoint!(POST "/api/v1/config/commit", needs_reauth(ConfigManage),
            "Commit a candidate: validate, anti-lockout check, dry run, apply (one nftables transaction, then addresses and routes), health probe, confirm window (default 10 min; reverted unless confirmed); recorded.",
            post(crate::handlers::config::commit),
            req = schema::<crate::handlers::config::CommitRequest>(), resp = None,
            max_body = crate::handlers::config::CONFIG_BODY_BYTES),
        endpoint!(POST "/api/v1/config/confirm", needs(ConfigManage),
            "Confirm the commit waiting for confirmation (only its author); recorded.",
            post(crate::handlers::config::confirm), req = None, resp = None),
        endpoint!(POST "/api/v1/config/rollback", needs_reauth(ConfigManage),
            "Commit revision N's configuration again, through the same pipeline and confirm window; recorded.",
            post(crate::handlers::config::rollback),
            req = schema::<crate::handlers::config::RollbackRequest>(), resp = None),
        endpoint!(GET "/api/v1/network/status", needs(ConfigRead),
            "What the wan's DHCP clients are doing: per interface bound, requesting, failed or stopped, and the lease (address and prefix, gateway, DNS servers, server, lease time, obtained and expiry times); 409 when the device does not manage its network.",
            get(crate::handlers::network::status), req = None,
            resp = schema::<crate::handlers::network::NetworkStatus>()),
        endpoint!(GET "/api/v1/openapi.json", needs(DeviceRead), "This document.",
            get(crate::openapi::serve), req = None, resp = None),
        endpoint!(POST "/api/v1/console/recover", Access::Console,
            "Console only: reset an account to a one-time password.", post(console::recover),
            req = schema::<console::RecoverRequest>(), resp = schema::<users::OneTimePassword>()),
    ]
}

/// Builds the router for the API endpoints and `pages` (the web UI's, or none): each endpoint
/// behind the guard for its own access rule.
pub fn router(state: AppState, pages: Vec<Endpoint>) -> Router {
    let mut by_path: BTreeMap<&'static str, MethodRouter<AppState>> = BTreeMap::new();
    for e in endpoints().into_iter().chain(pages) {
        let guarded = (e.guard)((e.route)(), state.clone(), e.access);
        let merged = match by_path.remove(e.path) {
            Some(existing) => existing.merge(guarded),
            None => guarded,
        };
        by_path.insert(e.path, merged);
    }
    let mut router = Router::new();
    for (path, method_router) in by_path {
        router = router.route(
            path,
            method_router.fallback(|| async { ApiError::MethodNotAllowed }),
        );
    }
    router
        .fallback(|| async { ApiError::NotFound })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(headers::add))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// S3.1-24: the only unauthenticated endpoints are login and the liveness probe (and the
    /// console-only recovery, which the network cannot reach).
    #[test]
    fn only_login_and_liveness_are_public() {
        let public: Vec<_> = endpoints()
            .into_iter()
            .filter(|e| e.access == Access::Public)
            .map(|e| (e.method, e.path))
            .collect();
        assert_eq!(
            public,
            [
                (Method::GET, "/healthz"),
                (Method::POST, "/api/v1/auth/login")
            ]
        );
    }

    /// Every endpoint that changes users or security settings needs re-authentication.
    #[test]
    fn user_and_security_changes_need_reauth() {
        for e in endpoints() {
            if let Access::Authenticated(r) = e.access {
                let changes = e.method != Method::GET;
                if changes
                    && matches!(
                        r.permission,
                        Permission::UsersManage | Permission::SecurityManage
                    )
                {
                    assert!(r.reauth, "{} {} lacks re-auth", e.method, e.path);
                }
            }
        }
    }

    /// Method and path pairs are unique.
    #[test]
    fn endpoints_are_declared_once() {
        let mut seen = std::collections::HashSet::new();
        for e in endpoints() {
            assert!(
                seen.insert((e.method.clone(), e.path)),
                "{} {} twice",
                e.method,
                e.path
            );
        }
    }
}
