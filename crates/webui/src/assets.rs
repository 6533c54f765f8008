//! Static assets, compiled into the binary. Served by exact name from a fixed table, so no
//! request path ever reaches the file system (CWE-22).

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use data_encoding::HEXLOWER;

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "ui.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../assets/ui.css"),
    },
    Asset {
        name: "ui.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/ui.js"),
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../assets/icon.svg"),
    },
];

/// A digest of all assets; pages link `?v=VERSION`, so a new firmware's assets are new URLs
/// and browsers may cache each URL forever.
pub static VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut all = Vec::new();
    for a in ASSETS {
        all.extend_from_slice(a.body);
    }
    HEXLOWER.encode(&mamori_crypto::digest::sha256(&all)[..6])
});

/// `GET /assets/{name}`.
pub async fn serve(Path(name): Path<String>) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
        ],
        asset.body,
    )
        .into_response()
}

/// Total bytes of the assets every page loads (stylesheet and script), for the page-weight
/// figure.
pub fn page_asset_bytes() -> usize {
    ASSETS
        .iter()
        .filter(|a| a.name != "icon.svg")
        .map(|a| a.body.len())
        .sum()
}
