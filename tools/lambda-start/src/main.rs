//! `lambda-start`: how long each Lambda function binary takes from `exec` to its first
//! `GET /2018-06-01/runtime/invocation/next`, and how large it is.
//!
//!   lambda-start [--runs 20] BINARY...
//!
//! A tiny local HTTP server stands in for the Lambda Runtime API
//! (`AWS_LAMBDA_RUNTIME_API` = its 127.0.0.1 address). Each run spawns the binary with the
//! environment Lambda gives a function (function name, memory, log group, region, dummy
//! credentials) plus `TABLE_NAME` and an `AWS_ENDPOINT_URL` on an unused loopback port, so
//! a function that touched the network at init would fail or stall visibly. The clock
//! stops when the stand-in has read the `next` request line; the child is then killed.
//! Prints one JSON line per binary: runs, median, p90, min and max in ms, file size.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::json;

const NEXT: &str = "/2018-06-01/runtime/invocation/next";
const WAIT: Duration = Duration::from_secs(10);

/// Reads one request line per connection and reports when a `next` arrives.
fn runtime_api(listener: TcpListener, tx: mpsc::Sender<Instant>) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let tx = tx.clone();
        std::thread::spawn(move || serve(stream, &tx));
    }
}

fn serve(stream: TcpStream, tx: &mpsc::Sender<Instant>) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
        if line.starts_with("GET ") && line.contains(NEXT) {
            let _ = tx.send(Instant::now());
        }
        line.clear();
        // Never answer: the function waits for its first event until it is killed.
    }
}

/// A loopback port nothing listens on (bound, then released).
fn unused_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn one_run(
    binary: &Path,
    api: &str,
    endpoint_port: u16,
    rx: &mpsc::Receiver<Instant>,
) -> Result<Duration> {
    while rx.try_recv().is_ok() {}
    let name = binary
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let start = Instant::now();
    let mut child = Command::new(binary)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("AWS_LAMBDA_RUNTIME_API", api)
        .env("AWS_LAMBDA_FUNCTION_NAME", &name)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_SESSION_TOKEN", "test")
        .env(
            "AWS_ENDPOINT_URL",
            format!("http://127.0.0.1:{endpoint_port}"),
        )
        .env("TABLE_NAME", "meter-bench")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let got = rx.recv_timeout(WAIT);
    let _ = child.kill();
    let output = child.wait_with_output()?;
    match got {
        Ok(at) => Ok(at.saturating_duration_since(start)),
        Err(_) => bail!(
            "{} sent no `next` within {WAIT:?}; its stderr:\n{}",
            binary.display(),
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted.get(i).copied().unwrap_or(f64::NAN)
}

fn main() -> Result<()> {
    let mut runs = 20usize;
    let mut binaries: Vec<PathBuf> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--runs" {
            runs = args.next().context("--runs needs a number")?.parse()?;
        } else {
            binaries.push(PathBuf::from(a));
        }
    }
    if binaries.is_empty() || runs == 0 {
        bail!("usage: lambda-start [--runs N] BINARY...");
    }
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let api = listener.local_addr()?.to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || runtime_api(listener, tx));
    let endpoint_port = unused_port()?;
    for binary in &binaries {
        // One untimed run first, so every timed run finds the file in the page cache.
        one_run(binary, &api, endpoint_port, &rx)?;
        let mut ms: Vec<f64> = (0..runs)
            .map(|_| one_run(binary, &api, endpoint_port, &rx).map(|d| d.as_secs_f64() * 1000.0))
            .collect::<Result<_>>()?;
        ms.sort_by(f64::total_cmp);
        let size = std::fs::metadata(binary)?.len();
        let round = |x: f64| (x * 100.0).round() / 100.0;
        println!(
            "{}",
            json!({
                "binary": binary.file_name().map(|n| n.to_string_lossy().into_owned()),
                "runs": runs,
                "median_ms": round(percentile(&ms, 0.5)),
                "p90_ms": round(percentile(&ms, 0.9)),
                "min_ms": round(ms.first().copied().unwrap_or(f64::NAN)),
                "max_ms": round(ms.last().copied().unwrap_or(f64::NAN)),
                "size_bytes": size,
            })
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_picks_the_nearest_rank() {
        let xs = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        assert_eq!(percentile(&xs, 0.5), 6.0);
        assert_eq!(percentile(&xs, 0.9), 9.0);
        assert_eq!(percentile(&xs, 0.0), 1.0);
    }

    #[test]
    fn the_stand_in_reports_a_next_request() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || runtime_api(listener, tx));
        let mut s = TcpStream::connect(addr).unwrap();
        std::io::Write::write_all(
            &mut s,
            format!("GET {NEXT} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
        )
        .unwrap();
        assert!(rx.recv_timeout(Duration::from_secs(5)).is_ok());
    }
}
