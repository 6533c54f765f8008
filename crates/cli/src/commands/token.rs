//! `mamori token ...`: the caller's API tokens.

use http::Method;
use serde_json::json;

use super::{Ctx, seg};
use crate::args::TokenCmd;
use crate::error::CliError;
use crate::output::{cell, list};
use crate::session::parse_json;

/// Runs one `token` subcommand.
pub async fn run(ctx: &mut Ctx, cmd: TokenCmd) -> Result<(), CliError> {
    match cmd {
        TokenCmd::Create { name, role, days } => {
            let body = json!({ "name": name, "role": role.as_str(), "expires_in_days": days });
            let resp = ctx
                .session
                .call_reauth(Method::POST, "/api/v1/tokens", Some(&body))
                .await?;
            let value = parse_json(&resp)?;
            ctx.out.either(&resp, || {
                let field = |k: &str| value.get(k).map_or_else(|| "-".to_owned(), cell);
                format!(
                    "id:    {}\ntoken: {}\nthe token is shown only now; give it to programs as \
                     MAMORI_TOKEN (never on a command line)\n",
                    field("id"),
                    field("token")
                )
            });
        }
        TokenCmd::List => {
            let resp = ctx
                .session
                .call(Method::GET, "/api/v1/tokens", None)
                .await?;
            let value = parse_json(&resp)?;
            ctx.out.either(&resp, || {
                list(
                    &value,
                    &[
                        ("ID", "id"),
                        ("NAME", "name"),
                        ("ROLE", "role"),
                        ("CREATED", "created_at"),
                        ("EXPIRES", "expires_at"),
                        ("LAST_USED", "last_used_at"),
                    ],
                    "no tokens",
                )
            });
        }
        TokenCmd::Revoke { id } => {
            let path = format!("/api/v1/tokens/{}", seg(&id)?);
            let resp = ctx.session.call(Method::DELETE, &path, None).await?;
            ctx.out.done(&resp, &format!("token {id} revoked"));
        }
    }
    Ok(())
}
