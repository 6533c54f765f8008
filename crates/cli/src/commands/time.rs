//! `mamori time status|set|config ...` (status: any role that reads the device; the rest:
//! admin, changes need re-authentication).

use std::io::Read;

use http::Method;
use serde_json::{Value, json};

use super::Ctx;
use crate::args::{TimeCmd, TimeConfigCmd};
use crate::error::CliError;
use crate::output::{cell, key_values, list, object};
use crate::session::parse_json;

const STATUS: &str = "/api/v1/time";
const SET: &str = "/api/v1/time/set";
const CONFIG: &str = "/api/v1/settings/time";
/// A time configuration file is small (8 servers); anything larger is a mistake.
const MAX_FILE: u64 = 64 * 1024;

/// Runs one `time` subcommand.
pub async fn run(ctx: &mut Ctx, cmd: TimeCmd) -> Result<(), CliError> {
    match cmd {
        TimeCmd::Status => {
            let resp = ctx.session.call(Method::GET, STATUS, None).await?;
            let value = parse_json(&resp)?;
            ctx.out.either(&resp, || status_text(&value));
            Ok(())
        }
        TimeCmd::Set { time, force } => {
            let body = json!({"time": time, "force": force});
            let resp = ctx
                .session
                .call_reauth(Method::POST, SET, Some(&body))
                .await?;
            let v = parse_json(&resp)?;
            ctx.out.done(
                &resp,
                &format!(
                    "clock set: {} -> {} ({} ms{})",
                    cell(&v["before"]),
                    cell(&v["after"]),
                    cell(&v["step_ms"]),
                    if v["forced"] == true { ", forced" } else { "" }
                ),
            );
            Ok(())
        }
        TimeCmd::Config(TimeConfigCmd::Show) => {
            let resp = ctx.session.call(Method::GET, CONFIG, None).await?;
            let value = parse_json(&resp)?;
            ctx.out.either(&resp, || object(&value));
            Ok(())
        }
        TimeCmd::Config(TimeConfigCmd::Set { file }) => {
            let body = read_config(&file)?;
            let resp = ctx
                .session
                .call_reauth(Method::PUT, CONFIG, Some(&body))
                .await?;
            let v = parse_json(&resp)?;
            let servers = body["servers"].as_array().map_or(0, Vec::len);
            let mut msg = format!(
                "time servers replaced ({servers}); chronyd {}",
                if v["chronyd_running"] == true {
                    "running"
                } else {
                    "not running"
                }
            );
            if let Some(e) = v["error"].as_str() {
                msg.push_str(&format!("\n  error: {e}"));
            }
            ctx.out.done(&resp, &msg);
            Ok(())
        }
    }
}

/// Reads the JSON object of a `time config set` file (`-`: standard input).
fn read_config(file: &std::path::Path) -> Result<Value, CliError> {
    let mut text = String::new();
    let read = if file.as_os_str() == "-" {
        std::io::stdin().take(MAX_FILE).read_to_string(&mut text)
    } else {
        std::fs::File::open(file).and_then(|f| f.take(MAX_FILE).read_to_string(&mut text))
    };
    read.map_err(|e| CliError::Usage(format!("reading {}: {e}", file.display())))?;
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

/// The status for people: the summary, then one row per source.
fn status_text(v: &Value) -> String {
    let s = &v["status"];
    let mut pairs = vec![
        ("device time".to_string(), cell(&v["device_time"])),
        ("synchronised".to_string(), cell(&v["synchronised"])),
        ("ntp enabled".to_string(), cell(&v["ntp_enabled"])),
        ("chronyd running".to_string(), cell(&v["chronyd_running"])),
    ];
    if s.is_object() {
        pairs.push(("reference".into(), cell(&s["reference"])));
        pairs.push(("stratum".into(), cell(&s["stratum"])));
        pairs.push(("offset ms".into(), cell(&s["offset_ms"])));
        pairs.push(("last update".into(), cell(&s["last_update"])));
    }
    if let Some(e) = v["error"].as_str() {
        pairs.push(("error".into(), e.to_string()));
    }
    let mut out = key_values(&pairs);
    if s.is_object() {
        out.push_str("\n\n");
        out.push_str(&list(
            &s["sources"],
            &[
                ("address", "address"),
                ("state", "state"),
                ("stratum", "stratum"),
                ("reach", "reach"),
                ("offset ms", "offset_ms"),
                ("nts", "nts"),
                ("nts ok", "nts_authenticated"),
            ],
            "(no sources)",
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_files_must_hold_a_json_object() {
        let dir = std::env::temp_dir().join(format!("mamori-cli-time-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.json");
        std::fs::write(&good, r#"{"servers": [{"host": "192.0.2.1"}]}"#).unwrap();
        assert_eq!(
            read_config(&good).unwrap()["servers"][0]["host"],
            "192.0.2.1"
        );
        for (name, text) in [
            ("list.json", "[]"),
            ("text.json", "servers"),
            ("empty.json", ""),
        ] {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            assert_eq!(read_config(&p).unwrap_err().exit_code(), 2, "{name}");
        }
        assert_eq!(
            read_config(&dir.join("missing.json"))
                .unwrap_err()
                .exit_code(),
            2
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_status_names_the_sources_and_the_error() {
        let v = json!({"device_time": "2027-03-01T00:00:00.000Z", "synchronised": true,
            "ntp_enabled": true, "chronyd_running": true, "error": null,
            "status": {"reference": "127.0.0.1", "stratum": 9, "offset_ms": 0.01,
                "last_update": null, "sources": [{"address": "127.0.0.1", "state": "selected",
                "stratum": 8, "reach": 255, "offset_ms": 0.0, "nts": false,
                "nts_authenticated": false}]}});
        let text = status_text(&v);
        assert!(
            text.contains("127.0.0.1") && text.contains("selected"),
            "{text}"
        );
        let off = json!({"device_time": "x", "synchronised": false, "ntp_enabled": true,
            "chronyd_running": false, "error": "starting chronyd: not found", "status": null});
        assert!(status_text(&off).contains("starting chronyd"));
    }
}
