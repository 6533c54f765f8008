//! Test helpers: a network namespace that deletes itself (also on panic), running a monitor
//! inside it, and a sink that collects events.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use mamori_audit::{Event, EventKind, Sink};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh network namespace `mamori-mon-<pid>-<n>`, deleted on drop (with every interface in it).
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new() -> Self {
        clean_stale();
        let name = format!(
            "mamori-mon-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .expect("ip netns add");
        assert!(out.status.success(), "ip netns add {name}: {out:?}");
        let ns = Self { name };
        ns.run(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// Runs a command inside the namespace; panics if it fails.
    pub fn run(&self, cmd: &[&str]) -> Output {
        let out = self.try_run(cmd);
        assert!(
            out.status.success(),
            "{cmd:?} in {}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Runs a command inside the namespace.
    pub fn try_run(&self, cmd: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(cmd)
            .stdin(Stdio::null())
            .output()
            .expect("ip netns exec")
    }

    /// Runs `ip -batch` with these lines inside the namespace.
    pub fn ip_batch(&self, lines: &[String]) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("batch");
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        self.run(&["ip", "-batch", path.to_str().unwrap()]);
    }

    /// Runs `f` on a thread that has entered this namespace; monitors started there open their
    /// sockets here, and their threads inherit the namespace.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let file = File::open(format!("/run/netns/{}", self.name)).unwrap();
        std::thread::scope(|s| {
            s.spawn(move || {
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                f()
            })
            .join()
            .unwrap()
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .output();
    }
}

/// Deletes namespaces left by test processes that are gone (killed before their guard ran).
fn clean_stale() {
    let Ok(dir) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("mamori-mon-") else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or("");
        if !pid.is_empty() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "delete", &name]).output();
        }
    }
}

/// A sink that keeps every event in memory.
#[derive(Default)]
pub struct Collect {
    events: Mutex<Vec<Event>>,
    cv: Condvar,
}

impl Collect {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    pub fn of(&self, kind: EventKind) -> Vec<Event> {
        self.events()
            .into_iter()
            .filter(|e| e.event == kind)
            .collect()
    }

    /// Waits until `pred` holds for the events so far; returns whether it did in `timeout`.
    pub fn wait(&self, timeout: Duration, pred: impl Fn(&[Event]) -> bool) -> bool {
        let end = Instant::now() + timeout;
        let mut ev = self.events.lock().unwrap();
        loop {
            if pred(&ev) {
                return true;
            }
            let now = Instant::now();
            if now >= end {
                return false;
            }
            ev = self.cv.wait_timeout(ev, end - now).unwrap().0;
        }
    }

    /// Waits until an event of `kind` whose details match `pred` is there, and returns it.
    pub fn wait_for(
        &self,
        kind: EventKind,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> Option<Event> {
        let found = |ev: &[Event]| {
            ev.iter()
                .find(|e| e.event == kind && pred(&e.details))
                .cloned()
        };
        if self.wait(Duration::from_secs(10), |ev| found(ev).is_some()) {
            found(&self.events())
        } else {
            None
        }
    }

    pub fn clear(&self) {
        self.events.lock().unwrap().clear();
    }
}

impl Sink for Collect {
    fn record(&self, event: Event) {
        self.events.lock().unwrap().push(event);
        self.cv.notify_all();
    }
}

/// Whether the details name interface `name`.
pub fn iface(name: &str) -> impl Fn(&serde_json::Value) -> bool + '_ {
    move |d| d["interface"] == name
}

/// A short description of the events, for assertion messages.
pub fn dump(events: &[Event]) -> String {
    events
        .iter()
        .map(|e| format!("{:?} {}", e.event, e.details))
        .collect::<Vec<_>>()
        .join("\n")
}
