//! The management interface of mamori: the HTTPS listener, the JSON API under `/api/v1`, and
//! the local console socket.
//!
//! Every endpoint is declared once in [`registry`], with the permission it needs, whether it
//! needs a fresh re-authentication, and its input and output schemas. The router, the access
//! guard and the OpenAPI document are all built from that one list, so an endpoint cannot exist
//! without a declared access rule.
//!
//! Security properties:
//! - HTTPS only, with rustls restricted to the crypto policy; no plaintext TCP listener;
//! - the source allowlist is applied when a connection is accepted, before any TLS byte;
//! - limits on connections (total and per source), handshake and header time, body size, and
//!   handler time; password hashing runs on a bounded pool off the event loop;
//! - unauthenticated clients see only the login endpoint, a bare liveness probe, and 404s;
//!   no response names the software, its version or the kernel (no `Server` header);
//! - errors are mapped to status codes in exactly one place ([`error`]); clients get generic
//!   messages, details go to the log.
//!
//! What it does not do: it makes no authorisation decision of its own (that is
//! `mamori-auth`), and it holds no privilege (it runs in the unprivileged management process).

pub mod error;
pub mod extract;
pub mod guard;
pub mod handlers;
pub mod headers;
pub mod listener;
pub mod openapi;
pub mod registry;
pub mod state;

pub use listener::{Limits, serve_console, serve_https};
pub use state::AppState;

/// Name of the session cookie. `__Host-` makes browsers insist on Secure, Path=/ and no Domain.
pub const SESSION_COOKIE: &str = "__Host-mamori-session";

/// Largest request body accepted anywhere, in bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Builds the router for the JSON API and the given web UI pages (none on the console).
pub fn router(state: AppState, pages: Vec<registry::Endpoint>) -> axum::Router {
    registry::router(state, pages)
}
