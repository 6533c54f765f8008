//! One module per command group. Each command takes the logged-in [`Ctx`], talks to the API
//! through it and prints through [`Output`].

pub mod audit;
pub mod config;
pub mod info;
pub mod lab;
pub mod login;
pub mod mfa;
pub mod recover;
pub mod sessions;
pub mod settings;
pub mod time;
pub mod token;
pub mod users;

use crate::error::CliError;
use crate::output::Output;
use crate::session::{LoginInfo, Session};

/// What a command works with.
#[derive(Debug)]
pub struct Ctx {
    /// The authenticated session (or API token).
    pub session: Session,
    /// How to print.
    pub out: Output,
    /// The account name used to log in.
    pub user: String,
    /// The answer to login, when this invocation logged in (none with an API token).
    pub login: Option<LoginInfo>,
}

/// Percent-encodes one path segment (user names, ids), keeping only unreserved characters.
/// `""`, `.` and `..` are refused: URL normalisation would turn them into another path.
pub fn seg(s: &str) -> Result<String, CliError> {
    if s.is_empty() || s == "." || s == ".." {
        return Err(CliError::Usage(format!("invalid name or id {s:?}")));
    }
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::seg;

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(seg("bob").unwrap(), "bob");
        assert_eq!(seg("a.b-c_d~").unwrap(), "a.b-c_d~");
        assert_eq!(seg("../x").unwrap(), "..%2Fx");
        assert_eq!(seg("a b?c#").unwrap(), "a%20b%3Fc%23");
        assert_eq!(seg("山田").unwrap(), "%E5%B1%B1%E7%94%B0");
        for bad in ["", ".", ".."] {
            assert_eq!(seg(bad).unwrap_err().exit_code(), 2);
        }
    }
}
