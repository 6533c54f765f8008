//! USB device monitor (S3.1-35 G, hardware changes): `usb_device_added` /
//! `usb_device_removed` from kernel uevents.
//!
//! Listens on `NETLINK_KOBJECT_UEVENT` group 1, the kernel's own broadcast (no capability
//! needed). Only datagrams from netlink port 0 — the kernel — are read: another process (which
//! would need CAP_NET_ADMIN to send to the group at all) cannot forge a device. Of those, only
//! `add` and `remove` of whole USB devices (`SUBSYSTEM=usb`, `DEVTYPE=usb_device`) become
//! records; every kernel uevent is counted by subsystem in the status (`seen`), which is how the
//! tests see the socket work without a USB device.
//!
//! The devices present at start are read from sysfs (`/sys/bus/usb/devices/*/uevent`) as the
//! baseline. After an overrun sysfs is read again and the differences recorded with
//! `"resync": true`.
//!
//! Network namespaces: uevents of devices without a namespace tag (USB devices among them) are
//! delivered to every network namespace owned by the initial user namespace, so this monitor
//! works in the daemon's namespace whichever it is.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use mamori_audit::{Event, EventKind, Outcome};
use serde_json::json;

use crate::nl::{NETLINK_KOBJECT_UEVENT, NlSocket};
use crate::uevent::{Uevent, UsbDevice};
use crate::worker::{Out, Watch};
use crate::{DEFAULT_RECEIVE_BUFFER, Prepared};

/// The kernel's uevent multicast group.
const UEVENT_KERNEL_GROUP: u32 = 1;

/// Settings of the USB monitor.
#[derive(Debug, Clone)]
pub struct UsbConfig {
    /// Where sysfs is mounted (read at start and after an overrun). Default `/sys`.
    pub sysfs: PathBuf,
    /// The socket receive buffer to ask for, in bytes.
    pub receive_buffer: usize,
}

impl Default for UsbConfig {
    fn default() -> Self {
        Self {
            sysfs: PathBuf::from("/sys"),
            receive_buffer: DEFAULT_RECEIVE_BUFFER,
        }
    }
}

/// Opens the USB monitor's socket (kernel uevents; no capability needed).
pub fn open(config: UsbConfig) -> io::Result<Prepared> {
    let watch = UsbWatch {
        config,
        known: BTreeMap::new(),
    };
    let sock = watch.open()?;
    Ok(Prepared::one(Box::new(watch), sock))
}

/// The USB devices sysfs lists now, by device path.
pub fn scan_sysfs(sysfs: &Path) -> io::Result<BTreeMap<String, UsbDevice>> {
    let mut out = BTreeMap::new();
    let dir = match std::fs::read_dir(sysfs.join("bus/usb/devices")) {
        Ok(d) => d,
        // No USB bus at all (as in many virtual machines): no devices.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in dir {
        let path = entry?.path();
        let Ok(real) = std::fs::canonicalize(&path) else {
            continue; // unplugged while we read
        };
        let Ok(text) = std::fs::read_to_string(real.join("uevent")) else {
            continue;
        };
        let Ok(rel) = real.strip_prefix(sysfs) else {
            continue;
        };
        let devpath = format!("/{}", rel.display());
        if let Some(dev) = Uevent::from_sysfs(&devpath, &text)
            .ok()
            .and_then(|u| u.usb_device())
        {
            out.insert(devpath, dev);
        }
    }
    Ok(out)
}

struct UsbWatch {
    config: UsbConfig,
    known: BTreeMap<String, UsbDevice>,
}

impl UsbWatch {
    fn resync(&mut self, out: &Out, record: bool) -> io::Result<()> {
        let now = scan_sysfs(&self.config.sysfs)?;
        if record {
            for (path, dev) in &now {
                if self.known.get(path) != Some(dev) {
                    emit(EventKind::UsbDeviceAdded, dev, true, out);
                }
            }
            for (path, dev) in &self.known {
                if !now.contains_key(path) {
                    emit(EventKind::UsbDeviceRemoved, dev, true, out);
                }
            }
        }
        self.known = now;
        Ok(())
    }
}

fn emit(kind: EventKind, dev: &UsbDevice, resync: bool, out: &Out) {
    let mut details = dev.details();
    if resync {
        details["resync"] = json!(true);
    }
    out.emit(Event::new(kind, Outcome::Success).details(details));
}

impl Watch for UsbWatch {
    fn name(&self) -> &'static str {
        "usb"
    }

    fn open(&self) -> io::Result<NlSocket> {
        NlSocket::open(
            NETLINK_KOBJECT_UEVENT,
            &[UEVENT_KERNEL_GROUP],
            self.config.receive_buffer,
        )
    }

    fn sync(&mut self, _sock: &mut NlSocket, out: &Out) -> io::Result<()> {
        // The socket is subscribed before sysfs is read, so a device plugged in between is
        // seen at least once (as present, then as an add that changes nothing).
        let reopened = !self.known.is_empty();
        self.resync(out, reopened)?;
        out.ready();
        Ok(())
    }

    fn datagram(
        &mut self,
        data: &[u8],
        sender: u32,
        _sock: &mut NlSocket,
        out: &Out,
    ) -> io::Result<()> {
        if sender != 0 {
            out.update(|s| s.ignored += 1);
            out.seen("not_from_kernel");
            return Ok(());
        }
        out.update(|s| s.messages += 1);
        let ev = match Uevent::parse(data) {
            Ok(ev) => ev,
            Err(e) => {
                tracing::debug!(error = %e, "uevent refused");
                out.update(|s| s.malformed += 1);
                return Ok(());
            }
        };
        out.seen(ev.subsystem().unwrap_or("none"));
        let Some(dev) = ev.usb_device() else {
            return Ok(());
        };
        match ev.action.as_str() {
            "add" if self.known.get(&dev.devpath) != Some(&dev) => {
                self.known.insert(dev.devpath.clone(), dev.clone());
                emit(EventKind::UsbDeviceAdded, &dev, false, out);
            }
            "remove" => {
                let dev = self.known.remove(&dev.devpath).unwrap_or(dev);
                emit(EventKind::UsbDeviceRemoved, &dev, false, out);
            }
            _ => {}
        }
        Ok(())
    }

    fn overrun(&mut self, _sock: &mut NlSocket, out: &Out) -> io::Result<()> {
        self.resync(out, true)
    }

    fn overrun_details(&self) -> serde_json::Value {
        json!({ "usb_devices_known": self.known.len() })
    }
}
