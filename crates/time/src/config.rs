//! What an administrator configures: the NTP servers and the authentication policy.
//!
//! "Parse, don't validate": an [`NtpHost`] exists only once its text is a plain host name or IP
//! address, so nothing else can reach the rendered `chrony.conf` (no spaces, no second
//! directive, no comment, no option of chrony's). [`TimeConfig::validate`] adds the checks that
//! need the whole list.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// At most this many servers (chrony handles more; a gateway needs no more than a handful, and
/// the bound keeps a configuration from making chronyd flood resolvers or servers).
pub const MAX_SERVERS: usize = 8;
/// The poll interval bounds chrony accepts, as powers of two seconds.
pub const POLL_RANGE: std::ops::RangeInclusive<i8> = -6..=24;

/// How mamori keeps the device's time (S3.1-35 R4: time synchronisation with a time source).
///
/// An empty server list means no synchronisation: chronyd is not started, and the clock can
/// only be set by hand ([`crate::set_time`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeConfig {
    /// The NTP servers (at most 8).
    pub servers: Vec<NtpServer>,
    /// Only NTS-authenticated sources may set the clock (`authselectmode require`); every
    /// server must then be marked `nts`. Without it, NTS sources are preferred: once one server
    /// is marked `nts`, the unauthenticated ones are never selected (`authselectmode prefer`).
    #[serde(default)]
    pub require_nts: bool,
    /// How many sources must agree before the clock is updated (chrony `minsources`); 1 to the
    /// number of servers.
    #[serde(default = "one")]
    pub min_sources: u8,
    /// Let the kernel copy the system time to the real-time clock every 11 minutes (`rtcsync`),
    /// so the device boots with nearly the right time.
    #[serde(default = "yes")]
    pub rtc_sync: bool,
}

/// One NTP server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NtpServer {
    /// Host name or IP address.
    pub host: NtpHost,
    /// Authenticate with Network Time Security (RFC 8915): a TLS 1.3 key exchange, then
    /// authenticated NTP packets.
    #[serde(default)]
    pub nts: bool,
    /// Send a burst of four requests at start, for a first synchronisation in seconds.
    #[serde(default = "yes")]
    pub iburst: bool,
    /// The NTP port, when not 123.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The NTS key-establishment port, when not 4460 (only with `nts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nts_port: Option<u16>,
    /// The shortest poll interval, as a power of two seconds (chrony's default 6: 64 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_poll: Option<i8>,
    /// The longest poll interval, as a power of two seconds (chrony's default 10: 1024 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_poll: Option<i8>,
}

impl NtpServer {
    /// A server with the defaults: NTP port, iburst, chrony's poll intervals.
    pub fn new(host: NtpHost, nts: bool) -> Self {
        Self {
            host,
            nts,
            iburst: true,
            port: None,
            nts_port: None,
            min_poll: None,
            max_poll: None,
        }
    }
}

impl Default for TimeConfig {
    /// No servers (synchronisation off), and the same defaults as an empty JSON object.
    fn default() -> Self {
        Self {
            servers: Vec::new(),
            require_nts: false,
            min_sources: one(),
            rtc_sync: yes(),
        }
    }
}

fn one() -> u8 {
    1
}

fn yes() -> bool {
    true
}

/// Why a configuration was refused. Each names the server it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The host is empty.
    #[error("an NTP server host is empty")]
    HostEmpty,
    /// The host is longer than a DNS name can be (253).
    #[error("NTP server host is longer than 253 characters")]
    HostTooLong,
    /// The host holds a character other than letters, digits, `.`, `-` and `:`.
    // The message does not repeat the input (the API promises no echo); the field path says
    // which server it is.
    #[error("an NTP server host may contain only letters, digits, '.', '-' and ':'")]
    HostCharacter {
        /// The host as given.
        host: String,
        /// The first character refused.
        ch: char,
    },
    /// The host is neither an IP address nor a well-formed DNS name (empty label, label over
    /// 63 characters, label starting or ending with `-`, an all-numeric last label, or a `:`
    /// outside an IPv6 address).
    #[error("an NTP server host is not an IP address or a host name")]
    HostMalformed(String),
    /// More than [`MAX_SERVERS`] servers.
    #[error("at most {MAX_SERVERS} NTP servers, got {0}")]
    TooManyServers(usize),
    /// The same host twice.
    #[error("NTP server {0} is listed twice")]
    DuplicateServer(String),
    /// `min_sources` is 0 or more than the number of servers.
    #[error("min_sources {min_sources} must be between 1 and the number of servers ({servers})")]
    MinSources {
        /// The value given.
        min_sources: u8,
        /// How many servers there are.
        servers: usize,
    },
    /// A port of 0.
    #[error("NTP server {0}: port 0")]
    PortZero(String),
    /// `nts_port` on a server without `nts`.
    #[error("NTP server {0}: nts_port without nts")]
    NtsPortWithoutNts(String),
    /// A poll interval outside [`POLL_RANGE`], or `min_poll` above `max_poll`.
    #[error("NTP server {0}: poll intervals must lie in -6..=24 with min_poll <= max_poll")]
    Poll(String),
    /// `require_nts` with a server that is not marked `nts`.
    #[error("require_nts is set but NTP server {0} does not use NTS")]
    NotNts(String),
    /// Rendering was asked for with no server.
    #[error("no NTP server is configured")]
    NoServers,
    /// One of mamori's own paths cannot be written into chrony.conf safely (not absolute, or
    /// a character other than letters, digits, `/`, `.`, `_`, `-`).
    #[error("path {0:?} cannot be used in chrony.conf")]
    UnsafePath(String),
    /// The command socket path is longer than a Unix socket address allows (107 bytes).
    #[error("command socket path {0:?} is longer than 107 bytes")]
    SocketPathTooLong(String),
}

/// A host name or IP address that is safe to write into `chrony.conf`.
///
/// Only `[A-Za-z0-9.:-]`: an IPv4 address, an IPv6 address (no zone), or a DNS name whose
/// labels are 1–63 characters, do not start or end with `-`, and whose last label is not all
/// digits (so `1.2.3` is not taken for an address by one parser and a name by another).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
pub struct NtpHost(String);

impl NtpHost {
    /// Checks `host` and wraps it.
    pub fn parse(host: &str) -> Result<Self, ConfigError> {
        if host.is_empty() {
            return Err(ConfigError::HostEmpty);
        }
        if host.len() > 253 {
            return Err(ConfigError::HostTooLong);
        }
        if let Some(ch) = host
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':')))
        {
            return Err(ConfigError::HostCharacter {
                host: host.to_owned(),
                ch,
            });
        }
        let malformed = || ConfigError::HostMalformed(host.to_owned());
        if host.contains(':') {
            return host
                .parse::<Ipv6Addr>()
                .map(|_| Self(host.to_owned()))
                .map_err(|_| malformed());
        }
        if host.parse::<Ipv4Addr>().is_ok() {
            return Ok(Self(host.to_owned()));
        }
        let labels: Vec<&str> = host.split('.').collect();
        let label_ok =
            |l: &&str| !l.is_empty() && l.len() <= 63 && !l.starts_with('-') && !l.ends_with('-');
        let last_numeric = labels
            .last()
            .is_some_and(|l| l.chars().all(|c| c.is_ascii_digit()));
        if labels.iter().all(label_ok) && !last_numeric {
            Ok(Self(host.to_owned()))
        } else {
            Err(malformed())
        }
    }

    /// The host as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for NtpHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for NtpHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for NtpHost {
    type Error = ConfigError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<NtpHost> for String {
    fn from(value: NtpHost) -> Self {
        value.0
    }
}

impl TimeConfig {
    /// Whether synchronisation is on (at least one server).
    pub fn is_enabled(&self) -> bool {
        !self.servers.is_empty()
    }

    /// The checks across fields: the number of servers, duplicates, ports, poll intervals,
    /// `min_sources` and `require_nts`. Hosts were checked when they were parsed.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.servers.len() > MAX_SERVERS {
            return Err(ConfigError::TooManyServers(self.servers.len()));
        }
        let mut seen = BTreeSet::new();
        for s in &self.servers {
            let name = || s.host.to_string();
            if !seen.insert(s.host.as_str().to_ascii_lowercase()) {
                return Err(ConfigError::DuplicateServer(name()));
            }
            if s.port == Some(0) || s.nts_port == Some(0) {
                return Err(ConfigError::PortZero(name()));
            }
            if s.nts_port.is_some() && !s.nts {
                return Err(ConfigError::NtsPortWithoutNts(name()));
            }
            let in_range = |p: Option<i8>| p.is_none_or(|p| POLL_RANGE.contains(&p));
            let ordered = match (s.min_poll, s.max_poll) {
                (Some(min), Some(max)) => min <= max,
                _ => true,
            };
            if !(in_range(s.min_poll) && in_range(s.max_poll) && ordered) {
                return Err(ConfigError::Poll(name()));
            }
            if self.require_nts && !s.nts {
                return Err(ConfigError::NotNts(name()));
            }
        }
        if !self.servers.is_empty()
            && (self.min_sources == 0 || usize::from(self.min_sources) > self.servers.len())
        {
            return Err(ConfigError::MinSources {
                min_sources: self.min_sources,
                servers: self.servers.len(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_and_addresses_are_accepted() {
        for good in [
            "ntp.example.net",
            "time.cloudflare.com",
            "nts.netnod.se",
            "a",
            "a-b.c0",
            "127.0.0.1",
            "192.0.2.10",
            "::1",
            "2001:db8::123",
            "NTP.Example.NET",
            &format!("{}.example", "a".repeat(63)),
        ] {
            NtpHost::parse(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
    }

    #[test]
    fn hosts_that_could_inject_into_chrony_conf_are_refused() {
        for bad in [
            "",
            "ntp.example.net iburst",
            "ntp.example.net\nallow all",
            "ntp.example.net\rallow",
            "ntp.example.net\tkey 1",
            "ntp.example.net#comment",
            "ntp.example.net!x",
            "ntp.example.net;x",
            "\"ntp\"",
            "ntp/../etc",
            "fe80::1%eth0",
            "ntp_example.net",
            "ntp.example.net\0",
            "ｎｔｐ.example",
            "ntp.example.net ",
        ] {
            assert!(
                matches!(
                    NtpHost::parse(bad),
                    Err(ConfigError::HostCharacter { .. }) | Err(ConfigError::HostEmpty)
                ),
                "{bad:?} -> {:?}",
                NtpHost::parse(bad)
            );
        }
    }

    #[test]
    fn malformed_names_are_refused() {
        for bad in [
            "-ntp.example",
            "ntp-.example",
            "ntp..example",
            ".ntp",
            "ntp.",
            "1.2.3",
            "1.2.3.4.5",
            "300.1.1.1",
            "::g",
            "1:2",
            ":",
            "-",
            &format!("{}.example", "a".repeat(64)),
        ] {
            assert!(
                matches!(NtpHost::parse(bad), Err(ConfigError::HostMalformed(_))),
                "{bad:?} -> {:?}",
                NtpHost::parse(bad)
            );
        }
        assert_eq!(
            NtpHost::parse(&"a.".repeat(130)),
            Err(ConfigError::HostTooLong)
        );
    }

    #[test]
    fn the_default_is_what_an_empty_object_means() {
        let empty: TimeConfig = serde_json::from_str(r#"{"servers":[]}"#).unwrap();
        assert_eq!(empty, TimeConfig::default());
        assert!(!empty.is_enabled());
        let mut one = TimeConfig::default();
        one.servers
            .push(NtpServer::new(NtpHost::parse("a.example").unwrap(), true));
        one.validate().unwrap();
        assert!(one.is_enabled());
    }

    #[test]
    fn deserialising_checks_hosts_and_refuses_unknown_fields() {
        let ok: TimeConfig =
            serde_json::from_str(r#"{"servers":[{"host":"ntp.example.net","nts":true}]}"#).unwrap();
        assert_eq!(ok.min_sources, 1);
        assert!(ok.rtc_sync);
        assert!(ok.servers[0].iburst);
        assert!(ok.servers[0].nts);
        for bad in [
            r#"{"servers":[{"host":"ntp.example.net\nallow all"}]}"#,
            r#"{"servers":[{"host":"ntp.example.net","options":"noselect"}]}"#,
            r#"{"servers":[],"extra":true}"#,
            r#"{"servers":[{"host":7}]}"#,
        ] {
            assert!(serde_json::from_str::<TimeConfig>(bad).is_err(), "{bad}");
        }
        let back = serde_json::to_string(&ok).unwrap();
        assert_eq!(serde_json::from_str::<TimeConfig>(&back).unwrap(), ok);
    }

    #[test]
    fn the_json_schema_shows_hosts_as_strings() {
        let schema = serde_json::to_value(schemars::schema_for!(TimeConfig)).unwrap();
        let text = schema.to_string();
        assert!(text.contains("\"servers\""), "{text}");
        let host = &schema["$defs"]["NtpHost"];
        assert_eq!(host["type"], "string", "{text}");
    }

    fn server(host: &str) -> NtpServer {
        NtpServer::new(NtpHost::parse(host).unwrap(), false)
    }

    fn config(servers: Vec<NtpServer>) -> TimeConfig {
        TimeConfig {
            servers,
            require_nts: false,
            min_sources: 1,
            rtc_sync: true,
        }
    }

    #[test]
    fn cross_field_rules_hold() {
        config(vec![]).validate().unwrap();
        config(vec![server("a.example"), server("b.example")])
            .validate()
            .unwrap();
        let many = (0..9).map(|i| server(&format!("s{i}.example"))).collect();
        assert_eq!(config(many).validate(), Err(ConfigError::TooManyServers(9)));
        assert!(matches!(
            config(vec![server("a.example"), server("A.example")]).validate(),
            Err(ConfigError::DuplicateServer(_))
        ));
        let mut s = server("a.example");
        s.port = Some(0);
        assert!(matches!(
            config(vec![s]).validate(),
            Err(ConfigError::PortZero(_))
        ));
        let mut s = server("a.example");
        s.nts_port = Some(4460);
        assert!(matches!(
            config(vec![s]).validate(),
            Err(ConfigError::NtsPortWithoutNts(_))
        ));
        for (min, max) in [(Some(-7), None), (None, Some(25)), (Some(6), Some(4))] {
            let mut s = server("a.example");
            s.min_poll = min;
            s.max_poll = max;
            assert!(
                matches!(config(vec![s]).validate(), Err(ConfigError::Poll(_))),
                "{min:?} {max:?}"
            );
        }
        let mut c = config(vec![server("a.example")]);
        c.min_sources = 2;
        assert!(matches!(c.validate(), Err(ConfigError::MinSources { .. })));
        c.min_sources = 0;
        assert!(matches!(c.validate(), Err(ConfigError::MinSources { .. })));
        let mut c = config(vec![
            NtpServer::new(NtpHost::parse("a.example").unwrap(), true),
            server("b.example"),
        ]);
        c.require_nts = true;
        assert_eq!(c.validate(), Err(ConfigError::NotNts("b.example".into())));
    }
}
