//! What chronyd says about the clock, parsed from `chronyc -c` (comma-separated) output, and
//! the [`TimeStatus`] the API and UI show.
//!
//! Four reports are read: `tracking` (the reference, stratum, offset, last update, leap status),
//! `sources` (each source's state and reachability), `authdata` (each source's authentication
//! mechanism, NTS-KE state and cookies) and `ntpdata` (whether the last response from each
//! source was authenticated). `chronyc -n` is always used, so sources are addresses and
//! chronyc itself never asks DNS.
//!
//! # How we know a source is NTS-authenticated
//!
//! chrony reports it in two places, and [`SourceStatus::nts_authenticated`] needs both:
//! `authdata` shows mode `NTS` with a key length and cookies once the NTS-KE handshake (TLS 1.3,
//! certificate checked against the trusted CAs) succeeded, and `ntpdata` shows `Authenticated:
//! Yes` once an NTP response carried a valid NTS authenticator. A server marked `nts` whose
//! handshake fails shows mode `NTS` with no cookies and a rising attempt count, and is never
//! selected.

use serde::{Deserialize, Serialize};

use crate::TimeError;
use crate::step::rfc3339_ms;

/// The clock's synchronisation, as shown to administrators (S3.1-35 R4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TimeStatus {
    /// Whether the clock is synchronised right now: chronyd has a reference, its leap status is
    /// not "not synchronised", and one source is selected. A source that stops answering is
    /// deselected once its last eight polls went unanswered.
    pub synchronised: bool,
    /// The source the clock follows (an address, or a reference clock's name), if any.
    pub reference: Option<String>,
    /// The reference's identifier as chrony shows it (hexadecimal).
    pub reference_id: String,
    /// The device's stratum (the reference's plus one; 0 when unsynchronised).
    pub stratum: u8,
    /// The system clock minus NTP time, in milliseconds: positive when the device runs ahead.
    pub offset_ms: f64,
    /// The offset measured at the last update, in milliseconds (positive: the device was
    /// ahead).
    pub last_offset_ms: f64,
    /// When the clock was last updated from the reference (RFC 3339, UTC, milliseconds); none
    /// before the first update.
    pub last_update: Option<String>,
    /// Seconds between the last two updates.
    pub update_interval_s: f64,
    /// The leap status.
    pub leap: Leap,
    /// Each configured source.
    pub sources: Vec<SourceStatus>,
}

impl TimeStatus {
    /// The selected source, if any.
    pub fn selected(&self) -> Option<&SourceStatus> {
        self.sources
            .iter()
            .find(|s| s.state == SourceState::Selected)
    }
}

/// chrony's leap status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Leap {
    /// Synchronised, no leap second pending.
    Normal,
    /// A leap second will be inserted at the end of the day.
    InsertSecond,
    /// A leap second will be deleted at the end of the day.
    DeleteSecond,
    /// Not synchronised.
    NotSynchronised,
}

/// One time source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SourceStatus {
    /// The source's address (or a reference clock's name).
    pub address: String,
    /// What kind of source it is.
    pub mode: SourceMode,
    /// How chrony uses it.
    pub state: SourceState,
    /// Its stratum.
    pub stratum: u8,
    /// The poll interval, as a power of two seconds.
    pub poll: i8,
    /// The reachability register: one bit per recent poll, 1 if it was answered (0–255).
    pub reach: u8,
    /// Seconds since the last good sample; none if there never was one.
    pub last_rx_s: Option<u64>,
    /// The source's offset at the last sample, in milliseconds (positive: the device was
    /// ahead).
    pub offset_ms: f64,
    /// The error bound of that sample, in milliseconds.
    pub error_ms: f64,
    /// The source is configured for NTS.
    pub nts: bool,
    /// NTS works for this source: the key exchange succeeded (cookies held) and the last NTP
    /// response was authenticated.
    pub nts_authenticated: bool,
    /// NTS cookies held (each allows one authenticated request).
    pub nts_cookies: u32,
    /// NTS-KE attempts since the last success (rises while the handshake fails).
    pub nts_ke_attempts: u32,
}

/// The kind of a source (`sources`, first column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceMode {
    /// An NTP server (`^`).
    Server,
    /// A symmetric peer (`=`).
    Peer,
    /// A reference clock (`#`).
    ReferenceClock,
}

/// How chrony uses a source (`sources`, second column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceState {
    /// The clock follows it (`*`).
    Selected,
    /// Combined with the selected one (`+`).
    Combined,
    /// Acceptable but not combined (`-`).
    NotCombined,
    /// Unreachable, or not selectable (for example unauthenticated under the NTS policy) (`?`).
    Unusable,
    /// It disagrees with the others (`x`).
    Falseticker,
    /// Its time varies too much (`~`).
    TooVariable,
}

/// `chronyc -c tracking`.
#[derive(Debug, Clone, PartialEq)]
pub struct Tracking {
    /// Reference id, hexadecimal.
    pub reference_id: String,
    /// Reference name or address.
    pub reference: String,
    /// Stratum.
    pub stratum: u8,
    /// When the reference was last used, seconds since the Unix epoch (0: never).
    pub ref_time: f64,
    /// The correction still to apply: NTP time minus system time, in seconds.
    pub correction_s: f64,
    /// The offset at the last update, in seconds.
    pub last_offset_s: f64,
    /// Seconds between the last two updates.
    pub update_interval_s: f64,
    /// The leap status.
    pub leap: Leap,
}

/// One line of `chronyc -c sources`.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// Kind.
    pub mode: SourceMode,
    /// State.
    pub state: SourceState,
    /// Address.
    pub address: String,
    /// Stratum.
    pub stratum: u8,
    /// Poll interval, log2 seconds.
    pub poll: i8,
    /// Reachability register.
    pub reach: u8,
    /// Seconds since the last sample.
    pub last_rx_s: Option<u64>,
    /// Offset of the last sample, seconds.
    pub offset_s: f64,
    /// Error bound of the last sample, seconds.
    pub error_s: f64,
}

/// One line of `chronyc -c authdata`.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthData {
    /// Address.
    pub address: String,
    /// `-` (none), `SK` (symmetric key) or `NTS`.
    pub mode: String,
    /// Key length in bits (0 until NTS-KE succeeded).
    pub key_bits: u32,
    /// NTS-KE attempts since the last success.
    pub attempts: u32,
    /// Cookies held.
    pub cookies: u32,
}

/// The fields of `chronyc -c ntpdata` we use.
#[derive(Debug, Clone, PartialEq)]
pub struct NtpData {
    /// The source's address.
    pub address: String,
    /// Whether the last response was authenticated.
    pub authenticated: bool,
}

fn bad(command: &'static str, detail: impl Into<String>) -> TimeError {
    TimeError::ChronycOutput {
        command,
        detail: detail.into(),
    }
}

fn fields<'a>(
    command: &'static str,
    line: &'a str,
    at_least: usize,
) -> Result<Vec<&'a str>, TimeError> {
    let f: Vec<&str> = line.split(',').collect();
    if f.len() < at_least {
        return Err(bad(
            command,
            format!("{} fields, expected {at_least}: {line:?}", f.len()),
        ));
    }
    Ok(f)
}

fn num<T: std::str::FromStr>(command: &'static str, what: &str, s: &str) -> Result<T, TimeError> {
    s.trim()
        .parse()
        .map_err(|_| bad(command, format!("{what} is not a number: {s:?}")))
}

/// Parses `chronyc -n -c tracking` (one line, 14 fields).
pub fn parse_tracking(text: &str) -> Result<Tracking, TimeError> {
    const C: &str = "tracking";
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .ok_or_else(|| bad(C, "empty output"))?;
    let f = fields(C, line, 14)?;
    let leap = match f[13].trim() {
        "Normal" => Leap::Normal,
        "Insert second" => Leap::InsertSecond,
        "Delete second" => Leap::DeleteSecond,
        "Not synchronised" => Leap::NotSynchronised,
        other => return Err(bad(C, format!("unknown leap status {other:?}"))),
    };
    Ok(Tracking {
        reference_id: f[0].to_owned(),
        reference: f[1].to_owned(),
        stratum: num(C, "stratum", f[2])?,
        ref_time: num(C, "ref time", f[3])?,
        correction_s: num(C, "system time", f[4])?,
        last_offset_s: num(C, "last offset", f[5])?,
        update_interval_s: num(C, "update interval", f[12])?,
        leap,
    })
}

/// Parses `chronyc -n -c sources` (one line per source, 10 fields).
pub fn parse_sources(text: &str) -> Result<Vec<Source>, TimeError> {
    const C: &str = "sources";
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f = fields(C, line, 10)?;
        let mode = match f[0] {
            "^" => SourceMode::Server,
            "=" => SourceMode::Peer,
            "#" => SourceMode::ReferenceClock,
            other => return Err(bad(C, format!("unknown source mode {other:?}"))),
        };
        let state = match f[1] {
            "*" => SourceState::Selected,
            "+" => SourceState::Combined,
            "-" => SourceState::NotCombined,
            "?" => SourceState::Unusable,
            "x" => SourceState::Falseticker,
            "~" => SourceState::TooVariable,
            other => return Err(bad(C, format!("unknown source state {other:?}"))),
        };
        // The reachability register is printed in octal, as in the human form.
        let reach = u8::from_str_radix(f[5].trim(), 8)
            .map_err(|_| bad(C, format!("reach is not an octal byte: {:?}", f[5])))?;
        // chronyc prints 2^32 - 1 (or `-`) for a source never sampled.
        let last_rx_s = match f[6].trim() {
            "-" | "" => None,
            s => Some(num::<u64>(C, "last rx", s)?).filter(|&v| v < u64::from(u32::MAX)),
        };
        out.push(Source {
            mode,
            state,
            address: f[2].to_owned(),
            stratum: num(C, "stratum", f[3])?,
            poll: num(C, "poll", f[4])?,
            reach,
            last_rx_s,
            offset_s: num(C, "offset", f[7])?,
            error_s: num(C, "error", f[9])?,
        });
    }
    Ok(out)
}

/// Parses `chronyc -n -c authdata` (one line per source, 10 fields).
pub fn parse_authdata(text: &str) -> Result<Vec<AuthData>, TimeError> {
    const C: &str = "authdata";
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let f = fields(C, line, 10)?;
            Ok(AuthData {
                address: f[0].to_owned(),
                mode: f[1].to_owned(),
                key_bits: num(C, "key length", f[4])?,
                attempts: num(C, "attempts", f[6])?,
                cookies: num(C, "cookies", f[8])?,
            })
        })
        .collect()
}

/// Parses `chronyc -n -c ntpdata` (one line per source, 34 fields; field 28 says whether the
/// last response was authenticated).
pub fn parse_ntpdata(text: &str) -> Result<Vec<NtpData>, TimeError> {
    const C: &str = "ntpdata";
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let f = fields(C, line, 34)?;
            let authenticated = match f[27] {
                "Yes" => true,
                "No" => false,
                other => return Err(bad(C, format!("authenticated is {other:?}"))),
            };
            Ok(NtpData {
                address: f[0].to_owned(),
                authenticated,
            })
        })
        .collect()
}

/// Puts the four reports together.
pub fn combine(
    tracking: &Tracking,
    sources: &[Source],
    auth: &[AuthData],
    ntp: &[NtpData],
) -> TimeStatus {
    let sources: Vec<SourceStatus> = sources
        .iter()
        .map(|s| {
            let a = auth.iter().find(|a| a.address == s.address);
            let nts = a.is_some_and(|a| a.mode == "NTS");
            let cookies = a.map_or(0, |a| a.cookies);
            let authenticated_reply = ntp
                .iter()
                .find(|n| n.address == s.address)
                .is_some_and(|n| n.authenticated);
            SourceStatus {
                address: s.address.clone(),
                mode: s.mode,
                state: s.state,
                stratum: s.stratum,
                poll: s.poll,
                reach: s.reach,
                last_rx_s: s.last_rx_s,
                offset_ms: s.offset_s * 1000.0,
                error_ms: s.error_s * 1000.0,
                nts,
                nts_authenticated: nts
                    && a.is_some_and(|a| a.key_bits > 0)
                    && cookies > 0
                    && authenticated_reply,
                nts_cookies: cookies,
                nts_ke_attempts: a.map_or(0, |a| a.attempts),
            }
        })
        .collect();
    let has_reference = !tracking.reference_id.trim_start_matches('0').is_empty();
    let selected = sources.iter().any(|s| s.state == SourceState::Selected);
    let synchronised = has_reference && tracking.leap != Leap::NotSynchronised && selected;
    let last_update = (tracking.ref_time > 0.0)
        .then(|| rfc3339_ms(secs_to_ns(tracking.ref_time)))
        .flatten();
    TimeStatus {
        synchronised,
        reference: has_reference.then(|| tracking.reference.clone()),
        reference_id: tracking.reference_id.clone(),
        stratum: tracking.stratum,
        offset_ms: -tracking.correction_s * 1000.0,
        last_offset_ms: tracking.last_offset_s * 1000.0,
        last_update,
        update_interval_s: tracking.update_interval_s,
        leap: tracking.leap,
        sources,
    }
}

/// Seconds (as chrony prints them) to nanoseconds, saturating.
#[allow(clippy::cast_possible_truncation)] // saturating float-to-int is the intent
fn secs_to_ns(secs: f64) -> i64 {
    (secs * 1e9) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from chrony 4.3 (Debian 12): a client synchronised to a loopback server with
    // NTS, then the same after the server stopped.
    const TRACKING: &str = "7F000001,127.0.0.1,9,1796520867.743908434,-0.000002011,0.000000074,0.000000074,-0.032,0.001,0.666,0.000007190,0.000001595,1.0,Normal\n";
    const SOURCES: &str = "^,*,127.0.0.1,8,0,77,1,0.000000009,0.000000083,0.000003647\n";
    const AUTHDATA: &str = "127.0.0.1,NTS,1,15,256,3,0,0,8,100\n";
    const NTPDATA: &str = "127.0.0.1,7F000001,12124,127.0.0.1,7F000001,Normal,4,Server,8,0,1,-25,0.000000030,0.000000,0.000000,7F7F0101,,1796520863.765021900,-0.000000083,0.000007190,0.000000052,0.000062694,0.00,111,111,1111,No,Yes,Kernel,Kernel,6,6,6,6\n";
    const SOURCES_LOST: &str = "^,?,127.0.0.1,8,1,0,19,0.000000171,0.000000113,0.000002641\n";
    const TRACKING_NEVER: &str = "00000000,,0,0.000000000,0.000000000,0.000000000,0.000000000,0.000,0.000,0.000,1.000000000,1.000000000,0.0,Not synchronised\n";
    const AUTHDATA_FAILING: &str = "127.0.0.1,NTS,0,0,0,4294967295,5,0,0,0\n";
    // A source that never answered (chrony 4.3).
    const SOURCES_NEVER: &str =
        "^,?,127.0.0.1,0,0,0,4294967295,0.000000000,0.000000000,0.000000000\n";
    const NTPDATA_NEVER: &str = "127.0.0.1,7F000001,12999,[UNSPEC],00000000,Normal,0,Invalid,0,0,1,0,1.000000000,0.000000,0.000000,00000000,,0.000000000,0.000000000,0.000000000,0.000000000,0.000000000,0.00,000,000,0000,No,No,Invalid,Invalid,0,0,0,0\n";

    fn status(tracking: &str, sources: &str, auth: &str, ntp: &str) -> TimeStatus {
        combine(
            &parse_tracking(tracking).unwrap(),
            &parse_sources(sources).unwrap(),
            &parse_authdata(auth).unwrap(),
            &parse_ntpdata(ntp).unwrap(),
        )
    }

    #[test]
    fn a_synchronised_nts_client_is_reported_as_such() {
        let s = status(TRACKING, SOURCES, AUTHDATA, NTPDATA);
        assert!(s.synchronised);
        assert_eq!(s.reference.as_deref(), Some("127.0.0.1"));
        assert_eq!(s.stratum, 9);
        assert_eq!(s.leap, Leap::Normal);
        assert!((s.offset_ms - 0.002011).abs() < 1e-9, "{}", s.offset_ms);
        assert_eq!(s.last_update.as_deref(), Some("2026-12-06T01:34:27.743Z"));
        let src = s.selected().unwrap();
        assert_eq!(src.address, "127.0.0.1");
        assert_eq!(src.reach, 0o77);
        assert_eq!(src.poll, 0);
        assert_eq!(src.last_rx_s, Some(1));
        assert!(src.nts && src.nts_authenticated);
        assert_eq!(src.nts_cookies, 8);
    }

    #[test]
    fn a_source_that_stopped_answering_leaves_the_clock_unsynchronised() {
        let s = status(TRACKING, SOURCES_LOST, AUTHDATA, NTPDATA);
        assert!(!s.synchronised, "no source is selected");
        assert_eq!(s.sources[0].state, SourceState::Unusable);
        assert_eq!(s.sources[0].reach, 0);
        let never = status(
            TRACKING_NEVER,
            SOURCES_NEVER,
            AUTHDATA_FAILING,
            NTPDATA_NEVER,
        );
        assert_eq!(never.sources[0].last_rx_s, None);
        assert_eq!(never.sources[0].state, SourceState::Unusable);
        assert!(!never.sources[0].nts_authenticated);
        let never = status(TRACKING_NEVER, "", "", "");
        assert!(!never.synchronised);
        assert_eq!(never.reference, None);
        assert_eq!(never.last_update, None);
        assert_eq!(never.leap, Leap::NotSynchronised);
    }

    #[test]
    fn a_failing_nts_handshake_is_not_authenticated() {
        let no_auth_reply = NTPDATA.replace(",No,Yes,", ",No,No,");
        let s = status(TRACKING, SOURCES, AUTHDATA_FAILING, &no_auth_reply);
        let src = &s.sources[0];
        assert!(src.nts);
        assert!(!src.nts_authenticated);
        assert_eq!(src.nts_ke_attempts, 5);
        // Cookies but an unauthenticated last reply is not enough either.
        let s = status(TRACKING, SOURCES, AUTHDATA, &no_auth_reply);
        assert!(!s.sources[0].nts_authenticated);
        // And a plain source is neither.
        let s = status(
            TRACKING,
            SOURCES,
            "127.0.0.1,-,0,0,0,4294967295,0,0,0,0\n",
            NTPDATA,
        );
        assert!(!s.sources[0].nts && !s.sources[0].nts_authenticated);
    }

    #[test]
    fn garbage_from_chronyc_is_an_error_that_names_the_report() {
        for (text, parse) in [
            (
                "",
                parse_tracking as fn(&str) -> Result<Tracking, TimeError>,
            ),
            ("7F000001,127.0.0.1,9", parse_tracking),
            (&TRACKING.replace("Normal", "Sideways"), parse_tracking),
            (&TRACKING.replace(",9,", ",nine,"), parse_tracking),
        ] {
            match parse(text) {
                Err(TimeError::ChronycOutput {
                    command: "tracking",
                    ..
                }) => {}
                other => panic!("{text:?}: {other:?}"),
            }
        }
        for bad in [
            "^,*,127.0.0.1",
            "!,*,127.0.0.1,8,0,77,1,0,0,0",
            "^,!,127.0.0.1,8,0,77,1,0,0,0",
            "^,*,127.0.0.1,8,0,78,1,0,0,0",
            "^,*,127.0.0.1,8,0,777,1,0,0,0",
        ] {
            assert!(
                matches!(
                    parse_sources(bad),
                    Err(TimeError::ChronycOutput {
                        command: "sources",
                        ..
                    })
                ),
                "{bad}"
            );
        }
        assert!(parse_authdata("127.0.0.1,NTS").is_err());
        assert!(parse_ntpdata(&NTPDATA.replace(",No,Yes,", ",No,Maybe,")).is_err());
    }

    #[test]
    fn the_status_has_a_stable_json_form() {
        let s = status(TRACKING, SOURCES, AUTHDATA, NTPDATA);
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["synchronised"], true);
        assert_eq!(v["leap"], "normal");
        assert_eq!(v["sources"][0]["state"], "selected");
        assert_eq!(v["sources"][0]["mode"], "server");
        assert_eq!(v["sources"][0]["nts_authenticated"], true);
        let back: TimeStatus = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
    }
}
