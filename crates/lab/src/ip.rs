//! Running iproute2: `ip -batch` for building, `ip -json` for reading. Every failure names the
//! step it belongs to.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::LabError;

/// Runs `ip ARGS` (optionally `ip -n NS ARGS`) and returns its output, failing with `step`.
pub fn run(step: &str, ns: Option<&str>, args: &[&str]) -> Result<Output, LabError> {
    let mut cmd = Command::new("ip");
    if let Some(ns) = ns {
        cmd.args(["-n", ns]);
    }
    let out = cmd
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| LabError::Spawn {
            step: step.to_owned(),
            source,
        })?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(LabError::Step {
            step: step.to_owned(),
            command: format!(
                "ip {}{}",
                ns.map(|n| format!("-n {n} ")).unwrap_or_default(),
                args.join(" ")
            ),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// Runs `ip [-n NS] -json ARGS` and parses the answer (an array).
pub fn json(
    step: &str,
    ns: Option<&str>,
    args: &[&str],
) -> Result<Vec<serde_json::Value>, LabError> {
    let mut all = vec!["-json"];
    all.extend_from_slice(args);
    let out = run(step, ns, &all)?;
    let text = String::from_utf8_lossy(&out.stdout);
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(&text).map_err(|e| LabError::Parse {
        step: step.to_owned(),
        detail: e.to_string(),
    })
}

/// Runs `lines` (step, command) as one `ip [-n NS] -batch -`: one process, stopping at the first
/// failure, which is reported with the step of its line.
pub fn batch(ns: Option<&str>, lines: &[(String, String)]) -> Result<(), LabError> {
    let where_ = ns.map_or_else(|| "host".to_owned(), str::to_owned);
    let mut cmd = Command::new("ip");
    if let Some(ns) = ns {
        cmd.args(["-n", ns]);
    }
    let spawn_err = |source| LabError::Spawn {
        step: format!("ip -batch in {where_}"),
        source,
    };
    let mut child = cmd
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_err)?;
    let script: String = lines.iter().map(|(_, c)| format!("{c}\n")).collect();
    if let Some(mut stdin) = child.stdin.take() {
        // A write error means ip stopped early; its exit status and stderr say why.
        let _ = stdin.write_all(script.as_bytes());
    }
    let out = child.wait_with_output().map_err(spawn_err)?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    // iproute2 reports "Command failed -:LINE" for the line that failed.
    let line = stderr
        .rsplit("Command failed -:")
        .next()
        .filter(|_| stderr.contains("Command failed -:"))
        .and_then(|r| r.split_whitespace().next()?.parse::<usize>().ok())
        .and_then(|n| n.checked_sub(1))
        .and_then(|i| lines.get(i));
    let (step, command) = match line {
        Some((s, c)) => (format!("{s} (in {where_})"), format!("ip -batch: {c}")),
        None => (
            format!("ip -batch in {where_}"),
            format!("ip -batch ({} lines)", lines.len()),
        ),
    };
    Err(LabError::Step {
        step,
        command,
        detail: stderr,
    })
}

/// Runs a program inside a namespace (`ip netns exec NS PROG ARGS`), failing with `step`.
pub fn exec(step: &str, ns: &str, prog_args: &[&str]) -> Result<Output, LabError> {
    let mut args = vec!["netns", "exec", ns];
    args.extend_from_slice(prog_args);
    run(step, None, &args)
}

/// The namespaces that exist (`ip netns list`), by name.
pub fn netns_list() -> Result<Vec<String>, LabError> {
    let out = run("list namespaces", None, &["netns", "list"])?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

/// The processes in a namespace (`ip netns pids NS`).
pub fn netns_pids(ns: &str) -> Result<Vec<i32>, LabError> {
    let out = run(
        &format!("list processes in {ns}"),
        None,
        &["netns", "pids", ns],
    )?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect())
}
