//! `mamori audit events`.

use http::Method;

use super::Ctx;
use crate::args::AuditCmd;
use crate::error::CliError;
use crate::output::list;
use crate::session::parse_json;

/// Runs one `audit` subcommand.
pub async fn run(ctx: &mut Ctx, cmd: AuditCmd) -> Result<(), CliError> {
    let AuditCmd::Events { limit } = cmd;
    let path = match limit {
        Some(n) => format!("/api/v1/audit/events?limit={n}"),
        None => "/api/v1/audit/events".to_owned(),
    };
    let resp = ctx.session.call(Method::GET, &path, None).await?;
    let value = parse_json(&resp)?;
    ctx.out.either(&resp, || {
        list(
            &value,
            &[
                ("SEQ", "seq"),
                ("TIME", "time"),
                ("EVENT", "event"),
                ("ACTOR", "actor"),
                ("SOURCE", "source"),
                ("OUTCOME", "outcome"),
                ("DETAILS", "details"),
            ],
            "no events",
        )
    });
    Ok(())
}
