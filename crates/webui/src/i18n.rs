//! Languages, and the words every page shares.
//!
//! Each page module keeps its own texts as one struct with an English and a Japanese value, so
//! a text missing in one language is a compile error, not a blank on the screen (S3.1-43).

use axum::http::{HeaderMap, header};
use mamori_auth::settings::{AccessProblem, RpIdProblem, SettingsProblem};
use mamori_auth::{AuthError, Confirmation, Conflict, Invalid};
use mamori_http::error::ApiError;

/// Cookie that remembers the chosen language. Not a secret; `__Host-` keeps it ours.
pub const LANG_COOKIE: &str = "__Host-lang";

/// A language of the UI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// English.
    En,
    /// Japanese.
    Ja,
}

impl Lang {
    /// The language for a request: the cookie, else the browser's first preference we know.
    pub fn of(headers: &HeaderMap) -> Lang {
        if let Some(l) = crate::cookies::get(headers, LANG_COOKIE).and_then(Lang::parse) {
            return l;
        }
        let accept = headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        for part in accept.split(',') {
            let tag = part.split(';').next().unwrap_or_default().trim();
            let primary = tag.split('-').next().unwrap_or_default();
            if let Some(l) = Lang::parse(&primary.to_ascii_lowercase()) {
                return l;
            }
        }
        Lang::En
    }

    /// Parses `en` or `ja`.
    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "en" => Some(Lang::En),
            "ja" => Some(Lang::Ja),
            _ => None,
        }
    }

    /// The BCP 47 tag for `<html lang>`.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ja => "ja",
        }
    }

    /// The other language, offered by the switcher.
    pub fn other(self) -> Lang {
        match self {
            Lang::En => Lang::Ja,
            Lang::Ja => Lang::En,
        }
    }

    /// The language's own name.
    pub fn name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Ja => "日本語",
        }
    }

    /// A length of time as a reader says it: whole hours, else whole minutes, else seconds.
    pub fn duration(self, secs: u64) -> String {
        let (n, en, ja) = if secs >= 3600 && secs.is_multiple_of(3600) {
            (secs / 3600, "hour", "時間")
        } else if secs >= 60 && secs.is_multiple_of(60) {
            (secs / 60, "minute", "分")
        } else {
            (secs, "second", "秒")
        };
        match self {
            Lang::En if n == 1 => format!("1 {en}"),
            Lang::En => format!("{n} {en}s"),
            Lang::Ja => format!("{n} {ja}"),
        }
    }

    /// Picks the text for this language.
    pub fn pick<T>(self, en: T, ja: T) -> T {
        match self {
            Lang::En => en,
            Lang::Ja => ja,
        }
    }
}

/// Words of the frame around every page.
#[derive(Debug)]
pub struct Common {
    pub product: &'static str,
    pub skip_to_content: &'static str,
    pub nav_label: &'static str,
    pub nav_dashboard: &'static str,
    pub nav_users: &'static str,
    pub nav_access: &'static str,
    pub nav_audit: &'static str,
    pub nav_config: &'static str,
    pub nav_account: &'static str,
    pub logout: &'static str,
    pub signed_in_as: &'static str,
    pub back: &'static str,
    pub error_title: &'static str,
    pub security_info: &'static str,
}

/// The frame's words in English.
pub const COMMON_EN: Common = Common {
    product: "Device management",
    skip_to_content: "Skip to content",
    nav_label: "Main",
    nav_dashboard: "Dashboard",
    nav_users: "Users",
    nav_access: "Management access",
    nav_audit: "Audit log",
    nav_config: "Network",
    nav_account: "My account",
    logout: "Log out",
    signed_in_as: "Signed in as",
    back: "Back",
    error_title: "Something went wrong",
    security_info: "Security information",
};

/// The frame's words in Japanese.
pub const COMMON_JA: Common = Common {
    product: "機器管理",
    skip_to_content: "本文へ移動",
    nav_label: "メイン",
    nav_dashboard: "ダッシュボード",
    nav_users: "ユーザー",
    nav_access: "管理アクセス",
    nav_audit: "監査ログ",
    nav_config: "ネットワーク",
    nav_account: "アカウント",
    logout: "ログアウト",
    signed_in_as: "ログイン中",
    back: "戻る",
    error_title: "エラーが発生しました",
    security_info: "セキュリティ情報",
};

impl Lang {
    /// The frame's words.
    pub fn common(self) -> &'static Common {
        self.pick(&COMMON_EN, &COMMON_JA)
    }
}

/// A refusal in the user's language. Messages come from the service's decision, never from
/// the input: nothing the user typed is echoed back through an error. Every error and reason is
/// matched exhaustively, so a new one does not compile until it has words here (S3.1-43).
pub fn error_message(lang: Lang, e: &ApiError) -> String {
    let text = |en: &str, ja: &str| lang.pick(en, ja).to_string();
    let generic = || {
        text(
            "The request could not be completed.",
            "要求を完了できませんでした。",
        )
    };
    match e {
        ApiError::Auth(a) => auth_message(lang, a),
        ApiError::SourceNotAllowed => text(
            "This address may not use the management service.",
            "このアドレスからは管理機能を利用できません。",
        ),
        ApiError::Busy => text(
            "The device is busy. Try again in a moment.",
            "機器が混み合っています。しばらくしてから再試行してください。",
        ),
        ApiError::BodyTooLarge => text("The form is too large.", "フォームが大きすぎます。"),
        ApiError::BodyTimeout => text(
            "The form did not arrive in time. Try again.",
            "フォームの受信が時間内に完了しませんでした。もう一度送信してください。",
        ),
        ApiError::NotFound => text("Not found.", "見つかりません。"),
        ApiError::ConsoleOnly => text(
            "This is available on the local console only.",
            "この操作はローカルコンソールでのみ行えます。",
        ),
        ApiError::Conflict(_) => text(
            "The device's current state does not allow this.",
            "機器の現在の状態では、この操作は行えません。",
        ),
        // The form's own problems are told on its page; these are what a form never causes
        // (a bad body, a wrong method or type) or what the log keeps (an internal error).
        ApiError::BadRequest(_)
        | ApiError::UnsupportedMediaType
        | ApiError::MethodNotAllowed
        | ApiError::Internal(_) => generic(),
    }
}

fn auth_message(lang: Lang, a: &AuthError) -> String {
    use AuthError as A;
    let ja = lang == Lang::Ja;
    let text = |en: &str, jp: &str| lang.pick(en, jp).to_string();
    match a {
        A::AuthenticationFailed => text(
            "The username or password is wrong.",
            "ユーザー名またはパスワードが違います。",
        ),
        A::MfaRequired => text(
            "The second factor is missing or wrong.",
            "二要素認証のコードまたはセキュリティキーが確認できませんでした。",
        ),
        A::Unauthenticated => text(
            "Your session has ended. Please log in again.",
            "セッションが終了しました。もう一度ログインしてください。",
        ),
        A::Forbidden => text(
            "Your role does not allow this.",
            "このロールではこの操作はできません。",
        ),
        A::PasswordChangeRequired => text(
            "Set a new password first.",
            "先に新しいパスワードを設定してください。",
        ),
        A::MfaEnrollmentRequired => text(
            "Your role requires a second factor. Set one up first.",
            "このロールでは二要素認証が必須です。先に設定してください。",
        ),
        A::TokenNotAllowed => text(
            "API tokens cannot do this; use an interactive session.",
            "API トークンではこの操作はできません。ログインして操作してください。",
        ),
        A::TooManyAttempts { retry_after } => {
            if ja {
                format!(
                    "このアドレスからの失敗が多すぎます。{retry_after} 秒後に再試行してください。"
                )
            } else {
                format!("Too many failed attempts from this address. Try again in {retry_after} s.")
            }
        }
        A::PasswordRejected(r) => {
            if ja {
                format!("このパスワードは使えません: {}", r.reason_ja)
            } else {
                format!("This password cannot be used: it {}", r.reason)
            }
        }
        A::ReauthRequired => text(
            "Confirm your password to continue.",
            "続行するにはパスワードを再入力してください。",
        ),
        A::NotFound(_) => text("Not found.", "見つかりません。"),
        A::InvalidRequest(i) => sentence(lang, i.to_string(), || invalid_ja(i)),
        A::Conflict(c) => sentence(lang, c.to_string(), || conflict_ja(c)),
        A::ConfirmationRequired(c) => sentence(lang, c.to_string(), || match c {
            Confirmation::AllowlistExcludesCaller(addr) => format!(
                "新しい許可リストには、あなたのアドレス {addr} が含まれていません。適用するとこのセッションは切断されます。"
            ),
        }),
        A::Internal(_) => text(
            "The request could not be completed.",
            "要求を完了できませんでした。",
        ),
    }
}

/// The service's English words as a sentence (they are written for the API: lower case, no
/// full stop), or the Japanese words.
fn sentence(lang: Lang, en: String, ja: impl FnOnce() -> String) -> String {
    match lang {
        Lang::Ja => ja(),
        Lang::En => {
            let mut c = en.chars();
            let mut s: String = c
                .next()
                .map(|f| f.to_uppercase().chain(c).collect())
                .unwrap_or_default();
            if !s.ends_with('.') {
                s.push('.');
            }
            s
        }
    }
}

fn invalid_ja(i: &Invalid) -> String {
    match i {
        Invalid::SamePassword => {
            "新しいパスワードは、現在のパスワードと異なるものにしてください。".into()
        }
        Invalid::KeyName => "キーの名前は 1〜64 文字で、制御文字は使えません。".into(),
        Invalid::KeyAnswerMalformed => {
            "セキュリティキーの応答を読み取れませんでした。もう一度やり直してください。".into()
        }
        Invalid::KeyAlgorithm => {
            "受け付けるのは ES256 (ECDSA P-256) のセキュリティキーだけです。".into()
        }
        Invalid::KeyAlgorithmOrTaken => "このセキュリティキーは登録できません。受け付けるのは ES256 (ECDSA P-256) のキーだけで、同じキーを 2 回登録することもできません。".into(),
        Invalid::KeyOrigin { rp_id } => format!(
            "応答がこの登録のものではありません。画面を https://{rp_id} で開き、最初からやり直してください。"
        ),
        Invalid::KeyRefused => "セキュリティキーの応答を受け付けられませんでした。".into(),
        Invalid::TokenDays => "有効期間は 1〜365 日で指定してください。".into(),
        Invalid::TotpCode => "コードが一致しません。機器の時刻を確認し、次のコードで再試行してください。".into(),
        Invalid::NoKeyChallenge => {
            "セキュリティキーの確認が開始されていません。最初からやり直してください。".into()
        }
        Invalid::Settings(p) => match p {
            SettingsProblem::OutOfRange { name, lo, hi } => {
                format!("{name} は {lo}〜{hi} の範囲で指定してください。")
            }
            SettingsProblem::LockoutMaxBelowBase => {
                "lockout_max_seconds は lockout_base_seconds 以上にしてください。".into()
            }
            SettingsProblem::AbsoluteBelowIdle => {
                "absolute_timeout_seconds は idle_timeout_seconds 以上にしてください。".into()
            }
            SettingsProblem::RoleTwice => {
                "mfa_required_roles に同じロールが 2 回含まれています。".into()
            }
            SettingsProblem::RpId(why) => format!(
                "webauthn_rp_id は DNS 名でなければなりません: {}",
                match why {
                    RpIdProblem::Length => "1〜253 文字にしてください。",
                    RpIdProblem::Characters => {
                        "英小文字、数字、「-」「.」だけを使えます (ポートやスキームは付けられません)。"
                    }
                    RpIdProblem::LabelLength => "ドットで区切られた各部分は 1〜63 文字にしてください。",
                    RpIdProblem::LabelHyphen => {
                        "ドットで区切られた各部分は「-」で始めたり終えたりできません。"
                    }
                    RpIdProblem::IpAddress => "IP アドレスは使えません。",
                }
            ),
        },
        Invalid::Access(p) => match p {
            AccessProblem::TooMany { max } => format!("各一覧は最大 {max} 件までです。"),
            AccessProblem::TrustedNotAllowed(net) => format!(
                "信頼済み管理端末 {net} が、許可リストのどのネットワークにも含まれていません。"
            ),
        },
    }
}

fn conflict_ja(c: &Conflict) -> String {
    match c {
        Conflict::KeyLimit { max } => format!(
            "セキュリティキーは 1 アカウントにつき最大 {max} 個までです。先にどれかを削除してください。"
        ),
        Conflict::NoKeyRegistration => {
            "進行中のセキュリティキーの登録がありません。最初からやり直してください。".into()
        }
        Conflict::KeyTaken => "このセキュリティキーは既に登録されています。".into(),
        Conflict::NoSecurityKey => {
            "このアカウントにはセキュリティキーが登録されていません。".into()
        }
        Conflict::UserExists(name) => format!("ユーザー {name} は既に存在します。"),
        Conflict::LastAdmin => "この変更を行うと、有効な管理者がいなくなります。".into(),
        Conflict::DeleteSelf => "自分のアカウントは削除できません。".into(),
        Conflict::TotpEnrolled => "認証アプリは既に設定されています。先に削除してください。".into(),
        Conflict::NoTotpEnrolment => {
            "認証アプリの設定が開始されていません。最初からやり直してください。".into()
        }
        Conflict::TotpNotEnrolled => "認証アプリは設定されていません。".into(),
        Conflict::LastRequiredFactor(role) => format!(
            "ロール {} では二要素認証が必須です。これが最後の第2要素のため削除できません。",
            role.as_str()
        ),
        Conflict::TokenLimit { max } => format!(
            "API トークンは 1 ユーザーにつき最大 {max} 個までです。先にどれかを失効させてください。"
        ),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn durations_read_naturally_in_both_languages() {
        assert_eq!(Lang::En.duration(60), "1 minute");
        assert_eq!(Lang::En.duration(600), "10 minutes");
        assert_eq!(Lang::En.duration(3600), "1 hour");
        assert_eq!(Lang::En.duration(28_800), "8 hours");
        assert_eq!(Lang::En.duration(90), "90 seconds");
        assert_eq!(Lang::Ja.duration(600), "10 分");
        assert_eq!(Lang::Ja.duration(3600), "1 時間");
        assert_eq!(Lang::Ja.duration(45), "45 秒");
    }

    fn with(name: header::HeaderName, v: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_static(v));
        h
    }

    #[test]
    fn cookie_wins_over_accept_language() {
        let mut h = with(header::ACCEPT_LANGUAGE, "ja-JP,ja;q=0.9");
        h.insert(header::COOKIE, HeaderValue::from_static("__Host-lang=en"));
        assert_eq!(Lang::of(&h), Lang::En);
    }

    #[test]
    fn browser_preference_is_followed() {
        assert_eq!(
            Lang::of(&with(header::ACCEPT_LANGUAGE, "ja-JP,en;q=0.5")),
            Lang::Ja
        );
        assert_eq!(
            Lang::of(&with(header::ACCEPT_LANGUAGE, "fr-FR,ja;q=0.5")),
            Lang::Ja
        );
        assert_eq!(Lang::of(&with(header::ACCEPT_LANGUAGE, "fr-FR")), Lang::En);
        assert_eq!(Lang::of(&HeaderMap::new()), Lang::En);
    }

    #[test]
    fn an_unknown_cookie_value_is_ignored() {
        let h = with(header::COOKIE, "__Host-lang=<script>");
        assert_eq!(Lang::of(&h), Lang::En);
    }

    /// Japanese text: at least one kana or kanji.
    fn is_japanese(s: &str) -> bool {
        s.chars()
            .any(|c| matches!(c, '\u{3040}'..='\u{30ff}' | '\u{4e00}'..='\u{9fff}'))
    }

    /// Every reason the authentication service gives, in Japanese words of its own: none is the
    /// service's English, none is a generic fallback shared with another reason.
    #[test]
    fn every_reason_of_the_service_has_japanese_words_of_its_own() {
        use mamori_auth::model::{Role, Username};
        let reasons: Vec<AuthError> = [
            Invalid::SamePassword,
            Invalid::KeyName,
            Invalid::KeyAnswerMalformed,
            Invalid::KeyAlgorithm,
            Invalid::KeyAlgorithmOrTaken,
            Invalid::KeyOrigin {
                rp_id: "gw.example".into(),
            },
            Invalid::KeyRefused,
            Invalid::TokenDays,
            Invalid::TotpCode,
            Invalid::NoKeyChallenge,
            Invalid::Settings(SettingsProblem::OutOfRange {
                name: "lockout_threshold",
                lo: 1,
                hi: 100,
            }),
            Invalid::Settings(SettingsProblem::LockoutMaxBelowBase),
            Invalid::Settings(SettingsProblem::AbsoluteBelowIdle),
            Invalid::Settings(SettingsProblem::RoleTwice),
            Invalid::Settings(SettingsProblem::RpId(RpIdProblem::Length)),
            Invalid::Settings(SettingsProblem::RpId(RpIdProblem::Characters)),
            Invalid::Settings(SettingsProblem::RpId(RpIdProblem::LabelLength)),
            Invalid::Settings(SettingsProblem::RpId(RpIdProblem::LabelHyphen)),
            Invalid::Settings(SettingsProblem::RpId(RpIdProblem::IpAddress)),
            Invalid::Access(AccessProblem::TooMany { max: 64 }),
            Invalid::Access(AccessProblem::TrustedNotAllowed(
                "198.51.100.0/24".parse().unwrap(),
            )),
        ]
        .into_iter()
        .map(AuthError::InvalidRequest)
        .chain(
            [
                Conflict::KeyLimit { max: 16 },
                Conflict::NoKeyRegistration,
                Conflict::KeyTaken,
                Conflict::NoSecurityKey,
                Conflict::UserExists(Username::parse("olivia").unwrap()),
                Conflict::LastAdmin,
                Conflict::DeleteSelf,
                Conflict::TotpEnrolled,
                Conflict::NoTotpEnrolment,
                Conflict::TotpNotEnrolled,
                Conflict::LastRequiredFactor(Role::Admin),
                Conflict::TokenLimit { max: 20 },
            ]
            .into_iter()
            .map(AuthError::Conflict),
        )
        .chain([AuthError::ConfirmationRequired(
            Confirmation::AllowlistExcludesCaller("192.0.2.7".parse().unwrap()),
        )])
        .collect();
        let mut seen = std::collections::BTreeSet::new();
        for a in reasons {
            let service = a.to_string();
            let e = ApiError::Auth(a);
            let ja = error_message(Lang::Ja, &e);
            let en = error_message(Lang::En, &e);
            assert!(is_japanese(&ja), "{service}: {ja}");
            assert!(!ja.contains(&service), "{service}: {ja}");
            assert!(seen.insert(ja.clone()), "two reasons share {ja}");
            // English is the service's own words as a sentence.
            assert!(
                en.to_lowercase().starts_with(&service.to_lowercase()[..5]),
                "{en}"
            );
            assert!(en.ends_with('.'), "{en}");
        }
    }
}
