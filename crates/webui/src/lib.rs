//! The web management UI of mamori: server-rendered pages in Japanese and English.
//!
//! - Pages are askama templates compiled into the binary; every value is HTML-escaped by the
//!   engine. The stylesheet and the one script are embedded too: nothing is fetched from
//!   elsewhere, and the Content-Security-Policy allows no inline script or style.
//! - Handlers call the authentication service directly, the same service layer as the JSON
//!   API (never the API over HTTP).
//! - Every URL is declared in [`endpoints`] with its access rule and joins the one registry of
//!   `mamori-http`; the [`guard`] enforces the rule, checks CSRF on every POST, and turns
//!   refusals into pages.

mod assets;
mod cookies;
mod csrf;
mod form;
mod guard;
mod i18n;
mod page;
mod pages;

use std::sync::Arc;

use mamori_http::registry::Endpoint;

pub use assets::page_asset_bytes;

/// State of the UI that is not the management service's: the CSRF key, and the one slot for
/// a form larger than the usual limit (a whole network configuration).
pub struct Ui {
    csrf: csrf::CsrfKey,
    large_forms: tokio::sync::Semaphore,
}

impl Ui {
    /// Creates the UI state with a fresh CSRF key.
    pub fn new() -> Result<Arc<Self>, mamori_crypto::CryptoError> {
        Ok(Arc::new(Self {
            csrf: csrf::CsrfKey::generate()?,
            large_forms: tokio::sync::Semaphore::new(1),
        }))
    }
}

/// Every page and asset of the UI, for the registry.
pub fn endpoints() -> Vec<Endpoint> {
    pages::endpoints()
}

/// Adds the UI's state to a router built from the registry with [`endpoints`].
pub fn attach(router: axum::Router, ui: Arc<Ui>) -> axum::Router {
    router.layer(axum::Extension(ui))
}
