//! What the client prints: aligned tables and `key  value` lines for people, the API's own JSON
//! for programs (`--json`). Never coloured, so output is the same on a terminal and in a pipe.

use std::io::Write;

use serde_json::Value;

use crate::transport::ApiResponse;

/// Placeholder for a missing or null value.
pub const NONE: &str = "-";

/// How to print.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// `--json`: print the API's answers verbatim.
    pub json: bool,
}

impl Output {
    /// Prints a text block (a trailing newline is added if missing).
    pub fn text(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        if !text.ends_with('\n') {
            let _ = out.write_all(b"\n");
        }
        let _ = out.flush();
    }

    /// Prints the answer exactly as the API sent it (`{}` for an empty answer).
    pub fn raw(&self, resp: &ApiResponse) {
        self.text(&raw_json(resp));
    }

    /// In `--json` mode prints the answer verbatim; otherwise prints `human`.
    pub fn either(&self, resp: &ApiResponse, human: impl FnOnce() -> String) {
        if self.json {
            self.raw(resp);
        } else {
            self.text(&human());
        }
    }

    /// For commands whose answer is empty: `{}` in `--json` mode, else `message`.
    pub fn done(&self, resp: &ApiResponse, message: &str) {
        self.either(resp, || message.to_owned());
    }
}

/// The body as the API sent it, or `{}` when there is none (204).
pub fn raw_json(resp: &ApiResponse) -> String {
    if resp.body.is_empty() {
        return "{}".to_owned();
    }
    String::from_utf8_lossy(&resp.body).into_owned()
}

/// A JSON value as a table cell: strings without quotes, `-` for null, `yes`/`no` for booleans,
/// arrays of scalars comma-separated, anything else compact JSON.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => NONE.to_owned(),
        Value::Bool(true) => "yes".to_owned(),
        Value::Bool(false) => "no".to_owned(),
        Value::String(s) if s.is_empty() => "\"\"".to_owned(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) if a.is_empty() => NONE.to_owned(),
        Value::Array(a) if a.iter().all(|x| !x.is_object() && !x.is_array()) => {
            a.iter().map(cell).collect::<Vec<_>>().join(", ")
        }
        other => other.to_string(),
    }
}

/// Renders rows under headers with columns aligned by two spaces. The last column is not padded.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let cols = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, c) in row.iter().enumerate().take(cols) {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (i, c) in cells.enumerate().take(cols) {
            if i + 1 < cols {
                l.push_str(c);
                let pad = widths[i].saturating_sub(c.chars().count()) + 2;
                l.extend(std::iter::repeat_n(' ', pad));
            } else {
                l.push_str(c);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// Renders a list answer as a table: `columns` are (header, field) pairs; a field may be
/// missing. Other fields are left out. An empty list gives `empty`.
pub fn list(value: &Value, columns: &[(&str, &str)], empty: &str) -> String {
    let items: &[Value] = match value {
        Value::Array(a) => a,
        // Tolerate `{"items": [...]}`-style wrappers.
        Value::Object(o) => match o.values().find_map(Value::as_array) {
            Some(a) => a,
            None => std::slice::from_ref(value),
        },
        _ => std::slice::from_ref(value),
    };
    if items.is_empty() {
        return format!("{empty}\n");
    }
    let headers: Vec<&str> = columns.iter().map(|(h, _)| *h).collect();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|item| {
            columns
                .iter()
                .map(|(_, key)| item.get(*key).map_or_else(|| NONE.to_owned(), cell))
                .collect()
        })
        .collect();
    table(&headers, &rows)
}

/// Flattens an object into `(dotted.key, cell)` pairs (keys sorted, as serde_json keeps them).
pub fn flatten(value: &Value) -> Vec<(String, String)> {
    fn walk(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(o) if !o.is_empty() => {
                for (k, v) in o {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            other => out.push((prefix.to_owned(), cell(other))),
        }
    }
    let mut out = Vec::new();
    walk("", value, &mut out);
    out
}

/// `key  value` lines with the values aligned.
pub fn key_values(pairs: &[(String, String)]) -> String {
    let width = pairs
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (k, v) in pairs {
        let pad = width - k.chars().count() + 2;
        out.push_str(k);
        out.extend(std::iter::repeat_n(' ', pad));
        out.push_str(v);
        out.push('\n');
    }
    out
}

/// An object as aligned `key  value` lines (nested objects with dotted keys).
pub fn object(value: &Value) -> String {
    key_values(&flatten(value))
}

/// Seconds as `1d 02:03:04`.
pub fn duration(seconds: u64) -> String {
    let days = seconds / 86_400;
    let rest = seconds % 86_400;
    let hms = format!(
        "{:02}:{:02}:{:02}",
        rest / 3600,
        (rest % 3600) / 60,
        rest % 60
    );
    if days > 0 {
        format!("{days}d {hms}")
    } else {
        hms
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cells() {
        assert_eq!(cell(&json!(null)), "-");
        assert_eq!(cell(&json!(true)), "yes");
        assert_eq!(cell(&json!(false)), "no");
        assert_eq!(cell(&json!("x y")), "x y");
        assert_eq!(cell(&json!("")), "\"\"");
        assert_eq!(cell(&json!(42)), "42");
        assert_eq!(cell(&json!(["admin", "operator"])), "admin, operator");
        assert_eq!(cell(&json!([])), "-");
        assert_eq!(cell(&json!({"a": 1})), r#"{"a":1}"#);
    }

    #[test]
    fn table_columns_are_aligned_and_unpadded_at_the_end() {
        let t = table(
            &["NAME", "ROLE", "NOTE"],
            &[
                vec!["admin".into(), "admin".into(), "".into()],
                vec!["bob".into(), "operator".into(), "x".into()],
            ],
        );
        assert_eq!(
            t,
            "NAME   ROLE      NOTE\n\
             admin  admin\n\
             bob    operator  x\n"
        );
    }

    #[test]
    fn table_counts_characters_not_bytes() {
        let t = table(&["A", "B"], &[vec!["日本".into(), "x".into()]]);
        assert_eq!(t, "A   B\n日本  x\n");
    }

    #[test]
    fn list_picks_columns_and_marks_missing_fields() {
        let v = json!([
            {"id": "s1", "source": "192.0.2.1", "current": true, "extra": 1},
            {"id": "s22", "current": false}
        ]);
        let t = list(
            &v,
            &[("ID", "id"), ("SOURCE", "source"), ("CURRENT", "current")],
            "none",
        );
        assert_eq!(
            t,
            "ID   SOURCE     CURRENT\n\
             s1   192.0.2.1  yes\n\
             s22  -          no\n"
        );
        assert_eq!(
            list(&json!([]), &[("ID", "id")], "no sessions"),
            "no sessions\n"
        );
        assert_eq!(
            list(&json!({"items": [{"id": "a"}]}), &[("ID", "id")], "x"),
            "ID\na\n"
        );
    }

    #[test]
    fn objects_flatten_with_dotted_keys() {
        let v = json!({
            "device": {"model": "M1"},
            "privilege_separation": {"enabled": true, "child_uid": 999},
            "notices": [],
        });
        assert_eq!(
            object(&v),
            "device.model                    M1\n\
             notices                         -\n\
             privilege_separation.child_uid  999\n\
             privilege_separation.enabled    yes\n"
        );
    }

    #[test]
    fn raw_json_is_verbatim_or_empty_object() {
        let resp = |body: &'static [u8]| ApiResponse {
            status: http::StatusCode::OK,
            headers: http::HeaderMap::new(),
            body: bytes::Bytes::from_static(body),
        };
        assert_eq!(raw_json(&resp(br#"{"b":1, "a":2}"#)), r#"{"b":1, "a":2}"#);
        assert_eq!(raw_json(&resp(b"")), "{}");
    }

    #[test]
    fn durations() {
        assert_eq!(duration(0), "00:00:00");
        assert_eq!(duration(3661), "01:01:01");
        assert_eq!(duration(86_400 + 7322), "1d 02:02:02");
    }
}
