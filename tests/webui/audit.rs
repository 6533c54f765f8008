//! The audit log page (S3.1-35, S3.1-41, CWE-79, CWE-285, CWE-352): only auditors and
//! administrators read and export it; hostile filter values and hostile data inside records
//! come back inert; an export is a file and is recorded; older pages reach every record once;
//! the purge of personal data needs an administrator, a fresh re-authentication and a form
//! from our own pages, and is recorded; nothing can change or delete a single record.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;
use crate::support::*;

/// Audit records as the API lists them (`query` without the leading `?`), oldest first.
fn events(admin: &Client, query: &str) -> Vec<Value> {
    let r = admin.get(&format!("/api/v1/audit/events?limit=1000&{query}"));
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body.as_array().expect("a list of records").clone()
}

fn count(admin: &Client, event: &str) -> usize {
    events(admin, &format!("event={event}")).len()
}

/// The rows of the records table: (seq, event) of each, as the page lists them.
fn rows(p: &Page) -> Vec<(u64, String)> {
    p.tags()
        .into_iter()
        .filter(|t| t.name == "tr")
        .filter_map(|t| {
            let seq = t.attr("data-seq")?.parse().ok()?;
            Some((seq, t.attr("data-event")?.to_string()))
        })
        .collect()
}

/// The `href` of the element with this id.
fn href(p: &Page, id: &str) -> Option<String> {
    p.tags()
        .into_iter()
        .find(|t| t.attr("id") == Some(id))
        .and_then(|t| t.attr("href").map(str::to_string))
}

fn nav_links(p: &Page) -> Vec<String> {
    let nav = p
        .text
        .split("<nav aria-label")
        .nth(1)
        .and_then(|n| n.split("</nav>").next())
        .unwrap_or_default();
    tags(nav)
        .into_iter()
        .filter(|t| t.name == "a")
        .filter_map(|t| t.attr("href").map(str::to_string))
        .collect()
}

/// S3.1-35 R5 / CWE-285: the log and its export open to auditors and administrators only.
/// Viewers and operators are refused both (and nothing is exported on their behalf), and
/// their menu has no entry for it; auditors read and export but are offered no purge, and a
/// purge they send is refused.
#[test]
fn only_auditors_and_admins_open_the_log_and_its_export() {
    let (d, admin, mut a) = device_with_admin();
    for (name, role) in [
        ("zz-viewer", "viewer"),
        ("zz-operator", "operator"),
        ("zz-auditor", "auditor"),
    ] {
        create_user(&d, &admin, name, role);
    }
    for (i, name) in ["zz-viewer", "zz-operator"].into_iter().enumerate() {
        let mut b = Browser::from(&d, &format!("127.0.0.{}", 20 + i));
        b.login_ok(name, USER_PASSWORD);
        for path in [
            "/ui/audit",
            "/ui/audit?event=login_failed",
            "/ui/audit/export",
            "/ui/audit/export?event=login_succeeded",
        ] {
            let r = b.get(path);
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{name} {path}: {}", r.text);
            assert!(
                r.text_of("error-message")
                    .is_some_and(|m| m.contains("role does not allow")),
                "{name} {path}: {}",
                r.text
            );
            assert!(!r.text.contains("audit-records"), "{name} {path}");
            assert!(r.header("content-disposition").is_none(), "{name} {path}");
        }
        let home = b.get("/ui/");
        assert_eq!(home.status, StatusCode::OK);
        assert!(
            !nav_links(&home).iter().any(|l| l.starts_with("/ui/audit")),
            "{name}: {:?}",
            nav_links(&home)
        );
        assert!(!home.text.contains("href=\"/ui/audit"), "{name}");
    }
    assert_eq!(
        count(&admin, "audit_log_exported"),
        0,
        "exported for a refused role"
    );

    let mut auditor = Browser::from(&d, "127.0.0.22");
    auditor.login_ok("zz-auditor", USER_PASSWORD);
    let home = auditor.get("/ui/");
    assert!(nav_links(&home).contains(&"/ui/audit".to_string()));
    let page = auditor.get("/ui/audit");
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.has_id("audit-records") && page.has_id("log-status"));
    assert!(
        page.text
            .contains("<a href=\"/ui/audit\" aria-current=\"page\">Audit log</a>")
    );
    assert!(
        !page.has_id("purge-form"),
        "an auditor is offered the purge"
    );
    assert!(!page.text.contains("/ui/audit/purge"));
    let r = auditor.get("/ui/audit/export");
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = auditor.submit(
        "/ui/audit/purge",
        &[("before", "2026-01-01"), ("confirm", "on")],
    );
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(
        !r.has_id("reauth-form"),
        "refused by role, not asked to confirm"
    );
    assert_eq!(count(&admin, "personal_data_purged"), 0);
    let exported = events(&admin, "event=audit_log_exported");
    assert_eq!(exported.len(), 1, "{exported:?}");
    assert_eq!(exported[0]["actor"], "zz-auditor");

    let page = a.get("/ui/audit");
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.has_id("purge-form"),
        "the administrator is offered the purge"
    );
    assert!(nav_links(&page).contains(&"/ui/audit".to_string()));
}

/// CWE-79: the classic payloads in every filter parameter, of the page and of the export,
/// come back inert; each value that is not understood is named next to its own field (the
/// message never repeats it), no record is listed, and nothing is exported.
#[test]
fn hostile_filter_values_come_back_inert_and_are_named_next_to_their_field() {
    let (_d, admin, mut b) = device_with_admin();
    let params = [
        "since",
        "until",
        "event",
        "actor",
        "outcome",
        "from_seq",
        "before_seq",
    ];
    for p in PAYLOADS {
        let all = params
            .iter()
            .map(|k| format!("{k}={}", enc(p)))
            .collect::<Vec<_>>()
            .join("&");
        for path in [
            format!("/ui/audit?{all}"),
            format!("/ui/audit/export?{all}"),
        ] {
            let r = b.get(&path);
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {}", r.text);
            assert_inert(&path, &r.text, p);
            for id in [
                "since-error",
                "until-error",
                "event-error",
                "outcome-error",
                "from-seq-error",
            ] {
                let m = r
                    .text_of(id)
                    .unwrap_or_else(|| panic!("{path}: no {id}: {}", r.text));
                assert!(!m.contains(p), "{path}: {id} echoes the value: {m}");
            }
            assert!(!r.has_id("actor-error"), "{path}: a short username is fine");
            assert_eq!(
                r.input(Some("filter-form"), "actor").as_deref(),
                Some(*p),
                "{path}: what was typed comes back as the field's value, as text"
            );
            assert!(!r.has_id("audit-records") && !r.has_id("export"), "{path}");
            assert!(r.form_error().is_some(), "{path}: the summary is shown");
        }
        for k in params {
            for page in ["/ui/audit", "/ui/audit/export"] {
                let path = format!("{page}?{k}={}", enc(p));
                let r = b.get(&path);
                assert!(
                    r.status == StatusCode::OK || r.status == StatusCode::BAD_REQUEST,
                    "{path}: {} {}",
                    r.status,
                    r.text
                );
                if r.header("content-type")
                    .is_some_and(|c| c.starts_with("text/html"))
                {
                    assert_inert(&path, &r.text, p);
                } else {
                    // Only a valid filter exports: a username (which no record has), or the
                    // paging position, which a bad value leaves out and an export ignores.
                    assert!(k == "actor" || k == "before_seq", "{path} exported");
                    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
                    assert_eq!(r.text.is_empty(), k == "actor", "{path}: {}", r.text);
                }
            }
        }
    }
    let long = "a".repeat(65);
    let r = b.get(&format!("/ui/audit?actor={long}"));
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.has_id("actor-error"));
    // Only the exports of valid filters were recorded.
    let exported = events(&admin, "event=audit_log_exported");
    assert_eq!(exported.len(), 2 * PAYLOADS.len(), "{exported:?}");
    let by_actor: Vec<_> = exported
        .iter()
        .filter(|e| e["details"]["filter"]["actor"] == true)
        .collect();
    assert_eq!(by_actor.len(), PAYLOADS.len(), "{exported:?}");
    assert!(by_actor.iter().all(|e| e["details"]["records"] == 0));
}

/// CWE-79 (stored): a failed login with markup as the username (recorded as typed) and an
/// API token named with markup (its name is in the record's details) are listed on the page
/// as text, found by the user filter, and inert.
#[test]
fn records_carrying_markup_render_inert() {
    let (d, admin, mut b) = device_with_admin();
    for (i, p) in PAYLOADS.iter().enumerate() {
        // One source each, so that the source throttle does not stop the attempts.
        let mut attacker = Browser::from(&d, &format!("127.0.0.{}", 30 + i));
        let r = attacker.login(p, WRONG_PASSWORD);
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{p}: {}", r.text);
        admin.reauth(ADMIN_PASSWORD);
        let r = admin.post(
            "/api/v1/tokens",
            &json!({"name": p, "role": "viewer", "expires_in_days": 1}),
        );
        assert_eq!(r.status, StatusCode::CREATED, "{p}: {}", r.text);
    }
    let failed = events(&admin, "event=login_failed");
    for p in PAYLOADS {
        assert!(
            failed.iter().any(|e| e["actor"] == *p),
            "{p} is recorded as typed: {failed:?}"
        );
    }

    for path in [
        "/ui/audit",
        "/ui/audit?event=login_failed",
        "/ui/audit?event=token_created",
        "/ui/audit?outcome=failure",
    ] {
        let r = b.get(path);
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
        let text = unescape(&r.text);
        for p in PAYLOADS {
            assert_inert(path, &r.text, p);
            if path != "/ui/audit?event=token_created" {
                assert!(text.contains(p), "{path}: {p} is shown as text");
            }
        }
    }
    let r = b.get("/ui/audit?event=token_created");
    let text = unescape(&r.text);
    for p in PAYLOADS {
        assert!(text.contains(&format!("name: {p}")), "{p}: {}", r.text);
    }

    for p in PAYLOADS {
        let path = format!("/ui/audit?actor={}", enc(p));
        let r = b.get(&path);
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
        assert_inert(&path, &r.text, p);
        let found = rows(&r);
        assert!(
            !found.is_empty() && found.iter().all(|(_, e)| e == "login_failed"),
            "{path}: {found:?}"
        );
        // The older link and the export carry the filter encoded: still ours, still inert.
        let export = href(&r, "export").unwrap();
        assert!(
            export.starts_with("/ui/audit/export?actor=") && !export.contains('<'),
            "{export}"
        );
    }
}

/// S3.1-35 R5: the export is the filtered records as a JSON-lines file (an attachment, which
/// the browser saves, not shows), the same records the page lists, and the export itself is
/// recorded with who asked, how many records and which filter.
#[test]
fn the_export_is_a_file_of_the_filtered_records_and_is_recorded() {
    let (d, admin, mut b) = device_with_admin();
    let mut attacker = Browser::from(&d, "127.0.0.2");
    let r = attacker.login("zz-nobody", WRONG_PASSWORD);
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let page = b.get("/ui/audit?event=login_failed&outcome=failure");
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let listed = rows(&page);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(page.text.contains("zz-nobody"));
    let link = href(&page, "export").unwrap();
    assert_eq!(link, "/ui/audit/export?event=login_failed&outcome=failure");

    let r = b.get(&link);
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    let disposition = r.header("content-disposition").unwrap_or_default();
    assert!(
        disposition.starts_with("attachment;") && disposition.contains(".jsonl"),
        "{disposition}"
    );
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    let lines: Vec<Value> = r
        .text
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 1, "{}", r.text);
    assert_eq!(lines[0]["event"], "login_failed");
    assert_eq!(lines[0]["actor"], "zz-nobody");
    assert_eq!(lines[0]["seq"], listed[0].0);

    let exported = events(&admin, "event=audit_log_exported");
    assert_eq!(exported.len(), 1, "{exported:?}");
    let e = &exported[0];
    assert_eq!(e["actor"], "admin");
    assert_eq!(e["outcome"], "success");
    assert_eq!(e["details"]["records"], 1, "{e}");
    assert_eq!(e["details"]["filter"]["event"], "login_failed", "{e}");
    assert_eq!(e["details"]["filter"]["outcome"], "failure", "{e}");
    assert_eq!(e["details"]["filter"]["actor"], false, "{e}");

    // The page lists the export too.
    let page = b.get("/ui/audit?event=audit_log_exported");
    assert_eq!(rows(&page).len(), 1, "{}", page.text);
    // A HEAD exports nothing.
    let rb = b.request("HEAD", &link);
    let r = b.send(rb);
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(count(&admin, "audit_log_exported"), 1);
}

/// Paging: following the "older" links from the newest page lists every matching record
/// exactly once, newest first, 100 to a page — filtered and unfiltered — and the last page
/// offers no older link.
#[test]
fn older_pages_reach_every_record_once() {
    let (d, admin, mut b) = device_with_admin();
    create_user(&d, &admin, "zz-operator", "operator");
    let op = d.client_from("127.0.0.3");
    assert_eq!(
        op.login("zz-operator", USER_PASSWORD).status,
        StatusCode::OK
    );
    // Each refusal is one access_denied record: 230 of them, between other records.
    for _ in 0..230 {
        assert_eq!(op.get("/api/v1/users").status, StatusCode::FORBIDDEN);
    }
    for (filter, event) in [("event=access_denied", Some("access_denied")), ("", None)] {
        let want: Vec<u64> = events(&admin, filter)
            .iter()
            .rev()
            .map(|e| e["seq"].as_u64().unwrap())
            .collect();
        assert!(want.len() >= 230, "{}", want.len());
        let mut seen = Vec::new();
        let mut next = Some(if filter.is_empty() {
            "/ui/audit".to_string()
        } else {
            format!("/ui/audit?{filter}")
        });
        let mut pages = 0;
        while let Some(path) = next {
            let r = b.get(&path);
            assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
            let page = rows(&r);
            assert!(page.len() <= 100, "{path}: {}", page.len());
            if let Some(e) = event {
                assert!(page.iter().all(|(_, k)| k == e), "{path}");
            }
            seen.extend(page.iter().map(|(s, _)| *s));
            next = href(&r, "older");
            if next.is_some() {
                assert_eq!(page.len(), 100, "{path}: a short page offers older ones");
                assert!(r.has_id("audit-records"));
            }
            if pages > 0 {
                assert!(href(&r, "newest").is_some(), "{path}: no way back");
            }
            pages += 1;
            assert!(pages < 20, "paging does not end");
        }
        // The records written while paging (none: reading is not recorded) aside, the pages
        // are the API's list, newest first, each record once.
        let unique: BTreeSet<u64> = seen.iter().copied().collect();
        assert_eq!(unique.len(), seen.len(), "a record listed twice");
        assert_eq!(seen, want, "{filter}");
        assert!(pages >= 3, "{filter}: {pages} pages");
    }
    // A paging position from elsewhere still gives a page of ours.
    for before in ["0", "1", "99999999999", "x"] {
        let r = b.get(&format!("/ui/audit?before_seq={before}"));
        assert_eq!(r.status, StatusCode::OK, "{before}: {}", r.text);
    }
}

/// The fields of the re-authentication prompt with the password filled in.
fn confirm_fields(prompt: &Page) -> Vec<(String, String)> {
    prompt
        .form(Some("reauth-form"))
        .1
        .into_iter()
        .map(|(k, v)| {
            let v = if k == "password" {
                ADMIN_PASSWORD.to_string()
            } else {
                v
            };
            (k, v)
        })
        .collect()
}

fn post_owned(b: &mut Browser, path: &str, fields: &[(String, String)]) -> Page {
    let refs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    b.post(path, &refs)
}

/// S3.1-41 / S3.1-01 R2: the purge of personal data stops at the re-authentication prompt
/// (nothing purged, nothing recorded), continues after the password, runs once, is recorded
/// with who and which date, and says what it did; a missing confirmation, a date in the
/// future or not a date is refused next to its field and purges nothing.
#[test]
fn purging_personal_data_needs_a_fresh_confirmation_and_is_recorded() {
    let (_d, admin, mut b) = device_with_admin();
    let page = b.get("/ui/audit");
    let today = page
        .tags()
        .into_iter()
        .find(|t| t.attr("id") == Some("purge-before"))
        .and_then(|t| t.attr("max").map(str::to_string))
        .expect("the date input says the latest date");
    assert_eq!(today.len(), 10, "{today}");

    let r = b.submit(
        "/ui/audit/purge",
        &[("before", today.as_str()), ("confirm", "on")],
    );
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(r.has_id("reauth-form"), "{}", r.text);
    assert_eq!(
        r.input(Some("reauth-form"), "action").as_deref(),
        Some("/ui/audit/purge")
    );
    assert_eq!(
        r.input(Some("reauth-form"), "keep.before").as_deref(),
        Some(today.as_str())
    );
    assert_eq!(
        count(&admin, "personal_data_purged"),
        0,
        "purged unconfirmed"
    );

    let confirmed = post_owned(&mut b, "/ui/reauth", &confirm_fields(&r));
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.text);
    let (action, fields) = confirmed.form(Some("continue-form"));
    assert_eq!(action, "/ui/audit/purge");
    assert_eq!(
        count(&admin, "personal_data_purged"),
        0,
        "the prompt itself purged"
    );
    let done = post_owned(&mut b, &action, &fields);
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text);
    let to = done.location().unwrap().to_string();
    assert!(to.starts_with("/ui/audit?purged="), "{to}");
    let shown = b.get(&to);
    assert_eq!(shown.status, StatusCode::OK);
    assert!(shown.text_of("notice").is_some(), "{}", shown.text);

    let purged = events(&admin, "event=personal_data_purged");
    assert_eq!(purged.len(), 1, "{purged:?}");
    assert_eq!(purged[0]["actor"], "admin");
    assert_eq!(purged[0]["outcome"], "success");
    assert_eq!(
        purged[0]["details"]["before"],
        format!("{today}T00:00:00Z"),
        "{}",
        purged[0]
    );

    // Still confirmed (for a few minutes): refusals of the form itself.
    for (fields, id) in [
        (vec![("before", today.as_str())], "purge-confirm-error"),
        (
            vec![("before", "2999-01-01"), ("confirm", "on")],
            "purge-before-error",
        ),
        (
            vec![("before", "yesterday"), ("confirm", "on")],
            "purge-before-error",
        ),
        (vec![("confirm", "on")], "purge-before-error"),
    ] {
        let r = b.submit("/ui/audit/purge", &fields);
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{fields:?}: {}",
            r.text
        );
        assert!(r.has_id(id), "{fields:?}: no {id}: {}", r.text);
        assert_clean_html("purge refusal", &r.text);
    }
    assert_eq!(count(&admin, "personal_data_purged"), 1);
}

/// CWE-352: a purge sent from another site — with the victim's re-authenticated session and
/// even with the right token — or without the token is refused as forged and purges nothing.
#[test]
fn a_cross_site_purge_is_refused() {
    let (_d, admin, mut b) = device_with_admin();
    b.reauth(ADMIN_PASSWORD);
    let right = b.token();
    let fields = |token: Option<&str>| {
        let mut all = vec![("before", "2026-01-01"), ("confirm", "on")];
        if let Some(t) = token {
            all.push(("csrf", t));
        }
        form_body(&all)
    };
    let post = |b: &Browser, body: String| {
        b.request("POST", "/ui/audit/purge")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    };
    let variants = [
        (
            "cross-site with the right token",
            post(&b, fields(Some(&right)))
                .header("origin", "https://evil.example")
                .header("sec-fetch-site", "cross-site"),
        ),
        (
            "null origin",
            post(&b, fields(Some(&right))).header("origin", "null"),
        ),
        ("no token", post(&b, fields(None))),
        (
            "wrong token",
            post(&b, fields(Some(&"0".repeat(right.len())))),
        ),
    ];
    for (what, rb) in variants {
        let r = b.clone().send(rb);
        assert!(r.is_forged_refusal(), "{what}: {} {}", r.status, r.text);
    }
    assert_eq!(count(&admin, "personal_data_purged"), 0);
    // The same form from our own page works (so the refusals above are not vacuous).
    let origin = format!("https://{}", b.authority);
    let rb = post(&b, fields(Some(&right)))
        .header("origin", &origin)
        .header("sec-fetch-site", "same-origin");
    let r = b.send(rb);
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(count(&admin, "personal_data_purged"), 1);
}

/// S3.1-35: nobody can edit or delete a single record. The registry has no route under
/// /ui/audit that changes anything but the purge; writing methods on the log's paths are
/// refused, and afterwards every record is as it was.
#[test]
fn no_route_changes_or_deletes_a_record() {
    let writing: Vec<String> = routes()
        .into_iter()
        .filter(|r| r.path.starts_with("/ui/audit") && r.method != "GET")
        .map(|r| r.what())
        .collect();
    assert_eq!(writing, ["POST /ui/audit/purge"]);

    let (_d, admin, mut b) = device_with_admin();
    b.reauth(ADMIN_PASSWORD);
    let before = events(&admin, "");
    let first = before[0]["seq"].as_u64().unwrap();
    let token = b.token();
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        for path in [
            "/ui/audit".to_string(),
            "/ui/audit/export".to_string(),
            format!("/ui/audit/{first}"),
            format!("/ui/audit/{first}/delete"),
            format!("/ui/audit/records/{first}"),
            "/ui/audit/purge".to_string(),
        ] {
            if method == "POST" && path == "/ui/audit/purge" {
                continue;
            }
            let rb = b
                .request(method, &path)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form_body(&[
                    ("csrf", &token),
                    ("seq", &first.to_string()),
                    ("event", "login_succeeded"),
                    ("actor", "someone-else"),
                ]));
            let r = b.send(rb);
            assert!(
                r.status == StatusCode::NOT_FOUND || r.status == StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}: {} {}",
                r.status,
                r.text
            );
        }
    }
    let after = events(&admin, "");
    assert!(after.len() >= before.len());
    assert_eq!(&after[..before.len()], &before[..], "a record changed");
}
