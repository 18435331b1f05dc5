//! The web dashboard's pages (docs/web.md): `GET /` and the assets under
//! `/ui/`, embedded in the binary from `shared/web/`.
//!
//! Every asset is served under a content-hashed name (`/ui/app.<12 hex of SHA-256>.js`)
//! with `Cache-Control: public, max-age=31536000, immutable`; the page itself (`/`) is
//! `no-cache` with an `ETag`, and names the hashed files, so a new build is picked up on
//! the next load and an old asset is never mixed with a new page. Every answer carries a
//! strict Content-Security-Policy: scripts, styles, images and requests from this origin
//! only, no inline script or style, no framing.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

use crate::service::Meter;

/// The page's Content-Security-Policy.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; font-src 'none'; \
     manifest-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// One embedded file: its name in `index.html` (`/ui/<name>`), bytes and type.
struct Asset {
    name: &'static str,
    bytes: &'static [u8],
    content_type: &'static str,
}

const INDEX: &[u8] = include_bytes!("../../web/index.html");

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.css",
        bytes: include_bytes!("../../web/app.css"),
        content_type: "text/css; charset=utf-8",
    },
    Asset {
        name: "format.js",
        bytes: include_bytes!("../../web/format.js"),
        content_type: "text/javascript; charset=utf-8",
    },
    Asset {
        name: "app.js",
        bytes: include_bytes!("../../web/app.js"),
        content_type: "text/javascript; charset=utf-8",
    },
    Asset {
        name: "icon.svg",
        bytes: include_bytes!("../../web/icon.svg"),
        content_type: "image/svg+xml",
    },
    Asset {
        name: "uPlot.iife.min.js",
        bytes: include_bytes!("../../web/vendor/uplot/uPlot.iife.min.js"),
        content_type: "text/javascript; charset=utf-8",
    },
    Asset {
        name: "uPlot.min.css",
        bytes: include_bytes!("../../web/vendor/uplot/uPlot.min.css"),
        content_type: "text/css; charset=utf-8",
    },
];

/// The page with hashed asset names, and the assets by hashed name.
struct Site {
    index: Vec<u8>,
    index_etag: String,
    by_name: HashMap<String, &'static Asset>,
}

fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `app.js` → `app.<12 hex>.js` (the hash goes before the last extension).
fn hashed_name(name: &str, bytes: &[u8]) -> String {
    let hash = &digest(bytes)[..12];
    match name.rsplit_once('.') {
        Some((stem, ext)) => format!("{stem}.{hash}.{ext}"),
        None => format!("{name}.{hash}"),
    }
}

fn site() -> &'static Site {
    static SITE: OnceLock<Site> = OnceLock::new();
    SITE.get_or_init(|| {
        let mut index = String::from_utf8_lossy(INDEX).into_owned();
        let mut by_name = HashMap::new();
        for asset in ASSETS {
            let hashed = hashed_name(asset.name, asset.bytes);
            index = index.replace(
                &format!("\"/ui/{}\"", asset.name),
                &format!("\"/ui/{hashed}\""),
            );
            by_name.insert(hashed, asset);
        }
        let index_etag = format!("\"{}\"", &digest(index.as_bytes())[..16]);
        Site {
            index: index.into_bytes(),
            index_etag,
            by_name,
        }
    })
}

/// The hashed path (`/ui/app.<hash>.js`) of an asset by its plain name.
pub fn asset_path(name: &str) -> Option<String> {
    ASSETS
        .iter()
        .find(|a| a.name == name)
        .map(|a| format!("/ui/{}", hashed_name(a.name, a.bytes)))
}

/// The headers every page and asset carries.
fn secure(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

async fn index(request_headers: HeaderMap) -> Response {
    let site = site();
    let fresh = request_headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == site.index_etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        site.index.clone().into_response()
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(etag) = HeaderValue::from_str(&site.index_etag) {
        headers.insert(header::ETAG, etag);
    }
    secure(headers);
    response
}

async fn asset(Path(name): Path<String>) -> Response {
    let Some(asset) = site().by_name.get(&name) else {
        let mut response = (
            StatusCode::NOT_FOUND,
            [(header::CACHE_CONTROL, "no-store")],
            "no such asset\n",
        )
            .into_response();
        secure(response.headers_mut());
        return response;
    };
    let mut response = asset.bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    secure(headers);
    response
}

/// `GET /` and `GET /ui/{asset}`.
pub fn routes() -> Router<Arc<Meter>> {
    Router::new()
        .route("/", get(index))
        .route("/ui/{asset}", get(asset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_every_asset_by_its_hash_and_nothing_else_under_ui() {
        let site = site();
        let page = String::from_utf8(site.index.clone()).unwrap();
        for asset in ASSETS {
            let path = asset_path(asset.name).unwrap();
            assert!(
                page.contains(&format!("\"{path}\"")),
                "{path} not in the page"
            );
            assert!(!page.contains(&format!("\"/ui/{}\"", asset.name)));
            assert!(path.len() > asset.name.len() + 4 + 12);
        }
        let referenced = page.matches("\"/ui/").count();
        assert_eq!(referenced, ASSETS.len(), "every /ui/ reference is an asset");
        assert_eq!(site.by_name.len(), ASSETS.len());
    }

    #[test]
    fn the_page_has_no_inline_script_style_or_third_party_origin() {
        let page = String::from_utf8(site().index.clone()).unwrap();
        for tag in page.split("<script").skip(1) {
            let open = tag.split('>').next().unwrap();
            assert!(
                open.contains("src=\"/ui/"),
                "inline or foreign script: {open}"
            );
            assert!(tag.split('>').nth(1).unwrap().starts_with("</script"));
        }
        assert!(!page.contains("<style"));
        assert!(!page.contains(" style="));
        for (i, _) in page.match_indices(" on") {
            let attr: String = page[i + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            assert!(
                !page[i + 1 + attr.len()..].starts_with('='),
                "inline event handler {attr}"
            );
        }
        assert!(!page.contains("http://") && !page.contains("https://"));
    }

    #[test]
    fn hashed_names_keep_the_extension_and_change_with_the_content() {
        assert_eq!(hashed_name("app.js", b"a").len(), "app..js".len() + 12);
        assert!(hashed_name("app.js", b"a").ends_with(".js"));
        assert_ne!(hashed_name("app.js", b"a"), hashed_name("app.js", b"b"));
        assert!(hashed_name("uPlot.iife.min.js", b"a").starts_with("uPlot.iife.min."));
    }
}
