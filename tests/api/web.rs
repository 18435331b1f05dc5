//! The web dashboard's pages through the router: `/` and the hashed assets with their
//! cache and security headers. (The browser test, scripts/test-web, renders them.)

use axum::body::Body;
use axum::http::Request;

use meter_tests::TestApp;

#[tokio::test]
async fn the_page_is_served_uncached_with_a_strict_csp_and_its_assets_forever() {
    let app = TestApp::spawn().await;
    let page = app
        .send(Request::get("/").body(Body::empty()).unwrap())
        .await;
    assert_eq!(page.status, 200);
    let h = |name: &str| page.headers.get(name).unwrap().to_str().unwrap().to_owned();
    assert_eq!(h("content-type"), "text/html; charset=utf-8");
    assert_eq!(h("cache-control"), "no-cache");
    let csp = h("content-security-policy");
    assert_eq!(csp, meter_core::http::web::CONTENT_SECURITY_POLICY);
    for part in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(part), "{part}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(h("x-content-type-options"), "nosniff");
    let html = page.body.as_str().unwrap().to_owned();

    // Every asset the page names: immutable, typed, under its content hash.
    for name in [
        "app.js",
        "format.js",
        "app.css",
        "icon.svg",
        "uPlot.iife.min.js",
        "uPlot.min.css",
    ] {
        let path = meter_core::http::web::asset_path(name).unwrap();
        assert!(html.contains(&path), "{path}");
        let r = app
            .send(Request::get(&path).body(Body::empty()).unwrap())
            .await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(
            r.headers.get("cache-control").unwrap(),
            "public, max-age=31536000, immutable"
        );
        let ty = r.headers.get("content-type").unwrap().to_str().unwrap();
        let want = if name.ends_with(".js") {
            "text/javascript"
        } else if name.ends_with(".css") {
            "text/css"
        } else {
            "image/svg+xml"
        };
        assert!(ty.starts_with(want), "{path}: {ty}");
        // The unhashed name is not served: a cached page never mixes with new assets.
        let plain = app
            .send(
                Request::get(format!("/ui/{name}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(plain.status, 404, "{name}");
    }

    // A revalidation of the page answers 304 without a body.
    let etag = h("etag");
    let again = app
        .send(
            Request::get("/")
                .header("if-none-match", &etag)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(again.status, 304);
    assert_eq!(again.body, serde_json::Value::Null);
    // No key is needed for the page (it holds no data), and the API still needs one.
    let api = app
        .send(
            Request::get("/api/subscription/plans")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(api.status, 401);
    let missing = app
        .send(
            Request::get("/ui/../Cargo.toml")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(missing.status, 404);
}
