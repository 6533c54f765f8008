//! The password policy against the examples of JC-STAR ★3 S3.1-02 (spec/REQUIREMENTS.md) and
//! its test idea for R1, R2-1 and R2-2. Each test names the behaviour it requires.

use mamori_password_policy::{Context, Policy, Rejection, Rule};

/// The policy at the standard's floor of 8 characters, so that the standard's own 8-character
/// examples reach the pattern rules.
fn at_min_8() -> Policy {
    Policy {
        min_length: 8,
        ..Policy::default()
    }
}

fn none() -> Context<'static> {
    Context::default()
}

/// Asserts that `password` is rejected under `rule`, and that the reasons do not echo it.
#[track_caller]
fn assert_rejected(policy: &Policy, password: &str, ctx: &Context, rule: Rule) -> Rejection {
    let rejection = match policy.check(password, ctx) {
        Ok(()) => panic!("{password:?} was accepted, expected rule {rule:?}"),
        Err(r) => r,
    };
    assert_eq!(rejection.rule, rule, "{password:?}: {rejection:?}");
    for reason in [&rejection.reason, &rejection.reason_ja] {
        assert!(!reason.is_empty());
        assert!(
            !reason.to_lowercase().contains(&password.to_lowercase()),
            "{password:?}: reason echoes the password: {reason}"
        );
    }
    rejection
}

#[track_caller]
fn assert_accepted(policy: &Policy, password: &str, ctx: &Context) {
    if let Err(r) = policy.check(password, ctx) {
        panic!("{password:?} was rejected: {r:?}");
    }
}

// ---- Length (R1, R2-1) ---------------------------------------------------------------------

/// S3.1-02 R2-1 test idea: "A 7-character password must be rejected."
#[test]
fn rejects_seven_characters_at_a_minimum_of_eight_under_length() {
    let r = assert_rejected(&at_min_8(), "Vq7#mZ2", &none(), Rule::Length);
    assert_eq!(r.reason, "is shorter than 8 characters");
    assert_eq!(r.reason_ja, "8文字未満です");
}

/// S3.1-02 R1/R2-1: at least 8 characters is always enforced, whatever the configuration.
#[test]
fn never_accepts_fewer_than_eight_characters_even_if_configured_lower() {
    let lax = Policy {
        min_length: 4,
        max_length: 128,
    };
    assert_rejected(&lax, "Vq7#mZ2", &none(), Rule::Length);
    assert_accepted(&lax, "Vq7#mZ2p", &none());
}

/// S3.1-02: the default policy asks for 12 characters.
#[test]
fn requires_twelve_characters_by_default() {
    assert_rejected(&Policy::default(), "Vq7#mZ2p!Lx", &none(), Rule::Length);
    assert_accepted(&Policy::default(), "Vq7#mZ2p!Lx9", &none());
}

/// S3.1-02: length is counted in characters (Unicode scalar values), not bytes, so a kana
/// passphrase of 12 characters is long enough and 11 are not.
#[test]
fn counts_length_in_characters_not_bytes() {
    assert_rejected(
        &Policy::default(),
        "きょうはいいてんきです",
        &none(),
        Rule::Length,
    );
    assert_accepted(&Policy::default(), "きょうはいいてんきですね", &none());
}

/// S3.1-02: a 64-character password (a password manager's) always fits; longer than the
/// configured maximum is rejected, and the maximum cannot be configured below 64.
#[test]
fn rejects_more_than_the_maximum_but_always_allows_sixty_four_characters() {
    let p64 = random_like(64, 7);
    let policy = Policy {
        min_length: 12,
        max_length: 64,
    };
    assert_accepted(&policy, &p64, &none());
    let p65 = random_like(65, 7);
    let r = assert_rejected(&policy, &p65, &none(), Rule::Length);
    assert_eq!(r.reason, "is longer than 64 characters");
    let too_small_max = Policy {
        min_length: 12,
        max_length: 10,
    };
    assert_accepted(&too_small_max, &p64, &none());
    assert_rejected(
        &Policy::default(),
        &random_like(129, 7),
        &none(),
        Rule::Length,
    );
}

/// S3.1-02: control characters are rejected under the length rule (documented choice).
#[test]
fn rejects_control_characters_under_length() {
    let r = assert_rejected(&at_min_8(), "Vq7#mZ2p\nLx9", &none(), Rule::Length);
    assert_eq!(r.reason, "contains control characters");
    assert_rejected(&at_min_8(), "Vq7#mZ2p\0Lx9", &none(), Rule::Length);
    assert_rejected(&at_min_8(), "Vq7#mZ2p\u{7f}Lx9", &none(), Rule::Length);
}

// ---- A: common strings and simple patterns --------------------------------------------------

/// S3.1-02 R2-2 test idea: "password1" must be rejected (A: the common string "password").
#[test]
fn rejects_password1_under_rule_a() {
    let r = assert_rejected(&at_min_8(), "password1", &none(), Rule::A);
    assert_eq!(r.reason, "is mostly the common string \"password\"");
    assert_eq!(r.reason_ja, "ほとんどがよく使われる文字列「password」です");
}

/// S3.1-02 R2-2 test idea: "admin123" must be rejected (A: "admin" plus a counter).
#[test]
fn rejects_admin123_under_rule_a() {
    assert_rejected(&at_min_8(), "admin123", &none(), Rule::A);
}

/// S3.1-02 A: product and default strings are found through case and leet substitutions.
#[test]
fn rejects_common_strings_in_disguise_under_rule_a() {
    for pw in [
        "P@ssw0rd!",
        "Adm1n!2024",
        "R00t-r00t!",
        "Mamori2024!",
        "ChangeMe123",
        "guest#guest",
    ] {
        assert_rejected(&at_min_8(), pw, &none(), Rule::A);
    }
}

/// S3.1-02 A: a common string with enough else around it is not "mostly" that string.
#[test]
fn accepts_a_common_string_inside_a_long_random_password() {
    assert_accepted(&Policy::default(), "admin-Vq7#mZ2p!Lx9", &none());
}

/// S3.1-02 R2-2 test idea: "qwertyui" must be rejected (A: keyboard pattern).
#[test]
fn rejects_keyboard_walks_under_rule_a() {
    let r = assert_rejected(&at_min_8(), "qwertyui", &none(), Rule::A);
    assert_eq!(r.reason, "is a keyboard pattern");
    for pw in [
        "1qaz2wsx3edc",
        "asdfghjkl;",
        "zxcvbnm,./",
        "QWERasdf1234",
        "!QAZ@WSX#EDC",
    ] {
        assert_rejected(&at_min_8(), pw, &none(), Rule::A);
    }
}

/// S3.1-02 A: a keyboard walk followed by a counter is still mostly a keyboard pattern.
#[test]
fn rejects_a_keyboard_walk_with_a_counter_under_rule_a() {
    let r = assert_rejected(&at_min_8(), "qwer1234", &none(), Rule::A);
    assert_eq!(r.reason, "contains the keyboard pattern \"qwer\"");
}

/// S3.1-02 A: a password on the common-password list that is neither a word nor a counter.
#[test]
fn rejects_listed_common_passwords_under_rule_a() {
    let r = assert_rejected(&at_min_8(), "trustno1", &none(), Rule::A);
    assert_eq!(r.reason, "is on the list of commonly used passwords");
    assert_rejected(&at_min_8(), "trustno1!!", &none(), Rule::A);
}

// ---- B: words, names and places ------------------------------------------------------------

/// S3.1-02 B ("baseball"): a dictionary word with a year and a symbol is still the word.
#[test]
fn rejects_a_dictionary_word_with_digits_and_symbols_under_rule_b() {
    let r = assert_rejected(&Policy::default(), "Baseball2024!", &none(), Rule::B);
    assert_eq!(r.reason, "is built on the dictionary word \"baseball\"");
    assert_eq!(r.reason_ja, "辞書にある単語「baseball」をもとにしています");
    assert_rejected(&at_min_8(), "mustang1", &none(), Rule::B);
    assert_rejected(&at_min_8(), "Mu$tang99", &none(), Rule::B);
}

/// S3.1-02 B ("michael"): a personal name with a counter.
#[test]
fn rejects_a_personal_name_with_a_counter_under_rule_b() {
    let r = assert_rejected(&Policy::default(), "Michael#1234", &none(), Rule::B);
    assert_eq!(r.reason, "is built on the personal name \"michael\"");
    assert_rejected(&Policy::default(), "Sakura-20240401", &none(), Rule::B);
    assert_rejected(&Policy::default(), "Tanaka!!1234", &none(), Rule::B);
}

/// S3.1-02 B: a place name with a counter; "tokyo12345678" is reported as B (the place), the
/// more specific finding, although its digits are also a counter.
#[test]
fn rejects_a_place_name_with_a_counter_under_rule_b() {
    let r = assert_rejected(&Policy::default(), "tokyo12345678", &none(), Rule::B);
    assert_eq!(r.reason, "is built on the place name \"tokyo\"");
    assert_rejected(&Policy::default(), "NewYork-2024!", &none(), Rule::B);
    assert_rejected(&Policy::default(), "Hokkaido20240", &none(), Rule::B);
}

/// S3.1-02 B: one dictionary word plus a letter counter.
#[test]
fn rejects_one_word_plus_a_counter_under_rule_b() {
    assert_rejected(&Policy::default(), "elephantxyz!", &none(), Rule::B);
    assert_rejected(&Policy::default(), "2024elephant", &none(), Rule::B);
}

/// S3.1-02 B concerns single words; a passphrase of several words is not easily guessable.
#[test]
fn accepts_a_passphrase_of_several_words() {
    assert_accepted(&Policy::default(), "correct horse battery staple", &none());
    assert_accepted(&Policy::default(), "tsukimi-dango-kaze-7", &none());
}

// ---- C: counters --------------------------------------------------------------------------

/// S3.1-02 R2-2 test idea: "12345678" must be rejected (C: a counter).
#[test]
fn rejects_12345678_under_rule_c() {
    let r = assert_rejected(&at_min_8(), "12345678", &none(), Rule::C);
    assert_eq!(r.reason, "is a sequence of consecutive characters");
}

/// S3.1-02 R2-2 test idea: "aaaaaaaa" must be rejected (C: one character repeated).
#[test]
fn rejects_aaaaaaaa_under_rule_c() {
    let r = assert_rejected(&at_min_8(), "aaaaaaaa", &none(), Rule::C);
    assert_eq!(r.reason, "is one character repeated");
}

/// S3.1-02 C ("1234abcd"): sequences of letters and digits, ascending and descending.
#[test]
fn rejects_sequences_under_rule_c() {
    for pw in ["1234abcd", "abcd1234", "abcdefgh", "98765432", "zyxwvuts"] {
        assert_rejected(&at_min_8(), pw, &none(), Rule::C);
    }
    let r = assert_rejected(&Policy::default(), "9876543210ab", &none(), Rule::C);
    assert_eq!(r.reason, "is mostly sequences such as \"9876543210\"");
}

/// S3.1-02 C: repeated blocks are counters too.
#[test]
fn rejects_repeated_blocks_under_rule_c() {
    let r = assert_rejected(&Policy::default(), "abcabcabcabc", &none(), Rule::C);
    assert_eq!(r.reason, "is mostly the block \"abc\" repeated");
    assert_rejected(&at_min_8(), "12121212", &none(), Rule::C);
    assert_rejected(&Policy::default(), "xk7qxk7qxk7q", &none(), Rule::C);
}

// ---- D: public information ----------------------------------------------------------------

const MAC: &str = "00:1A:2B:3C:4D:5E";

fn device<'a>(macs: &'a [String], ssids: &'a [String]) -> Context<'a> {
    Context {
        username: "yamada",
        model: "MR-7000X",
        serial: "MMR2403A0017",
        hostname: "gw-office",
        macs,
        ssids,
    }
}

/// S3.1-02 D / R1 test idea: derivation from the unit's MAC "(any case, with/without
/// separators, last-n hex)".
#[test]
fn rejects_the_mac_address_in_any_form_under_rule_d() {
    let macs = [MAC.to_owned()];
    let ctx = device(&macs, &[]);
    let r = assert_rejected(&at_min_8(), "pw-001a2b3c4d5e", &ctx, Rule::D);
    assert!(r.reason.contains("4d:5e"), "{}", r.reason);
    for pw in [
        "00:1A:2B:3C:4D:5E",
        "00-1a-2b-3c-4d-5e!",
        "001a.2b3c.4d5e#x",
        "mypass-3C4D5E",
        "3c:4d:5e-router!",
        "x2B3C4D5Ey-zz",
    ] {
        assert_rejected(&at_min_8(), pw, &ctx, Rule::D);
    }
}

/// S3.1-02 D / R2-2 test idea: "the serial ... must be rejected".
#[test]
fn rejects_the_serial_number_under_rule_d() {
    let ctx = device(&[], &[]);
    let r = assert_rejected(&at_min_8(), "MMR2403A0017", &ctx, Rule::D);
    assert_eq!(r.reason, "is the serial number");
    let r = assert_rejected(&at_min_8(), "mmr2403a0017-ok!", &ctx, Rule::D);
    assert_eq!(r.reason, "contains the serial number \"mmr2403a0017\"");
    assert_eq!(r.reason_ja, "シリアル番号「mmr2403a0017」が含まれています");
}

/// S3.1-02 D / R2-2 test idea: "the model name ... must be rejected", also without its
/// separators.
#[test]
fn rejects_the_model_name_under_rule_d() {
    let ctx = device(&[], &[]);
    assert_rejected(&at_min_8(), "MR-7000X", &ctx, Rule::D);
    assert_rejected(&at_min_8(), "my-mr7000x-pass", &ctx, Rule::D);
}

/// S3.1-02 D: the SSID and host name are public too.
#[test]
fn rejects_the_ssid_and_host_name_under_rule_d() {
    let ssids = ["MAMORI-5G-4D5E".to_owned()];
    let ctx = device(&[], &ssids);
    assert_rejected(&Policy::default(), "mamori-5g-4d5e!", &ctx, Rule::D);
    assert_rejected(&Policy::default(), "GW-Office-2024", &ctx, Rule::D);
}

/// S3.1-02 D: the user name, forwards, backwards or in leet.
#[test]
fn rejects_the_user_name_forwards_and_backwards_under_rule_d() {
    let ctx = device(&[], &[]);
    assert_rejected(&Policy::default(), "yamada-Vq7#mZ2p", &ctx, Rule::D);
    assert_rejected(&Policy::default(), "Y4m4d4-Vq7#mZ2p", &ctx, Rule::D);
    let r = assert_rejected(&Policy::default(), "adamay-Vq7#mZ2p", &ctx, Rule::D);
    assert_eq!(
        r.reason,
        "contains the user name written backwards (\"adamay\")"
    );
}

/// S3.1-02 D: identifiers shorter than 3 characters are not searched for.
#[test]
fn ignores_identifiers_shorter_than_three_characters() {
    let ctx = Context {
        username: "yo",
        ..Context::default()
    };
    assert_accepted(&Policy::default(), "Vq7#yomZ2p!Lx9", &ctx);
}

// ---- What must pass ------------------------------------------------------------------------

/// S3.1-02 R2-2 ①: passwords that match none of A–D are accepted, including a kana
/// passphrase, at the default minimum of 12.
#[test]
fn accepts_strong_passwords_at_the_default_minimum() {
    let macs = [MAC.to_owned()];
    let ctx = device(&macs, &[]);
    for pw in [
        "correct horse battery staple",
        "Vq7#mZ2p!Lx9",
        "tsukimi-dango-kaze-7",
        "7kHxR3nWq9PzT4mYc2Vb",
        "きょうはいいてんきですね",
    ] {
        assert_accepted(&Policy::default(), pw, &ctx);
    }
}

/// S3.1-02 R1: a unique per-device password from a random generator passes; checked on many
/// generated 20-character passwords over an unambiguous alphabet (deterministic seed).
#[test]
fn accepts_generated_initial_passwords() {
    let policy = Policy::default();
    let macs = [MAC.to_owned()];
    let ctx = device(&macs, &[]);
    let mut rejected = Vec::new();
    for seed in 1..=2000 {
        let pw = random_like(20, seed);
        if let Err(r) = policy.check(&pw, &ctx) {
            rejected.push((pw, r));
        }
    }
    assert!(rejected.is_empty(), "{rejected:?}");
}

/// The rule serialises as the API names it: "length", "A" … "D".
#[test]
fn rejections_serialise_with_the_rule_names_of_the_standard() {
    let r = at_min_8().check("aaaaaaaa", &none()).unwrap_err();
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["rule"], "C");
    assert_eq!(json["reason"], "is one character repeated");
    assert_eq!(json["reason_ja"], "同じ文字の繰り返しです");
    let r = at_min_8().check("short", &none()).unwrap_err();
    assert_eq!(serde_json::to_value(&r).unwrap()["rule"], "length");
    assert_eq!(r.to_string(), "the password is shorter than 8 characters");
}

/// A password over an unambiguous alphabet (no 0/O, 1/l/I), from a fixed xorshift seed.
fn random_like(len: usize, seed: u64) -> String {
    const ALPHABET: &[u8] = b"23456789abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ";
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let i = usize::try_from(state % ALPHABET.len() as u64).unwrap_or(0);
            char::from(ALPHABET[i])
        })
        .collect()
}

/// S3.1-02 B is about passwords *based on* a word: a short word among many random symbols is
/// not, but a word with a counter around it is.
#[test]
fn accepts_a_short_word_among_random_symbols() {
    assert_accepted(&Policy::default(), "!'-fINi:9:{2", &none());
    assert_accepted(&Policy::default(), "^;$$6caps\"._", &none());
    assert_rejected(&Policy::default(), "!!!!!!!caps!", &none(), Rule::B);
}
