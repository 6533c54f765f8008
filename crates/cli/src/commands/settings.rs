//! `mamori settings auth|access ...` (admin; changes need re-authentication).

use http::Method;
use serde_json::{Value, json};

use super::Ctx;
use crate::args::{AccessSettingsCmd, AuthSettingsCmd, SettingsCmd};
use crate::error::CliError;
use crate::output::{cell, object};
use crate::session::parse_json;

const AUTH: &str = "/api/v1/settings/auth";
const ACCESS: &str = "/api/v1/settings/access";

/// Runs one `settings` subcommand.
pub async fn run(ctx: &mut Ctx, cmd: SettingsCmd) -> Result<(), CliError> {
    match cmd {
        SettingsCmd::Auth(AuthSettingsCmd::Show) => show(ctx, AUTH).await,
        SettingsCmd::Access(AccessSettingsCmd::Show) => show(ctx, ACCESS).await,
        SettingsCmd::Auth(AuthSettingsCmd::Set { pairs }) => {
            let current = get(ctx, AUTH).await?;
            let updated = apply_pairs(current, &pairs)?;
            let resp = ctx
                .session
                .call_reauth(Method::PUT, AUTH, Some(&updated))
                .await?;
            let changed: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{k} = {}", cell(v)))
                .collect();
            ctx.out.done(
                &resp,
                &format!(
                    "authentication settings changed:\n  {}",
                    changed.join("\n  ")
                ),
            );
            Ok(())
        }
        SettingsCmd::Access(AccessSettingsCmd::Set {
            allow,
            trusted,
            confirm,
        }) => {
            let current = get(ctx, ACCESS).await?;
            let body = access_body(&current, allow, trusted, confirm);
            let resp = ctx
                .session
                .call_reauth(Method::PUT, ACCESS, Some(&body))
                .await?;
            ctx.out.done(
                &resp,
                &format!(
                    "access lists changed:\n  allow    {}\n  trusted  {}",
                    cell(&body["allow"]),
                    cell(&body["trusted"])
                ),
            );
            Ok(())
        }
    }
}

async fn show(ctx: &mut Ctx, path: &str) -> Result<(), CliError> {
    let resp = ctx.session.call(Method::GET, path, None).await?;
    let value = parse_json(&resp)?;
    ctx.out.either(&resp, || object(&value));
    Ok(())
}

async fn get(ctx: &mut Ctx, path: &str) -> Result<Value, CliError> {
    let resp = ctx.session.call(Method::GET, path, None).await?;
    let value = parse_json(&resp)?;
    if !value.is_object() {
        return Err(CliError::Protocol(format!(
            "{path} did not answer an object"
        )));
    }
    Ok(value)
}

/// Applies `KEY=VALUE` changes to the current settings object; unknown keys are a usage error.
pub fn apply_pairs(mut current: Value, pairs: &[(String, Value)]) -> Result<Value, CliError> {
    let Some(obj) = current.as_object_mut() else {
        return Err(CliError::Protocol("settings are not an object".into()));
    };
    for (key, value) in pairs {
        match obj.get_mut(key) {
            Some(slot) => *slot = value.clone(),
            None => {
                let known: Vec<&str> = obj.keys().map(String::as_str).collect();
                return Err(CliError::Usage(format!(
                    "unknown setting {key:?}; known: {}",
                    known.join(", ")
                )));
            }
        }
    }
    Ok(current)
}

/// The PUT body for the access lists: given lists replace the current ones.
pub fn access_body(
    current: &Value,
    allow: Option<Vec<String>>,
    trusted: Option<Vec<String>>,
    confirm: bool,
) -> Value {
    let keep = |k: &str| current.get(k).cloned().unwrap_or_else(|| json!([]));
    let mut body = json!({
        "allow": allow.map_or_else(|| keep("allow"), |a| json!(a)),
        "trusted": trusted.map_or_else(|| keep("trusted"), |t| json!(t)),
    });
    if confirm {
        body["confirm"] = json!(true);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_replace_known_keys_only() {
        let current = json!({"lockout_threshold": 5, "mfa_required_roles": ["admin"]});
        let updated = apply_pairs(
            current.clone(),
            &[
                ("lockout_threshold".into(), json!(10)),
                ("mfa_required_roles".into(), json!(["admin", "operator"])),
            ],
        )
        .unwrap();
        assert_eq!(
            updated,
            json!({"lockout_threshold": 10, "mfa_required_roles": ["admin", "operator"]})
        );
        let err = apply_pairs(current, &[("nope".into(), json!(1))]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("lockout_threshold"), "{err}");
    }

    #[test]
    fn access_lists_are_replaced_or_kept() {
        let current = json!({"allow": ["10.0.0.0/8"], "trusted": ["192.0.2.0/24"]});
        assert_eq!(
            access_body(&current, Some(vec!["0.0.0.0/0".into()]), None, false),
            json!({"allow": ["0.0.0.0/0"], "trusted": ["192.0.2.0/24"]})
        );
        assert_eq!(
            access_body(&current, None, Some(vec![]), true),
            json!({"allow": ["10.0.0.0/8"], "trusted": [], "confirm": true})
        );
    }
}
