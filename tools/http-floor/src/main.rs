//! The floor row of `scripts/bench`: what a check costs over the same HTTP stack as
//! `meter serve` when the work behind it is as small as it can be.
//!
//! `POST /api/subscription/check` parses the same JSON body as meter's check, looks the
//! bearer key up in a `HashMap`, and answers a JSON object of exactly `--answer-bytes`
//! bytes (scripts/bench passes the size of `meter serve`'s own answer). Served like
//! `meter serve`: axum on a multi-threaded tokio runtime over one `TcpListener`. Every
//! scenario of the benchmark is reported as a fraction of this row.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use clap::Parser;
use serde::Deserialize;

#[derive(Parser, Debug)]
#[command(about = "The HTTP floor of scripts/bench")]
struct Args {
    /// Address to listen on (port 0: any free port; the chosen one is printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: SocketAddr,
    /// The one API key the floor knows (read from the environment, like meter's keys).
    #[arg(long, env = "FLOOR_API_KEY", hide_env_values = true)]
    key: String,
    /// Size in bytes of every answer body.
    #[arg(long, default_value_t = 256)]
    answer_bytes: usize,
}

/// The fields of meter's check body that the load generator sends.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // parsed to cost what meter's parse costs, not read
struct CheckBody {
    user_id: String,
    provider: String,
    model: String,
    #[serde(default)]
    estimated_input_tokens: Option<u64>,
    #[serde(default)]
    estimated_output_tokens: Option<u64>,
    #[serde(default)]
    reserve: Option<bool>,
}

struct Floor {
    keys: HashMap<String, String>,
    answer_bytes: usize,
}

async fn check(
    State(floor): State<Arc<Floor>>,
    headers: HeaderMap,
    Json(body): Json<CheckBody>,
) -> Response {
    let key = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(tenant) = key.and_then(|k| floor.keys.get(k)) else {
        return (StatusCode::UNAUTHORIZED, "{\"error\":\"unauthorized\"}").into_response();
    };
    let head = format!(
        "{{\"allowed\":true,\"tenant\":{},\"user_id\":{},\"pad\":\"",
        serde_json::Value::from(tenant.as_str()),
        serde_json::Value::from(body.user_id.as_str()),
    );
    let pad = floor.answer_bytes.saturating_sub(head.len() + 2);
    let mut out = String::with_capacity(head.len() + pad + 2);
    out.push_str(&head);
    out.extend(std::iter::repeat_n('x', pad));
    out.push_str("\"}");
    ([(header::CONTENT_TYPE, "application/json")], out).into_response()
}

fn main() -> Result<()> {
    let args = Args::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(args))
}

async fn serve(args: Args) -> Result<()> {
    let floor = Arc::new(Floor {
        keys: HashMap::from([(args.key, "default".to_owned())]),
        answer_bytes: args.answer_bytes,
    });
    let app = Router::new()
        .route("/api/subscription/check", post(check))
        .with_state(floor);
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("listening on {}", args.addr))?;
    println!("floor listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await.context("serving")
}
