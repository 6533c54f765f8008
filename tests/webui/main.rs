//! Attack tests of the web UI: the real daemon over real TLS, driven the way a penetration
//! tester's scanner and proxy would drive it (JC-STAR ★3). Cookies are sent by hand, never by
//! a cookie jar, so each test decides exactly which cookies and tokens a request carries.
//!
//! The routes come from the web UI's own registry (`mamori_webui::endpoints()`): a page added
//! later is attacked too, without editing these tests. One file per topic; each test names the
//! property it defends.

// Helpers outside #[test] functions unwrap too: a panic there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;
mod support;

mod access_control;
mod assets;
mod audit;
mod bodies;
mod brute_force;
mod cookies;
mod csrf;
mod detectors;
mod headers;
mod japanese;
mod network;
mod reauth;
mod redirects;
mod sessions;
mod xss;
