//! `mamori users ...` (admin; changes need re-authentication).

use http::Method;
use serde_json::{Value, json};

use super::{Ctx, seg};
use crate::args::UsersCmd;
use crate::error::CliError;
use crate::output::{cell, list};
use crate::session::parse_json;

/// Runs one `users` subcommand.
pub async fn run(ctx: &mut Ctx, cmd: UsersCmd) -> Result<(), CliError> {
    match cmd {
        UsersCmd::List => {
            let resp = ctx.session.call(Method::GET, "/api/v1/users", None).await?;
            let value = parse_json(&resp)?;
            ctx.out.either(&resp, || {
                list(
                    &value,
                    &[
                        ("USERNAME", "username"),
                        ("ROLE", "role"),
                        ("DISABLED", "disabled"),
                        ("MFA", "mfa_enabled"),
                        ("MUST_CHANGE", "must_change_password"),
                        ("LOCKED_UNTIL", "locked_until"),
                        ("CREATED", "created_at"),
                    ],
                    "no users",
                )
            });
        }
        UsersCmd::Add {
            name,
            role,
            password_stdin,
        } => {
            let mut body = json!({ "username": name, "role": role.as_str() });
            if password_stdin {
                let password = ctx.session.secrets().new_password()?;
                body["password"] = json!(password.as_str());
            }
            let result = ctx
                .session
                .call_reauth(Method::POST, "/api/v1/users", Some(&body))
                .await;
            if let Some(Value::String(p)) = body.get_mut("password") {
                zeroize::Zeroize::zeroize(p);
            }
            let resp = result?;
            let value = parse_json(&resp)?;
            ctx.out.either(&resp, || {
                let mut s = format!("created user {name} (role {})\n", role.as_str());
                if let Some(otp) = value.get("one_time_password") {
                    s.push_str(&format!(
                        "one-time password: {}\n{name} must change it at the first login\n",
                        cell(otp)
                    ));
                }
                s
            });
        }
        UsersCmd::Disable { name } => {
            patch(ctx, &name, json!({ "disabled": true }), "disabled").await?;
        }
        UsersCmd::Enable { name } => {
            patch(ctx, &name, json!({ "disabled": false }), "enabled").await?;
        }
        UsersCmd::SetRole { name, role } => {
            let what = format!("now has role {}", role.as_str());
            patch(ctx, &name, json!({ "role": role.as_str() }), &what).await?;
        }
        UsersCmd::Delete { name } => {
            let path = format!("/api/v1/users/{}", seg(&name)?);
            let resp = ctx.session.call_reauth(Method::DELETE, &path, None).await?;
            ctx.out.done(&resp, &format!("user {name} deleted"));
        }
        UsersCmd::Reset { name, reset_mfa } => {
            let path = format!("/api/v1/users/{}/reset", seg(&name)?);
            let body = if reset_mfa {
                json!({ "reset_mfa": true })
            } else {
                json!({})
            };
            let resp = ctx
                .session
                .call_reauth(Method::POST, &path, Some(&body))
                .await?;
            let value = parse_json(&resp)?;
            ctx.out.either(&resp, || {
                let mut s = format!(
                    "one-time password for {name}: {}\n{name} must change it at the next login\n",
                    value
                        .get("one_time_password")
                        .map_or_else(|| "-".into(), cell)
                );
                if reset_mfa {
                    s.push_str("second factor removed\n");
                }
                s
            });
        }
    }
    Ok(())
}

async fn patch(ctx: &mut Ctx, name: &str, body: Value, what: &str) -> Result<(), CliError> {
    let path = format!("/api/v1/users/{}", seg(name)?);
    let resp = ctx
        .session
        .call_reauth(Method::PATCH, &path, Some(&body))
        .await?;
    ctx.out.done(&resp, &format!("user {name} {what}"));
    Ok(())
}
