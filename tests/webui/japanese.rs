//! S3.1-43: security information in Japanese. With the UI in Japanese, what the service layer
//! says about a refusal reaches the page in Japanese: the validation problems of a candidate
//! network configuration (each with its JSON pointer), a candidate that would cut this
//! connection off, a text that is no configuration, a commit refused while another waits, a
//! confirmation by someone other than the committer, and the account's and second factors'
//! refusals. None of the API's English sentences for the same refusal is on the page.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;
use crate::support::*;

/// The English the API answers for a configuration check, as (path, message).
fn api_problems(admin: &Client, cfg: &Value) -> Vec<(String, String)> {
    let r = admin.post("/api/v1/config/check", &json!({ "config": cfg }));
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["ok"], false, "{}", r.text);
    r.body["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["path"].as_str().unwrap().to_string(),
                p["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Japanese text: at least one kana or kanji.
fn is_japanese(s: &str) -> bool {
    s.chars()
        .any(|c| matches!(c, '\u{3040}'..='\u{30ff}' | '\u{4e00}'..='\u{9fff}'))
}

/// The problems the page lists, as text (tags dropped, entities decoded).
fn listed_problems(p: &Page) -> Vec<String> {
    let Some(start) = p.text.find("id=\"problems\"") else {
        return Vec::new();
    };
    let list = &p.text[start..];
    let list = &list[..list.find("</ul>").unwrap()];
    list.split("<li>")
        .skip(1)
        .map(|li| {
            let mut out = String::new();
            let mut in_tag = false;
            for c in li.chars() {
                match c {
                    '<' => in_tag = true,
                    '>' => in_tag = false,
                    c if !in_tag => out.push(c),
                    _ => {}
                }
            }
            unescape(out.trim())
        })
        .collect()
}

/// Words of the service's English that must not reach a Japanese page.
const ENGLISH: [&str; 8] = [
    "refused at step",
    "is defined",
    "must be",
    "would not be allowed",
    "may confirm",
    "waits for confirmation",
    "does not match",
    "expires_in_days",
];

fn assert_no_service_english(what: &str, p: &Page) {
    for e in ENGLISH {
        assert!(
            !p.text.contains(e),
            "{what}: English {e:?} on a Japanese page"
        );
    }
}

/// A managed-network device, the admin's API client and a browser in Japanese, freshly
/// re-authenticated; `None` without root.
fn managed_in_japanese() -> Option<(Device, Client, Browser)> {
    if !is_root() {
        eprintln!("skipped: a device that manages its network runs in a namespace (needs root)");
        return None;
    }
    let d = Device::builder().managed_network().start();
    let admin = d.admin();
    let mut b = browser(&d);
    b.jar.insert(LANG_COOKIE.into(), "ja".into());
    b.login_ok("admin", ADMIN_PASSWORD);
    b.reauth(ADMIN_PASSWORD);
    Some((d, admin, b))
}

fn browser(d: &Device) -> Browser {
    Browser::from(d, &d.netns().unwrap().host_ip.to_string())
}

fn running_config(admin: &Client) -> Value {
    let r = admin.get("/api/v1/config");
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["config"].clone()
}

#[test]
fn validation_problems_of_a_candidate_are_listed_in_japanese_with_their_pointers() {
    let Some((_d, admin, mut b)) = managed_in_japanese() else {
        return;
    };
    let mut cfg = running_config(&admin);
    cfg["nat"]["port_forwards"] = json!([{
        "from_zone": "lan", "proto": "tcp", "external_ports": 8080,
        "internal_address": "10.99.0.5",
    }]);
    cfg["firewall"]["rules"] = json!([{"from": "dmz", "to": "self", "action": "accept"}]);
    cfg["routes"] = json!([{"destination": "10.50.0.0/16", "gateway": "10.60.0.1"}]);
    cfg["protection"]["syn_limit"]["per_second"] = json!(0);
    let english = api_problems(&admin, &cfg);
    assert!(english.len() >= 4, "{english:?}");
    let text = serde_json::to_string_pretty(&cfg).unwrap();

    for (path, id, verdict) in [
        (
            "/ui/config/check",
            "check-refused",
            "この設定は拒否されます (理由: 設定内容の検証で問題が見つかりました)",
        ),
        (
            "/ui/config/commit",
            "commit-refused",
            "確定は拒否されました (理由: 設定内容の検証で問題が見つかりました)",
        ),
    ] {
        let r = b.submit(path, &[("config", &text), ("confirm_minutes", "0")]);
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path}: {}",
            r.text
        );
        assert!(
            r.text.contains(&format!("data-result=\"{id}\"")),
            "{}",
            r.text
        );
        let message = r.text_of("result-message").unwrap();
        assert!(message.starts_with(verdict), "{path}: {message}");
        let listed = listed_problems(&r);
        assert_eq!(listed.len(), english.len(), "{path}: {listed:?}");
        for ((pointer, en), shown) in english.iter().zip(&listed) {
            assert!(
                shown.starts_with(pointer.as_str()),
                "{path}: {shown} for {pointer}"
            );
            assert!(is_japanese(shown), "{path}: {shown}");
            assert!(
                !r.text.contains(en.as_str()),
                "{path}: the API's {en:?} is shown"
            );
        }
        assert!(
            listed
                .iter()
                .any(|l| l.contains("ゾーン dmz は定義されていません")),
            "{listed:?}"
        );
        assert!(
            listed.iter().any(|l| l.contains("1〜10000 の範囲")),
            "{listed:?}"
        );
        assert_no_service_english(path, &r);
    }
}

#[test]
fn a_candidate_that_would_cut_this_connection_off_is_explained_in_japanese() {
    let Some((_d, admin, mut b)) = managed_in_japanese() else {
        return;
    };
    let mut cfg = running_config(&admin);
    cfg["management"]["zones"] = json!(["lan"]);
    let text = serde_json::to_string_pretty(&cfg).unwrap();
    for (path, verdict) in [
        (
            "/ui/config/check",
            "この設定は拒否されます (理由: この管理機能への接続が切断されます)",
        ),
        (
            "/ui/config/commit",
            "確定は拒否されました (理由: この管理機能への接続が切断されます)",
        ),
    ] {
        let r = b.submit(path, &[("config", &text), ("confirm_minutes", "0")]);
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path}: {}",
            r.text
        );
        assert!(
            r.text_of("result-message").unwrap().starts_with(verdict),
            "{path}: {}",
            r.text
        );
        let listed = listed_problems(&r);
        assert_eq!(
            listed,
            ["ゾーン mgmt から管理機能への接続が許可されなくなります (/management/zones)。"],
            "{path}"
        );
        assert_no_service_english(path, &r);
    }

    // A text that is no configuration: the place, in Japanese, not the text.
    let mut bad = running_config(&admin);
    bad["interfaces"][0]["name"] = json!("eth 0<b>");
    let text = serde_json::to_string_pretty(&bad).unwrap();
    let r = b.submit("/ui/config/check", &[("config", &text)]);
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let message = r.text_of("result-message").unwrap();
    assert_eq!(
        message,
        "ネットワーク設定として読み取れません: 「interfaces[0].name」: インターフェース名は 1〜15 バイトの英字、数字、「.」「_」「-」で、「.」や「..」は使えません。"
    );
    assert!(!r.text.contains("an interface name is"), "{}", r.text);
}

#[test]
fn refusals_while_a_commit_waits_are_in_japanese_and_only_its_author_may_confirm() {
    let Some((d, admin, mut b)) = managed_in_japanese() else {
        return;
    };
    let mut cfg = running_config(&admin);
    cfg["nat"]["port_forwards"] = json!([{
        "from_zone": "lan", "proto": "tcp", "external_ports": 8080,
        "internal_address": "192.168.77.10",
    }]);
    let text = serde_json::to_string_pretty(&cfg).unwrap();
    let r = b.submit(
        "/ui/config/commit",
        &[("config", &text), ("confirm_minutes", "10")],
    );
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);

    // Another commit while this one waits.
    let r = b.submit(
        "/ui/config/commit",
        &[("config", &text), ("confirm_minutes", "0")],
    );
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    let message = r.text_of("result-message").unwrap();
    assert!(
        message.starts_with("確定は拒否されました (理由: 承認待ちの変更があります)"),
        "{message}"
    );
    assert_no_service_english("a commit while one waits", &r);

    // Another administrator, in Japanese: told who must confirm, and refused.
    create_user(&d, &admin, "zz-admin2", "admin");
    let mut other = browser(&d);
    other.jar.insert(LANG_COOKIE.into(), "ja".into());
    other.login_ok("zz-admin2", USER_PASSWORD);
    let page = other.get("/ui/config");
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.text_of("pending-who")
            .is_some_and(|w| w.contains("確定した admin だけです")),
        "{}",
        page.text
    );
    assert_no_service_english("the banner", &page);
    let r = other.submit("/ui/config/confirm", &[]);
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(
        r.form_error().as_deref(),
        Some("この変更を承認できるのは、確定した admin だけです。")
    );
    assert_no_service_english("a confirmation by another", &r);
    assert!(!r.text.contains("only admin"), "{}", r.text);

    // The author confirms; then nothing waits, which a second confirmation is told.
    let r = b.submit("/ui/config/confirm", &[]);
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let r = b.submit("/ui/config/confirm", &[]);
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert!(
        r.form_error()
            .is_some_and(|m| m.starts_with("承認待ちの変更はありません")),
        "{}",
        r.text
    );
    assert_no_service_english("a confirmation of nothing", &r);
}

/// The account's and the second factors' refusals, which the authentication service gives
/// as typed reasons (no network management needed).
#[test]
fn account_and_second_factor_refusals_are_in_japanese() {
    let (_d, _admin, mut b) = device_with_admin();
    b.jar.insert(LANG_COOKIE.into(), "ja".into());
    b.reauth(ADMIN_PASSWORD);

    let r = b.submit(
        "/ui/account/tokens",
        &[("name", "ci"), ("role", "viewer"), ("days", "400")],
    );
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(
        r.text_of("token-error").as_deref(),
        Some("有効期間は 1〜365 日で指定してください。")
    );

    let r = b.submit(
        "/ui/account/password",
        &[
            ("current", ADMIN_PASSWORD),
            ("new", ADMIN_PASSWORD),
            ("confirm", ADMIN_PASSWORD),
        ],
    );
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(
        r.text_of("password-error").as_deref(),
        Some("新しいパスワードは、現在のパスワードと異なるものにしてください。")
    );

    let r = b.submit("/ui/account/mfa/totp/disable", &[]);
    assert_eq!(
        r.form_error().as_deref(),
        Some("認証アプリは設定されていません。"),
        "{}",
        r.text
    );

    // A wrong first code while enrolling: the page again, with the reason in Japanese.
    let enroll = b.submit("/ui/account/mfa/totp", &[]);
    assert_eq!(enroll.status, StatusCode::OK, "{}", enroll.text);
    let (action, fields) = enroll.form(Some("totp-form"));
    let code_form: Vec<(String, String)> = fields
        .into_iter()
        .map(|(k, v)| {
            if k == "code" {
                (k, "000000".into())
            } else {
                (k, v)
            }
        })
        .collect();
    let refs: Vec<(&str, &str)> = code_form
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(action, "/ui/account/mfa/totp/verify");
    let r = b.post(&action, &refs);
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(
        r.form_error().as_deref(),
        Some("コードが一致しません。機器の時刻を確認し、次のコードで再試行してください。")
    );
    assert_no_service_english("the TOTP enrolment", &r);
}
