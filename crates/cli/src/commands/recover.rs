//! `mamori --console recover USERNAME`: a one-time password from the local console (root).

use http::Method;
use serde_json::json;

use super::seg;
use crate::error::CliError;
use crate::output::{Output, cell};
use crate::session::{Secrets, Session, parse_json};
use crate::transport::Transport;

/// `POST /api/v1/console/recover` without logging in (the console peer is the credential).
pub async fn run(
    transport: Transport,
    username: &str,
    reset_mfa: bool,
    out: Output,
) -> Result<(), CliError> {
    seg(username)?;
    // No password is needed or read.
    let secrets = Secrets::from_env(username);
    let mut session = Session::new(transport, secrets, None, None);
    let body = json!({ "username": username, "reset_mfa": reset_mfa });
    let resp = session
        .call(Method::POST, "/api/v1/console/recover", Some(&body))
        .await?;
    let value = parse_json(&resp)?;
    out.either(&resp, || {
        format!(
            "one-time password for {username}: {}\n{username} must change it at the next login\n",
            value
                .get("one_time_password")
                .map_or_else(|| "-".to_owned(), cell)
        )
    });
    Ok(())
}
