"""A real `meter serve` for the tests: the workspace's binary, a temp SQLite file, a free
loopback port, `METER_BOOTSTRAP_ADMIN_KEY` set, stopped at the end."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

ADMIN_KEY = "mk_python_client_test_admin_key_0123456789"
REPO = Path(__file__).resolve().parents[3]


def meter_binary() -> str:
    """METER_BIN, else $CARGO_TARGET_DIR/debug/meter, else target/debug/meter."""
    candidates = []
    if os.environ.get("METER_BIN"):
        candidates.append(Path(os.environ["METER_BIN"]))
    if os.environ.get("CARGO_TARGET_DIR"):
        candidates.append(Path(os.environ["CARGO_TARGET_DIR"]) / "debug" / "meter")
    candidates.append(REPO / "target" / "debug" / "meter")
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return str(c)
    raise RuntimeError(
        "no meter binary: build it with `cargo build -p meter` or set METER_BIN (looked at "
        + ", ".join(str(c) for c in candidates) + ")"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MeterServer:
    """`meter serve --db <tmp>/meter.db --addr 127.0.0.1:<port>`, restartable on the same port and db."""

    def __init__(self, tmp: Path) -> None:
        self.bin = meter_binary()
        self.db = tmp / "meter.db"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: Optional[subprocess.Popen] = None
        out = subprocess.run(
            [self.bin, "keys", "create", "--db", str(self.db), "--tenant", "default", "--role", "service"],
            check=True, capture_output=True, text=True,
        )
        self.service_key = out.stdout.strip().splitlines()[0]
        assert self.service_key.startswith("mk_"), out.stdout

    def start(self) -> None:
        env = dict(os.environ, METER_BOOTSTRAP_ADMIN_KEY=ADMIN_KEY, RUST_LOG="warn")
        self.proc = subprocess.Popen(
            [self.bin, "serve", "--db", str(self.db), "--addr", f"127.0.0.1:{self.port}", "--aggregate-seconds", "3600"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
        )
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if "listening on" not in line:
            self.proc.kill()
            raise RuntimeError(f"meter serve did not start: {line!r}")
        # Keep draining stdout so the server never blocks on a full pipe.
        threading.Thread(target=lambda p=self.proc: [None for _ in p.stdout], daemon=True).start()  # type: ignore[union-attr]

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    # Admin calls the tests use to arrange state (not part of the client).
    def admin(self, method: str, path: str, body: Any = None) -> Tuple[int, Dict[str, Any]]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        headers = {"authorization": f"Bearer {ADMIN_KEY}", "content-type": "application/json"}
        conn.request(method, "/api/subscription" + path, body=None if body is None else json.dumps(body), headers=headers)
        resp = conn.getresponse()
        data = json.loads(resp.read() or b"null")
        conn.close()
        return resp.status, data

    def put_plan(self, name: str, limits: Dict[str, Any]) -> None:
        status, body = self.admin("PUT", f"/plans/{name}", {
            "tier": "custom", "monthly_price_usd": "1", "yearly_price_usd": "10", "limits": limits,
        })
        assert status == 200, body

    def subscribe(self, user_id: str, plan: str) -> None:
        status, body = self.admin("PUT", f"/user/{user_id}/subscription", {"plan": plan})
        assert status == 200, body

    def usage_calls(self, user_id: str) -> int:
        status, body = self.admin("GET", f"/usage/{user_id}")
        assert status == 200, body
        return body["data"]["total_calls"]

    def events(self, user_id: str) -> List[Dict[str, Any]]:
        status, body = self.admin("GET", f"/user/{user_id}/export")
        assert status == 200, body
        return body["data"]["events"]


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory):
    s = MeterServer(tmp_path_factory.mktemp("meter"))
    s.start()
    yield s
    s.stop()


@pytest.fixture()
def own_server(tmp_path: Path):
    """A server of the test's own, for tests that stop and restart it."""
    s = MeterServer(tmp_path)
    s.start()
    yield s
    s.stop()


@pytest.fixture()
def user() -> str:
    return f"py-{uuid.uuid4().hex[:12]}"


class DroppingProxy:
    """Forwards HTTP requests to meter; the first `POST /api/subscription/usage` is forwarded
    and answered by meter, then its connection is closed without the answer."""

    def __init__(self, upstream_port: int) -> None:
        proxy = self
        self.usage_posts = 0
        self.dropped = 0
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else None
                conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=10)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                payload = resp.read()
                conn.close()
                drop = False
                if self.command == "POST" and self.path.startswith("/api/subscription/usage"):
                    with proxy.lock:
                        proxy.usage_posts += 1
                        if proxy.dropped == 0:
                            proxy.dropped = 1
                            drop = True
                if drop:
                    self.close_connection = True
                    return
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                        self.send_header(k, v)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = _forward

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class CountingServer:
    """Answers every request 500 and counts them: proves that bad input sends nothing."""

    def __init__(self) -> None:
        outer = self
        self.requests = 0

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                outer.requests += 1
                self.send_response(500)
                self.send_header("content-length", "0")
                self.end_headers()

            do_GET = do_POST = do_PUT = _any

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

