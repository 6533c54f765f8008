//! `mamori status`, `mamori device`, `mamori openapi`.

use http::Method;
use serde_json::Value;

use super::Ctx;
use crate::error::CliError;
use crate::output::{self, cell, flatten, key_values};
use crate::session::parse_json;

/// `GET /api/v1/status`.
pub async fn status(ctx: &mut Ctx) -> Result<(), CliError> {
    let resp = ctx
        .session
        .call(Method::GET, "/api/v1/status", None)
        .await?;
    let value = parse_json(&resp)?;
    ctx.out.either(&resp, || describe_status(&value));
    Ok(())
}

/// Human rendering of the status answer: everything as `key  value`, notices as a list.
pub fn describe_status(v: &Value) -> String {
    let mut rest = v.clone();
    let notices = rest
        .as_object_mut()
        .and_then(|o| o.remove("notices"))
        .unwrap_or(Value::Null);
    let mut out = key_values(&flatten(&rest));
    match notices.as_array() {
        Some(list) if !list.is_empty() => {
            out.push_str("notices:\n");
            for n in list {
                let text = n.get("message").map_or_else(|| cell(n), cell);
                out.push_str(&format!("  - {text}\n"));
            }
        }
        _ => out.push_str("notices: none\n"),
    }
    out
}

/// `GET /api/v1/device`.
pub async fn device(ctx: &mut Ctx) -> Result<(), CliError> {
    let resp = ctx
        .session
        .call(Method::GET, "/api/v1/device", None)
        .await?;
    let value = parse_json(&resp)?;
    ctx.out.either(&resp, || describe_device(&value));
    Ok(())
}

/// Human rendering of the device answer, known fields first.
pub fn describe_device(v: &Value) -> String {
    const ORDER: [&str; 5] = [
        "model",
        "serial",
        "firmware_version",
        "uptime_seconds",
        "time",
    ];
    let mut pairs = Vec::new();
    for key in ORDER {
        let Some(val) = v.get(key) else { continue };
        if key == "uptime_seconds"
            && let Some(secs) = val.as_u64()
        {
            pairs.push((
                "uptime".to_owned(),
                format!("{} ({secs} s)", output::duration(secs)),
            ));
        } else {
            pairs.push((key.to_owned(), cell(val)));
        }
    }
    if let Some(obj) = v.as_object() {
        let mut other = serde_json::Map::new();
        for (k, val) in obj {
            if !ORDER.contains(&k.as_str()) {
                other.insert(k.clone(), val.clone());
            }
        }
        pairs.extend(
            flatten(&Value::Object(other))
                .into_iter()
                .filter(|(k, _)| !k.is_empty()),
        );
    }
    key_values(&pairs)
}

/// `GET /api/v1/openapi.json`: the document, pretty-printed (verbatim with `--json`).
pub async fn openapi(ctx: &mut Ctx) -> Result<(), CliError> {
    let resp = ctx
        .session
        .call(Method::GET, "/api/v1/openapi.json", None)
        .await?;
    let value = parse_json(&resp)?;
    ctx.out.either(&resp, || {
        serde_json::to_string_pretty(&value).unwrap_or_else(|_| output::raw_json(&resp))
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn device_lines() {
        let v = json!({"model": "MG-1", "serial": "S1", "firmware_version": "0.1.0",
                       "uptime_seconds": 90061, "time": "2026-01-01T00:00:00Z"});
        assert_eq!(
            describe_device(&v),
            "model             MG-1\n\
             serial            S1\n\
             firmware_version  0.1.0\n\
             uptime            1d 01:01:01 (90061 s)\n\
             time              2026-01-01T00:00:00Z\n"
        );
    }

    #[test]
    fn status_lines() {
        let v = json!({
            "device": {"model": "MG-1"},
            "privilege_separation": {"enabled": true, "seccomp": false},
            "tls": {"suites": ["A", "B"]},
            "notices": ["default password in use", {"message": "clock not synchronised"}]
        });
        assert_eq!(
            describe_status(&v),
            "device.model                  MG-1\n\
             privilege_separation.enabled  yes\n\
             privilege_separation.seccomp  no\n\
             tls.suites                    A, B\n\
             notices:\n  - default password in use\n  - clock not synchronised\n"
        );
        assert!(describe_status(&json!({"notices": []})).ends_with("notices: none\n"));
    }
}
