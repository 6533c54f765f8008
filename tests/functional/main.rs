//! Functional end-to-end tests: the real daemon over real TLS.

#[path = "../common/mod.rs"]
mod common;

mod smoke;
mod support;

mod audit_events;
mod audit_log;
mod auth_flow;
mod cli;
mod console;
mod forwarding;
mod mfa;
mod ports;
mod tokens_sessions;
mod users;
