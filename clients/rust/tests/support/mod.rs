//! A real `meter serve` for the tests (the workspace's binary, a temp SQLite file, a free
//! loopback port, `METER_BOOTSTRAP_ADMIN_KEY` set), a proxy that drops one answer, and a
//! server that counts connections.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const ADMIN_KEY: &str = "mk_rust_client_test_admin_key_0123456789";

/// `METER_BIN`, else `meter` next to this test's own target directory (which `cargo test
/// --workspace` builds), else built once with `cargo build -p meter`.
pub fn meter_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("METER_BIN") {
            return PathBuf::from(p);
        }
        let exe = std::env::current_exe().expect("the test binary has a path");
        // <target>/debug/deps/client-<hash> → <target>/debug/meter
        let profile_dir = exe
            .parent()
            .and_then(|d| d.parent())
            .expect("the test binary lives in <target>/<profile>/deps");
        let bin = profile_dir.join("meter");
        if !bin.exists() {
            let target_dir = profile_dir.parent().expect("a target directory");
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "-p", "meter", "--bin", "meter"])
                .env("CARGO_TARGET_DIR", target_dir)
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("cargo runs");
            assert!(status.success(), "cargo build -p meter failed");
        }
        assert!(bin.exists(), "no meter binary at {}", bin.display());
        bin
    })
    .clone()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn user() -> String {
    format!("rs-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// `meter serve --db <tmp>/meter.db --addr 127.0.0.1:<port>`, restartable on the same port
/// and db; killed when dropped.
pub struct MeterServer {
    pub port: u16,
    pub base: String,
    pub service_key: String,
    db: PathBuf,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl MeterServer {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("meter.db");
        let out = Command::new(meter_bin())
            .args([
                "keys", "create", "--tenant", "default", "--role", "service", "--db",
            ])
            .arg(&db)
            .stderr(Stdio::null())
            .output()
            .expect("meter keys create runs");
        assert!(out.status.success());
        let service_key = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .to_owned();
        assert!(service_key.starts_with("mk_"), "{service_key}");
        let port = free_port();
        let mut s = MeterServer {
            port,
            base: format!("http://127.0.0.1:{port}"),
            service_key,
            db,
            child: None,
            _dir: dir,
        };
        s.resume();
        s
    }

    /// Starts the server again on the same port and db.
    pub fn resume(&mut self) {
        let mut child = Command::new(meter_bin())
            .args([
                "serve",
                "--addr",
                &format!("127.0.0.1:{}", self.port),
                "--aggregate-seconds",
                "3600",
                "--db",
            ])
            .arg(&self.db)
            .env("METER_BOOTSTRAP_ADMIN_KEY", ADMIN_KEY)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("meter serve starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().expect("meter serve prints a line").unwrap();
        assert!(first.contains("listening on"), "{first}");
        std::thread::spawn(move || for _ in lines {});
        self.child = Some(child);
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = reqwest::Client::new()
            .request(method, format!("{}/api/subscription{path}", self.base))
            .bearer_auth(ADMIN_KEY);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert!(status.is_success(), "{path}: {v}");
        v["data"].clone()
    }

    pub async fn put_plan(&self, limits: Value) -> String {
        let name = format!("tiny-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        self.admin(
            reqwest::Method::PUT,
            &format!("/plans/{name}"),
            Some(json!({"tier": "custom", "monthly_price_usd": "1", "yearly_price_usd": "10", "limits": limits})),
        )
        .await;
        name
    }

    pub async fn subscribe(&self, user: &str, plan: &str) {
        self.admin(
            reqwest::Method::PUT,
            &format!("/user/{user}/subscription"),
            Some(json!({ "plan": plan })),
        )
        .await;
    }

    pub async fn usage_calls(&self, user: &str) -> u64 {
        self.admin(reqwest::Method::GET, &format!("/usage/{user}"), None)
            .await["total_calls"]
            .as_u64()
            .unwrap()
    }

    pub async fn event_ids(&self, user: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .admin(reqwest::Method::GET, &format!("/user/{user}/export"), None)
            .await["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event_id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    }
}

impl Drop for MeterServer {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn read_request(
    sock: &mut TcpStream,
) -> Option<(String, String, Vec<(String, String)>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, path) = (first.next()?.to_owned(), first.next()?.to_owned());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((method, path, headers, body))
}

/// Forwards HTTP/1.1 requests to meter; the first `POST /api/subscription/usage` is
/// forwarded and answered by meter, then its connection is closed without the answer.
pub struct DroppingProxy {
    pub base: String,
    pub usage_posts: Arc<AtomicUsize>,
    pub dropped: Arc<AtomicUsize>,
}

impl DroppingProxy {
    pub async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let usage_posts = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicUsize::new(0));
        let (posts, drops) = (usage_posts.clone(), dropped.clone());
        let client = reqwest::Client::new();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let (posts, drops, client, upstream) = (
                    posts.clone(),
                    drops.clone(),
                    client.clone(),
                    upstream.clone(),
                );
                tokio::spawn(async move {
                    while let Some((method, path, headers, body)) = read_request(&mut sock).await {
                        let mut req =
                            client.request(method.parse().unwrap(), format!("{upstream}{path}"));
                        for (k, v) in &headers {
                            if !matches!(k.as_str(), "host" | "connection" | "content-length") {
                                req = req.header(k, v);
                            }
                        }
                        let resp = req.body(body).send().await.unwrap();
                        let status = resp.status().as_u16();
                        let payload = resp.bytes().await.unwrap();
                        if method == "POST" && path.starts_with("/api/subscription/usage") {
                            posts.fetch_add(1, Ordering::SeqCst);
                            if drops
                                .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
                                .is_ok()
                            {
                                return; // the connection closes, the answer unsent
                            }
                        }
                        let head = format!(
                            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                            payload.len()
                        );
                        if sock.write_all(head.as_bytes()).await.is_err()
                            || sock.write_all(&payload).await.is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        DroppingProxy {
            base,
            usage_posts,
            dropped,
        }
    }
}

/// Accepts connections and closes them, counting: proves that bad input sends nothing.
pub struct CountingServer {
    pub base: String,
    pub connections: Arc<Mutex<usize>>,
}

impl CountingServer {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let connections = Arc::new(Mutex::new(0));
        let c = connections.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                *c.lock().unwrap() += 1;
                drop(sock);
            }
        });
        CountingServer { base, connections }
    }
}
