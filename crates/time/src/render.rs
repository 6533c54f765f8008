//! `chrony.conf`, written by mamori from a [`TimeConfig`].
//!
//! The file is mamori's own: it is rewritten whole from the configuration, never edited in
//! place, and lives in a directory only root can write (`STATE/chrony`). chronyd's own files
//! (drift, NTS cookies, pid file, command socket) live beneath it in `STATE/chrony/var`, owned
//! by the chrony user, because chronyd writes them after it dropped root.
//!
//! # The choices, line by line
//!
//! - `server HOST [port N] [iburst] [nts [ntsport N]] [minpoll N] [maxpoll N]`: one line per
//!   configured server. Hosts are [`crate::NtpHost`]s, so no other text reaches the file.
//! - `authselectmode prefer` (or `require` with [`TimeConfig::require_nts`]): once a server is
//!   marked NTS, the unauthenticated ones are never selected, so an attacker who blocks NTS-KE
//!   cannot push the device onto a spoofable source; the clock then stays unsynchronised, which
//!   shows in the status and as a `time_sync_changed` event. With no NTS server the mode has
//!   no effect.
//! - `minsources N`.
//! - `makestep 1.0 3`: chronyd steps the clock only in its first three updates after it starts
//!   (at boot, when the clock may be far off) and only by more than a second; from then on it
//!   only slews (at most about 0.1 s per second), so the time in the audit log never jumps
//!   because of NTP after start-up, and any later step is someone else's: the step watcher
//!   records it as `time_changed`.
//! - `driftfile`, `ntsdumpdir`: the frequency estimate and the NTS cookies survive restarts
//!   (fewer NTS-KE handshakes).
//! - `ntstrustedcerts` / `nosystemcert`: which CAs may vouch for an NTS server, when the
//!   daemon passes its own list ([`RenderOptions`]).
//! - `rtcsync` when [`TimeConfig::rtc_sync`].
//! - `port 0`: the device serves no NTP to anyone (no amplification, no open port).
//! - `cmdport 0`: no UDP command port; `chronyc` talks only over the Unix socket
//!   `bindcmdaddress STATE/chrony/var/run/chronyd.sock`, which only root and the chrony user
//!   can reach.
//! - `pidfile`: the privileged parent reads it to know whether NTP runs
//!   ([`CHRONY_PID_FILE`]).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::config::{ConfigError, TimeConfig};

/// mamori's chronyd pid file, relative to the state directory. The privileged parent reads it to
/// know whether NTP synchronisation runs (a manual set-time is refused then unless forced).
pub const CHRONY_PID_FILE: &str = "chrony/var/chronyd.pid";

/// The directory under the state directory that holds `chrony.conf` (root only).
pub const CHRONY_DIR: &str = "chrony";
/// The longest Unix socket path (`sun_path` is 108 bytes with the terminating NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Where chronyd's files live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChronyPaths {
    /// Holds `chrony.conf`; owned by root, 0755.
    pub conf_dir: PathBuf,
    /// chronyd's writable files; owned by the chrony user, 0750.
    pub var_dir: PathBuf,
}

impl ChronyPaths {
    /// The layout under a mamori state directory: `STATE/chrony` and `STATE/chrony/var`.
    pub fn in_state_dir(state_dir: &Path) -> Self {
        let pid_file = state_dir.join(CHRONY_PID_FILE);
        let var_dir = pid_file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| state_dir.join(CHRONY_DIR).join("var"));
        Self {
            conf_dir: state_dir.join(CHRONY_DIR),
            var_dir,
        }
    }

    /// `chrony.conf`.
    pub fn config_file(&self) -> PathBuf {
        self.conf_dir.join("chrony.conf")
    }

    /// The command socket chronyc talks to.
    pub fn socket(&self) -> PathBuf {
        self.var_dir.join("run/chronyd.sock")
    }

    /// chronyd's pid file.
    pub fn pid_file(&self) -> PathBuf {
        self.var_dir.join("chronyd.pid")
    }

    /// The frequency estimate.
    pub fn drift_file(&self) -> PathBuf {
        self.var_dir.join("drift")
    }

    /// The saved NTS cookies.
    pub fn nts_dump_dir(&self) -> PathBuf {
        self.var_dir.join("nts")
    }
}

/// What the daemon adds to the administrator's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderOptions {
    /// A PEM file or directory of CA certificates trusted for NTS servers, in addition to (or,
    /// without `system_certs`, instead of) the system's.
    pub nts_trusted_certs: Option<PathBuf>,
    /// Trust the system's CA certificates for NTS servers.
    pub system_certs: bool,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            nts_trusted_certs: None,
            system_certs: true,
        }
    }
}

/// A path we write into `chrony.conf`: absolute and made only of `[A-Za-z0-9/._-]` (chrony
/// splits directives on white space and has no quoting).
fn conf_path(path: &Path) -> Result<&str, ConfigError> {
    let text = path.to_str().unwrap_or_default();
    let ok = path.is_absolute()
        && !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-'));
    if ok {
        Ok(text)
    } else {
        Err(ConfigError::UnsafePath(path.display().to_string()))
    }
}

/// Renders `chrony.conf` for `cfg` with chronyd's files at `paths`. Refuses a configuration
/// that does not validate, has no server, or paths that cannot be written safely.
pub fn render(
    cfg: &TimeConfig,
    paths: &ChronyPaths,
    opts: &RenderOptions,
) -> Result<String, ConfigError> {
    cfg.validate()?;
    if cfg.servers.is_empty() {
        return Err(ConfigError::NoServers);
    }
    let socket = paths.socket();
    let socket_text = conf_path(&socket)?;
    if socket_text.len() > MAX_SOCKET_PATH {
        return Err(ConfigError::SocketPathTooLong(socket_text.to_owned()));
    }
    let drift = paths.drift_file();
    let nts_dump = paths.nts_dump_dir();
    let pid = paths.pid_file();

    let mut out = String::new();
    // `writeln!` into a String cannot fail; the results are ignored on purpose.
    let _ = writeln!(
        out,
        "# Written by mamori from its time configuration. Do not edit: it is rewritten whole."
    );
    let _ = writeln!(out, "\n# Time sources.");
    for s in &cfg.servers {
        let mut line = format!("server {}", s.host);
        if let Some(port) = s.port {
            let _ = write!(line, " port {port}");
        }
        if s.iburst {
            line.push_str(" iburst");
        }
        if s.nts {
            line.push_str(" nts");
            if let Some(port) = s.nts_port {
                let _ = write!(line, " ntsport {port}");
            }
        }
        if let Some(p) = s.min_poll {
            let _ = write!(line, " minpoll {p}");
        }
        if let Some(p) = s.max_poll {
            let _ = write!(line, " maxpoll {p}");
        }
        let _ = writeln!(out, "{line}");
    }
    let mode = if cfg.require_nts { "require" } else { "prefer" };
    let _ = writeln!(
        out,
        "# Authenticated (NTS) sources only when required; otherwise, once any server uses NTS,\n\
         # unauthenticated ones are never selected.\n\
         authselectmode {mode}\n\
         minsources {}",
        cfg.min_sources
    );
    let _ = writeln!(
        out,
        "\n# Step only in the first three updates after start (boot), by more than 1 s; slew\n\
         # afterwards, so a later step of the clock is never chrony's and shows as an event.\n\
         makestep 1.0 3"
    );
    let _ = writeln!(
        out,
        "\n# chronyd's own files.\n\
         driftfile {}\n\
         ntsdumpdir {}\n\
         pidfile {}",
        conf_path(&drift)?,
        conf_path(&nts_dump)?,
        conf_path(&pid)?,
    );
    if let Some(certs) = &opts.nts_trusted_certs {
        let _ = writeln!(out, "ntstrustedcerts {}", conf_path(certs)?);
    }
    if !opts.system_certs {
        let _ = writeln!(out, "nosystemcert");
    }
    if cfg.rtc_sync {
        let _ = writeln!(
            out,
            "\n# The kernel copies the system time to the RTC every 11 minutes.\nrtcsync"
        );
    }
    let _ = writeln!(
        out,
        "\n# No NTP service for others, no UDP command port: chronyc only over the Unix socket,\n\
         # which only root and the chrony user can reach.\n\
         port 0\n\
         cmdport 0\n\
         bindcmdaddress {socket_text}"
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{NtpHost, NtpServer};

    fn paths() -> ChronyPaths {
        ChronyPaths::in_state_dir(Path::new("/var/lib/mamori"))
    }

    fn server(host: &str, nts: bool) -> NtpServer {
        NtpServer::new(NtpHost::parse(host).unwrap(), nts)
    }

    fn config(servers: Vec<NtpServer>) -> TimeConfig {
        TimeConfig {
            servers,
            require_nts: false,
            min_sources: 1,
            rtc_sync: true,
        }
    }

    /// The directive lines (no comments, no blank lines).
    fn directives(text: &str) -> Vec<&str> {
        text.lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    }

    #[test]
    fn the_layout_matches_the_pid_file_the_parent_reads() {
        let p = paths();
        assert_eq!(
            p.pid_file(),
            Path::new("/var/lib/mamori").join(CHRONY_PID_FILE)
        );
        assert_eq!(p.conf_dir, Path::new("/var/lib/mamori/chrony"));
        assert_eq!(p.var_dir, Path::new("/var/lib/mamori/chrony/var"));
        assert_eq!(
            p.socket(),
            Path::new("/var/lib/mamori/chrony/var/run/chronyd.sock")
        );
    }

    #[test]
    fn nts_servers_get_nts_and_the_policy_prefers_them() {
        let mut nts = server("nts.example.net", true);
        nts.nts_port = Some(4461);
        let mut plain = server("192.0.2.1", false);
        plain.iburst = false;
        plain.port = Some(1123);
        plain.min_poll = Some(4);
        plain.max_poll = Some(8);
        let text = render(
            &config(vec![nts, plain]),
            &paths(),
            &RenderOptions::default(),
        )
        .unwrap();
        assert_eq!(
            directives(&text),
            [
                "server nts.example.net iburst nts ntsport 4461",
                "server 192.0.2.1 port 1123 minpoll 4 maxpoll 8",
                "authselectmode prefer",
                "minsources 1",
                "makestep 1.0 3",
                "driftfile /var/lib/mamori/chrony/var/drift",
                "ntsdumpdir /var/lib/mamori/chrony/var/nts",
                "pidfile /var/lib/mamori/chrony/var/chronyd.pid",
                "rtcsync",
                "port 0",
                "cmdport 0",
                "bindcmdaddress /var/lib/mamori/chrony/var/run/chronyd.sock",
            ]
        );
    }

    #[test]
    fn require_nts_renders_require_and_trust_anchors_replace_the_system_ones() {
        let mut c = config(vec![server("a.example", true), server("b.example", true)]);
        c.require_nts = true;
        c.min_sources = 2;
        c.rtc_sync = false;
        let opts = RenderOptions {
            nts_trusted_certs: Some(PathBuf::from("/var/lib/mamori/tls/nts-ca.pem")),
            system_certs: false,
        };
        let text = render(&c, &paths(), &opts).unwrap();
        let d = directives(&text);
        assert!(d.contains(&"authselectmode require"), "{text}");
        assert!(d.contains(&"minsources 2"));
        assert!(d.contains(&"ntstrustedcerts /var/lib/mamori/tls/nts-ca.pem"));
        assert!(d.contains(&"nosystemcert"));
        assert!(!d.contains(&"rtcsync"));
        assert!(
            !d.iter()
                .any(|l| l.starts_with("allow") || l.starts_with("cmdallow"))
        );
    }

    #[test]
    fn injection_attempts_never_reach_the_file() {
        // Through deserialisation, the way the API receives a configuration.
        for host in [
            "ntp.example.net\\nallow all",
            "ntp.example.net cmdallow all",
            "ntp.example.net\\nbindcmdaddress 0.0.0.0",
            "ntp.example.net#",
            "x\\u0000",
        ] {
            let json = format!(r#"{{"servers":[{{"host":"{host}"}}]}}"#);
            assert!(
                serde_json::from_str::<TimeConfig>(&json).is_err(),
                "{json} was accepted"
            );
        }
        // Paths of our own with spaces or newlines are refused rather than written.
        for bad in [
            "/var/lib/ma mori",
            "/var/lib/mamori\nallow all",
            "relative/state",
            "/var/lib/#mamori",
        ] {
            let err = render(
                &config(vec![server("a.example", false)]),
                &ChronyPaths::in_state_dir(Path::new(bad)),
                &RenderOptions::default(),
            )
            .unwrap_err();
            assert!(matches!(err, ConfigError::UnsafePath(_)), "{bad:?}: {err}");
        }
        let opts = RenderOptions {
            nts_trusted_certs: Some(PathBuf::from("/etc/ssl/x.pem\nallow all")),
            system_certs: true,
        };
        assert!(matches!(
            render(&config(vec![server("a.example", true)]), &paths(), &opts),
            Err(ConfigError::UnsafePath(_))
        ));
    }

    #[test]
    fn every_line_is_a_known_directive() {
        let c = config(vec![
            server("a.example", true),
            server("2001:db8::1", false),
        ]);
        let text = render(&c, &paths(), &RenderOptions::default()).unwrap();
        let known = [
            "server",
            "authselectmode",
            "minsources",
            "makestep",
            "driftfile",
            "ntsdumpdir",
            "pidfile",
            "rtcsync",
            "port",
            "cmdport",
            "bindcmdaddress",
        ];
        for line in directives(&text) {
            let word = line.split_whitespace().next().unwrap_or_default();
            assert!(known.contains(&word), "unexpected line {line:?}");
        }
    }

    #[test]
    fn no_servers_or_an_invalid_config_is_not_rendered() {
        assert_eq!(
            render(&config(vec![]), &paths(), &RenderOptions::default()),
            Err(ConfigError::NoServers)
        );
        let mut c = config(vec![server("a.example", false)]);
        c.min_sources = 3;
        assert!(matches!(
            render(&c, &paths(), &RenderOptions::default()),
            Err(ConfigError::MinSources { .. })
        ));
        let long = format!("/{}", "s".repeat(90));
        assert!(matches!(
            render(
                &config(vec![server("a.example", false)]),
                &ChronyPaths::in_state_dir(Path::new(&long)),
                &RenderOptions::default()
            ),
            Err(ConfigError::SocketPathTooLong(_))
        ));
    }
}
