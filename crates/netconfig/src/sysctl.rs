//! The kernel settings a gateway needs, set by the privileged parent with every apply.
//!
//! - Forwarding on, IPv4 and IPv6: the device routes between its zones (its firewall decides
//!   what may pass).
//! - Bridged frames stay out of the IP firewall (`net.bridge.bridge-nf-call-*` = 0): hosts on one
//!   lan bridge talk to each other at layer 2, as on any switch. With `br_netfilter` loaded
//!   (Docker and others load it) the kernel would otherwise pass every bridged frame through
//!   the forward chain, whose policy drops, and cut the lan in pieces.
//! - The usual hardening (what VyOS and OpenWrt set too): no ICMP redirects accepted or sent, no
//!   source-routed packets, SYN cookies on (a SYN flood cannot fill the listen queue of the
//!   management listener), no answer to broadcast pings.
//!
//! Keys the kernel does not have (no bridge module) are skipped.

use std::path::Path;
use std::process::Command;

/// The settings, as `/proc/sys` paths below `net/` and values.
pub const ROUTER: &[(&str, &str)] = &[
    ("ipv4/ip_forward", "1"),
    ("ipv6/conf/all/forwarding", "1"),
    ("bridge/bridge-nf-call-iptables", "0"),
    ("bridge/bridge-nf-call-ip6tables", "0"),
    ("bridge/bridge-nf-call-arptables", "0"),
    ("ipv4/conf/all/accept_redirects", "0"),
    ("ipv4/conf/default/accept_redirects", "0"),
    ("ipv4/conf/all/send_redirects", "0"),
    ("ipv4/conf/default/send_redirects", "0"),
    ("ipv4/conf/all/accept_source_route", "0"),
    ("ipv6/conf/all/accept_redirects", "0"),
    ("ipv6/conf/default/accept_redirects", "0"),
    ("ipv6/conf/all/accept_source_route", "0"),
    ("ipv4/tcp_syncookies", "1"),
    ("ipv4/icmp_echo_ignore_broadcasts", "1"),
];

/// Sets [`ROUTER`] in this process's network namespace, or in `netns` (tests: `ip netns exec
/// NS sysctl`). Answers the keys that could not be set (missing keys are not errors).
pub fn set_router(netns: Option<&str>) -> Vec<String> {
    match netns {
        None => ROUTER
            .iter()
            .filter_map(|(key, value)| {
                let path = Path::new("/proc/sys/net").join(key);
                if !path.exists() {
                    return None;
                }
                std::fs::write(&path, value)
                    .err()
                    .map(|e| format!("net/{key}: {e}"))
            })
            .collect(),
        Some(ns) => {
            let args: Vec<String> = ROUTER
                .iter()
                .map(|(k, v)| format!("net.{}={v}", k.replace('/', ".")))
                .collect();
            match Command::new("ip")
                .args(["netns", "exec", ns, "sysctl", "-q", "-e", "-w"])
                .args(&args)
                .output()
            {
                Ok(o) if o.status.success() => Vec::new(),
                Ok(o) => vec![String::from_utf8_lossy(&o.stderr).trim().to_owned()],
                Err(e) => vec![format!("sysctl: {e}")],
            }
        }
    }
}
