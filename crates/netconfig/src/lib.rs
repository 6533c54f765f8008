//! The gateway's network configuration (issue 5, first part): the typed model, its checks, the
//! secure defaults, the nftables ruleset rendered from it, and diffs between revisions.
//!
//! - [`model`]: [`NetworkConfig`] — interfaces with roles (`wan`, `lan`, `mgmt`), static
//!   addresses and DHCP on wan, static routes, NAT (masquerade, port forwards), firewall zones,
//!   policies, rules and named address sets, management access, protections. Serde with
//!   `deny_unknown_fields`, JSON Schema for the OpenAPI document.
//! - [`names`]: the validated newtypes. Interface, zone and set names are plain ASCII
//!   identifiers, comments reach the ruleset only through a fixed ASCII subset, addresses are
//!   typed: no configuration text can become nft syntax.
//! - [`validate`](mod@validate): checks across fields, each problem with a JSON pointer
//!   ([`ValidationError`]).
//! - [`management`]: [`check_keeps_management`], refusing a candidate that would lock out the
//!   session it comes from.
//! - [`render`](mod@render): one nft script replacing only mamori's own tables, loaded as one
//!   transaction.
//! - [`nft`]: `nft -c -f` (dry run), `nft -f`, `nft list ruleset`.
//! - [`diff`](mod@diff): a unified diff of two configurations' canonical JSON.
//! - [`apply`]: [`Applier`] — check (`nft -c`), load (`nft -f`), then interface addresses and
//!   static routes with `ip -batch`, put back if that fails half-way; [`NetworkState`] to read
//!   it back. Run by the privileged parent.
//! - [`dhcp`]: [`DhcpClients`] — one `dhcpcd` per wan interface with `dhcp: true`, rendered,
//!   started, supervised and stopped by the privileged parent after each apply, and what each
//!   is doing ([`DhcpStatus`]: bound, requesting, failed or stopped, with its lease).
//! - [`lease`]: dhcpcd's lease file (the DHCPACK it bound), parsed as hostile input into a
//!   [`Lease`].
//!
//! # What this crate does not do
//!
//! No commit-confirm, no revisions store, no DHCPv6. The privileged parent runs [`Applier`] and
//! [`DhcpClients`], and the daemon keeps the history.
//! No `unsafe`.

pub mod apply;
pub mod dhcp;
pub mod diff;
pub mod lease;
pub mod management;
pub mod model;
pub mod names;
pub mod nft;
pub mod render;
pub mod sysctl;
pub mod validate;

pub use apply::{
    Applied, Applier, ApplyError, ApplyStep, Generations, LoadQuiet, NetworkState, Prepared,
    ROUTE_PROTO, Rollback,
};
pub use dhcp::{DhcpClients, DhcpOptions, DhcpState, DhcpStatus};
pub use diff::diff;
pub use lease::{Lease, LeaseError};
pub use management::{ManagementCut, ManagementSession, check_keeps_management};
pub use model::{
    Action, AddressMatch, AddressSet, DROP_LOG_GROUP, DropLog, Family, Firewall, Interface,
    ManagementAccess, Masquerade, Nat, NetworkConfig, Policy, PortForward, PortProto, Protection,
    Proto, Role, Route, Rule, RuleLog, SynLimit, Zone,
};
pub use names::{Comment, IfName, NameError, Named, PortRange, Prefix, SetName, ZoneName};
pub use nft::{Nft, NftError, NftablesListener, render_check};
pub use render::{Ruleset, render};
pub use validate::{ErrorKind, FamilyPart, ValidationError, ValidationErrors};
