//! Kernel uevents: the text the kernel multicasts on `NETLINK_KOBJECT_UEVENT` group 1, and the
//! same `KEY=VALUE` lines a device's `uevent` file in sysfs holds.
//!
//! A kernel uevent (`lib/kobject_uevent.c`) is a header `ACTION@DEVPATH`, a NUL, then
//! `KEY=VALUE` strings each ended by a NUL: `ACTION`, `DEVPATH`, `SUBSYSTEM`, `SEQNUM` always,
//! then what the bus adds (for a USB device `DEVTYPE=usb_device`, `PRODUCT=vid/pid/bcd` in hex
//! without leading zeros, `TYPE=class/subclass/protocol`, `BUSNUM`, `DEVNUM`, `DEVNAME`). At most
//! 2048 bytes and 64 variables (`UEVENT_BUFFER_SIZE`, `UEVENT_NUM_ENVP`). udev's re-broadcasts
//! on group 2 start with `libudev\0` and are never accepted here.

use std::collections::BTreeMap;

use serde_json::json;

/// Largest uevent accepted (the kernel's buffer is 2048 bytes; some room for future growth).
const MAX_LEN: usize = 8192;
/// Most variables accepted.
const MAX_VARS: usize = 128;

/// One parsed uevent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uevent {
    /// `add`, `remove`, `change`, `move`, `online`, `offline`, `bind`, `unbind`.
    pub action: String,
    /// The device's path under `/sys`.
    pub devpath: String,
    /// All `KEY=VALUE` variables.
    pub vars: BTreeMap<String, String>,
}

/// Why a uevent was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UeventError {
    /// Longer than any kernel uevent.
    #[error("uevent too long ({0} bytes)")]
    TooLong(usize),
    /// A udev re-broadcast, not a kernel message.
    #[error("udev message, not a kernel uevent")]
    Udev,
    /// The `ACTION@DEVPATH` header is missing or not text.
    #[error("uevent header missing or malformed")]
    Header,
    /// The header and the `ACTION`/`DEVPATH` variables disagree.
    #[error("uevent header and variables disagree")]
    Inconsistent,
    /// Too many variables, or one that is not `KEY=VALUE` text.
    #[error("uevent variables malformed")]
    Variables,
}

impl Uevent {
    /// Parses a kernel uevent datagram.
    pub fn parse(data: &[u8]) -> Result<Self, UeventError> {
        if data.len() > MAX_LEN {
            return Err(UeventError::TooLong(data.len()));
        }
        if data.starts_with(b"libudev\0") {
            return Err(UeventError::Udev);
        }
        let mut parts = data.split(|b| *b == 0);
        let header = parts
            .next()
            .and_then(|h| std::str::from_utf8(h).ok())
            .ok_or(UeventError::Header)?;
        let (action, devpath) = header.split_once('@').ok_or(UeventError::Header)?;
        if action.is_empty() || !devpath.starts_with('/') {
            return Err(UeventError::Header);
        }
        let vars = parse_vars(parts.filter(|p| !p.is_empty()))?;
        if vars.get("ACTION").is_some_and(|a| a != action)
            || vars.get("DEVPATH").is_some_and(|d| d != devpath)
        {
            return Err(UeventError::Inconsistent);
        }
        Ok(Self {
            action: action.to_string(),
            devpath: devpath.to_string(),
            vars,
        })
    }

    /// Builds a uevent from the contents of a sysfs `uevent` file (one `KEY=VALUE` per line),
    /// as if the device had just been added.
    pub fn from_sysfs(devpath: &str, text: &str) -> Result<Self, UeventError> {
        let vars = parse_vars(text.lines().map(str::as_bytes).filter(|l| !l.is_empty()))?;
        Ok(Self {
            action: "add".to_string(),
            devpath: devpath.to_string(),
            vars,
        })
    }

    /// The `SUBSYSTEM` variable.
    pub fn subsystem(&self) -> Option<&str> {
        self.vars.get("SUBSYSTEM").map(String::as_str)
    }

    /// The USB device this uevent is about, if it is about a whole USB device (not one of its
    /// interfaces or endpoints).
    pub fn usb_device(&self) -> Option<UsbDevice> {
        if self.vars.get("DEVTYPE").map(String::as_str) != Some("usb_device") {
            return None;
        }
        // A sysfs uevent file has no SUBSYSTEM line; a kernel uevent always has it.
        if self.subsystem().is_some_and(|s| s != "usb") {
            return None;
        }
        let mut product = self.vars.get("PRODUCT")?.split('/');
        let hex4 = |s: &str| u16::from_str_radix(s, 16).ok().map(|v| format!("{v:04x}"));
        let vendor_id = hex4(product.next()?)?;
        let product_id = hex4(product.next()?)?;
        let bcd_device = product.next().and_then(hex4);
        let num = |k: &str| self.vars.get(k).and_then(|v| v.parse::<u16>().ok());
        Some(UsbDevice {
            devpath: self.devpath.clone(),
            vendor_id,
            product_id,
            bcd_device,
            class: self.vars.get("TYPE").cloned(),
            bus: num("BUSNUM"),
            device: num("DEVNUM"),
        })
    }
}

fn parse_vars<'a>(
    lines: impl Iterator<Item = &'a [u8]>,
) -> Result<BTreeMap<String, String>, UeventError> {
    let mut vars = BTreeMap::new();
    for line in lines {
        if vars.len() >= MAX_VARS {
            return Err(UeventError::Variables);
        }
        let line = std::str::from_utf8(line).map_err(|_| UeventError::Variables)?;
        let (k, v) = line.split_once('=').ok_or(UeventError::Variables)?;
        if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(UeventError::Variables);
        }
        vars.insert(k.to_string(), v.to_string());
    }
    Ok(vars)
}

/// A USB device as the audit log records it. No serial number: the kernel's uevent does not
/// carry it, and it could identify a person's device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsbDevice {
    /// Where it sits in the device tree (`/devices/pci…/usb1/1-1`): the port it is plugged in.
    pub devpath: String,
    /// USB vendor id, four hex digits.
    pub vendor_id: String,
    /// USB product id, four hex digits.
    pub product_id: String,
    /// Device release number (bcdDevice), four hex digits.
    pub bcd_device: Option<String>,
    /// Device class/subclass/protocol as the kernel gives them (`TYPE`, decimal).
    pub class: Option<String>,
    /// Bus number.
    pub bus: Option<u16>,
    /// Device number on the bus.
    pub device: Option<u16>,
}

impl UsbDevice {
    /// The event details.
    pub fn details(&self) -> serde_json::Value {
        json!({
            "vendor_id": self.vendor_id,
            "product_id": self.product_id,
            "bcd_device": self.bcd_device,
            "class": self.class,
            "bus": self.bus,
            "device": self.device,
            "devpath": self.devpath,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kernel uevent as `kobject_uevent_env` builds it for a USB device being plugged
    /// (layout from lib/kobject_uevent.c and drivers/usb/core/usb.c `usb_dev_uevent`,
    /// values of a Logitech receiver on bus 1 port 2).
    const USB_ADD: &[u8] = b"add@/devices/pci0000:00/0000:00:14.0/usb1/1-2\0\
ACTION=add\0DEVPATH=/devices/pci0000:00/0000:00:14.0/usb1/1-2\0SUBSYSTEM=usb\0\
MAJOR=189\0MINOR=3\0DEVNAME=bus/usb/001/004\0DEVTYPE=usb_device\0\
PRODUCT=46d/c52b/1211\0TYPE=0/0/0\0BUSNUM=001\0DEVNUM=004\0SEQNUM=4321\0";

    /// The interface of the same device: SUBSYSTEM usb but DEVTYPE usb_interface.
    const USB_IFACE_ADD: &[u8] = b"add@/devices/pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.0\0\
ACTION=add\0DEVPATH=/devices/pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.0\0SUBSYSTEM=usb\0\
DEVTYPE=usb_interface\0PRODUCT=46d/c52b/1211\0TYPE=0/0/0\0INTERFACE=3/1/1\0\
MODALIAS=usb:v046DpC52Bd1211dc00dsc00dp00ic03isc01ip01in00\0SEQNUM=4322\0";

    const USB_REMOVE: &[u8] = b"remove@/devices/pci0000:00/0000:00:14.0/usb1/1-2\0\
ACTION=remove\0DEVPATH=/devices/pci0000:00/0000:00:14.0/usb1/1-2\0SUBSYSTEM=usb\0\
MAJOR=189\0MINOR=3\0DEVNAME=bus/usb/001/004\0DEVTYPE=usb_device\0\
PRODUCT=46d/c52b/1211\0TYPE=0/0/0\0BUSNUM=001\0DEVNUM=004\0SEQNUM=4330\0";

    /// A network interface's uevent (what writing `add` to its sysfs `uevent` file sends).
    const NET_ADD: &[u8] = b"add@/devices/virtual/net/veth0\0ACTION=add\0\
DEVPATH=/devices/virtual/net/veth0\0SUBSYSTEM=net\0SYNTH_UUID=0\0INTERFACE=veth0\0\
IFINDEX=7\0SEQNUM=5000\0";

    #[test]
    fn a_usb_device_add_gives_vendor_product_and_port() {
        let ev = Uevent::parse(USB_ADD).unwrap();
        assert_eq!(ev.action, "add");
        assert_eq!(ev.subsystem(), Some("usb"));
        let dev = ev.usb_device().unwrap();
        assert_eq!(dev.vendor_id, "046d");
        assert_eq!(dev.product_id, "c52b");
        assert_eq!(dev.bcd_device.as_deref(), Some("1211"));
        assert_eq!(dev.bus, Some(1));
        assert_eq!(dev.device, Some(4));
        assert_eq!(dev.devpath, "/devices/pci0000:00/0000:00:14.0/usb1/1-2");
    }

    #[test]
    fn a_usb_remove_names_the_same_device() {
        let add = Uevent::parse(USB_ADD).unwrap().usb_device().unwrap();
        let ev = Uevent::parse(USB_REMOVE).unwrap();
        assert_eq!(ev.action, "remove");
        assert_eq!(ev.usb_device().unwrap(), add);
    }

    #[test]
    fn usb_interfaces_and_other_subsystems_are_not_usb_devices() {
        assert!(Uevent::parse(USB_IFACE_ADD).unwrap().usb_device().is_none());
        let net = Uevent::parse(NET_ADD).unwrap();
        assert_eq!(net.subsystem(), Some("net"));
        assert!(net.usb_device().is_none());
    }

    #[test]
    fn udev_rebroadcasts_and_malformed_messages_are_refused() {
        assert_eq!(
            Uevent::parse(b"libudev\0\xfe\xed\xca\xfe rest"),
            Err(UeventError::Udev)
        );
        assert_eq!(Uevent::parse(b"no header\0A=b\0"), Err(UeventError::Header));
        assert_eq!(
            Uevent::parse(b"add@relative\0ACTION=add\0"),
            Err(UeventError::Header)
        );
        assert_eq!(
            Uevent::parse(b"add@/devices/x\0ACTION=remove\0"),
            Err(UeventError::Inconsistent)
        );
        assert_eq!(
            Uevent::parse(b"add@/devices/x\0novalue\0"),
            Err(UeventError::Variables)
        );
        assert_eq!(
            Uevent::parse(b"add@/devices/x\0K\xffY=v\0"),
            Err(UeventError::Variables)
        );
        assert!(matches!(
            Uevent::parse(&vec![b'a'; 10_000]),
            Err(UeventError::TooLong(_))
        ));
        let many: Vec<u8> = (0..200)
            .flat_map(|i| format!("K{i}=v\0").into_bytes())
            .collect();
        let mut msg = b"add@/devices/x\0".to_vec();
        msg.extend_from_slice(&many);
        assert_eq!(Uevent::parse(&msg), Err(UeventError::Variables));
    }

    #[test]
    fn a_bad_product_field_is_not_a_usb_device() {
        let msg = b"add@/devices/x\0SUBSYSTEM=usb\0DEVTYPE=usb_device\0PRODUCT=zz/1/1\0";
        assert!(Uevent::parse(msg).unwrap().usb_device().is_none());
    }

    #[test]
    fn a_sysfs_uevent_file_reads_like_an_add() {
        let text = "MAJOR=189\nMINOR=3\nDEVNAME=bus/usb/001/004\nDEVTYPE=usb_device\n\
DRIVER=usb\nPRODUCT=46d/c52b/1211\nTYPE=0/0/0\nBUSNUM=001\nDEVNUM=004\n";
        let ev = Uevent::from_sysfs("/devices/pci0000:00/0000:00:14.0/usb1/1-2", text).unwrap();
        let from_kernel = Uevent::parse(USB_ADD).unwrap().usb_device().unwrap();
        assert_eq!(ev.usb_device().unwrap(), from_kernel);
    }
}
