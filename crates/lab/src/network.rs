//! The gateway's factory network configuration for a lab: what mamorid is given as
//! `--factory-network` when it runs in the lab's gateway namespace.
//!
//! It is [`NetworkConfig::factory`] — the product's secure defaults (wan to anything dropped,
//! lan to wan accepted and masqueraded, management on 443 from the lan and mgmt zones only) —
//! for the gateway's three interfaces with the addresses of the lab's plan, plus the two
//! default routes to the wan host. The lab sets the same addresses and routes itself with `ip`
//! when it is built; the applier adopts the addresses and takes the routes over (one copy
//! each, tested in `tests/traffic.rs`).

use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;
use mamori_netconfig::{IfName, Interface, NetworkConfig, Prefix, Route};

use crate::plan::{self, Mgmt, ifname};

/// The lab's prefix lengths: /24 on wan and lan, /30 on the management link, /64 for IPv6.
const V4_LAN_WAN: u8 = 24;
const V4_MGMT: u8 = 30;
const V6: u8 = 64;

fn net(addr: impl Into<IpAddr>, len: u8) -> IpNet {
    // The lengths above are valid for their families, so this cannot fail.
    IpNet::new(addr.into(), len).unwrap_or_else(|_| unreachable!("prefix length {len}"))
}

fn iface(name: &str, role: mamori_netconfig::Role, addresses: Vec<IpNet>) -> Interface {
    // The plan's interface names are valid Linux names.
    let name = IfName::parse(name).unwrap_or_else(|e| unreachable!("{name}: {e}"));
    let mut i = Interface::new(name, role);
    i.addresses = addresses;
    i
}

fn default_route(gateway: IpAddr) -> Route {
    let any = match gateway {
        IpAddr::V4(_) => IpNet::V4(ipnet::Ipv4Net::default()),
        IpAddr::V6(_) => IpNet::V6(ipnet::Ipv6Net::default()),
    };
    Route {
        destination: Prefix::new(any).unwrap_or_else(|e| unreachable!("{any}: {e}")),
        gateway,
        metric: None,
    }
}

/// The gateway's factory configuration for a lab whose management link is `mgmt`: wan0 (wan),
/// lan0 (lan), mgmt0 (mgmt) with the plan's addresses, default routes via the wan host, and the
/// factory firewall, NAT and management access.
pub fn gateway_config(mgmt: &Mgmt) -> NetworkConfig {
    use mamori_netconfig::Role::{Lan, Mgmt as MgmtRole, Wan};
    let mut cfg = NetworkConfig::factory(vec![
        iface(
            ifname::GW_WAN,
            Wan,
            vec![net(plan::GW_WAN_V4, V4_LAN_WAN), net(plan::gw_wan_v6(), V6)],
        ),
        iface(
            ifname::GW_LAN,
            Lan,
            vec![net(plan::GW_LAN_V4, V4_LAN_WAN), net(plan::gw_lan_v6(), V6)],
        ),
        iface(
            ifname::GW_MGMT,
            MgmtRole,
            vec![net(mgmt.gw_v4, V4_MGMT), net(mgmt.gw_v6, V6)],
        ),
    ]);
    cfg.routes = vec![
        default_route(plan::WAN_HOST_V4.into()),
        default_route(plan::wan_host_v6().into()),
    ];
    cfg
}

/// Writes [`gateway_config`] as canonical JSON (what `mamorid --factory-network` reads).
pub fn write_gateway_config(path: &Path, mgmt: &Mgmt) -> std::io::Result<()> {
    std::fs::write(path, gateway_config(mgmt).to_canonical_json())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mamori_netconfig::Role;

    #[test]
    fn the_gateway_config_is_the_factory_for_the_plan_and_validates() {
        for slot in [0, 7, plan::SLOTS - 1] {
            let m = Mgmt::slot(slot);
            let cfg = gateway_config(&m);
            cfg.validate().unwrap();
            mamori_netconfig::render(&cfg).unwrap();
            let names: Vec<(&str, Role)> = cfg
                .interfaces
                .iter()
                .map(|i| (i.name.as_str(), i.role))
                .collect();
            assert_eq!(
                names,
                [
                    ("wan0", Role::Wan),
                    ("lan0", Role::Lan),
                    ("mgmt0", Role::Mgmt)
                ]
            );
            let addrs: Vec<String> = cfg
                .interfaces
                .iter()
                .flat_map(|i| i.addresses.iter().map(ToString::to_string))
                .collect();
            assert_eq!(
                addrs,
                [
                    "203.0.113.2/24".to_owned(),
                    "fd6d:616d:6f72:1::2/64".to_owned(),
                    "192.168.77.1/24".to_owned(),
                    "fd6d:616d:6f72:2::1/64".to_owned(),
                    format!("{}/30", m.gw_v4),
                    format!("{}/64", m.gw_v6),
                ]
            );
            let routes: Vec<String> = cfg
                .routes
                .iter()
                .map(|r| format!("{} via {}", r.destination, r.gateway))
                .collect();
            assert_eq!(
                routes,
                ["0.0.0.0/0 via 203.0.113.1", "::/0 via fd6d:616d:6f72:1::1"]
            );
        }
    }

    #[test]
    fn the_gateway_config_keeps_the_secure_defaults() {
        let cfg = gateway_config(&Mgmt::slot(0));
        let mut factory = NetworkConfig::factory(cfg.interfaces.clone());
        factory.routes = cfg.routes.clone();
        assert_eq!(cfg, factory, "nothing but the routes added to the factory");
        assert!(cfg.firewall.rules.is_empty(), "no service opened");
        let policies: Vec<String> = cfg
            .firewall
            .policies
            .iter()
            .map(|p| format!("{} {} {}", p.from, p.to, p.action.as_str()))
            .collect();
        // Only lan -> wan; every other pair, wan -> anything and * -> self included, drops.
        assert_eq!(policies, ["lan wan accept"]);
        let zones: Vec<&str> = cfg.management.zones.iter().map(|z| z.as_str()).collect();
        assert_eq!(zones, ["lan", "mgmt"]);
        assert_eq!(cfg.management.port, 443);
        let masq: Vec<&str> = cfg
            .nat
            .masquerade
            .iter()
            .map(|m| m.out_zone.as_str())
            .collect();
        assert_eq!(masq, ["wan"]);
    }

    #[test]
    fn the_written_file_reads_back_as_the_same_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("network.json");
        let m = Mgmt::slot(3);
        write_gateway_config(&path, &m).unwrap();
        let back: NetworkConfig =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(back, gateway_config(&m));
    }
}
