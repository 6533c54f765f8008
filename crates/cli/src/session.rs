//! Authentication for one invocation: login (or an API token), the session cookie,
//! re-authentication, logout; and where the passwords come from.

use std::io::{BufRead, IsTerminal, Write};

use http::header::{AUTHORIZATION, COOKIE, RETRY_AFTER, SET_COOKIE};
use http::{HeaderValue, Method, StatusCode};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::error::{ApiError, CliError};
use crate::transport::{ApiRequest, ApiResponse, Transport};

/// Name of the session cookie set by `POST /api/v1/auth/login`.
pub const SESSION_COOKIE: &str = "__Host-mamori-session";

/// A secret string, wiped from memory when dropped.
pub type Secret = Zeroizing<String>;

/// Takes the session id out of `Set-Cookie` header values: only [`SESSION_COOKIE`], attributes
/// ignored; the last non-empty one wins. An empty value (a deletion) yields nothing.
pub fn parse_session_cookie<'a, I>(set_cookie: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut found = None;
    for header in set_cookie {
        let pair = header.split(';').next().unwrap_or("");
        let Some((name, value)) = pair.split_once('=') else {
            continue;
        };
        if name.trim() != SESSION_COOKIE {
            continue;
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        if !value.is_empty() {
            found = Some(value.to_owned());
        }
    }
    found
}

/// Where passwords come from: the environment, else one line each from standard input, read
/// in the order they are needed.
pub struct Secrets {
    own: Option<Secret>,
    new: Option<Secret>,
    user: String,
    input: Box<dyn BufRead>,
    interactive: bool,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets").finish_non_exhaustive()
    }
}

impl Secrets {
    /// Secrets from `MAMORI_PASSWORD`, `MAMORI_NEW_PASSWORD` and standard input.
    pub fn from_env(user: &str) -> Self {
        let env = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .map(Zeroizing::new)
        };
        let stdin = std::io::stdin();
        let interactive = stdin.is_terminal();
        Secrets {
            own: env("MAMORI_PASSWORD"),
            new: env("MAMORI_NEW_PASSWORD"),
            user: user.to_owned(),
            input: Box::new(stdin.lock()),
            interactive,
        }
    }

    /// Secrets from explicit values and an input (for tests).
    #[cfg(test)]
    pub fn with_input(own: Option<&str>, new: Option<&str>, input: &'static [u8]) -> Self {
        Secrets {
            own: own.map(|s| Zeroizing::new(s.to_owned())),
            new: new.map(|s| Zeroizing::new(s.to_owned())),
            user: "admin".into(),
            input: Box::new(input),
            interactive: false,
        }
    }

    fn read_line(&mut self, prompt: &str, what: &str, env: &str) -> Result<Secret, CliError> {
        if self.interactive {
            eprint!("{prompt}: ");
            let _ = std::io::stderr().flush();
        }
        let mut line = Zeroizing::new(String::new());
        let input = &mut self.input;
        let mut read = || input.read_line(&mut line);
        // What is typed at a terminal prompt is not shown.
        let n = if self.interactive {
            without_echo(&mut read)
        } else {
            read()
        }
        .map_err(|e| CliError::Usage(format!("cannot read {what} from standard input: {e}")))?;
        if n == 0 {
            return Err(CliError::Usage(format!(
                "no {what}: set {env} or give it as a line on standard input"
            )));
        }
        let trimmed = line.strip_suffix('\n').unwrap_or(&line);
        let trimmed = trimmed.strip_suffix('\r').unwrap_or(trimmed);
        if trimmed.is_empty() {
            return Err(CliError::Usage(format!("empty {what}")));
        }
        Ok(Zeroizing::new(trimmed.to_owned()))
    }

    /// On a terminal, asks for a fresh TOTP code; elsewhere there is nobody to ask.
    pub fn prompt_code(&mut self, prompt: &str) -> Result<Option<String>, CliError> {
        if !self.interactive {
            return Ok(None);
        }
        let code = self.read_line(prompt, "TOTP code", "MAMORI_REAUTH_TOTP")?;
        Ok(Some(code.trim().to_owned()))
    }

    /// The caller's own (current) password.
    pub fn own_password(&mut self) -> Result<Secret, CliError> {
        if let Some(p) = &self.own {
            return Ok(p.clone());
        }
        let prompt = format!("Password for {}", self.user);
        let p = self.read_line(&prompt, "password", "MAMORI_PASSWORD")?;
        self.own = Some(p.clone());
        Ok(p)
    }

    /// A new password (for `passwd`, or `users add --password-stdin`).
    pub fn new_password(&mut self) -> Result<Secret, CliError> {
        if let Some(p) = &self.new {
            return Ok(p.clone());
        }
        let p = self.read_line("New password", "new password", "MAMORI_NEW_PASSWORD")?;
        self.new = Some(p.clone());
        Ok(p)
    }
}

/// How requests are authenticated.
#[derive(Clone)]
enum Auth {
    /// Nothing (login, console recover).
    None,
    /// `Authorization: Bearer` API token.
    Token(Secret),
    /// The session cookie from login.
    Cookie(Secret),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Auth::None => "None",
            Auth::Token(_) => "Token(<redacted>)",
            Auth::Cookie(_) => "Cookie(<redacted>)",
        })
    }
}

/// The answer to a successful login.
#[derive(Debug, Clone)]
pub struct LoginInfo {
    /// The raw JSON body, for `--json`.
    pub raw: bytes::Bytes,
    /// The parsed body.
    pub value: Value,
}

impl LoginInfo {
    /// `must_change_password` of the answer.
    pub fn must_change_password(&self) -> bool {
        self.value
            .get("must_change_password")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }
}

/// The authenticated conversation of one invocation with the API.
#[derive(Debug)]
pub struct Session {
    transport: Transport,
    auth: Auth,
    secrets: Secrets,
    totp: Option<String>,
    reauth_totp: Option<String>,
    reauthenticated: bool,
}

impl Session {
    /// A session that is not logged in yet.
    /// `totp` is sent with login (and, failing anything better, with reauth); `reauth_totp` is
    /// a later code for reauth.
    pub fn new(
        transport: Transport,
        secrets: Secrets,
        totp: Option<String>,
        reauth_totp: Option<String>,
    ) -> Self {
        Session {
            transport,
            auth: Auth::None,
            secrets,
            totp: totp.filter(|t| !t.is_empty()),
            reauth_totp: reauth_totp.filter(|t| !t.is_empty()),
            reauthenticated: false,
        }
    }

    /// Authenticates later requests with an API token instead of logging in.
    pub fn use_token(&mut self, token: Secret) {
        self.auth = Auth::Token(token);
    }

    /// Whether requests carry an API token.
    pub fn has_token(&self) -> bool {
        matches!(self.auth, Auth::Token(_))
    }

    /// The password sources (for commands that need a new password).
    pub fn secrets(&mut self) -> &mut Secrets {
        &mut self.secrets
    }

    fn auth_header(&self) -> Result<Option<(http::HeaderName, HeaderValue)>, CliError> {
        let bad = |what: &str| CliError::Usage(format!("the {what} contains invalid characters"));
        Ok(match &self.auth {
            Auth::None => None,
            Auth::Token(t) => {
                let mut v = HeaderValue::from_str(&format!("Bearer {}", t.as_str()))
                    .map_err(|_| bad("token in MAMORI_TOKEN"))?;
                v.set_sensitive(true);
                Some((AUTHORIZATION, v))
            }
            Auth::Cookie(c) => {
                let mut v = HeaderValue::from_str(&format!("{SESSION_COOKIE}={}", c.as_str()))
                    .map_err(|_| {
                        CliError::Protocol("the session cookie contains invalid characters".into())
                    })?;
                v.set_sensitive(true);
                Some((COOKIE, v))
            }
        })
    }

    /// Sends a request with the current authentication; an error status becomes
    /// [`CliError::Api`]. A new session cookie in the answer replaces the current one.
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<ApiResponse, CliError> {
        let mut headers = Vec::new();
        if let Some(h) = self.auth_header()? {
            headers.push(h);
        }
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| CliError::Usage(format!("cannot encode request: {e}")))?;
        let resp = self
            .transport
            .send(ApiRequest {
                method,
                path: path.to_owned(),
                headers,
                body,
            })
            .await?;
        let cookies = resp
            .headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok());
        if let Some(cookie) = parse_session_cookie(cookies)
            && !matches!(self.auth, Auth::Token(_))
        {
            self.auth = Auth::Cookie(Zeroizing::new(cookie));
        }
        if resp.status.is_client_error() || resp.status.is_server_error() {
            let retry = resp.headers.get(RETRY_AFTER).and_then(|v| v.to_str().ok());
            return Err(ApiError::from_response(resp.status.as_u16(), retry, &resp.body).into());
        }
        if !resp.status.is_success() {
            return Err(CliError::Protocol(format!(
                "HTTP {} for {path}",
                resp.status
            )));
        }
        Ok(resp)
    }

    /// `POST /api/v1/auth/login`; keeps the session cookie.
    pub async fn login(&mut self, username: &str) -> Result<LoginInfo, CliError> {
        let password = self.secrets.own_password()?;
        let mut body = json!({ "username": username, "password": password.as_str() });
        if let Some(totp) = &self.totp {
            body["totp"] = json!(totp);
        }
        self.auth = Auth::None;
        let resp = self
            .call(Method::POST, "/api/v1/auth/login", Some(&body))
            .await;
        // Wipe the JSON copy of the password.
        if let Some(Value::String(p)) = body.get_mut("password") {
            zeroize::Zeroize::zeroize(p);
        }
        let resp = resp.map_err(login_hint)?;
        if !matches!(self.auth, Auth::Cookie(_)) {
            return Err(CliError::Protocol(format!(
                "login succeeded but no {SESSION_COOKIE} cookie was set"
            )));
        }
        let value = parse_json(&resp)?;
        Ok(LoginInfo {
            raw: resp.body,
            value,
        })
    }

    /// `POST /api/v1/auth/reauth` with the caller's password (and TOTP code), once per
    /// invocation.
    pub async fn reauth(&mut self) -> Result<(), CliError> {
        if self.reauthenticated {
            return Ok(());
        }
        let password = self.secrets.own_password()?;
        // The server accepts each TOTP code once, and login has just used --totp: prefer a
        // later code given for the purpose, or ask for one on a terminal.
        let mut reused = false;
        let code = match (&self.reauth_totp, &self.totp) {
            (Some(code), _) => Some(code.clone()),
            (None, Some(login_code)) => match self.secrets.prompt_code(
                "TOTP code for re-authentication (wait for the next one; codes work once)",
            )? {
                Some(code) => Some(code),
                None => {
                    reused = true;
                    Some(login_code.clone())
                }
            },
            (None, None) => None,
        };
        let mut body = json!({ "password": password.as_str() });
        if let Some(code) = code {
            body["totp"] = json!(code);
        }
        let resp = self
            .call(Method::POST, "/api/v1/auth/reauth", Some(&body))
            .await;
        if let Some(Value::String(p)) = body.get_mut("password") {
            zeroize::Zeroize::zeroize(p);
        }
        resp.map_err(|e| match e {
            CliError::Api(mut api) => {
                api.message = format!("re-authentication failed: {}", api.message);
                if reused && api.is("mfa_required") {
                    api.message.push_str(
                        "; a TOTP code is accepted only once and login already used --totp: \
                         give the next code as --reauth-totp CODE (or MAMORI_REAUTH_TOTP)",
                    );
                }
                CliError::Api(api)
            }
            other => other,
        })?;
        self.reauthenticated = true;
        Ok(())
    }

    /// A request to an endpoint marked "reauth": with a session, re-authenticate first; with an
    /// API token, try first and re-authenticate only if the server asks for it.
    pub async fn call_reauth(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<ApiResponse, CliError> {
        if !self.has_token() {
            self.reauth().await?;
            return self.call(method, path, body).await;
        }
        match self.call(method.clone(), path, body).await {
            Err(CliError::Api(e)) if e.is("reauth_required") && !self.reauthenticated => {
                self.reauth().await?;
                self.call(method, path, body).await
            }
            other => other,
        }
    }

    /// `POST /api/v1/auth/logout` if logged in with a session.
    pub async fn logout(&mut self) -> Result<(), CliError> {
        if !matches!(self.auth, Auth::Cookie(_)) {
            return Ok(());
        }
        let result = self.call(Method::POST, "/api/v1/auth/logout", None).await;
        self.auth = Auth::None;
        result.map(|_| ())
    }
}

/// Adds the reason a login was refused where the API's message alone may not say what to do.
fn login_hint(e: CliError) -> CliError {
    match e {
        CliError::Api(mut api) if api.is("mfa_required") && api.status == 401 => {
            api.message = format!("{} (this account has a second factor)", api.message);
            CliError::Api(api)
        }
        other => other,
    }
}

/// Parses a JSON answer.
pub fn parse_json(resp: &ApiResponse) -> Result<Value, CliError> {
    if resp.status == StatusCode::NO_CONTENT || resp.body.is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_slice(&resp.body)
        .map_err(|e| CliError::Protocol(format!("answer is not JSON: {e}")))
}

/// Runs `f` with terminal echo turned off on standard input, and restores it after.
fn without_echo<T>(f: impl FnOnce() -> T) -> T {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    let Ok(saved) = tcgetattr(&stdin) else {
        return f();
    };
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    let _ = tcsetattr(&stdin, SetArg::TCSANOW, &quiet);
    let out = f();
    let _ = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
    eprintln!();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_only_the_session_cookie_and_ignores_attributes() {
        let v = parse_session_cookie([
            "other=1; Path=/",
            "__Host-mamori-session=abc123; Path=/; Secure; HttpOnly; SameSite=Strict",
            "tracking=x",
        ]);
        assert_eq!(v.as_deref(), Some("abc123"));
    }

    #[test]
    fn cookie_without_attributes() {
        assert_eq!(
            parse_session_cookie(["__Host-mamori-session=zz"]).as_deref(),
            Some("zz")
        );
        assert_eq!(
            parse_session_cookie([" __Host-mamori-session = \"q\" ; Secure"]).as_deref(),
            Some("q")
        );
    }

    #[test]
    fn similar_names_are_not_the_session_cookie() {
        assert_eq!(
            parse_session_cookie([
                "mamori-session=a",
                "__Host-mamori-session-old=b",
                "__host-mamori-session=c",
                "__Secure-mamori-session=d",
                "Path=/; __Host-mamori-session=e",
            ]),
            None
        );
        assert_eq!(parse_session_cookie(["garbage"]), None);
        assert_eq!(parse_session_cookie(Vec::<&str>::new()), None);
    }

    #[test]
    fn deletion_does_not_replace_and_last_one_wins() {
        assert_eq!(
            parse_session_cookie(["__Host-mamori-session=; Max-Age=0; Path=/"]),
            None
        );
        assert_eq!(
            parse_session_cookie([
                "__Host-mamori-session=first; Path=/",
                "__Host-mamori-session=second; Path=/",
            ])
            .as_deref(),
            Some("second")
        );
    }

    #[test]
    fn secrets_come_from_env_first_then_stdin_lines_in_order() {
        let mut s = Secrets::with_input(None, None, b"old pass\r\nnew pass\n");
        assert_eq!(s.own_password().unwrap().as_str(), "old pass");
        assert_eq!(s.own_password().unwrap().as_str(), "old pass");
        assert_eq!(s.new_password().unwrap().as_str(), "new pass");

        let mut s = Secrets::with_input(Some("from env"), None, b"the new one\n");
        assert_eq!(s.own_password().unwrap().as_str(), "from env");
        assert_eq!(s.new_password().unwrap().as_str(), "the new one");

        let mut s = Secrets::with_input(None, Some("n"), b"  spaces kept  ");
        assert_eq!(s.own_password().unwrap().as_str(), "  spaces kept  ");
        assert_eq!(s.new_password().unwrap().as_str(), "n");
    }

    #[test]
    fn debug_output_hides_secrets() {
        let s = format!(
            "{:?} {:?}",
            Auth::Token(Zeroizing::new("tok-123".into())),
            Secrets::with_input(Some("pw-456"), None, b"")
        );
        assert!(!s.contains("tok-123") && !s.contains("pw-456"), "{s}");
    }

    #[test]
    fn missing_password_is_a_usage_error() {
        let mut s = Secrets::with_input(None, None, b"");
        let e = s.own_password().unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("MAMORI_PASSWORD"), "{e}");
        let mut s = Secrets::with_input(None, None, b"\n");
        assert_eq!(s.own_password().unwrap_err().exit_code(), 2);
    }
}
