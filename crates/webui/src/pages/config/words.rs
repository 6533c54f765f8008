//! The service layer's refusals and failures in the reader's language (S3.1-43).
//!
//! The configuration service answers with typed errors: validation problems
//! ([`ErrorKind`]), the anti-lockout check ([`ManagementCut`]), refusals ([`Refusal`]), reverts
//! ([`RevertReason`]), errors of the history ([`ConfigError`]) and of the editor's text
//! ([`JsonRefusal`], [`NameError`]). In English a page shows the service's own words (the API's
//! messages); in Japanese each kind has its translation here, in an exhaustive `match`, so a new
//! kind does not compile until it is translated. Nothing is matched on English text.
//!
//! What stays as it came: the names and JSON pointers the messages quote (they are the
//! configuration's own), and the output of the system tools (nft, ip) in a failed dry run or
//! load, which is shown as that tool's output, labelled as such.

use mamori_config::{ConfigError, Refusal, RevertReason, RevisionInfo, RevisionNote};
use mamori_http::extract::{JsonKind, JsonPath, JsonRefusal, JsonStep};
use mamori_http::handlers::config::Problem;
use mamori_netconfig::{
    Comment, ErrorKind, Family, FamilyPart, IfName, ManagementCut, NameError, Named, PortRange,
    Prefix, SetName, ZoneName,
};
use serde_json::Value;

use crate::i18n::Lang;

/// A refusal's problems, each with its JSON pointer where it has one.
pub fn problems(lang: Lang, refusal: &Refusal) -> Vec<Problem> {
    match refusal {
        Refusal::Invalid(errors) => errors
            .0
            .iter()
            .map(|e| Problem {
                path: e.path.clone(),
                message: kind(lang, &e.kind),
            })
            .collect(),
        Refusal::CutsManagement(cut) => vec![Problem {
            path: String::new(),
            message: management_cut(lang, cut),
        }],
        Refusal::Check(e) => vec![Problem {
            path: String::new(),
            message: match lang {
                Lang::En => refusal.to_string(),
                Lang::Ja => format!("試行適用で拒否されました。システムの出力: {}", e.0),
            },
        }],
        Refusal::Pending { revision } => vec![Problem {
            path: String::new(),
            message: match lang {
                Lang::En => refusal.to_string(),
                Lang::Ja => format!("リビジョン {revision} が承認待ちです。"),
            },
        }],
    }
}

/// A validation problem.
pub fn kind(lang: Lang, k: &ErrorKind) -> String {
    match lang {
        Lang::En => k.to_string(),
        Lang::Ja => kind_ja(k),
    }
}

fn kind_ja(k: &ErrorKind) -> String {
    use ErrorKind as K;
    match k {
        K::AddressUnusable => "インターフェースのアドレスには使えません (未指定、ループバック、マルチキャストのアドレスは使えません)。".into(),
        K::DuplicateInterface(name) => format!("インターフェース {name} が 2 回記載されています。"),
        K::DuplicatePolicy(at) => {
            format!("同じゾーンの組み合わせのゾーン間ポリシーが {at} にあります。")
        }
        K::DuplicateRoute(at) => format!("同じ宛先へのルートが {at} にあります。"),
        K::DuplicateSet(name) => format!("アドレスセット {name} が 2 回定義されています。"),
        K::DuplicateZone(name) => format!("ゾーン {name} が 2 回定義されています。"),
        K::DhcpNotOnWan => "DHCP クライアントは、役割が wan のインターフェースでだけ使えます。".into(),
        K::EmptyPrefixList => "空のアドレス一覧は何にも一致しません。条件を付けない場合は、この項目を省略してください。".into(),
        K::FamilyMismatch {
            part,
            family,
            other,
            other_family,
        } => format!(
            "アドレスファミリーが一致しません: {} は {} ですが、{} は {} です。",
            family_part_ja(*part),
            family_name(*family),
            family_part_ja(*other),
            family_name(*other_family)
        ),
        K::ForwardToDevice => "ポートフォワーディングの転送先が、この機器自身のアドレスです。".into(),
        K::ForwardToNowhere => "ポートフォワーディングの転送先アドレスが、どの LAN のサブネットにも含まれていません。".into(),
        K::GatewayIsOwnAddress => "ゲートウェイが、この機器自身のアドレスです。".into(),
        K::GatewayNotConnected => "ゲートウェイが、直接接続されたどのサブネットにも含まれていません。".into(),
        K::InterfaceInTwoZones { interface, other } => {
            format!("インターフェース {interface} は、既に {other} のゾーンに属しています。")
        }
        K::MixedFamilies => "アドレスの一覧に IPv4 と IPv6 が混在しています。".into(),
        K::ManagementPortZero => "管理ポートに 0 は指定できません。".into(),
        K::OverlappingSubnets(at) => format!("{at} のサブネットと重なっています。"),
        K::OverlappingSetEntries(at) => format!("{at} のエントリーと重なっています。"),
        K::PortsWithoutTcpUdp => "ポートを指定するには、proto に tcp または udp が必要です。".into(),
        K::OutOfRange { min, max } => format!("{min}〜{max} の範囲で指定してください。"),
        K::ReservedZone => "「self」はこの機器自身を表します。ゾーンとして定義することも、送信元のゾーンにすることもできません。".into(),
        K::RouteFamilyMismatch => "ゲートウェイと宛先のアドレスファミリー (IPv4/IPv6) が異なります。".into(),
        K::SetEntryFamily(want) => format!("エントリーが {want} のアドレスではありません。"),
        K::TooMany { max, got } => format!("最大 {max} 件までです ({got} 件あります)。"),
        K::UnknownInterface(name) => format!("インターフェース {name} は設定されていません。"),
        K::UnknownSet(name) => format!("アドレスセット {name} は定義されていません。"),
        K::UnknownZone(name) => format!("ゾーン {name} は定義されていません。"),
        K::DuplicateAddress(at) => format!("同じアドレスが {at} にもあります。"),
    }
}

fn family_name(f: Family) -> &'static str {
    match f {
        Family::Ipv4 => "IPv4",
        Family::Ipv6 => "IPv6",
    }
}

fn family_part_ja(p: FamilyPart) -> &'static str {
    match p {
        FamilyPart::RuleFamily => "ルールの family",
        FamilyPart::Icmp => "proto の icmp",
        FamilyPart::Icmpv6 => "proto の icmpv6",
        FamilyPart::Set => "アドレスセット (set)",
        FamilyPart::Prefixes => "アドレスの一覧 (prefixes)",
        FamilyPart::Source => "送信元 (source)",
        FamilyPart::InternalAddress => "転送先アドレス (internal_address)",
    }
}

/// Why a candidate would cut the committing connection off (the anti-lockout check).
pub fn management_cut(lang: Lang, cut: &ManagementCut) -> String {
    if lang == Lang::En {
        return cut.to_string();
    }
    use ManagementCut as C;
    match cut {
        C::ListenerAddressRemoved => "この管理機能が待ち受けているアドレスが、どのインターフェースにもなくなります (/interfaces)。".into(),
        C::PortChanged => "管理ポートが、この管理機能が待ち受けているポートと異なります (/management/port)。".into(),
        C::NoRouteBack => "この接続の送信元へ戻る経路を持つインターフェースがなくなります (/interfaces、/routes)。".into(),
        C::InterfaceInNoZone(name) => {
            format!("インターフェース {name} がどのゾーンにも属さなくなります (/firewall/zones)。")
        }
        C::ZoneNotAllowed(zone) => format!(
            "ゾーン {zone} から管理機能への接続が許可されなくなります (/management/zones)。"
        ),
        C::SourceNotAllowed => "この接続の送信元が、管理機能への接続を許可する送信元 (/management/sources) に含まれなくなります。".into(),
        C::RuleDrops(at) => format!("{at} のルールが、この接続の送信元からの新しい接続を破棄します。"),
    }
}

/// A revision's comment. What the device wrote itself (the rescue configuration, a revert, a
/// rollback without a comment) it also noted, typed, and that is worded here; what a person
/// wrote is shown as they wrote it.
pub fn comment(lang: Lang, info: &RevisionInfo) -> String {
    match (lang, &info.note) {
        (Lang::En, _) | (Lang::Ja, None) => info.comment.clone(),
        (Lang::Ja, Some(RevisionNote::Rescue)) => {
            "レスキュー用の設定 (この機器のインターフェースに対する工場出荷時設定)".into()
        }
        (Lang::Ja, Some(RevisionNote::RollbackTo { revision })) => {
            format!("r{revision} への切り戻し")
        }
        (Lang::Ja, Some(RevisionNote::Revert { from, to, reason })) => format!(
            "r{from} から r{to} への自動切り戻し: {}",
            revert_reason(lang, reason)
        ),
    }
}

/// Why a commit was undone.
pub fn revert_reason(lang: Lang, r: &RevertReason) -> String {
    if lang == Lang::En {
        return r.to_string();
    }
    match r {
        RevertReason::ApplyFailed(e) => format!("適用に失敗しました。システムの出力: {}", e.0),
        RevertReason::ProbeFailed(e) => {
            format!("適用後の動作確認に失敗しました。システムの出力: {}", e.0)
        }
        RevertReason::Timeout { .. } => "期限までに承認されませんでした".into(),
        RevertReason::Restart {
            same_boot: Some(true),
            ..
        } => "確定または承認待ちの間に mamori が再起動しました".into(),
        RevertReason::Restart {
            same_boot: Some(false),
            ..
        } => "確定または承認待ちの間に機器が再起動しました".into(),
        RevertReason::Restart {
            same_boot: None, ..
        } => "確定または承認待ちの間に再起動がありました".into(),
        RevertReason::Interrupted => "以前の切り戻しが完了していませんでした".into(),
    }
}

/// A failure of the configuration history, for the page's "could not be completed: …".
/// Internal failures say so without their details (those go to the daemon's log).
pub fn history_failure(lang: Lang, e: &ConfigError) -> String {
    let internal = || {
        lang.pick(
            "internal error",
            "内部エラーが発生しました (詳細は機器のログに記録されています)",
        )
        .to_string()
    };
    match e {
        ConfigError::Store(_) | ConfigError::Corrupt(_) | ConfigError::RescueInvalid(_) => {
            internal()
        }
        ConfigError::NotFound(id) => match lang {
            Lang::En => e.to_string(),
            Lang::Ja => format!("リビジョン {id} はありません"),
        },
        ConfigError::NoPending => match lang {
            Lang::En => e.to_string(),
            Lang::Ja => "承認待ちの変更はありません".into(),
        },
        ConfigError::WindowExpired { .. } => match lang {
            Lang::En => e.to_string(),
            Lang::Ja => "承認期限が過ぎました".into(),
        },
        ConfigError::NotCommitter { committer } => match lang {
            Lang::En => e.to_string(),
            Lang::Ja => format!("この変更を承認できるのは、確定した {committer} だけです"),
        },
        ConfigError::RevertFailed {
            revision,
            cause,
            error,
        } => match lang {
            Lang::En => e.to_string(),
            Lang::Ja => format!(
                "リビジョン {revision} への切り戻しに失敗しました (システムの出力: {}。切り戻しの理由: {})",
                error.0,
                revert_reason(lang, cause)
            ),
        },
    }
}

/// Why the editor's text is not a network configuration. The place is named (line and
/// column, or the field's path); the text itself is never repeated.
pub fn not_a_configuration(lang: Lang, e: &JsonRefusal, text: &str) -> String {
    if lang == Lang::En {
        return e.to_string();
    }
    match e {
        JsonRefusal::NotAnObject => {
            "設定は JSON のオブジェクト ({ で始まるもの) でなければなりません。".into()
        }
        JsonRefusal::Malformed { line, column } => {
            format!("{line} 行 {column} 列目が JSON として正しくありません。")
        }
        JsonRefusal::TrailingData => "JSON のオブジェクトの後に余分なデータがあります。".into(),
        JsonRefusal::UnknownField { parent, expected } => format!(
            "{}に定義されていない項目があります。使える項目: {}",
            place(parent),
            names(expected)
        ),
        JsonRefusal::UnknownVariant { at, expected } => format!(
            "{}の値は次のいずれかでなければなりません: {}",
            place(at),
            names(expected)
        ),
        JsonRefusal::MissingField { name } => format!("必須の項目「{name}」がありません。"),
        JsonRefusal::WrongType { at, kind } => {
            format!("{} には{}を指定してください。", place(at), json_kind(*kind))
        }
        JsonRefusal::Refused { at, .. } => match refused_value(at, text) {
            Some(ValueProblem::Name(n)) => format!("{}: {}", place(at), name_error_ja(&n)),
            Some(ValueProblem::Address) => {
                format!("{}は IP アドレスとして読み取れません。", place(at))
            }
            None => format!(
                "{}の値を受け付けられません。形式はネットワーク設定のマニュアル (docs/netconfig.md) を参照してください。",
                place(at)
            ),
        },
    }
}

fn place(at: &JsonPath) -> String {
    if at.is_body() {
        "設定の最上位".to_string()
    } else {
        format!("「{}」", at.text)
    }
}

/// The names in serde's list of what it expected (`one of `a`, `b``): our own field and
/// variant names, between backquotes.
fn names(expected: &str) -> String {
    let list: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    if list.is_empty() {
        "docs/netconfig.md を参照してください".into()
    } else {
        list.join("、")
    }
}

fn json_kind(k: JsonKind) -> &'static str {
    match k {
        JsonKind::String => "文字列",
        JsonKind::Bool => " true または false ",
        JsonKind::Number => "範囲内の整数",
        JsonKind::Array => "配列",
        JsonKind::Object => "オブジェクト",
        JsonKind::Other => "マニュアルに記載された形式の値",
    }
}

/// A single value's problem, as the model's own types tell it.
fn name_error_ja(e: &NameError) -> String {
    match e {
        NameError::Comment { max } => format!(
            "コメントは {max} バイト以内の表示可能な文字で、改行などの制御文字は使えません。"
        ),
        NameError::Interface => "インターフェース名は 1〜15 バイトの英字、数字、「.」「_」「-」で、「.」や「..」は使えません。".into(),
        NameError::Identifier { what } => format!(
            "{}名は 1〜32 文字で、英小文字で始まり、英小文字、数字、「_」だけを使えます。",
            match what {
                Named::Zone => "ゾーン",
                Named::Set => "アドレスセット",
            }
        ),
        NameError::NotAPrefix => {
            "IP アドレスまたはプレフィックス (アドレス/長さ) として読み取れません。".into()
        }
        NameError::HostBits(net, want) => format!(
            "プレフィックス {net} にはホスト部のビットが含まれています ({want} の誤りではありませんか)。"
        ),
        NameError::PortRange => "ポートの範囲は 1〜65535 で、開始は終了以下でなければなりません。".into(),
        NameError::PortSyntax => "ポートは数値で、範囲は「開始-終了」の形式で指定します。".into(),
    }
}

/// What was wrong with a value the model refused while reading the text.
enum ValueProblem {
    /// The model's own check, found again by parsing the value with the type that lives at
    /// its place.
    Name(NameError),
    /// Not an IP address.
    Address,
}

/// Finds the typed reason for a value refused while decoding. serde carries a type's refusal
/// only as text, so the value is looked up at its path and parsed again with the type that
/// field holds (known from the field's name in the model); `None` if that does not find it.
fn refused_value(at: &JsonPath, text: &str) -> Option<ValueProblem> {
    let doc: Value = serde_json::from_str(text).ok()?;
    let mut v = &doc;
    for step in &at.steps {
        v = match step {
            JsonStep::Key(k) => v.get(k)?,
            JsonStep::Index(i) => v.get(i)?,
        };
    }
    let keys: Vec<&str> = at
        .steps
        .iter()
        .filter_map(|s| match s {
            JsonStep::Key(k) => Some(k.as_str()),
            JsonStep::Index(_) => None,
        })
        .collect();
    let (last, before) = match keys.as_slice() {
        [.., b, l] => (*l, Some(*b)),
        [l] => (*l, None),
        [] => return None,
    };
    let name = |e: Result<(), NameError>| e.err().map(ValueProblem::Name);
    let s = v.as_str();
    match (last, before) {
        ("comment", _) => name(Comment::parse(s?).map(drop)),
        ("name", Some("interfaces")) | ("interfaces", Some("zones")) => {
            name(IfName::parse(s?).map(drop))
        }
        ("name", Some("zones"))
        | ("from" | "to" | "from_zone" | "out_zone", _)
        | ("zones", Some("management")) => name(ZoneName::parse(s?).map(drop)),
        ("name", Some("sets")) | ("set", _) => name(SetName::parse(s?).map(drop)),
        ("ports" | "external_ports", _) => match v {
            Value::Number(n) => name(
                n.as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .map_or(Err(NameError::PortRange), |p| {
                        PortRange::single(p).map(drop)
                    }),
            ),
            _ => name(PortRange::parse(s?).map(drop)),
        },
        // An interface's addresses may have host bits (they are the device's own addresses):
        // serde refused only what is no address/length at all.
        ("addresses", Some("interfaces")) => Some(ValueProblem::Name(NameError::NotAPrefix)),
        ("prefixes" | "entries" | "sources" | "destination" | "source", _) => {
            let s = s?;
            // JSON takes only address/length here; a bare address is not a prefix.
            if !s.contains('/') {
                return Some(ValueProblem::Name(NameError::NotAPrefix));
            }
            name(Prefix::parse(s).map(drop))
        }
        ("gateway" | "internal_address", _) => s?
            .parse::<std::net::IpAddr>()
            .is_err()
            .then_some(ValueProblem::Address),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use mamori_netconfig::ZoneName;

    use super::*;

    fn zone(s: &str) -> ZoneName {
        ZoneName::parse(s).unwrap()
    }

    /// One of every validation kind. `index` below is an exhaustive match: a new kind fails
    /// to compile there, and the test fails until it is listed here too.
    fn every_kind() -> Vec<ErrorKind> {
        use ErrorKind as K;
        let eth = IfName::parse("eth0").unwrap();
        vec![
            K::AddressUnusable,
            K::DuplicateInterface(eth.clone()),
            K::DuplicatePolicy("/firewall/policies/0".into()),
            K::DuplicateRoute("/routes/0".into()),
            K::DuplicateSet(SetName::parse("blocked").unwrap()),
            K::DuplicateZone(zone("lan")),
            K::DhcpNotOnWan,
            K::EmptyPrefixList,
            K::FamilyMismatch {
                part: FamilyPart::Set,
                family: Family::Ipv4,
                other: FamilyPart::RuleFamily,
                other_family: Family::Ipv6,
            },
            K::ForwardToDevice,
            K::ForwardToNowhere,
            K::GatewayIsOwnAddress,
            K::GatewayNotConnected,
            K::InterfaceInTwoZones {
                interface: eth.clone(),
                other: "/firewall/zones/0".into(),
            },
            K::MixedFamilies,
            K::ManagementPortZero,
            K::OverlappingSubnets("/interfaces/0/addresses/0".into()),
            K::OverlappingSetEntries("/firewall/sets/0/entries/0".into()),
            K::PortsWithoutTcpUdp,
            K::OutOfRange { min: 1, max: 6000 },
            K::ReservedZone,
            K::RouteFamilyMismatch,
            K::SetEntryFamily("IPv6"),
            K::TooMany {
                max: 20_000,
                got: 20_001,
            },
            K::UnknownInterface(eth),
            K::UnknownSet(SetName::parse("blocked").unwrap()),
            K::UnknownZone(zone("dmz")),
            K::DuplicateAddress("/interfaces/1/addresses/0".into()),
        ]
    }

    fn index(k: &ErrorKind) -> usize {
        use ErrorKind as K;
        match k {
            K::AddressUnusable => 0,
            K::DuplicateInterface(_) => 1,
            K::DuplicatePolicy(_) => 2,
            K::DuplicateRoute(_) => 3,
            K::DuplicateSet(_) => 4,
            K::DuplicateZone(_) => 5,
            K::DhcpNotOnWan => 6,
            K::EmptyPrefixList => 7,
            K::FamilyMismatch { .. } => 8,
            K::ForwardToDevice => 9,
            K::ForwardToNowhere => 10,
            K::GatewayIsOwnAddress => 11,
            K::GatewayNotConnected => 12,
            K::InterfaceInTwoZones { .. } => 13,
            K::MixedFamilies => 14,
            K::ManagementPortZero => 15,
            K::OverlappingSubnets(_) => 16,
            K::OverlappingSetEntries(_) => 17,
            K::PortsWithoutTcpUdp => 18,
            K::OutOfRange { .. } => 19,
            K::ReservedZone => 20,
            K::RouteFamilyMismatch => 21,
            K::SetEntryFamily(_) => 22,
            K::TooMany { .. } => 23,
            K::UnknownInterface(_) => 24,
            K::UnknownSet(_) => 25,
            K::UnknownZone(_) => 26,
            K::DuplicateAddress(_) => 27,
        }
    }

    /// Japanese text: at least one kana or kanji.
    fn is_japanese(s: &str) -> bool {
        s.chars()
            .any(|c| matches!(c, '\u{3040}'..='\u{30ff}' | '\u{4e00}'..='\u{9fff}'))
    }

    #[test]
    fn every_validation_kind_has_its_own_japanese_words() {
        let kinds = every_kind();
        let mut seen: Vec<usize> = kinds.iter().map(index).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen, (0..=27).collect::<Vec<_>>(), "every kind, once");
        for k in &kinds {
            let en = kind(Lang::En, k);
            let ja = kind(Lang::Ja, k);
            assert_eq!(en, k.to_string(), "English is the service's own words");
            assert!(!ja.trim().is_empty(), "{k:?}");
            assert_ne!(ja, en, "{k:?}");
            assert!(is_japanese(&ja), "{k:?}: {ja}");
            assert!(!ja.contains('{'), "{k:?}: a placeholder is left: {ja}");
        }
        // The values the message names come through.
        let ja = kind(Lang::Ja, &kinds[26]);
        assert!(ja.contains("dmz"), "{ja}");
    }

    #[test]
    fn every_cut_reason_and_revert_reason_is_japanese() {
        let cuts = [
            ManagementCut::ListenerAddressRemoved,
            ManagementCut::PortChanged,
            ManagementCut::NoRouteBack,
            ManagementCut::InterfaceInNoZone(IfName::parse("mgmt0").unwrap()),
            ManagementCut::ZoneNotAllowed(zone("mgmt")),
            ManagementCut::SourceNotAllowed,
            ManagementCut::RuleDrops("/firewall/rules/3".into()),
        ];
        for c in &cuts {
            let ja = management_cut(Lang::Ja, c);
            assert!(is_japanese(&ja) && ja != c.to_string(), "{c:?}: {ja}");
            assert_eq!(management_cut(Lang::En, c), c.to_string());
        }
        let when = time::OffsetDateTime::UNIX_EPOCH;
        let err = mamori_config::ApplyError("nft: syntax error".into());
        for r in [
            RevertReason::ApplyFailed(err.clone()),
            RevertReason::ProbeFailed(err),
            RevertReason::Timeout { deadline: when },
            RevertReason::Restart {
                same_boot: Some(true),
                deadline: None,
            },
            RevertReason::Restart {
                same_boot: Some(false),
                deadline: None,
            },
            RevertReason::Restart {
                same_boot: None,
                deadline: Some(when),
            },
            RevertReason::Interrupted,
        ] {
            let ja = revert_reason(Lang::Ja, &r);
            assert!(is_japanese(&ja) && ja != r.to_string(), "{r:?}: {ja}");
        }
    }

    #[test]
    fn every_history_failure_is_japanese_and_internal_ones_say_no_more() {
        for e in [
            ConfigError::NotFound(9),
            ConfigError::NoPending,
            ConfigError::WindowExpired {
                deadline: time::OffsetDateTime::UNIX_EPOCH,
            },
            ConfigError::NotCommitter {
                committer: "alice".into(),
            },
            ConfigError::Corrupt("no state"),
        ] {
            let ja = history_failure(Lang::Ja, &e);
            assert!(is_japanese(&ja) && !ja.contains("confirm"), "{e:?}: {ja}");
        }
        assert!(
            !history_failure(Lang::Ja, &ConfigError::Corrupt("secret detail")).contains("secret")
        );
        assert_eq!(
            history_failure(Lang::En, &ConfigError::NoPending),
            "no commit waits for confirmation"
        );
    }

    #[test]
    fn what_the_device_recorded_itself_is_worded_and_what_people_wrote_is_kept() {
        let info = |comment: &str, note| RevisionInfo {
            id: 4,
            author: "mamori".into(),
            channel: mamori_config::Channel::Timeout,
            time: time::OffsetDateTime::UNIX_EPOCH,
            comment: comment.into(),
            note,
        };
        let revert = info(
            "revert r3 to r2: not confirmed before the deadline",
            Some(RevisionNote::Revert {
                from: 3,
                to: 2,
                reason: RevertReason::Timeout {
                    deadline: time::OffsetDateTime::UNIX_EPOCH,
                },
            }),
        );
        assert_eq!(
            comment(Lang::Ja, &revert),
            "r3 から r2 への自動切り戻し: 期限までに承認されませんでした"
        );
        assert_eq!(comment(Lang::En, &revert), revert.comment);
        let rescue = info("rescue configuration (…)", Some(RevisionNote::Rescue));
        assert!(comment(Lang::Ja, &rescue).starts_with("レスキュー用の設定"));
        let rollback = info(
            "rollback to r1",
            Some(RevisionNote::RollbackTo { revision: 1 }),
        );
        assert_eq!(comment(Lang::Ja, &rollback), "r1 への切り戻し");
        let typed = info("camera <b>on</b> the lan", None);
        assert_eq!(comment(Lang::Ja, &typed), "camera <b>on</b> the lan");
    }

    fn refusal_of(text: &str) -> JsonRefusal {
        mamori_http::extract::decode_json_as::<mamori_netconfig::NetworkConfig>(text.as_bytes())
            .unwrap_err()
    }

    #[test]
    fn a_text_that_is_not_a_configuration_is_explained_in_japanese_without_echo() {
        let base = serde_json::to_value(mamori_netconfig::NetworkConfig::factory(vec![
            mamori_netconfig::Interface::new(
                IfName::parse("lan0").unwrap(),
                mamori_netconfig::Role::Lan,
            ),
        ]))
        .unwrap();
        let with = |f: &dyn Fn(&mut Value)| {
            let mut v = base.clone();
            f(&mut v);
            v.to_string()
        };
        let cases: Vec<(String, &str)> = vec![
            ("[]".into(), "オブジェクト"),
            ("{\"interfaces\": [}".into(), "1 行"),
            (format!("{base} x"), "余分なデータ"),
            (
                with(&|v| v["bogus<b>"] = Value::Null),
                "定義されていない項目",
            ),
            (
                with(&|v| v["interfaces"][0]["role"] = "router<script>".into()),
                "lan、mgmt、wan",
            ),
            (
                with(&|v| v["interfaces"][0]["name"] = "eth 0<script>".into()),
                "インターフェース名は",
            ),
            (
                with(&|v| v["firewall"]["zones"][0]["name"] = "LAN<script>".into()),
                "ゾーン名は",
            ),
            (
                with(&|v| v["management"]["sources"] = serde_json::json!(["10.0.0.1/8"])),
                "ホスト部",
            ),
            (
                with(&|v| v["interfaces"][0]["addresses"] = serde_json::json!(["10.0.0.1"])),
                "アドレス/長さ",
            ),
            (
                with(&|v| v["management"]["port"] = "443<script>".into()),
                "整数",
            ),
            (
                with(&|v| {
                    v["interfaces"][0].as_object_mut().unwrap().remove("role");
                }),
                "必須の項目「role」",
            ),
            (
                with(&|v| {
                    v["routes"] =
                        serde_json::json!([{"destination": "10.9.0.0/16", "gateway": "gw<b>"}])
                }),
                "IP アドレスとして",
            ),
            (
                with(&|v| {
                    v["firewall"]["rules"] = serde_json::json!([{
                        "from": "lan", "to": "self", "proto": "tcp", "ports": ["90-x<b>"], "action": "accept"
                    }]);
                }),
                "ポートは数値",
            ),
        ];
        for (text, want) in cases {
            let e = refusal_of(&text);
            let ja = not_a_configuration(Lang::Ja, &e, &text);
            assert!(ja.contains(want), "{e:?}: {ja}");
            assert!(is_japanese(&ja), "{e:?}: {ja}");
            for leak in ["<script>", "<b>", "router", "must", "expected", "unknown"] {
                assert!(!ja.contains(leak), "{e:?}: {ja} has {leak}");
            }
            assert_eq!(not_a_configuration(Lang::En, &e, &text), e.to_string());
        }
    }
}
