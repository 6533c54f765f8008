//! The pages, one module each, and the list of every UI URL with its access rule.

use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::routing::{get, post};
use mamori_auth::model::Permission;
use mamori_auth::service::Allowed;
use mamori_http::registry::{Access, Endpoint, needs, own};

const fn own_reauth(allowed_when: Allowed) -> Access {
    own(allowed_when, true)
}

use crate::guard;

pub mod access;
pub mod account;
pub mod audit;
pub mod config;
pub mod dashboard;
pub mod login;
pub mod mfa;
pub mod reauth;
pub mod security;
pub mod setup;
pub mod users;

macro_rules! page {
    ($method:ident $path:literal, $access:expr, $summary:literal, $route:expr) => {
        Endpoint::page(
            Method::$method,
            $path,
            $access,
            $summary,
            || $route,
            guard::layer,
        )
    };
}

/// Every URL of the web UI.
pub fn endpoints() -> Vec<Endpoint> {
    use Permission::*;
    vec![
        page!(GET "/", Access::Public, "Sends the browser to the UI.",
            get(|| async { crate::page::see_other("/ui/") })),
        page!(GET "/assets/{name}", Access::Public, "Stylesheet, script and icon (embedded).",
            get(crate::assets::serve)),
        page!(GET "/ui/security", Access::Public, "Security information (S3.1-43).",
            get(security::show)),
        page!(POST "/ui/language", Access::Public, "Switch the UI language.",
            post(login::language)),
        page!(GET "/ui/login", Access::Public, "Login page.", get(login::show)),
        page!(POST "/ui/login", Access::Public, "Login: username and password.",
            post(login::submit)),
        page!(GET "/ui/login/verify", Access::Public, "Login: the second factor.",
            get(login::verify_show)),
        page!(POST "/ui/login/verify", Access::Public, "Login: check the second factor.",
            post(login::verify_submit)),
        page!(POST "/ui/login/verify/challenge", Access::Public,
            "Login: a WebAuthn challenge for a pending login.", post(login::verify_challenge)),
        page!(POST "/ui/logout", own(Allowed::Always, false), "Log out.", post(login::logout)),
        page!(GET "/ui/", needs(DeviceRead), "Dashboard.", get(dashboard::show)),
        page!(GET "/ui/setup", own(Allowed::DuringPasswordChange, false),
            "First-time setup: replace the label password.", get(setup::show)),
        page!(POST "/ui/setup", own(Allowed::DuringPasswordChange, false),
            "First-time setup: set the new password.", post(setup::submit)),
        page!(POST "/ui/password/check", own(Allowed::DuringPasswordChange, false),
            "Explains whether a candidate password meets the rules (live, while typing).",
            post(setup::check)),
        page!(GET "/ui/reauth", own(Allowed::DuringMfaEnrollment, false),
            "Re-authentication prompt.", get(reauth::show)),
        page!(POST "/ui/reauth", own(Allowed::DuringMfaEnrollment, false),
            "Re-authenticate, then continue the interrupted action (a commit's configuration too).",
            post(reauth::submit).layer(DefaultBodyLimit::max(config::LARGE_FORM_BYTES))),
        page!(POST "/ui/reauth/challenge", own(Allowed::DuringMfaEnrollment, false),
            "Re-authentication: a WebAuthn challenge.", post(reauth::challenge)),
        page!(GET "/ui/account", own(Allowed::Unrestricted, false),
            "My account: password, sessions, API tokens.", get(account::show)),
        page!(POST "/ui/account/password", own(Allowed::Unrestricted, false),
            "Change my password (needs the current one).", post(account::change_password)),
        page!(POST "/ui/account/sessions/{id}/revoke", own(Allowed::Unrestricted, false),
            "End one of my sessions.", post(account::revoke_session)),
        page!(POST "/ui/account/tokens", own_reauth(Allowed::Unrestricted),
            "Create an API token; its secret is shown once.", post(account::create_token)),
        page!(POST "/ui/account/tokens/{id}/revoke", own(Allowed::Unrestricted, false),
            "Revoke one of my API tokens.", post(account::revoke_token)),
        page!(GET "/ui/account/mfa", own(Allowed::DuringMfaEnrollment, false),
            "My second factors.", get(mfa::show)),
        page!(POST "/ui/account/mfa/totp", own_reauth(Allowed::DuringMfaEnrollment),
            "Start authenticator-app enrolment.", post(mfa::totp_enroll)),
        page!(POST "/ui/account/mfa/totp/verify", own(Allowed::DuringMfaEnrollment, false),
            "Confirm authenticator-app enrolment; shows recovery codes once.",
            post(mfa::totp_verify)),
        page!(POST "/ui/account/mfa/totp/disable", own_reauth(Allowed::Unrestricted),
            "Remove the authenticator app.", post(mfa::totp_disable)),
        page!(POST "/ui/account/mfa/keys/challenge", own_reauth(Allowed::DuringMfaEnrollment),
            "Security-key registration: WebAuthn creation options.", post(mfa::key_challenge)),
        page!(POST "/ui/account/mfa/keys", own_reauth(Allowed::DuringMfaEnrollment),
            "Register a security key.", post(mfa::key_register)),
        page!(POST "/ui/account/mfa/keys/{id}/delete", own_reauth(Allowed::Unrestricted),
            "Remove a security key.", post(mfa::key_remove)),
        page!(GET "/ui/users", needs(UsersManage), "Users: list, create, change, reset, delete.",
            get(users::show)),
        page!(POST "/ui/users", mamori_http::registry::needs_reauth(UsersManage),
            "Create a user; the generated one-time password is shown once.", post(users::create)),
        page!(POST "/ui/users/{name}", mamori_http::registry::needs_reauth(UsersManage),
            "Change a user's role or enabled state.", post(users::update)),
        page!(POST "/ui/users/{name}/delete", mamori_http::registry::needs_reauth(UsersManage),
            "Delete a user.", post(users::delete)),
        page!(POST "/ui/users/{name}/reset", mamori_http::registry::needs_reauth(UsersManage),
            "Reset a user's password; the one-time password is shown once.", post(users::reset)),
        page!(GET "/ui/access", needs(SecurityManage),
            "Management access: source allowlist and trusted stations.", get(access::show)),
        page!(POST "/ui/access", mamori_http::registry::needs_reauth(SecurityManage),
            "Replace the management access policy.", post(access::submit)),
        page!(GET "/ui/audit", needs(AuditRead),
            "Audit log: filtered records, older pages, the log's state.", get(audit::show)),
        page!(GET "/ui/audit/export", needs(AuditRead),
            "Every matching audit record as a JSON-lines file; recorded.", get(audit::export)),
        page!(POST "/ui/audit/purge", mamori_http::registry::needs_reauth(SecurityManage),
            "Purge personal data of the audit log before a date (S3.1-41); recorded.",
            post(audit::purge)),
        page!(GET "/ui/config", needs(ConfigRead),
            "Network configuration: the running revision, its summary, a commit waiting for confirmation.",
            get(config::show)),
        page!(GET "/ui/config/history", needs(ConfigRead),
            "Network configuration: every kept revision, newest first; two picked for a diff.",
            get(config::history)),
        page!(GET "/ui/config/revisions/{id}", needs(ConfigRead),
            "Network configuration: one revision as JSON, and the rollback to it.",
            get(config::revision)),
        page!(GET "/ui/config/diff", needs(ConfigRead),
            "Network configuration: the unified diff of two revisions.", get(config::diff)),
        page!(GET "/ui/config/edit", needs(ConfigManage),
            "Network configuration: the editor (the running configuration as JSON).",
            get(config::edit)),
        page!(POST "/ui/config/check", needs(ConfigManage),
            "Check a candidate configuration (validation, anti-lockout, dry run) and diff it; changes nothing.",
            post(config::check).layer(DefaultBodyLimit::max(config::LARGE_FORM_BYTES))),
        page!(POST "/ui/config/commit", mamori_http::registry::needs_reauth(ConfigManage),
            "Commit a configuration through the pipeline with a confirm window; recorded.",
            post(config::commit).layer(DefaultBodyLimit::max(config::LARGE_FORM_BYTES))),
        page!(POST "/ui/config/confirm", needs(ConfigManage),
            "Confirm the commit waiting for confirmation (its author only); recorded.",
            post(config::confirm)),
        page!(POST "/ui/config/rollback", mamori_http::registry::needs_reauth(ConfigManage),
            "Commit an earlier revision's configuration again, through the same pipeline; recorded.",
            post(config::rollback)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// S3.1-24: before login a browser reaches only the login pages, the security
    /// information, the language switch and the static assets.
    #[test]
    fn only_the_login_pages_and_assets_are_public() {
        let public: Vec<_> = endpoints()
            .into_iter()
            .filter(|e| e.access == Access::Public)
            .map(|e| format!("{} {}", e.method, e.path))
            .collect();
        assert_eq!(
            public,
            [
                "GET /",
                "GET /assets/{name}",
                "GET /ui/security",
                "POST /ui/language",
                "GET /ui/login",
                "POST /ui/login",
                "GET /ui/login/verify",
                "POST /ui/login/verify",
                "POST /ui/login/verify/challenge",
            ]
        );
    }

    /// Every page that changes users or security settings needs a fresh re-authentication,
    /// as the API's endpoints do.
    #[test]
    fn user_and_security_changes_need_reauth() {
        for e in endpoints() {
            if let Access::Authenticated(r) = e.access
                && e.method != Method::GET
                && matches!(
                    r.permission,
                    Permission::UsersManage | Permission::SecurityManage
                )
            {
                assert!(r.reauth, "{} {} lacks re-auth", e.method, e.path);
            }
        }
    }

    /// Network changes from the UI need a fresh re-authentication as the API's do; reading
    /// needs `ConfigRead`, everything that acts `ConfigManage`.
    #[test]
    fn network_changes_need_reauth_and_the_manage_permission() {
        let config: Vec<_> = endpoints()
            .into_iter()
            .filter(|e| e.path.starts_with("/ui/config"))
            .collect();
        assert_eq!(config.len(), 9);
        for e in config {
            let Access::Authenticated(r) = e.access else {
                panic!("{} {} is not authenticated", e.method, e.path);
            };
            let acts = e.method != Method::GET || e.path == "/ui/config/edit";
            let want = if acts {
                Permission::ConfigManage
            } else {
                Permission::ConfigRead
            };
            assert_eq!(r.permission, want, "{} {}", e.method, e.path);
            let reauth = matches!(e.path, "/ui/config/commit" | "/ui/config/rollback");
            assert_eq!(r.reauth, reauth, "{} {}", e.method, e.path);
        }
    }

    /// The UI and the API share one router: no method and path may be declared twice.
    #[test]
    fn no_route_is_declared_twice_across_api_and_ui() {
        let mut seen = std::collections::HashSet::new();
        for e in mamori_http::registry::endpoints()
            .into_iter()
            .chain(endpoints())
        {
            assert!(
                seen.insert((e.method.clone(), e.path)),
                "{} {} twice",
                e.method,
                e.path
            );
        }
    }

    /// Nobody can change or delete a single audit record: the only POST under /ui/audit is
    /// the purge of personal data, for administrators with a fresh re-authentication.
    #[test]
    fn the_audit_log_has_no_route_that_changes_a_record() {
        let posts: Vec<_> = endpoints()
            .into_iter()
            .filter(|e| e.path.starts_with("/ui/audit") && e.method != Method::GET)
            .map(|e| (e.path, e.access))
            .collect();
        assert_eq!(
            posts,
            [(
                "/ui/audit/purge",
                mamori_http::registry::needs_reauth(Permission::SecurityManage)
            )]
        );
    }

    /// Pages live under /ui/ (and the assets under /assets/), so the API's namespace and the
    /// UI's never overlap.
    #[test]
    fn pages_stay_in_their_namespace() {
        for e in endpoints() {
            assert!(
                e.path == "/" || e.path.starts_with("/ui/") || e.path.starts_with("/assets/"),
                "{}",
                e.path
            );
        }
    }
}
