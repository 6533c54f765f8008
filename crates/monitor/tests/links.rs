//! Link, upstream and interface monitors against the real kernel, each test in its own network
//! namespace (S3.1-35 R1 A and G).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use common::{Collect, Netns, dump, iface};
use mamori_audit::{Event, EventKind, Sink};
use mamori_monitor::{InterfaceConfig, LinkConfig, MonitorHandle, interfaces, links};

fn start_links(ns: &Netns, sink: Arc<dyn Sink>, config: LinkConfig) -> MonitorHandle {
    let h = ns.enter(|| links::open(config).unwrap().start(sink));
    assert!(h.wait_ready(Duration::from_secs(10)), "{h:?}");
    h
}

/// S3.1-35 R1 A and G: a veth pair added is two `interface_added`; the link going up with its
/// peer up is `link_up`, down is `link_down`, each naming the interface; deleting the pair is
/// two `interface_removed`.
#[test]
fn veth_pair_added_up_down_and_removed_is_recorded_by_name() {
    let ns = Netns::new();
    let sink = Collect::new();
    let handle = ns.enter(|| {
        links::open(LinkConfig::default())
            .unwrap()
            .merge(interfaces::open(InterfaceConfig::default()).unwrap())
            .start(sink.clone())
    });
    assert!(handle.wait_ready(Duration::from_secs(10)));
    assert!(sink.events().is_empty(), "{}", dump(&sink.events()));

    ns.run(&[
        "ip", "link", "add", "mvA", "type", "veth", "peer", "name", "mvB",
    ]);
    let added_a = sink
        .wait_for(EventKind::InterfaceAdded, iface("mvA"))
        .expect("mvA added");
    sink.wait_for(EventKind::InterfaceAdded, iface("mvB"))
        .expect("mvB added");
    assert_eq!(added_a.details["kind"], "veth");
    assert!(
        added_a.details["mac"]
            .as_str()
            .is_some_and(|m| m.len() == 17)
    );
    // Created down: no link event.
    assert!(sink.of(EventKind::LinkUp).is_empty());

    ns.run(&["ip", "link", "set", "mvB", "up"]);
    ns.run(&["ip", "link", "set", "mvA", "up"]);
    let up = sink
        .wait_for(EventKind::LinkUp, iface("mvA"))
        .expect("mvA link_up");
    assert_eq!(up.details["admin_up"], true);
    assert_eq!(up.details["carrier"], true);
    // The peer gets carrier when both ends are up.
    sink.wait_for(EventKind::LinkUp, iface("mvB"))
        .expect("mvB link_up");

    ns.run(&["ip", "link", "set", "mvA", "down"]);
    let down = sink
        .wait_for(EventKind::LinkDown, iface("mvA"))
        .expect("mvA link_down");
    assert_eq!(down.details["admin_up"], false);
    assert!(down.details["index"].as_u64().is_some());
    // mvB lost its carrier with its peer.
    let b_down = sink
        .wait_for(EventKind::LinkDown, iface("mvB"))
        .expect("mvB link_down");
    assert_eq!(b_down.details["carrier"], false);

    ns.run(&["ip", "link", "del", "mvA"]);
    sink.wait_for(EventKind::InterfaceRemoved, iface("mvA"))
        .expect("mvA removed");
    sink.wait_for(EventKind::InterfaceRemoved, iface("mvB"))
        .expect("mvB removed");

    let st = handle.status();
    assert!(
        st.iter().all(|s| s.running && s.last_error.is_none()),
        "{st:?}"
    );
    assert_eq!(
        sink.of(EventKind::InterfaceAdded).len(),
        2,
        "{}",
        dump(&sink.events())
    );
    assert_eq!(sink.of(EventKind::InterfaceRemoved).len(), 2);
    handle.stop();
}

/// S3.1-35 R1 A: the upstream (default route via a veth) is lost when the peer goes down and
/// the veth loses carrier, restored when it comes back; removing the default route loses it
/// too; and an interface taken administratively down (IPv4 then drops its routes without
/// telling) does not come back as "restored" without a default route.
#[test]
fn upstream_is_lost_and_restored_with_the_default_routes_carrier() {
    let ns = Netns::new();
    ns.run(&[
        "ip", "link", "add", "upA", "type", "veth", "peer", "name", "upB",
    ]);
    ns.run(&["ip", "addr", "add", "192.0.2.2/24", "dev", "upA"]);
    ns.run(&["ip", "link", "set", "upA", "up"]);
    ns.run(&["ip", "link", "set", "upB", "up"]);
    ns.run(&[
        "ip",
        "route",
        "add",
        "default",
        "via",
        "192.0.2.1",
        "dev",
        "upA",
    ]);

    let sink = Collect::new();
    let handle = start_links(&ns, sink.clone(), LinkConfig::default());

    ns.run(&["ip", "link", "set", "upB", "down"]);
    let lost = sink
        .wait_for(EventKind::UpstreamLost, |d| d["family"] == "ipv4")
        .expect("upstream_lost");
    let routes = &lost.details["default_routes"];
    assert_eq!(routes[0]["gateway"], "192.0.2.1");
    assert_eq!(routes[0]["interfaces"][0]["interface"], "upA");
    assert_eq!(routes[0]["interfaces"][0]["up"], false);

    ns.run(&["ip", "link", "set", "upB", "up"]);
    let restored = sink
        .wait_for(EventKind::UpstreamRestored, |d| d["family"] == "ipv4")
        .expect("upstream_restored");
    assert_eq!(
        restored.details["default_routes"][0]["interfaces"][0]["up"],
        true
    );

    ns.run(&["ip", "route", "del", "default"]);
    assert!(
        sink.wait(Duration::from_secs(10), |ev| {
            ev.iter()
                .filter(|e| e.event == EventKind::UpstreamLost)
                .any(|e| e.details["reason"] == "default route removed")
        }),
        "{}",
        dump(&sink.events())
    );
    ns.run(&[
        "ip",
        "route",
        "add",
        "default",
        "via",
        "192.0.2.1",
        "dev",
        "upA",
    ]);
    assert!(sink.wait(Duration::from_secs(10), |ev| {
        ev.iter()
            .filter(|e| e.event == EventKind::UpstreamRestored)
            .count()
            == 2
    }));

    // Admin down flushes IPv4 routes silently; admin up again must not claim an upstream.
    ns.run(&["ip", "link", "set", "upA", "down"]);
    assert!(
        sink.wait(Duration::from_secs(10), |ev| {
            ev.iter()
                .filter(|e| e.event == EventKind::UpstreamLost)
                .count()
                == 3
        }),
        "{}",
        dump(&sink.events())
    );
    ns.run(&["ip", "link", "set", "upA", "up"]);
    sink.wait_for(EventKind::LinkUp, iface("upA"))
        .expect("upA up again");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        sink.of(EventKind::UpstreamRestored).len(),
        2,
        "restored without a default route:\n{}",
        dump(&sink.events())
    );
    let out = ns.run(&["ip", "route", "show", "default"]);
    assert!(out.stdout.is_empty(), "the kernel kept the route after all");
    handle.stop();
}

/// S3.1-35 R1 A, bounded: a link flapping 200 times in a burst gives a handful of records and a
/// counted summary, not 400 records; the log ends on the link's real state.
#[test]
fn a_link_flapping_200_times_is_bounded_and_summarised() {
    let ns = Netns::new();
    ns.run(&[
        "ip", "link", "add", "flA", "type", "veth", "peer", "name", "flB",
    ]);
    ns.run(&["ip", "link", "set", "flB", "up"]);
    let sink = Collect::new();
    let handle = start_links(&ns, sink.clone(), LinkConfig::default());

    let mut lines = Vec::new();
    for _ in 0..200 {
        lines.push("link set dev flA up".to_string());
        lines.push("link set dev flA down".to_string());
    }
    let t0 = Instant::now();
    ns.ip_batch(&lines);
    let burst = t0.elapsed();

    // The summary comes once the damping window closes.
    let summary = sink
        .wait_for(EventKind::LinkEventsSuppressed, iface("flA"))
        .expect("a suppressed-events summary");
    std::thread::sleep(Duration::from_millis(2500));
    let events = sink.events();
    let a: Vec<&Event> = events
        .iter()
        .filter(|e| e.details["interface"] == "flA")
        .collect();
    let count = |k: EventKind| a.iter().filter(|e| e.event == k).count() as u64;
    let suppressed = |key: &str| -> u64 {
        a.iter()
            .filter(|e| e.event == EventKind::LinkEventsSuppressed)
            .map(|e| e.details["suppressed"][key].as_u64().unwrap())
            .sum()
    };
    // At most 4 records per started second of flapping per interface, plus the final window.
    let windows = burst.as_secs() + 2;
    assert!(
        (a.len() as u64) <= 4 * windows,
        "{} records for {burst:?} of flapping:\n{}",
        a.len(),
        dump(&events)
    );
    let st = handle.monitor("links").unwrap();
    if st.overruns == 0 {
        // Every change is accounted for: recorded or counted.
        assert_eq!(
            count(EventKind::LinkDown) + suppressed("link_down"),
            200,
            "{}",
            dump(&events)
        );
        assert_eq!(
            count(EventKind::LinkUp) + suppressed("link_up"),
            200,
            "{}",
            dump(&events)
        );
    }
    assert!(suppressed("link_down") >= 150, "{summary:?}");
    // The last link record says down, as the link is.
    let last = a
        .iter()
        .rev()
        .find(|e| matches!(e.event, EventKind::LinkUp | EventKind::LinkDown))
        .unwrap();
    assert_eq!(last.event, EventKind::LinkDown, "{}", dump(&events));
    eprintln!(
        "flap: 400 changes in {burst:?} -> {} records, {} messages handled, {} overruns",
        a.len(),
        st.messages,
        st.overruns
    );
    handle.stop();
}

/// A sink that holds every record until opened: the monitor thread stalls, as behind a slow
/// disk, and the kernel overruns its socket.
struct Gate {
    open: Mutex<bool>,
    cv: Condvar,
    inner: Arc<Collect>,
}

impl Sink for Gate {
    fn record(&self, event: Event) {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.cv.wait(open).unwrap();
        }
        drop(open);
        self.inner.record(event);
    }
}

/// A receive-buffer overrun does not kill the monitor: it records `monitor_events_missed`,
/// reads the state again, records where the link ended, and keeps working.
#[test]
fn an_overrun_is_recorded_resynced_and_the_monitor_keeps_working() {
    let ns = Netns::new();
    ns.run(&[
        "ip", "link", "add", "ovA", "type", "veth", "peer", "name", "ovB",
    ]);
    ns.run(&["ip", "link", "set", "ovB", "up"]);
    let inner = Collect::new();
    let gate = Arc::new(Gate {
        open: Mutex::new(true),
        cv: Condvar::new(),
        inner: inner.clone(),
    });
    let config = LinkConfig {
        debounce: Duration::ZERO,
        receive_buffer: 4096,
        ..LinkConfig::default()
    };
    let handle = start_links(&ns, gate.clone(), config);

    *gate.open.lock().unwrap() = false;
    // The first change blocks the monitor in the sink; the rest pile up in a tiny buffer.
    let mut lines = Vec::new();
    for _ in 0..100 {
        lines.push("link set dev ovA up".to_string());
        lines.push("link set dev ovA down".to_string());
    }
    lines.push("link set dev ovA up".to_string());
    ns.ip_batch(&lines);
    *gate.open.lock().unwrap() = true;
    gate.cv.notify_all();

    let missed = inner
        .wait_for(EventKind::MonitorEventsMissed, |d| d["monitor"] == "links")
        .expect("monitor_events_missed");
    assert!(missed.details["overruns"].as_u64().unwrap() >= 1);
    assert!(handle.monitor("links").unwrap().overruns >= 1);
    // After the resync the log ends on the real state (up).
    assert!(
        inner.wait(Duration::from_secs(10), |ev| {
            ev.iter()
                .rev()
                .find(|e| matches!(e.event, EventKind::LinkUp | EventKind::LinkDown))
                .is_some_and(|e| e.event == EventKind::LinkUp)
        }),
        "{}",
        dump(&inner.events())
    );
    // And it still sees changes.
    inner.clear();
    ns.run(&["ip", "link", "set", "ovA", "down"]);
    inner
        .wait_for(EventKind::LinkDown, iface("ovA"))
        .expect("still monitoring");
    let st = handle.monitor("links").unwrap();
    assert!(st.running && st.last_error.is_none(), "{st:?}");
    handle.stop();
}

/// Measures how many link notifications per second the link monitor handles (printed; run
/// with `--nocapture`). Fails only if it falls below a floor far under what a port can flap.
#[test]
fn link_monitor_throughput() {
    let ns = Netns::new();
    ns.run(&[
        "ip", "link", "add", "tpA", "type", "veth", "peer", "name", "tpB",
    ]);
    ns.run(&["ip", "link", "set", "tpB", "up"]);
    let sink = Collect::new();
    let handle = start_links(&ns, sink.clone(), LinkConfig::default());
    let before = handle.monitor("links").unwrap().messages;
    let mut lines = Vec::new();
    for _ in 0..2000 {
        lines.push("link set dev tpA up".to_string());
        lines.push("link set dev tpA down".to_string());
    }
    let t0 = Instant::now();
    ns.ip_batch(&lines);
    // Wait until the monitor has read everything (the count stops growing).
    let mut last = 0;
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let m = handle.monitor("links").unwrap().messages;
        if m == last {
            break;
        }
        last = m;
    }
    let elapsed = t0.elapsed().saturating_sub(Duration::from_millis(200));
    let st = handle.monitor("links").unwrap();
    let handled = st.messages - before;
    let rate = handled as f64 / elapsed.as_secs_f64();
    eprintln!(
        "link monitor: {handled} messages in {elapsed:?} = {rate:.0}/s (kernel-bound: ip -batch of 4000 changes), {} records, {} overruns",
        sink.events().len(),
        st.overruns
    );
    assert!(handled >= 4000 || st.overruns > 0, "{st:?}");
    assert!(sink.events().len() < 100, "{}", dump(&sink.events()));
    handle.stop();
}
