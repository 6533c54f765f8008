//! Running `nft`: the dry run (`nft -c -f`), the load (`nft -f`) and listing.
//!
//! The script is passed on standard input (`-f -`) or as a file path; nft is started with an
//! argument vector, never through a shell. In the product the privileged parent runs these;
//! tests and the benchmark run them directly, optionally inside a network namespace
//! (`ip netns exec NAME nft ...`).

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::render::Ruleset;

/// Why nft did not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NftError {
    /// nft could not be started (not installed, no permission).
    #[error("could not run nft: {0}")]
    Spawn(#[source] std::io::Error),
    /// nft refused the script; its standard error says where.
    #[error("nft refused the ruleset (exit status {status:?}): {stderr}")]
    Rejected {
        /// nft's exit status, if it exited.
        status: Option<i32>,
        /// What nft wrote to standard error.
        stderr: String,
    },
    /// nft's output was not UTF-8.
    #[error("nft wrote output that is not UTF-8")]
    Output,
}

/// How to run nft: directly, or inside a named network namespace.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Nft {
    netns: Option<String>,
}

impl Nft {
    /// nft in the caller's network namespace.
    pub fn new() -> Self {
        Self::default()
    }

    /// nft inside the named network namespace (through `ip netns exec`). The name is passed as
    /// one argument, never interpreted by a shell.
    pub fn in_netns(name: &str) -> Self {
        Self {
            netns: Some(name.to_owned()),
        }
    }

    fn command(&self) -> Command {
        match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "nft"]);
                c
            }
            None => Command::new("nft"),
        }
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<String, NftError> {
        let mut cmd = self.command();
        cmd.args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(NftError::Spawn)?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // A write error means nft exited early; its status and stderr tell why.
            let _ = pipe.write_all(text.as_bytes());
        }
        let out = child.wait_with_output().map_err(NftError::Spawn)?;
        if out.status.success() {
            String::from_utf8(out.stdout).map_err(|_| NftError::Output)
        } else {
            Err(NftError::Rejected {
                status: out.status.code(),
                stderr: String::from_utf8_lossy(&out.stderr).trim_end().to_owned(),
            })
        }
    }

    /// Dry run: `nft -c -f -`. The kernel checks the whole batch and commits nothing.
    pub fn check(&self, ruleset: &Ruleset) -> Result<(), NftError> {
        self.run(&["-c", "-f", "-"], Some(ruleset.as_str()))
            .map(drop)
    }

    /// Dry run of a script file: `nft -c -f PATH`.
    pub fn check_file(&self, path: &Path) -> Result<(), NftError> {
        let path = path.to_str().ok_or(NftError::Output)?;
        self.run(&["-c", "-f", path], None).map(drop)
    }

    /// Load: `nft -f -`, one transaction.
    pub fn load(&self, ruleset: &Ruleset) -> Result<(), NftError> {
        self.run(&["-f", "-"], Some(ruleset.as_str())).map(drop)
    }

    /// `nft list tables`: one `table FAMILY NAME` per line.
    pub fn list_tables(&self) -> Result<Vec<String>, NftError> {
        Ok(self
            .run(&["list", "tables"], None)?
            .lines()
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect())
    }

    /// `nft -s list table inet NAME`: the table without counters or quotas, loadable again.
    pub fn list_table_stateless(&self, name: &str) -> Result<String, NftError> {
        self.run(&["-s", "list", "table", "inet", name], None)
    }

    /// `nft list ruleset` (or `nft -j list ruleset` with `json`).
    pub fn list_ruleset(&self, json: bool) -> Result<String, NftError> {
        if json {
            self.run(&["-j", "list", "ruleset"], None)
        } else {
            self.run(&["list", "ruleset"], None)
        }
    }
}

/// Dry run of a script file with the nft of this namespace: `nft -c -f PATH`.
pub fn render_check(path: &Path) -> Result<(), NftError> {
    Nft::new().check_file(path)
}
