//! `mamori sessions ...`: the caller's own sessions.

use http::Method;

use super::{Ctx, seg};
use crate::args::SessionsCmd;
use crate::error::CliError;
use crate::output::list;
use crate::session::parse_json;

/// Runs one `sessions` subcommand.
pub async fn run(ctx: &mut Ctx, cmd: SessionsCmd) -> Result<(), CliError> {
    match cmd {
        SessionsCmd::List => {
            let resp = ctx
                .session
                .call(Method::GET, "/api/v1/sessions", None)
                .await?;
            let value = parse_json(&resp)?;
            ctx.out.either(&resp, || {
                list(
                    &value,
                    &[
                        ("ID", "id"),
                        ("CREATED", "created_at"),
                        ("LAST_SEEN", "last_seen_at"),
                        ("SOURCE", "source"),
                        ("CHANNEL", "channel"),
                        ("CURRENT", "current"),
                    ],
                    "no sessions",
                )
            });
        }
        SessionsCmd::Revoke { id } => {
            let path = format!("/api/v1/sessions/{}", seg(&id)?);
            let resp = ctx.session.call(Method::DELETE, &path, None).await?;
            ctx.out.done(&resp, &format!("session {id} revoked"));
        }
    }
    Ok(())
}
