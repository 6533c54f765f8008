//! What `/proc` says about a process.

/// Clock ticks per second of the CPU times in `/proc/PID/stat` (`USER_HZ`, 100 on Linux).
pub const USER_HZ: u64 = 100;

/// A `kB` field of `/proc/PID/status` (for example `VmRSS`), in KiB.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

/// A `kB` field of `/proc/PID/smaps_rollup` (for example `Pss`: resident memory with pages
/// shared between processes divided among them), in KiB.
pub fn rollup_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

/// The fields of `/proc/PID/stat` after the command name: index 0 is the state, 1 the parent,
/// 11 `utime`, 12 `stime`.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = text.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// User plus system CPU time of a process (all its threads, living and ended), in ms.
pub fn cpu_ms(pid: u32) -> Option<u64> {
    let f = stat_fields(pid)?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) * 1000 / USER_HZ)
}

/// The processes whose parent is `pid`.
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out: Vec<u32> = dir
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| {
            stat_fields(p)
                .and_then(|f| f.get(1)?.parse::<u32>().ok())
                .is_some_and(|ppid| ppid == pid)
        })
        .collect();
    out.sort_unstable();
    out
}

/// `pid` and its children.
pub fn with_children(pid: u32) -> Vec<u32> {
    let mut v = vec![pid];
    v.extend(children(pid));
    v
}

/// The executable of a process (`/proc/PID/exe`).
pub fn exe(pid: u32) -> Option<std::path::PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/exe")).ok()
}

/// CPU time of the whole machine from `/proc/stat`, in ms summed over all CPUs: (busy, total).
/// Busy is user, nice, system, irq, softirq and steal; total adds idle and iowait.
pub fn machine_cpu_ms() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    let busy = at(0) + at(1) + at(2) + at(5) + at(6) + at(7);
    let total = busy + at(3) + at(4);
    Some((busy * 1000 / USER_HZ, total * 1000 / USER_HZ))
}
