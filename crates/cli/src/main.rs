//! `mamori`: the administrator's command-line client for the mamori management API.
//!
//! `mamori --url https://127.0.0.1:PORT --cacert STATE/tls/device-cert.pem <command> [--json]`,
//! or `mamori --console <command>` on the device itself. Exit codes are listed in [`error`].

mod args;
mod commands;
mod error;
mod output;
mod session;
mod transport;

use std::process::ExitCode;

use args::{AuditCmd, Cli, Command, ParseFailure};
use commands::Ctx;
use error::{CliError, EXIT_USAGE};
use output::Output;
use session::{Secrets, Session};
use transport::{ConsoleTransport, HttpsTransport, Transport};
use zeroize::Zeroizing;

fn main() -> ExitCode {
    let cli = match args::parse(std::env::args_os()) {
        Ok(cli) => cli,
        Err(ParseFailure::Clap(e)) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(EXIT_USAGE));
        }
        Err(ParseFailure::Invalid(e)) => return fail(&e),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&CliError::Connection(format!("cannot start runtime: {e}"))),
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(e: &CliError) -> ExitCode {
    eprintln!("mamori: {e}");
    ExitCode::from(e.exit_code())
}

/// Connects, authenticates, runs the command and logs out.
async fn run(cli: Cli) -> Result<(), CliError> {
    let out = Output {
        json: cli.global.json,
    };
    // Verification reads the state directory as root; it needs no daemon and no login.
    if let Command::Audit(AuditCmd::Verify { state_dir }) = &cli.command {
        return commands::audit::verify_local(state_dir, out);
    }
    // The lab lives on this host: root, no daemon, no login.
    if let Command::Lab(cmd) = cli.command {
        return commands::lab::run(cmd, &cli.global, out);
    }
    let transport = match cli.global.console_socket() {
        Some(socket) => Transport::Console(ConsoleTransport::new(socket)),
        None => {
            let (Some(url), Some(cacert)) = (&cli.global.url, &cli.global.cacert) else {
                return Err(CliError::Usage("--url and --cacert are required".into()));
            };
            Transport::Https(HttpsTransport::new(url, cacert)?)
        }
    };
    if let Command::Recover {
        username,
        reset_mfa,
    } = &cli.command
    {
        return commands::recover::run(transport, username, *reset_mfa, out).await;
    }

    let user = cli.global.user.clone();
    let mut session = Session::new(
        transport,
        Secrets::from_env(&user),
        cli.global.totp.clone(),
        cli.global.reauth_totp.clone(),
    );
    let login = match std::env::var("MAMORI_TOKEN").ok().filter(|t| !t.is_empty()) {
        Some(token) => {
            session.use_token(Zeroizing::new(token));
            None
        }
        None => Some(session.login(&user).await?),
    };
    if login.as_ref().is_some_and(|l| l.must_change_password()) && !cli.command.is_passwd() {
        let _ = session.logout().await;
        return Err(CliError::MustChangePassword { username: user });
    }

    let mut ctx = Ctx {
        session,
        out,
        user,
        login,
    };
    let result = dispatch(&mut ctx, cli.command).await;
    match ctx.session.logout().await {
        // The command may have ended this very session (revoke, disable): nothing to do.
        Err(CliError::Api(e)) if e.status == 401 => {}
        Err(e) if result.is_ok() => eprintln!("mamori: warning: logout failed: {e}"),
        _ => {}
    }
    result
}

async fn dispatch(ctx: &mut Ctx, command: Command) -> Result<(), CliError> {
    match command {
        Command::Login => commands::login::login(ctx).await,
        Command::Passwd => commands::login::passwd(ctx).await,
        Command::Status => commands::info::status(ctx).await,
        Command::Device => commands::info::device(ctx).await,
        Command::Openapi => commands::info::openapi(ctx).await,
        Command::Users(cmd) => commands::users::run(ctx, cmd).await,
        Command::Sessions(cmd) => commands::sessions::run(ctx, cmd).await,
        Command::Mfa(cmd) => commands::mfa::run(ctx, cmd).await,
        Command::Token(cmd) => commands::token::run(ctx, cmd).await,
        Command::Settings(cmd) => commands::settings::run(ctx, cmd).await,
        Command::Audit(cmd) => commands::audit::run(ctx, cmd).await,
        Command::Time(cmd) => commands::time::run(ctx, cmd).await,
        Command::Config(cmd) => commands::config::run(ctx, cmd).await,
        Command::Lab(_) => Err(CliError::Usage("`lab` runs locally".into())),
        Command::Recover { .. } => Err(CliError::Usage(
            "`recover` works only on the local console: add --console".into(),
        )),
    }
}
