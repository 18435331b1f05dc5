//! `meter serve` as the integration tests run it: the real binary on a free loopback
//! port, stopped (SIGKILL) when dropped.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

pub struct Server {
    pub child: Child,
    /// `http://127.0.0.1:<port>`, from the line the server prints once it listens.
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `meter serve --addr 127.0.0.1:0 <store>` (`--db <file>` or `--table <name>`)
/// with `admin_key` as the bootstrap admin key and `RUST_LOG=<log>`; returns once it
/// listens. The environment (`AWS_ENDPOINT_URL` and the credentials) is inherited.
pub fn serve<S: AsRef<OsStr>>(store: &[S], admin_key: &str, log: &str) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_meter"))
        .args(["serve", "--addr", "127.0.0.1:0"])
        .args(store)
        .env("METER_BOOTSTRAP_ADMIN_KEY", admin_key)
        .env("RUST_LOG", log)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the meter binary starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    let first = lines
        .next()
        .expect("meter serve prints a line once it listens")
        .expect("stdout is UTF-8");
    let base = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in the listening line `{first}`"))
        .to_owned();
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server { child, base }
}
