//! Validated newtypes: the only values of the model that become text in the ruleset.
//!
//! "Parse, don't validate": each type exists only once its text is safe to write into an nft
//! script, so no configuration value can end a string, a statement or a block there. Names are
//! plain ASCII identifiers; [`Comment`] accepts any printable text but is rendered through a
//! fixed ASCII subset ([`Comment::rendered`]); addresses are `ipnet`/`std::net` values, printed
//! by their own `Display`.

use std::fmt;

use ipnet::IpNet;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Why a single value was refused (at parsing, before any check across fields).
///
/// Not `#[non_exhaustive]`: the web UI words every kind in Japanese with an exhaustive match,
/// so a new one does not compile until it is translated (S3.1-43).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// A comment holds a control character (newline, tab, NUL, …) or is too long.
    #[error("a comment may hold at most {max} bytes of printable text, without control characters")]
    Comment {
        /// The longest comment accepted, in bytes.
        max: usize,
    },
    /// An interface name breaks the kernel's rules or holds a character nft could misread.
    #[error(
        "an interface name is 1 to 15 bytes of letters, digits, '.', '_' and '-', and not '.' or '..'"
    )]
    Interface,
    /// A zone or set name is not a short lower-case identifier.
    #[error(
        "a {what} name is 1 to 32 characters: a lower-case letter, then lower-case letters, digits and '_'"
    )]
    Identifier {
        /// Whose name.
        what: Named,
    },
    /// Not an address or an `address/length` prefix.
    #[error("not an IP address or prefix (address/length)")]
    NotAPrefix,
    /// A prefix has bits set beyond its length (`10.0.0.1/8`).
    #[error("prefix {0} has host bits set (did you mean {1}?)")]
    HostBits(IpNet, IpNet),
    /// A port range with port 0 or its start above its end.
    #[error("a port range is 1-65535 with start <= end")]
    PortRange,
    /// Not a port or a `start-end` range.
    #[error("a port is a number, a range is \"start-end\"")]
    PortSyntax,
}

/// What an identifier names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Named {
    /// A firewall zone.
    Zone,
    /// An address set.
    Set,
}

impl fmt::Display for Named {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Zone => "zone",
            Self::Set => "set",
        })
    }
}

/// A Linux interface name: 1–15 bytes (`IFNAMSIZ` - 1), not `.` or `..`, made of ASCII
/// letters, digits, `.`, `_` and `-`.
///
/// The kernel itself allows more (anything but `/`, `:`, white space and NUL); mamori allows
/// less, because the name is written into nft scripts between quotes and a `"` or `}` there
/// would end the string or the set.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IfName(String);

impl IfName {
    /// The longest name the kernel accepts (`IFNAMSIZ` is 16 with the terminating NUL).
    pub const MAX_LEN: usize = 15;

    /// Checks `name` and wraps it.
    pub fn parse(name: &str) -> Result<Self, NameError> {
        let ok = !name.is_empty()
            && name.len() <= Self::MAX_LEN
            && name != "."
            && name != ".."
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(NameError::Interface)
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks a zone or set name: `[a-z][a-z0-9_]{0,31}`.
fn identifier(text: &str, what: Named) -> Result<String, NameError> {
    let mut bytes = text.bytes();
    let ok = text.len() <= 32
        && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(text.to_owned())
    } else {
        Err(NameError::Identifier { what })
    }
}

/// The name of a firewall zone: `[a-z][a-z0-9_]{0,31}`. The name [`ZoneName::SELF`] is
/// reserved for the device itself (traffic addressed to the gateway, nft's `input` hook).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ZoneName(String);

impl ZoneName {
    /// The reserved zone of the device itself: a policy or rule `to: "self"` is about traffic
    /// to the gateway's own addresses.
    pub const SELF: &'static str = "self";

    /// Checks `name` and wraps it.
    pub fn parse(name: &str) -> Result<Self, NameError> {
        identifier(name, Named::Zone).map(Self)
    }

    /// The zone named after a role (`wan`, `lan`, `mgmt`), as the factory configuration names
    /// them.
    pub fn from_role(role: crate::model::Role) -> Self {
        Self(role.as_str().to_owned())
    }

    /// The zone of the device itself.
    pub fn device() -> Self {
        Self(Self::SELF.to_owned())
    }

    /// Whether this is the device's own zone.
    pub fn is_device(&self) -> bool {
        self.0 == Self::SELF
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The name of a named address set: `[a-z][a-z0-9_]{0,31}`. Rendered as `u_NAME` in nft, so it
/// never collides with mamori's own sets.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SetName(String);

impl SetName {
    /// Checks `name` and wraps it.
    pub fn parse(name: &str) -> Result<Self, NameError> {
        identifier(name, Named::Set).map(Self)
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An administrator's note on a rule or port forward: up to 128 bytes of printable text in
/// any script (Japanese included), no control characters.
///
/// The comment is kept in the configuration as written. In the ruleset only
/// [`Comment::rendered`] appears: ASCII letters, digits, space and `-_.,:/+=@()`, every other
/// character replaced by `_`, so a quote, `;`, `}` or `#` can never reach nft as syntax.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Comment(String);

impl Comment {
    /// The longest comment, in bytes (nft keeps 128 bytes of user data per rule; mamori adds a
    /// short prefix of its own, and the rendered text is cut to fit).
    pub const MAX_LEN: usize = 128;

    /// Checks `text` and wraps it.
    pub fn parse(text: &str) -> Result<Self, NameError> {
        if text.len() > Self::MAX_LEN || text.chars().any(char::is_control) {
            return Err(NameError::Comment { max: Self::MAX_LEN });
        }
        Ok(Self(text.to_owned()))
    }

    /// The comment as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text written into the ruleset: safe ASCII only, at most `max` bytes.
    pub fn rendered(&self, max: usize) -> String {
        self.0
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || " -_.,:/+=@()".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .take(max)
            .collect()
    }
}

/// An IPv4 or IPv6 network prefix with no host bits set (`192.0.2.0/24`, `2001:db8::/32`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "IpNet", into = "IpNet")]
pub struct Prefix(IpNet);

impl Prefix {
    /// Checks `net` and wraps it.
    pub fn new(net: IpNet) -> Result<Self, NameError> {
        if net.trunc() == net {
            Ok(Self(net))
        } else {
            Err(NameError::HostBits(net, net.trunc()))
        }
    }

    /// Every address of a family: `0.0.0.0/0` or `::/0`.
    pub fn any(family: crate::model::Family) -> Self {
        match family {
            crate::model::Family::Ipv4 => Self(IpNet::V4(ipnet::Ipv4Net::default())),
            crate::model::Family::Ipv6 => Self(IpNet::V6(ipnet::Ipv6Net::default())),
        }
    }

    /// Parses `"addr/len"` (or a bare address, as a /32 or /128).
    pub fn parse(text: &str) -> Result<Self, NameError> {
        let net = text
            .parse::<IpNet>()
            .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
            .map_err(|_| NameError::NotAPrefix)?;
        Self::new(net)
    }

    /// The network.
    pub fn net(&self) -> IpNet {
        self.0
    }

    /// Whether this is an IPv4 prefix.
    pub fn is_v4(&self) -> bool {
        matches!(self.0, IpNet::V4(_))
    }
}

/// A TCP or UDP port, or an inclusive range of them: `443` or `"8000-8010"` in JSON.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "PortSpec", into = "PortSpec")]
pub struct PortRange {
    start: u16,
    end: u16,
}

/// How a port range is written in JSON.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum PortSpec {
    One(u16),
    Range(String),
}

impl PortRange {
    /// `start..=end`; refuses port 0 and `start > end`.
    pub fn new(start: u16, end: u16) -> Result<Self, NameError> {
        if start == 0 || start > end {
            return Err(NameError::PortRange);
        }
        Ok(Self { start, end })
    }

    /// One port.
    pub fn single(port: u16) -> Result<Self, NameError> {
        Self::new(port, port)
    }

    /// Parses a range as JSON writes it in a string: `"start-end"`.
    pub fn parse(text: &str) -> Result<Self, NameError> {
        let (a, b) = text.split_once('-').ok_or(NameError::PortSyntax)?;
        let parse = |s: &str| {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(NameError::PortSyntax);
            }
            s.parse::<u16>().map_err(|_| NameError::PortRange)
        };
        Self::new(parse(a)?, parse(b)?)
    }

    /// The first port.
    pub fn start(&self) -> u16 {
        self.start
    }

    /// The last port.
    pub fn end(&self) -> u16 {
        self.end
    }

    /// Whether `port` lies in the range.
    pub fn contains(&self, port: u16) -> bool {
        (self.start..=self.end).contains(&port)
    }
}

impl TryFrom<PortSpec> for PortRange {
    type Error = NameError;

    fn try_from(value: PortSpec) -> Result<Self, Self::Error> {
        match value {
            PortSpec::One(p) => Self::single(p),
            PortSpec::Range(text) => Self::parse(&text),
        }
    }
}

impl From<PortRange> for PortSpec {
    fn from(value: PortRange) -> Self {
        if value.start == value.end {
            Self::One(value.start)
        } else {
            Self::Range(format!("{}-{}", value.start, value.end))
        }
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

macro_rules! text_newtype {
    ($ty:ident, $parse:expr, $schema:expr) => {
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $ty {
            type Error = NameError;

            fn try_from(value: String) -> Result<Self, Self::Error> {
                $parse(&value)
            }
        }

        impl From<$ty> for String {
            fn from(value: $ty) -> Self {
                value.0
            }
        }

        impl JsonSchema for $ty {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($ty).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                $schema
            }
        }
    };
}

text_newtype!(
    IfName,
    IfName::parse,
    schemars::json_schema!({
        "type": "string",
        "description": "A Linux interface name",
        "pattern": "^[A-Za-z0-9._-]{1,15}$"
    })
);
text_newtype!(
    ZoneName,
    ZoneName::parse,
    schemars::json_schema!({
        "type": "string",
        "description": "A firewall zone (\"self\" is the device itself)",
        "pattern": "^[a-z][a-z0-9_]{0,31}$"
    })
);
text_newtype!(
    SetName,
    SetName::parse,
    schemars::json_schema!({
        "type": "string",
        "description": "A named address set",
        "pattern": "^[a-z][a-z0-9_]{0,31}$"
    })
);
text_newtype!(
    Comment,
    Comment::parse,
    schemars::json_schema!({
        "type": "string",
        "description": "A note, printable text without control characters",
        "maxLength": 128
    })
);

impl TryFrom<IpNet> for Prefix {
    type Error = NameError;

    fn try_from(value: IpNet) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<Prefix> for IpNet {
    fn from(value: Prefix) -> Self {
        value.0
    }
}

impl fmt::Debug for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl JsonSchema for Prefix {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Prefix".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "An IPv4 or IPv6 prefix without host bits, e.g. 192.0.2.0/24"
        })
    }
}

impl fmt::Debug for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl JsonSchema for PortRange {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "PortRange".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A port (443) or an inclusive range (\"8000-8010\")",
            "oneOf": [
                { "type": "integer", "minimum": 1, "maximum": 65535 },
                { "type": "string", "pattern": "^[0-9]{1,5}-[0-9]{1,5}$" }
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_follow_the_kernel_and_stay_inert_in_nft() {
        for good in [
            "eth0",
            "enp3s0f1",
            "wan",
            "br-lan",
            "veth_a.100",
            "a",
            "x23456789012345",
        ] {
            IfName::parse(good).unwrap();
        }
        for bad in [
            "",
            ".",
            "..",
            "x234567890123456",
            "eth0\"",
            "eth0;",
            "eth0}",
            "eth 0",
            "eth0\n",
            "eth/0",
            "eth:0",
            "é",
            "eth0\0",
            "*",
        ] {
            assert_eq!(IfName::parse(bad), Err(NameError::Interface), "{bad:?}");
        }
    }

    #[test]
    fn identifiers_are_lower_case_and_short() {
        ZoneName::parse("lan").unwrap();
        ZoneName::parse("dmz_2").unwrap();
        SetName::parse("blocklist").unwrap();
        for bad in [
            "",
            "Lan",
            "2lan",
            "_x",
            "la-n",
            "la n",
            "lan\"",
            &"a".repeat(33),
            "ｌａｎ",
        ] {
            assert!(ZoneName::parse(bad).is_err(), "{bad:?}");
            assert!(SetName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn comments_keep_text_but_render_only_safe_ascii() {
        let c = Comment::parse("web \"server\"; } flush ruleset # 守り").unwrap();
        assert_eq!(c.rendered(100), "web _server__ _ flush ruleset _ __");
        assert!(Comment::parse("a\nb").is_err());
        assert!(Comment::parse("a\rb").is_err());
        assert!(Comment::parse("a\u{0}b").is_err());
        assert!(Comment::parse(&"x".repeat(129)).is_err());
        assert_eq!(Comment::parse("abcdef").unwrap().rendered(3), "abc");
    }

    #[test]
    fn prefixes_refuse_host_bits() {
        Prefix::parse("10.0.0.0/8").unwrap();
        Prefix::parse("2001:db8::/32").unwrap();
        assert_eq!(
            Prefix::parse("192.0.2.7").unwrap().to_string(),
            "192.0.2.7/32"
        );
        assert!(Prefix::parse("10.0.0.1/8").is_err());
        assert!(serde_json::from_str::<Prefix>("\"10.0.0.1/8\"").is_err());
        assert!(serde_json::from_str::<Prefix>("\"10.0.0.0/8\"").is_ok());
    }

    #[test]
    fn ports_and_ranges_parse_from_json() {
        let p: PortRange = serde_json::from_str("443").unwrap();
        assert_eq!(p, PortRange::single(443).unwrap());
        let r: PortRange = serde_json::from_str("\"8000-8010\"").unwrap();
        assert_eq!((r.start(), r.end()), (8000, 8010));
        assert_eq!(serde_json::to_string(&r).unwrap(), "\"8000-8010\"");
        assert_eq!(serde_json::to_string(&p).unwrap(), "443");
        for bad in [
            "0",
            "\"10-5\"",
            "\"0-5\"",
            "\"1-70000\"",
            "\"a-b\"",
            "\"+1-2\"",
            "\"1\"",
            "-1",
        ] {
            assert!(serde_json::from_str::<PortRange>(bad).is_err(), "{bad}");
        }
    }
}
