//! `usage-dashboard`: the read routes and admin writes. Wired to its router when the
//! dashboard routes land; for now it starts, logs and answers every request with 404 JSON.

use lambda_http::{service_fn, Body, Error, Request, Response};

const NOT_YET: &str = r#"{"success":false,"error":{"code":"route_not_found","message":"no such route","details":{}}}"#;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    tracing::info!(function = "usage-dashboard", "starting");
    lambda_http::run(service_fn(|_req: Request| async {
        let response = Response::builder()
            .status(404)
            .header("content-type", "application/json")
            .body(Body::from(NOT_YET))?;
        Ok::<_, Error>(response)
    }))
    .await
}
