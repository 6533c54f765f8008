//! `mamori mfa totp ...`: the caller's own second factor.

use http::Method;
use serde_json::{Value, json};

use super::Ctx;
use crate::args::{MfaCmd, TotpCmd};
use crate::error::CliError;
use crate::output::cell;
use crate::session::parse_json;

/// Runs one `mfa` subcommand.
pub async fn run(ctx: &mut Ctx, cmd: MfaCmd) -> Result<(), CliError> {
    let MfaCmd::Totp(cmd) = cmd;
    match cmd {
        TotpCmd::Enroll => {
            let resp = ctx
                .session
                .call_reauth(Method::POST, "/api/v1/auth/mfa/totp/enroll", None)
                .await?;
            let value = parse_json(&resp)?;
            ctx.out.either(&resp, || describe_enroll(&value));
        }
        TotpCmd::Verify { code } => {
            let body = json!({ "code": code });
            let resp = ctx
                .session
                .call(Method::POST, "/api/v1/auth/mfa/totp/verify", Some(&body))
                .await?;
            let value = parse_json(&resp)?;
            ctx.out.either(&resp, || describe_recovery_codes(&value));
        }
        TotpCmd::Disable => {
            let resp = ctx
                .session
                .call_reauth(Method::POST, "/api/v1/auth/mfa/totp/disable", None)
                .await?;
            ctx.out.done(&resp, "second factor removed");
        }
    }
    Ok(())
}

fn describe_enroll(v: &Value) -> String {
    let field = |k: &str| v.get(k).map_or_else(|| "-".to_owned(), cell);
    format!(
        "secret:      {}\notpauth URI: {}\nadd it to your authenticator app, then run `mamori mfa \
         totp verify CODE` with the code it shows\n",
        field("secret"),
        field("otpauth_uri")
    )
}

fn describe_recovery_codes(v: &Value) -> String {
    let mut s = String::from(
        "second factor enabled.\nrecovery codes (shown only now; keep them offline, each works \
         once):\n",
    );
    for code in v
        .get("recovery_codes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        s.push_str(&format!("  {}\n", cell(code)));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enroll_and_codes_are_printed() {
        let s = describe_enroll(&json!({"secret": "ABC", "otpauth_uri": "otpauth://totp/x"}));
        assert!(
            s.contains("secret:      ABC\notpauth URI: otpauth://totp/x\n"),
            "{s}"
        );
        let s = describe_recovery_codes(&json!({"recovery_codes": ["a-1", "b-2"]}));
        assert!(s.ends_with("  a-1\n  b-2\n"), "{s}");
    }
}
