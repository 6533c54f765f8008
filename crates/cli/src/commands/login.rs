//! `mamori login` and `mamori passwd`.

use http::Method;
use serde_json::{Value, json};

use super::Ctx;
use crate::error::CliError;
use crate::output::{self, cell};
use crate::session::parse_json;

/// Shows who is logged in and until when. With an API token, shows the token's session view.
pub async fn login(ctx: &mut Ctx) -> Result<(), CliError> {
    if let Some(info) = &ctx.login {
        if ctx.out.json {
            ctx.out.text(&String::from_utf8_lossy(&info.raw));
        } else {
            ctx.out.text(&describe_login(&info.value));
        }
        return Ok(());
    }
    let resp = ctx
        .session
        .call(Method::GET, "/api/v1/auth/session", None)
        .await?;
    let value = parse_json(&resp)?;
    ctx.out.either(&resp, || describe_login(&value));
    Ok(())
}

/// Human summary of a login (or session) answer.
pub fn describe_login(v: &Value) -> String {
    let field = |k: &str| v.get(k).map_or_else(|| output::NONE.to_owned(), cell);
    let mut out = format!(
        "logged in as {} (role {})\nsession expires at {}",
        field("username"),
        field("role"),
        field("expires_at")
    );
    if let Some(idle) = v.get("idle_timeout_seconds").and_then(Value::as_u64) {
        out.push_str(&format!(" (idle timeout {idle} s)"));
    }
    out.push('\n');
    if let Some(channel) = v.get("channel").and_then(Value::as_str) {
        out.push_str(&format!("channel: {channel}\n"));
    }
    if v.get("mfa_enrollment_required").and_then(Value::as_bool) == Some(true) {
        out.push_str(
            "your role requires a second factor: run `mamori mfa totp enroll`, then `mamori mfa \
             totp verify CODE`\n",
        );
    }
    out
}

/// Changes the caller's own password; the server issues a new session cookie and ends the
/// user's other sessions.
pub async fn passwd(ctx: &mut Ctx) -> Result<(), CliError> {
    let current = ctx.session.secrets().own_password()?;
    let new = ctx.session.secrets().new_password()?;
    let mut body = json!({ "current": current.as_str(), "new": new.as_str() });
    let result = ctx
        .session
        .call(Method::POST, "/api/v1/auth/password", Some(&body))
        .await;
    for key in ["current", "new"] {
        if let Some(Value::String(s)) = body.get_mut(key) {
            zeroize::Zeroize::zeroize(s);
        }
    }
    let resp = result?;
    let user = ctx.user.clone();
    ctx.out.done(
        &resp,
        &format!("password of {user} changed; the other sessions of {user} were ended"),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_summary() {
        let v = json!({
            "username": "admin", "role": "admin", "must_change_password": false,
            "mfa_enrollment_required": true, "idle_timeout_seconds": 900,
            "expires_at": "2026-01-01T08:00:00Z"
        });
        let s = describe_login(&v);
        assert!(s.starts_with(
            "logged in as admin (role admin)\nsession expires at 2026-01-01T08:00:00Z (idle timeout 900 s)\n"
        ), "{s}");
        assert!(s.contains("mamori mfa totp enroll"), "{s}");
    }
}
