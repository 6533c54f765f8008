//! The lab against the real kernel (root): reachability, idempotence, repair, removal, two labs
//! side by side, and the device on the management address.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use mamori_lab::plan::{self, ifname};
use mamori_lab::{DeviceSpec, Lab, LabName, LabSpec, LabState, Role};
use support::{Guard, ip, netns_names, ping, ping_ttl};

#[test]
fn up_wires_wan_gateway_lan_and_the_management_link() {
    let t = Instant::now();
    let (g, r) = Guard::up(Guard::name("tnet"));
    eprintln!(
        "lab up (no device): {} ms (measured outside: {:?})",
        r.elapsed_ms,
        t.elapsed()
    );
    let ns = |role| g.0.netns(role);
    let (lan1, gw) = (ns(Role::Lan1), ns(Role::Gw));

    // The lan segment: host to host and to the gateway, v4 and v6.
    assert!(ping(Some(&lan1), plan::LAN2_V4), "lan1 -> lan2 v4");
    assert!(ping(Some(&lan1), plan::lan2_v6()), "lan1 -> lan2 v6");
    assert!(ping(Some(&lan1), plan::GW_LAN_V4), "lan1 -> gateway v4");
    assert!(ping(Some(&lan1), plan::gw_lan_v6()), "lan1 -> gateway v6");
    // The gateway and its upstream.
    assert!(ping(Some(&gw), plan::WAN_HOST_V4), "gateway -> wan v4");
    assert!(ping(Some(&gw), plan::wan_host_v6()), "gateway -> wan v6");
    // The host reaches the management address (and only through the management link).
    assert!(ping(None, r.mgmt.gw_v4), "host -> management v4");
    assert!(ping(None, r.mgmt.gw_v6), "host -> management v6");
    // A lan host reaches the wan host through the gateway: with a hop limit of 1 the echo dies
    // at the gateway, with more it arrives (routed, no NAT yet).
    assert!(ping(Some(&lan1), plan::WAN_HOST_V4), "lan1 -> wan v4");
    assert!(ping(Some(&lan1), plan::wan_host_v6()), "lan1 -> wan v6");
    assert!(
        !ping_ttl(Some(&lan1), plan::WAN_HOST_V4.into(), 1, 1),
        "ttl 1 must stop at the gateway"
    );
    assert!(
        !ping_ttl(Some(&lan1), plan::wan_host_v6().into(), 1, 1),
        "hop limit 1 must stop at the gateway"
    );
    // The host gets no route into the lab but the management link's own prefixes (probing the
    // lan from the host would send test traffic out of the host's default route).
    let routes = ip(&["route", "show", "dev", &g.0.host_if()]);
    assert_eq!(routes.lines().count(), 1, "{routes}");

    let st = Lab::status(&g.0).unwrap();
    assert_eq!(st.state, LabState::Up, "{st}");
    assert_eq!(
        st.forwarding,
        Some(mamori_lab::Forwarding {
            ipv4: true,
            ipv6: true
        })
    );
    assert!(!st.device.running);
    let bridge = st
        .links
        .iter()
        .find(|l| l.namespace == gw && l.ifname == ifname::GW_LAN)
        .unwrap();
    assert_eq!(bridge.kind.as_deref(), Some("bridge"));
    let json = serde_json::to_value(&st).unwrap();
    assert_eq!(json["state"], "up");
    assert_eq!(json["namespaces"].as_array().unwrap().len(), 4);
    assert!(st.to_string().contains(ifname::GW_MGMT));
}

#[test]
fn up_is_idempotent_and_repairs_a_half_built_lab() {
    let name = Guard::name("trep");
    let (g, first) = Guard::up(name.clone());
    let t = Instant::now();
    let again = Lab::up(&LabSpec {
        name: name.clone(),
        device: None,
    })
    .unwrap();
    eprintln!("lab up on a lab that is up: {:?}", t.elapsed());
    assert!(!again.built, "a second up builds nothing");
    assert_eq!(again.mgmt, first.mgmt);

    // Something broken by hand in a lab that is up: a bridge port down and an address gone.
    let gw = name.netns(Role::Gw);
    ip(&["-n", &gw, "link", "set", ifname::GW_LAN1, "down"]);
    ip(&[
        "-n",
        &name.netns(Role::Lan2),
        "addr",
        "flush",
        "dev",
        ifname::HOST,
    ]);
    let st = Lab::status(&name).unwrap();
    assert_eq!(st.state, LabState::Partial);
    assert!(
        st.missing.iter().any(|m| m.contains(ifname::GW_LAN1)),
        "{:?}",
        st.missing
    );
    let fixed = Lab::up(&LabSpec {
        name: name.clone(),
        device: None,
    })
    .unwrap();
    assert!(fixed.built && !fixed.repaired.is_empty());
    assert_eq!(Lab::status(&name).unwrap().state, LabState::Up);
    assert!(ping(Some(&name.netns(Role::Lan1)), plan::LAN2_V4));

    // A crash in the middle of up, recreated by hand: two namespaces and the host's end of the
    // management link with its peer in the gateway, nothing else.
    Lab::down(&name).unwrap();
    ip(&["netns", "add", &name.netns(Role::Wan)]);
    ip(&["netns", "add", &gw]);
    ip(&[
        "link",
        "add",
        &name.host_if(),
        "type",
        "veth",
        "peer",
        "name",
        ifname::GW_MGMT,
        "netns",
        &gw,
    ]);
    assert_eq!(Lab::status(&name).unwrap().state, LabState::Partial);
    let repaired = Lab::up(&LabSpec {
        name: name.clone(),
        device: None,
    })
    .unwrap();
    assert!(repaired.built);
    assert!(
        repaired.repaired.iter().any(|r| r.contains(&gw)),
        "{:?}",
        repaired.repaired
    );
    assert_eq!(Lab::status(&name).unwrap().state, LabState::Up);
    assert!(ping(Some(&name.netns(Role::Lan1)), plan::WAN_HOST_V4));
    assert!(ping(None, repaired.mgmt.gw_v4));
    drop(g);
}

#[test]
fn down_removes_everything_of_the_lab_and_nothing_else() {
    let name = Guard::name("tdown");
    // Foreign things: a namespace, and another lab's-looking namespace that is not this lab's.
    let pid = std::process::id() % 100_000;
    let foreign = [format!("tforeign{pid}"), format!("mlab-tdown{pid}x-gw")];
    for f in &foreign {
        ip(&["netns", "add", f]);
    }
    let (g, _) = Guard::up(name.clone());
    let t = Instant::now();
    let report = Lab::down(&name).unwrap();
    eprintln!("lab down: {:?}", t.elapsed());
    assert!(report.removed.len() >= 5, "{:?}", report.removed);

    let left = netns_names();
    for role in Role::ALL {
        assert!(
            !left.contains(&name.netns(role)),
            "{} left",
            name.netns(role)
        );
    }
    assert!(!ip(&["-o", "link", "show"]).contains(&format!("{}:", name.host_if())));
    assert!(!ip(&["-o", "link", "show"]).contains(&format!("{}@", name.host_if())));
    assert!(
        !std::path::Path::new(mamori_lab::RUN_ROOT)
            .join(name.as_str())
            .exists()
    );
    for f in &foreign {
        assert!(left.contains(f), "foreign namespace {f} was removed");
    }
    assert_eq!(Lab::status(&name).unwrap().state, LabState::Down);
    // Idempotent.
    assert!(Lab::down(&name).unwrap().removed.is_empty());
    for f in &foreign {
        ip(&["netns", "delete", f]);
    }
    drop(g);
}

#[test]
fn two_labs_with_different_names_coexist() {
    let (a, ra) = Guard::up(Guard::name("tco"));
    let (b, rb) = Guard::up(LabName::new(&format!("tcb{}", std::process::id() % 100_000)).unwrap());
    assert_ne!(ra.mgmt.slot, rb.mgmt.slot);
    assert!(ping(None, ra.mgmt.gw_v4) && ping(None, rb.mgmt.gw_v4));
    assert!(ping(Some(&a.0.netns(Role::Lan1)), plan::WAN_HOST_V4));
    assert!(ping(Some(&b.0.netns(Role::Lan1)), plan::WAN_HOST_V4));
    Lab::down(&a.0).unwrap();
    assert_eq!(Lab::status(&b.0).unwrap().state, LabState::Up);
    assert!(ping(None, rb.mgmt.gw_v4));
    assert!(ping(Some(&b.0.netns(Role::Lan2)), plan::gw_lan_v6()));
}

#[test]
fn with_device_mamorid_serves_on_the_management_address_and_down_stops_it() {
    let name = Guard::name("tdev");
    let g = Guard(name.clone());
    let spec = LabSpec {
        name: name.clone(),
        device: Some(DeviceSpec {
            mamorid: support::mamorid(),
            state_dir: None,
            port: mamori_lab::DEFAULT_PORT,
            manage_network: false,
        }),
    };
    let t = Instant::now();
    let r = Lab::up(&spec).unwrap();
    eprintln!(
        "lab up --with-device: {} ms ({:?})",
        r.elapsed_ms,
        t.elapsed()
    );
    let d = r.device.clone().unwrap();
    assert!(d.started);
    assert_eq!(d.url, format!("https://{}/", r.mgmt.gw_v4));
    let label = d
        .label_password
        .clone()
        .expect("label password at first start");
    assert_eq!(label.len(), 16, "{label:?}");

    let st = Lab::status(&name).unwrap();
    assert!(st.device.running, "{st}");
    assert_eq!(st.device.pid_file, Some(d.pid));
    assert!(st.device.pids.contains(&d.pid));
    assert_eq!(st.device.url.as_deref(), Some(d.url.as_str()));

    // From the host, TLS verified against the device's own certificate: 401 without login.
    let mut roots = rustls::RootCertStore::empty();
    use rustls_pki_types::pem::PemObject;
    for c in rustls_pki_types::CertificateDer::pem_file_iter(&d.cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let http = reqwest::blocking::Client::builder()
        .tls_backend_preconfigured(mamori_crypto::tls::client_config(roots).unwrap())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let resp = http.get(format!("{}api/v1/device", d.url)).send().unwrap();
    assert_eq!(resp.status().as_u16(), 401);

    // A second up leaves the running device alone.
    let again = Lab::up(&spec).unwrap();
    let ad = again.device.unwrap();
    assert!(!again.built && !ad.started);
    assert_eq!(ad.pid, d.pid);

    let pids = st.device.pids.clone();
    let t = Instant::now();
    let down = Lab::down(&name).unwrap();
    eprintln!("lab down with the device: {:?}", t.elapsed());
    assert!(
        down.removed
            .iter()
            .any(|r| r.starts_with(&format!("mamorid {}", d.pid))),
        "{:?}",
        down.removed
    );
    for p in pids {
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
        let state = stat
            .rsplit_once(')')
            .map(|(_, s)| s.trim_start().chars().next());
        assert!(
            matches!(state, None | Some(Some('Z'))),
            "mamorid {p} still runs: {stat}"
        );
    }
    assert_eq!(Lab::status(&name).unwrap().state, LabState::Down);
    drop(g);
}
