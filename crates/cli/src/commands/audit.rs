//! `mamori audit list|export|status|purge|verify`.

use std::io::Write;
use std::path::Path;

use http::Method;
use serde_json::json;

use super::Ctx;
use crate::args::{AuditCmd, AuditFilter};
use crate::error::CliError;
use crate::output::{Output, flatten, key_values, list};
use crate::session::parse_json;

/// `path?query` with every filter value percent-encoded.
fn with_query(path: &str, filter: &AuditFilter, limit: Option<u32>) -> String {
    let pairs: Vec<(&str, String)> = [
        ("limit", limit.map(|n| n.to_string())),
        ("since", filter.since.clone()),
        ("until", filter.until.clone()),
        ("event", filter.event.clone()),
        ("actor", filter.actor.clone()),
        ("outcome", filter.outcome.clone()),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    match serde_urlencoded::to_string(&pairs) {
        Ok(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path.to_owned(),
    }
}

/// Runs one `audit` subcommand that talks to the device.
pub async fn run(ctx: &mut Ctx, cmd: AuditCmd) -> Result<(), CliError> {
    match cmd {
        AuditCmd::List { limit, filter } => {
            let path = with_query("/api/v1/audit/events", &filter, limit);
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
                    "no records",
                )
            });
        }
        AuditCmd::Export { filter, output } => {
            let path = with_query("/api/v1/audit/export", &filter, None);
            let resp = ctx.session.call(Method::GET, &path, None).await?;
            match output {
                Some(file) => {
                    // The export holds personal data: only its owner may read it.
                    use std::os::unix::fs::OpenOptionsExt;
                    let mut f = std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .open(&file)
                        .map_err(|e| CliError::Usage(format!("{}: {e}", file.display())))?;
                    f.write_all(&resp.body)
                        .and_then(|()| f.sync_all())
                        .map_err(|e| CliError::Usage(format!("{}: {e}", file.display())))?;
                }
                None => std::io::stdout()
                    .write_all(&resp.body)
                    .map_err(|e| CliError::Usage(format!("standard output: {e}")))?,
            }
        }
        AuditCmd::Status => {
            let resp = ctx
                .session
                .call(Method::GET, "/api/v1/audit/status", None)
                .await?;
            let value = parse_json(&resp)?;
            ctx.out.either(&resp, || key_values(&flatten(&value)));
        }
        AuditCmd::Purge { before } => {
            let resp = ctx
                .session
                .call_reauth(
                    Method::POST,
                    "/api/v1/audit/purge",
                    Some(&json!({ "before": before })),
                )
                .await?;
            let value = parse_json(&resp)?;
            ctx.out.either(&resp, || key_values(&flatten(&value)));
        }
        AuditCmd::Verify { .. } => {
            return Err(CliError::Usage(
                "audit verify runs on the device itself: mamori audit verify --state-dir DIR"
                    .into(),
            ));
        }
    }
    Ok(())
}

/// `mamori audit verify --state-dir DIR`, on the device as root: reads the keys kept by the
/// privileged side and checks the chain, every seal and every record's encryption.
pub fn verify_local(state_dir: &Path, out: Output) -> Result<(), CliError> {
    let keys = mamori_privsep::audit_custody::verify_keys(state_dir).map_err(|e| {
        CliError::Usage(format!(
            "cannot read the audit log's keys under {} (run as root on the device): {e}",
            state_dir.display()
        ))
    })?;
    let report = mamori_audit::log::verify(&keys.dir, Some(&keys.verification), Some(&keys.master));
    // Tails cut off at a start (a crash, or tampering) are not in the chain any more; they are
    // kept beside it, and each cut is recorded as audit_log_repaired. Say so every time.
    let repaired: Vec<String> = std::fs::read_dir(&keys.dir)
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(".torn-"))
                .collect()
        })
        .unwrap_or_default();
    if out.json {
        println!(
            "{}",
            json!({
                "ok": report.first_break.is_none(),
                "records": report.records,
                "segments": report.segments,
                "first_seq": report.first_seq,
                "last_seq": report.last_seq,
                "first_break": report.first_break.as_ref().map(ToString::to_string),
                "repaired_tails": repaired,
                "report": report.to_string(),
            })
        );
    } else {
        println!("{report}");
        for name in &repaired {
            println!(
                "warning: bytes cut off at a start are kept in {name} (a crash, or tampering; \
                 see the audit_log_repaired records)"
            );
        }
    }
    match &report.first_break {
        None => Ok(()),
        Some(b) => Err(CliError::LogBroken(b.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_values_are_encoded_into_the_query() {
        let f = AuditFilter {
            since: Some("2026-12-01T00:00:00+09:00".into()),
            event: Some("login_failed,user_created".into()),
            ..AuditFilter::default()
        };
        assert_eq!(
            with_query("/api/v1/audit/events", &f, Some(5)),
            "/api/v1/audit/events?limit=5&since=2026-12-01T00%3A00%3A00%2B09%3A00&event=login_failed%2Cuser_created"
        );
        assert_eq!(
            with_query("/api/v1/audit/export", &AuditFilter::default(), None),
            "/api/v1/audit/export"
        );
    }
}
