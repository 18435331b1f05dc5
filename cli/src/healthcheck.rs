//! `meter healthcheck`: one `GET /healthz` to a running `meter serve`, for container health
//! checks in images without a shell or curl (the Dockerfile's `HEALTHCHECK`). Exits 0 on a
//! 200 answer, 1 otherwise.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;

#[derive(Args)]
pub struct HealthcheckArgs {
    /// The address `meter serve` listens on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 3)]
    timeout_seconds: u64,
}

pub fn run(args: &HealthcheckArgs) -> Result<()> {
    let timeout = Duration::from_secs(args.timeout_seconds.max(1));
    let mut stream = TcpStream::connect_timeout(&args.addr, timeout)
        .with_context(|| format!("connecting to {}", args.addr))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET /healthz HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        args.addr
    )?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head).context("reading the answer")?;
    let line = String::from_utf8_lossy(&head[..n]);
    let status = line.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        bail!(
            "GET /healthz answered {:?}",
            line.lines().next().unwrap_or("")
        );
    }
    println!("ok");
    Ok(())
}
