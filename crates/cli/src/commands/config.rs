//! `mamori config show|status|history|diff|check|commit|edit|confirm|rollback` (reading:
//! admin, operator, auditor; changes: admin, operator, with re-authentication for commit and
//! rollback). `status` shows what the wan's DHCP clients hold.
//!
//! A commit from the CLI gets the API's confirm window (10 minutes) unless `--confirm MIN`
//! says otherwise (`--confirm 0`: none); `mamori config confirm` keeps it.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::Path;

use http::Method;
use serde_json::{Value, json};

use super::Ctx;
use crate::error::CliError;
use crate::output::{cell, duration, key_values, list};
use crate::session::parse_json;

const RUNNING: &str = "/api/v1/config";
const REVISIONS: &str = "/api/v1/config/revisions";
const CHECK: &str = "/api/v1/config/check";
const COMMIT: &str = "/api/v1/config/commit";
const CONFIRM: &str = "/api/v1/config/confirm";
const ROLLBACK: &str = "/api/v1/config/rollback";
const STATUS: &str = "/api/v1/network/status";
/// The device accepts configurations up to 16 MiB.
const MAX_FILE: u64 = 16 * 1024 * 1024;

/// `mamori config ...`
#[derive(Debug, clap::Subcommand)]
pub enum ConfigCmd {
    /// Print the running configuration (or revision N) as JSON, the form `commit` takes.
    Show {
        /// A revision instead of the running one.
        #[arg(long)]
        revision: Option<u64>,
    },
    /// What the wan's DHCP clients hold: per interface the state (bound, requesting, failed,
    /// stopped) and the lease (address, gateway, DNS servers, server, lease time, obtained,
    /// expires).
    Status,
    /// The revisions kept, newest first: id, author, channel, time, comment.
    History,
    /// A unified diff from revision FROM to revision TO (default: the running one).
    Diff {
        /// The older revision.
        from: u64,
        /// The newer revision.
        to: Option<u64>,
    },
    /// Check FILE (`-`: standard input) without changing anything: validation, this
    /// session's management access, the device's dry run, and the diff.
    Check {
        /// A JSON configuration, as `show` prints it.
        file: std::path::PathBuf,
    },
    /// Commit FILE (`-`: standard input) as the new configuration (re-authentication).
    Commit {
        /// A JSON configuration, as `show` prints it.
        file: std::path::PathBuf,
        #[command(flatten)]
        opts: CommitOpts,
    },
    /// Edit the running configuration in $EDITOR, check it, show the diff and commit it.
    Edit {
        #[command(flatten)]
        opts: CommitOpts,
        /// Commit without asking (otherwise asked on the terminal).
        #[arg(long)]
        yes: bool,
    },
    /// Keep the commit that waits for confirmation (only its author may).
    Confirm,
    /// Commit revision N's configuration again (re-authentication).
    Rollback {
        /// The revision to go back to.
        revision: u64,
        #[command(flatten)]
        opts: CommitOpts,
    },
}

/// Options of a commit.
#[derive(Debug, clap::Args)]
pub struct CommitOpts {
    /// Minutes to wait for `mamori config confirm` before reverting (0: no window; default
    /// 10).
    #[arg(long, value_name = "MIN", value_parser = clap::value_parser!(u32).range(0..=1440))]
    pub confirm: Option<u32>,
    /// Recorded with the revision.
    #[arg(long, default_value = "")]
    pub comment: String,
}

impl CommitOpts {
    fn body(&self, mut body: Value) -> Value {
        body["comment"] = json!(self.comment);
        if let Some(m) = self.confirm {
            body["confirm_minutes"] = json!(m);
        }
        body
    }
}

/// Runs one `config` subcommand.
pub async fn run(ctx: &mut Ctx, cmd: ConfigCmd) -> Result<(), CliError> {
    match cmd {
        ConfigCmd::Show { revision } => {
            let path = match revision {
                Some(n) => format!("{REVISIONS}/{n}"),
                None => RUNNING.to_owned(),
            };
            let resp = ctx.session.call(Method::GET, &path, None).await?;
            let v = parse_json(&resp)?;
            ctx.out.either(&resp, || pretty(&v["config"]));
            Ok(())
        }
        ConfigCmd::Status => {
            let resp = ctx.session.call(Method::GET, STATUS, None).await?;
            let v = parse_json(&resp)?;
            ctx.out.either(&resp, || status_text(&v));
            Ok(())
        }
        ConfigCmd::History => {
            let resp = ctx.session.call(Method::GET, REVISIONS, None).await?;
            let v = parse_json(&resp)?;
            ctx.out.either(&resp, || history_text(&v));
            Ok(())
        }
        ConfigCmd::Diff { from, to } => {
            let mut path = format!("/api/v1/config/diff?from={from}");
            if let Some(t) = to {
                path.push_str(&format!("&to={t}"));
            }
            let resp = ctx.session.call(Method::GET, &path, None).await?;
            let v = parse_json(&resp)?;
            ctx.out.either(&resp, || diff_text(&v["diff"]));
            Ok(())
        }
        ConfigCmd::Check { file } => {
            let config = read_config(&file)?;
            check(ctx, config).await.map(drop)
        }
        ConfigCmd::Commit { file, opts } => {
            let config = read_config(&file)?;
            commit(ctx, opts.body(json!({ "config": config }))).await
        }
        ConfigCmd::Edit { opts, yes } => edit(ctx, opts, yes).await,
        ConfigCmd::Confirm => {
            let resp = ctx.session.call(Method::POST, CONFIRM, None).await?;
            let v = parse_json(&resp)?;
            ctx.out.done(
                &resp,
                &format!("revision {} confirmed", cell(&v["revision"])),
            );
            Ok(())
        }
        ConfigCmd::Rollback { revision, opts } => {
            let body = opts.body(json!({ "revision": revision }));
            let resp = ctx
                .session
                .call_reauth(Method::POST, ROLLBACK, Some(&body))
                .await?;
            let v = parse_json(&resp)?;
            ctx.out.done(&resp, &committed_text(&v));
            Ok(())
        }
    }
}

async fn check(ctx: &mut Ctx, config: Value) -> Result<bool, CliError> {
    let body = json!({ "config": config });
    let resp = ctx.session.call(Method::POST, CHECK, Some(&body)).await?;
    let v = parse_json(&resp)?;
    let ok = v["ok"] == true;
    ctx.out.either(&resp, || check_text(&v));
    if ok {
        return Ok(true);
    }
    // A refusal by the device (exit 1), like a refused commit; the details are printed above.
    let body = json!({"error": {
        "code": "config_refused",
        "message": format!("the candidate was refused at step {}", cell(&v["step"])),
    }});
    Err(CliError::Api(Box::new(
        crate::error::ApiError::from_response(422, None, body.to_string().as_bytes()),
    )))
}

async fn commit(ctx: &mut Ctx, body: Value) -> Result<(), CliError> {
    let resp = ctx
        .session
        .call_reauth(Method::POST, COMMIT, Some(&body))
        .await?;
    let v = parse_json(&resp)?;
    ctx.out.done(&resp, &committed_text(&v));
    Ok(())
}

async fn edit(ctx: &mut Ctx, opts: CommitOpts, yes: bool) -> Result<(), CliError> {
    let resp = ctx.session.call(Method::GET, RUNNING, None).await?;
    let running = parse_json(&resp)?;
    let original = pretty(&running["config"]);
    let dir = tempfile::tempdir().map_err(|e| CliError::Usage(format!("temporary file: {e}")))?;
    let path = dir.path().join("mamori-config.json");
    std::fs::write(&path, &original)
        .map_err(|e| CliError::Usage(format!("writing {}: {e}", path.display())))?;
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".to_owned());
    // The editor may carry arguments ("code --wait"): split on whitespace, no shell.
    let mut words = editor.split_whitespace();
    let program = words
        .next()
        .ok_or_else(|| CliError::Usage("$EDITOR is empty".into()))?;
    let status = std::process::Command::new(program)
        .args(words)
        .arg(&path)
        .status()
        .map_err(|e| CliError::Usage(format!("running {editor}: {e}")))?;
    if !status.success() {
        return Err(CliError::Usage(format!(
            "{editor} exited with {status}; nothing committed"
        )));
    }
    let edited = read_config(&path)?;
    if pretty(&edited) == original {
        ctx.out.text("no change; nothing committed");
        return Ok(());
    }
    check(ctx, edited.clone()).await?;
    if !yes && !ask("commit this configuration?")? {
        ctx.out.text("nothing committed");
        return Ok(());
    }
    commit(ctx, opts.body(json!({ "config": edited }))).await
}

/// Asks a yes/no question on the terminal (never on a pipe: there `--yes` is needed).
fn ask(question: &str) -> Result<bool, CliError> {
    if !std::io::stdin().is_terminal() {
        return Err(CliError::Usage(
            "not a terminal: add --yes to commit without asking".into(),
        ));
    }
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "{question} [y/N] ");
    let _ = err.flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::Usage(format!("reading the answer: {e}")))?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

/// Reads a configuration file (`-`: standard input), at most 16 MiB of JSON.
fn read_config(file: &Path) -> Result<Value, CliError> {
    let mut text = String::new();
    let read = if file.as_os_str() == "-" {
        std::io::stdin()
            .take(MAX_FILE + 1)
            .read_to_string(&mut text)
    } else {
        std::fs::File::open(file).and_then(|f| f.take(MAX_FILE + 1).read_to_string(&mut text))
    };
    read.map_err(|e| CliError::Usage(format!("reading {}: {e}", file.display())))?;
    if text.len() as u64 > MAX_FILE {
        return Err(CliError::Usage(format!(
            "{}: larger than the 16 MiB the device accepts",
            file.display()
        )));
    }
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| CliError::Usage(format!("{}: not JSON: {e}", file.display())))?;
    if !value.is_object() {
        return Err(CliError::Usage(format!(
            "{}: the configuration must be a JSON object",
            file.display()
        )));
    }
    Ok(value)
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

fn diff_text(diff: &Value) -> String {
    match diff.as_str() {
        Some("") | None => "no difference\n".to_owned(),
        Some(d) => d.to_owned(),
    }
}

fn history_text(v: &Value) -> String {
    let mut out = list(
        &v["revisions"],
        &[
            ("id", "id"),
            ("time", "time"),
            ("author", "author"),
            ("channel", "channel"),
            ("comment", "comment"),
        ],
        "no revisions",
    );
    out.push_str(&format!(
        "\nrunning: {}  rescue: {}  kept: up to {}\n",
        cell(&v["running"]),
        cell(&v["rescue"]),
        cell(&v["keep"])
    ));
    if v["pending"].is_object() {
        out.push_str(&pending_text(&v["pending"]));
    }
    out
}

fn pending_text(p: &Value) -> String {
    format!(
        "revision {} waits for confirmation by {} until {} ({} s left); `mamori config confirm` keeps it\n",
        cell(&p["revision"]),
        cell(&p["author"]),
        cell(&p["deadline"]),
        cell(&p["remaining_s"])
    )
}

fn check_text(v: &Value) -> String {
    let mut out = diff_text(&v["diff"]);
    if v["ok"] == true {
        out.push_str("check passed: valid, keeps this session's access, dry run accepted\n");
    } else {
        out.push_str(&format!("refused at step {}:\n", cell(&v["step"])));
        for p in v["problems"].as_array().into_iter().flatten() {
            let path = p["path"].as_str().unwrap_or_default();
            if path.is_empty() {
                out.push_str(&format!("  {}\n", cell(&p["message"])));
            } else {
                out.push_str(&format!("  {path}: {}\n", cell(&p["message"])));
            }
        }
    }
    out
}

fn committed_text(v: &Value) -> String {
    match v["confirm_deadline"].as_str() {
        Some(deadline) => format!(
            "committed as revision {} (was {}); confirm with `mamori config confirm` before {deadline}, or it is reverted",
            cell(&v["revision"]),
            cell(&v["previous"])
        ),
        None => format!(
            "committed as revision {} (was {})",
            cell(&v["revision"]),
            cell(&v["previous"])
        ),
    }
}

/// The DHCP clients, one block per interface.
fn status_text(v: &Value) -> String {
    let clients = v["dhcp"].as_array().map(Vec::as_slice).unwrap_or_default();
    if clients.is_empty() {
        return "no interface uses DHCP\n".to_owned();
    }
    let mut out = String::new();
    for c in clients {
        out.push_str(&format!(
            "{}  {}\n",
            cell(&c["interface"]),
            cell(&c["state"])
        ));
        let mut pairs: Vec<(String, String)> = Vec::new();
        let mut add = |k: &str, v: String| pairs.push((format!("  {k}"), v));
        let l = &c["lease"];
        if l.is_object() {
            add("address", cell(&l["address"]));
            add("gateway", cell(&l["gateway"]));
            add("dns servers", cell(&l["dns_servers"]));
            add("server", cell(&l["server"]));
            add(
                "lease time",
                l["lease_seconds"]
                    .as_u64()
                    .map_or_else(|| "infinite".to_owned(), duration),
            );
            add("obtained", cell(&l["obtained_at"]));
            add(
                "expires",
                match (l["expires_at"].as_str(), l["remaining_seconds"].as_u64()) {
                    (Some(at), Some(left)) => format!("{at} ({} left)", duration(left)),
                    _ => "never".to_owned(),
                },
            );
        } else {
            add("lease", "none".to_owned());
        }
        add(
            "client",
            match (c["running"].as_bool(), c["pid"].as_u64()) {
                (Some(true), Some(pid)) => {
                    format!("dhcpcd runs (pid {pid}, {} restarts)", cell(&c["restarts"]))
                }
                _ => "dhcpcd does not run".to_owned(),
            },
        );
        if c["configured"] == false {
            add("note", "not in the running configuration".to_owned());
        }
        for key in ["error", "lease_error"] {
            if let Some(e) = c[key].as_str() {
                // The first line; dhcpcd's log tail follows in --json.
                add(
                    &key.replace('_', " "),
                    e.lines().next().unwrap_or_default().to_owned(),
                );
            }
        }
        out.push_str(&key_values(&pairs));
    }
    if v["truncated"] == true {
        out.push_str("(more DHCP clients run than the device reports)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_shows_each_clients_lease_or_why_there_is_none() {
        let v = json!({"truncated": false, "dhcp": [
            {"interface": "wan0", "state": "bound", "configured": true, "running": true,
             "pid": 42, "restarts": 0, "error": null, "lease_error": null,
             "lease": {"address": "203.0.113.120/24", "gateway": "203.0.113.1",
                       "dns_servers": ["203.0.113.53"], "server": "203.0.113.1",
                       "lease_seconds": 600, "obtained_at": "2026-12-06T08:36:41Z",
                       "expires_at": "2026-12-06T08:46:41Z", "remaining_seconds": 500}},
            {"interface": "wan1", "state": "failed", "configured": true, "running": false,
             "pid": null, "restarts": 3, "lease": null,
             "error": "dhcpcd could not start: missing\nmore", "lease_error": null}
        ]});
        let t = status_text(&v);
        assert!(t.starts_with("wan0  bound\n"), "{t}");
        assert!(t.contains("  address      203.0.113.120/24\n"), "{t}");
        assert!(t.contains("  dns servers  203.0.113.53\n"), "{t}");
        assert!(t.contains("  lease time   00:10:00\n"), "{t}");
        assert!(t.contains("(00:08:20 left)"), "{t}");
        assert!(t.contains("dhcpcd runs (pid 42, 0 restarts)"), "{t}");
        assert!(t.contains("wan1  failed\n  lease   none\n"), "{t}");
        assert!(
            t.contains("  error   dhcpcd could not start: missing\n"),
            "{t}"
        );
        assert!(!t.contains("more"), "{t}");
        assert_eq!(
            status_text(&json!({"dhcp": []})),
            "no interface uses DHCP\n"
        );
    }
}
