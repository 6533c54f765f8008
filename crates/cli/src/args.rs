//! Command-line grammar (clap derive) and the checks clap cannot express.
//!
//! Secrets never appear here: passwords come from `MAMORI_PASSWORD` / `MAMORI_NEW_PASSWORD` or
//! standard input, and the API token only from `MAMORI_TOKEN`, so none of them lands in shell
//! history or in `ps` output.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::error::CliError;

/// Default state directory of the daemon.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/mamori";

/// `mamori`: administer a mamori gateway through its management API.
#[derive(Debug, Parser)]
#[command(
    name = "mamori",
    version,
    color = clap::ColorChoice::Never,
    about = "Administer a mamori gateway through its management API",
    after_help = "Passwords are read from MAMORI_PASSWORD (and MAMORI_NEW_PASSWORD), otherwise one \
                  line each from standard input, in the order they are needed. An API token is \
                  taken from MAMORI_TOKEN only."
)]
pub struct Cli {
    /// Options shared by every command.
    #[command(flatten)]
    pub global: GlobalOpts,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by every command (accepted before or after the command name).
#[derive(Debug, Args, Clone)]
pub struct GlobalOpts {
    /// Base URL of the management API, e.g. https://127.0.0.1:8443
    #[arg(long, env = "MAMORI_URL", global = true, value_name = "URL")]
    pub url: Option<String>,

    /// PEM certificate(s) to trust for the server: exactly these, never the system store
    /// (normally STATE/tls/device-cert.pem).
    #[arg(long, env = "MAMORI_CACERT", global = true, value_name = "FILE")]
    pub cacert: Option<PathBuf>,

    /// User name to log in as.
    #[arg(long, env = "MAMORI_USER", global = true, default_value = "admin")]
    pub user: String,

    /// Current TOTP code, for accounts with a second factor.
    #[arg(long, env = "MAMORI_TOTP", global = true, value_name = "CODE")]
    pub totp: Option<String>,

    /// A second, later TOTP code for commands that re-authenticate (a code is accepted only
    /// once, and login uses --totp).
    #[arg(long, env = "MAMORI_REAUTH_TOTP", global = true, value_name = "CODE")]
    pub reauth_totp: Option<String>,

    /// Print exactly the JSON the API returned (`{}` for an empty answer).
    #[arg(long, global = true)]
    pub json: bool,

    /// Use the local console Unix socket instead of HTTPS. Without a value the socket is
    /// STATE/run/console.sock; write a path as `--console=PATH` (or as the next word if it
    /// contains a `/` or ends in `.sock`).
    #[arg(
        long,
        global = true,
        value_name = "SOCKET",
        num_args = 0..=1,
        require_equals = true
    )]
    pub console: Option<Option<PathBuf>>,

    /// State directory of the daemon, used to find the console socket.
    #[arg(
        long,
        env = "MAMORI_STATE_DIR",
        global = true,
        value_name = "DIR",
        default_value = DEFAULT_STATE_DIR
    )]
    pub state_dir: PathBuf,
}

impl GlobalOpts {
    /// The console socket to use, if `--console` was given.
    pub fn console_socket(&self) -> Option<PathBuf> {
        self.console.as_ref().map(|p| match p {
            Some(path) => path.clone(),
            None => self.state_dir.join("run").join("console.sock"),
        })
    }
}

/// Roles known to the API (viewer < operator < admin; auditor is separate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// Read-only access to status and configuration.
    Viewer,
    /// Viewer plus day-to-day operations.
    Operator,
    /// Full administration.
    Admin,
    /// Audit log and own account only.
    Auditor,
}

impl Role {
    /// The name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
            Role::Auditor => "auditor",
        }
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Log in, show who you are and when the session expires, log out.
    Login,
    /// Change your own password (current from MAMORI_PASSWORD/stdin, new from
    /// MAMORI_NEW_PASSWORD/next stdin line).
    Passwd,
    /// Show device status, privilege separation, TLS suites and notices.
    Status,
    /// Show device identity, firmware and time.
    Device,
    /// Manage user accounts (admin).
    #[command(subcommand)]
    Users(UsersCmd),
    /// List or revoke your sessions.
    #[command(subcommand)]
    Sessions(SessionsCmd),
    /// Manage your second factor.
    #[command(subcommand)]
    Mfa(MfaCmd),
    /// Manage your API tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Show or change settings (admin).
    #[command(subcommand)]
    Settings(SettingsCmd),
    /// Read the audit log (auditor, admin).
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Time: synchronisation status, time servers, set the clock by hand.
    #[command(subcommand)]
    Time(TimeCmd),
    /// The network configuration: show, status (DHCP leases), history, diff, check, commit, edit,
    /// confirm, rollback.
    #[command(subcommand)]
    Config(crate::commands::config::ConfigCmd),
    /// Print the OpenAPI document of the API.
    Openapi,
    /// On the host, as root: the lab (network namespaces: wan host, gateway, lan hosts).
    #[command(subcommand)]
    Lab(crate::commands::lab::LabCmd),
    /// Console only: give USERNAME a one-time password (needs --console, run as root).
    Recover {
        /// Account to recover.
        username: String,
        /// Also remove the account's second factor (authenticator and recovery codes lost).
        #[arg(long)]
        reset_mfa: bool,
    },
}

/// `mamori time ...`
#[derive(Debug, Subcommand)]
pub enum TimeCmd {
    /// Show the device clock, whether it is synchronised, the reference and the sources.
    Status,
    /// Set the clock by hand (admin, re-authentication): TIME is RFC 3339.
    Set {
        /// The new time, e.g. 2027-03-01T09:00:00+09:00.
        time: String,
        /// Set it even while NTP synchronisation runs.
        #[arg(long)]
        force: bool,
    },
    /// The time servers and policy (admin).
    #[command(subcommand)]
    Config(TimeConfigCmd),
}

/// `mamori time config ...`
#[derive(Debug, Subcommand)]
pub enum TimeConfigCmd {
    /// Show the time servers and policy.
    Show,
    /// Replace them with the JSON object in FILE (`-` for standard input).
    Set {
        /// A file holding `{"servers": [...], ...}`.
        file: std::path::PathBuf,
    },
}

/// `mamori users ...`
#[derive(Debug, Subcommand)]
pub enum UsersCmd {
    /// List accounts.
    List,
    /// Create an account; prints a one-time password unless --password-stdin is given.
    Add {
        /// New account name.
        name: String,
        /// Its role.
        #[arg(long, value_enum)]
        role: Role,
        /// Set the initial password yourself, from MAMORI_NEW_PASSWORD or the next stdin line.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable an account (its sessions end).
    Disable {
        /// Account name.
        name: String,
    },
    /// Enable a disabled account.
    Enable {
        /// Account name.
        name: String,
    },
    /// Delete an account.
    Delete {
        /// Account name.
        name: String,
    },
    /// Reset an account's password to a one-time password.
    Reset {
        /// Account name.
        name: String,
        /// Also remove its second factor.
        #[arg(long)]
        reset_mfa: bool,
    },
    /// Change an account's role.
    SetRole {
        /// Account name.
        name: String,
        /// New role.
        #[arg(value_enum)]
        role: Role,
    },
}

/// `mamori sessions ...`
#[derive(Debug, Subcommand)]
pub enum SessionsCmd {
    /// List your sessions.
    List,
    /// End one of your sessions.
    Revoke {
        /// Session handle from `sessions list`.
        id: String,
    },
}

/// `mamori mfa ...`
#[derive(Debug, Subcommand)]
pub enum MfaCmd {
    /// Time-based one-time passwords (RFC 6238).
    #[command(subcommand)]
    Totp(TotpCmd),
}

/// `mamori mfa totp ...`
#[derive(Debug, Subcommand)]
pub enum TotpCmd {
    /// Start enrolment: prints the secret and an otpauth:// URI for your authenticator.
    Enroll,
    /// Finish enrolment with a code from the authenticator; prints recovery codes once.
    Verify {
        /// Code shown by the authenticator.
        code: String,
    },
    /// Remove your second factor.
    Disable,
}

/// `mamori token ...`
#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Create an API token; the token is printed once.
    Create {
        /// A name to recognise the token by.
        name: String,
        /// Role of the token (at most your own).
        #[arg(long, value_enum)]
        role: Role,
        /// Lifetime in days.
        #[arg(long, value_name = "N")]
        days: u32,
    },
    /// List your API tokens.
    List,
    /// Revoke an API token.
    Revoke {
        /// Token id from `token list`.
        id: String,
    },
}

/// `mamori settings ...`
#[derive(Debug, Subcommand)]
pub enum SettingsCmd {
    /// Authentication settings.
    #[command(subcommand)]
    Auth(AuthSettingsCmd),
    /// Management access lists.
    #[command(subcommand)]
    Access(AccessSettingsCmd),
}

/// `mamori settings auth ...`
#[derive(Debug, Subcommand)]
pub enum AuthSettingsCmd {
    /// Show the authentication settings.
    Show,
    /// Change settings: KEY=VALUE, VALUE as JSON when it parses (e.g. `["admin"]`), else text.
    Set {
        /// KEY=VALUE pairs.
        #[arg(required = true, value_name = "KEY=VALUE", value_parser = parse_pair)]
        pairs: Vec<(String, serde_json::Value)>,
    },
}

/// `mamori settings access ...`
#[derive(Debug, Subcommand)]
pub enum AccessSettingsCmd {
    /// Show the allowed and trusted source networks.
    Show,
    /// Replace the allow and/or trusted lists (a flag without values empties that list).
    #[command(group(
        clap::ArgGroup::new("lists").required(true).multiple(true).args(["allow", "trusted"])
    ))]
    Set {
        /// Networks allowed to reach the management API (CIDR).
        #[arg(long, num_args = 0.., value_name = "CIDR")]
        allow: Option<Vec<String>>,
        /// Trusted networks (CIDR).
        #[arg(long, num_args = 0.., value_name = "CIDR")]
        trusted: Option<Vec<String>>,
        /// Apply even if the change cuts off the connection you are using.
        #[arg(long)]
        confirm: bool,
    },
}

/// `mamori audit ...`
#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Show audit records, newest last (auditor, admin).
    #[command(alias = "events")]
    List {
        /// At most N records (1-1000, default 100).
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
        #[command(flatten)]
        filter: AuditFilter,
    },
    /// Write every matching record as JSON lines (auditor, admin); the export is recorded.
    Export {
        #[command(flatten)]
        filter: AuditFilter,
        /// Write to FILE (created, mode 0600) instead of standard output.
        #[arg(long, short, value_name = "FILE")]
        output: Option<std::path::PathBuf>,
    },
    /// Show the log's fill level, sequence range, epoch, unforwarded overwrites and errors.
    Status,
    /// Destroy the personal data (actor, source) of records before a time (admin, asks for
    /// your password again); irreversible, by whole UTC days, and recorded.
    Purge {
        /// RFC 3339 time, e.g. 2026-01-01T00:00:00Z.
        #[arg(long, value_name = "TIME")]
        before: String,
    },
    /// On the device, as root: prove the log's hash chain and seals, and name the first break.
    /// Reads the state directory directly; needs no running daemon and no login.
    Verify {
        /// The device's state directory.
        #[arg(long, value_name = "DIR", default_value = "/var/lib/mamori")]
        state_dir: std::path::PathBuf,
    },
}

/// Which audit records.
#[derive(Debug, Args, Default)]
pub struct AuditFilter {
    /// Records at or after TIME (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Records before TIME (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Only these events (comma-separated names, e.g. login_failed,user_created).
    #[arg(long, value_name = "NAMES")]
    pub event: Option<String>,
    /// Only records of this user.
    #[arg(long, value_name = "USER")]
    pub actor: Option<String>,
    /// Only `success` or `failure`.
    #[arg(long, value_name = "OUTCOME")]
    pub outcome: Option<String>,
}

/// Parses `KEY=VALUE`: VALUE as JSON when it parses, else as a string.
pub fn parse_pair(s: &str) -> Result<(String, serde_json::Value), String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))?;
    let key = key.trim();
    if key.is_empty() {
        return Err(format!("empty key in {s:?}"));
    }
    let value =
        serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::String(value.to_owned()));
    Ok((key.to_owned(), value))
}

impl Command {
    /// Whether this command changes the caller's own password (allowed in must-change state).
    pub fn is_passwd(&self) -> bool {
        matches!(self, Command::Passwd)
    }
}

/// Rewrites `--console PATH` to `--console=PATH` when PATH is recognisably a socket path (it
/// contains `/` or ends in `.sock`), so a bare `--console` followed by a command name keeps
/// meaning "the default socket".
pub fn normalize<I, T>(args: I) -> Vec<OsString>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let mut out = Vec::with_capacity(args.len());
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if arg == "--console"
            && let Some(next) = args.get(i + 1).and_then(|n| n.to_str())
            && !next.starts_with('-')
            && (next.contains('/') || next.ends_with(".sock"))
        {
            out.push(OsString::from(format!("--console={next}")));
            i += 2;
            continue;
        }
        out.push(arg.clone());
        i += 1;
    }
    out
}

/// Why the command line was not accepted.
#[derive(Debug)]
pub enum ParseFailure {
    /// clap's own error (also `--help` and `--version`, which exit 0).
    Clap(clap::Error),
    /// A combination clap cannot check.
    Invalid(CliError),
}

/// Parses and validates a full argument vector (program name first).
pub fn parse<I, T>(args: I) -> Result<Cli, ParseFailure>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let cli = Cli::try_parse_from(normalize(args)).map_err(ParseFailure::Clap)?;
    validate(&cli).map_err(ParseFailure::Invalid)?;
    Ok(cli)
}

/// Checks that clap cannot express: `recover` exists only on the console, HTTPS needs a URL and a
/// certificate to trust.
pub fn validate(cli: &Cli) -> Result<(), CliError> {
    let console = cli.global.console.is_some();
    if matches!(cli.command, Command::Recover { .. }) && !console {
        return Err(CliError::Usage(
            "`recover` works only on the local console: add --console (as root on the device)"
                .into(),
        ));
    }
    // `audit verify` reads the state directory on the device; it talks to no server.
    let local = matches!(
        cli.command,
        Command::Audit(AuditCmd::Verify { .. }) | Command::Lab(_)
    );
    if !console && !local {
        if cli.global.url.is_none() {
            return Err(CliError::Usage(
                "no server given: use --url https://HOST:PORT (or MAMORI_URL), or --console".into(),
            ));
        }
        if cli.global.cacert.is_none() {
            return Err(CliError::Usage(
                "no certificate to trust: use --cacert STATE/tls/device-cert.pem (or \
                 MAMORI_CACERT); the system certificate store is never used"
                    .into(),
            ));
        }
    }
    Ok(())
}

/// The clap command, for self-checks.
#[cfg(test)]
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HTTPS: [&str; 5] = [
        "mamori",
        "--url",
        "https://127.0.0.1:8443",
        "--cacert",
        "/tmp/c.pem",
    ];

    fn with(extra: &[&str]) -> Vec<String> {
        HTTPS
            .iter()
            .chain(extra)
            .map(|s| (*s).to_string())
            .collect()
    }

    fn clap_err(args: Vec<String>) -> clap::error::ErrorKind {
        match parse(args) {
            Err(ParseFailure::Clap(e)) => e.kind(),
            other => panic!("expected a clap error, got {other:?}"),
        }
    }

    #[test]
    fn clap_definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn lab_commands_are_local() {
        use crate::commands::lab::LabCmd;
        let cli = parse(["mamori", "lab", "status", "--json"]).unwrap();
        assert!(cli.global.json);
        assert!(matches!(cli.command, Command::Lab(LabCmd::Status { ref name }) if name == "demo"));
        let cli = parse([
            "mamori",
            "lab",
            "up",
            "--name",
            "x1",
            "--with-device",
            "--mamorid",
            "/m",
            "--state-dir",
            "/s",
        ])
        .unwrap();
        assert_eq!(cli.global.state_dir, PathBuf::from("/s"));
        assert!(matches!(
            cli.command,
            Command::Lab(LabCmd::Up { with_device: true, ref mamorid, port: 443, .. })
                if mamorid.as_deref() == Some(std::path::Path::new("/m"))
        ));
        // --mamorid without --with-device is a mistake, not silently ignored.
        assert!(parse(["mamori", "lab", "up", "--mamorid", "/m"]).is_err());
        assert!(parse(["mamori", "lab", "down", "--name", "x1"]).is_ok());
    }

    #[test]
    fn contract_form_parses() {
        let cli = parse(with(&["device", "--json"])).unwrap();
        assert!(cli.global.json);
        assert!(matches!(cli.command, Command::Device));
        assert_eq!(cli.global.user, "admin");
        assert_eq!(cli.global.url.as_deref(), Some("https://127.0.0.1:8443"));
    }

    #[test]
    fn json_is_accepted_on_every_command() {
        let commands: &[&[&str]] = &[
            &["login"],
            &["passwd"],
            &["status"],
            &["device"],
            &["users", "list"],
            &["users", "add", "bob", "--role", "viewer"],
            &[
                "users",
                "add",
                "bob",
                "--role",
                "viewer",
                "--password-stdin",
            ],
            &["users", "disable", "bob"],
            &["users", "enable", "bob"],
            &["users", "delete", "bob"],
            &["users", "reset", "bob", "--reset-mfa"],
            &["users", "set-role", "bob", "operator"],
            &["sessions", "list"],
            &["sessions", "revoke", "abc"],
            &["mfa", "totp", "enroll"],
            &["mfa", "totp", "verify", "123456"],
            &["mfa", "totp", "disable"],
            &["token", "create", "ci", "--role", "viewer", "--days", "30"],
            &["token", "list"],
            &["token", "revoke", "t1"],
            &["settings", "auth", "show"],
            &["settings", "auth", "set", "lockout_threshold=5"],
            &["settings", "access", "show"],
            &["settings", "access", "set", "--allow", "10.0.0.0/8"],
            &["audit", "events", "--limit", "5"],
            &["openapi"],
        ];
        for c in commands {
            // After the command...
            let cli = parse(with(&[c, &["--json"][..]].concat()))
                .unwrap_or_else(|e| panic!("{c:?}: {e:?}"));
            assert!(cli.global.json, "{c:?}");
            // ...and before it.
            let cli = parse(with(&[&["--json"][..], c].concat()))
                .unwrap_or_else(|e| panic!("{c:?}: {e:?}"));
            assert!(cli.global.json, "{c:?}");
        }
        let cli = parse(["mamori", "--console", "recover", "bob", "--json"]).unwrap();
        assert!(cli.global.json);
    }

    #[test]
    fn there_is_no_flag_for_passwords_or_tokens() {
        use clap::error::ErrorKind::UnknownArgument;
        for flag in [
            "--password",
            "--new-password",
            "--token",
            "--pass",
            "--secret",
        ] {
            assert_eq!(clap_err(with(&[flag, "x", "status"])), UnknownArgument);
            assert_eq!(clap_err(with(&["status", flag, "x"])), UnknownArgument);
            assert_eq!(clap_err(with(&["passwd", flag, "x"])), UnknownArgument);
        }
        assert_eq!(
            clap_err(with(&[
                "users",
                "add",
                "bob",
                "--role",
                "admin",
                "--password",
                "x"
            ])),
            UnknownArgument
        );
        // No argument anywhere in the grammar is a secret.
        fn walk(cmd: &clap::Command) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                assert!(
                    id == "password_stdin" || !(id.contains("password") || id.contains("token")),
                    "secret-looking argument {id} in {}",
                    cmd.get_name()
                );
            }
            cmd.get_subcommands().for_each(walk);
        }
        walk(&command());
    }

    #[test]
    fn recover_requires_console() {
        match parse(with(&["recover", "bob"])) {
            Err(ParseFailure::Invalid(e)) => assert_eq!(e.exit_code(), 2),
            other => panic!("expected a usage error, got {other:?}"),
        }
        let cli = parse(["mamori", "--console", "recover", "bob"]).unwrap();
        assert!(matches!(cli.command, Command::Recover { ref username, .. } if username == "bob"));
    }

    #[test]
    fn console_socket_forms() {
        let sock = |args: &[&str]| parse(args.to_vec()).unwrap().global.console_socket();
        let default = Some(PathBuf::from("/var/lib/mamori/run/console.sock"));
        assert_eq!(sock(&["mamori", "--console", "device"]), default);
        assert_eq!(sock(&["mamori", "device", "--console"]), default);
        assert_eq!(
            sock(&["mamori", "--state-dir", "/srv/m", "--console", "device"]),
            Some(PathBuf::from("/srv/m/run/console.sock"))
        );
        assert_eq!(
            sock(&["mamori", "--console", "/tmp/x/console.sock", "device"]),
            Some(PathBuf::from("/tmp/x/console.sock"))
        );
        assert_eq!(
            sock(&["mamori", "--console=rel.sock", "device"]),
            Some(PathBuf::from("rel.sock"))
        );
        assert_eq!(
            sock(&["mamori", "--console", "rel.sock", "recover", "bob"]),
            Some(PathBuf::from("rel.sock"))
        );
        // A user name after `recover --console` is not mistaken for a socket.
        let cli = parse(["mamori", "recover", "--console", "bob"]).unwrap();
        assert_eq!(cli.global.console_socket(), default);
        assert!(matches!(cli.command, Command::Recover { ref username, .. } if username == "bob"));
    }

    #[test]
    fn https_needs_url_and_cacert() {
        for args in [
            vec!["mamori", "device"],
            vec!["mamori", "--url", "https://127.0.0.1:1", "device"],
            vec!["mamori", "--cacert", "/c.pem", "device"],
        ] {
            match parse(args) {
                Err(ParseFailure::Invalid(e)) => assert_eq!(e.exit_code(), 2),
                // MAMORI_URL / MAMORI_CACERT may be set in the environment of the test run.
                Ok(_) => {}
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        assert!(parse(["mamori", "--console", "device"]).is_ok());
    }

    #[test]
    fn usage_errors_from_clap_exit_2() {
        let Err(ParseFailure::Clap(e)) = parse(with(&["users", "add", "bob"])) else {
            panic!("missing --role must fail");
        };
        assert_eq!(e.exit_code(), 2);
        let Err(ParseFailure::Clap(e)) = parse(with(&["users", "add", "bob", "--role", "root"]))
        else {
            panic!("unknown role must fail");
        };
        assert_eq!(e.exit_code(), 2);
        assert_eq!(
            clap_err(with(&["settings", "auth", "set"])),
            clap::error::ErrorKind::MissingRequiredArgument
        );
    }

    #[test]
    fn access_set_lists() {
        let cli = parse(with(&[
            "settings",
            "access",
            "set",
            "--allow",
            "10.0.0.0/8",
            "192.0.2.0/24",
            "--trusted",
            "--confirm",
        ]))
        .unwrap();
        let Command::Settings(SettingsCmd::Access(AccessSettingsCmd::Set {
            allow,
            trusted,
            confirm,
        })) = cli.command
        else {
            panic!("wrong command");
        };
        assert_eq!(
            allow,
            Some(vec!["10.0.0.0/8".to_string(), "192.0.2.0/24".to_string()])
        );
        assert_eq!(trusted, Some(vec![]));
        assert!(confirm);
        let cli = parse(with(&[
            "settings",
            "access",
            "set",
            "--allow",
            "10.0.0.0/8",
            "--allow",
            "::1/128",
        ]))
        .unwrap();
        let Command::Settings(SettingsCmd::Access(AccessSettingsCmd::Set {
            allow, trusted, ..
        })) = cli.command
        else {
            panic!("wrong command");
        };
        assert_eq!(allow.map(|a| a.len()), Some(2));
        assert_eq!(trusted, None);
    }

    #[test]
    fn settings_pairs_are_json_or_text() {
        use serde_json::json;
        assert_eq!(parse_pair("a=5").unwrap(), ("a".into(), json!(5)));
        assert_eq!(parse_pair("a=true").unwrap(), ("a".into(), json!(true)));
        assert_eq!(
            parse_pair(r#"r=["admin","operator"]"#).unwrap(),
            ("r".into(), json!(["admin", "operator"]))
        );
        assert_eq!(parse_pair("s=hello").unwrap(), ("s".into(), json!("hello")));
        assert_eq!(parse_pair("s=a=b").unwrap(), ("s".into(), json!("a=b")));
        assert_eq!(parse_pair("s=").unwrap(), ("s".into(), json!("")));
        assert!(parse_pair("novalue").is_err());
        assert!(parse_pair("=1").is_err());
        assert_eq!(
            clap_err(with(&["settings", "auth", "set", "oops"])),
            clap::error::ErrorKind::ValueValidation
        );
    }

    #[test]
    fn access_set_needs_a_list() {
        assert_eq!(
            clap_err(with(&["settings", "access", "set", "--confirm"])),
            clap::error::ErrorKind::MissingRequiredArgument
        );
    }

    #[test]
    fn help_is_not_an_error() {
        let Err(ParseFailure::Clap(e)) = parse(["mamori", "--help"]) else {
            panic!("--help must stop parsing");
        };
        assert_eq!(e.exit_code(), 0);
    }
}
