/**
 * A real `meter serve` for the tests (the workspace's binary, a temp SQLite file, a free
 * loopback port, METER_BOOTSTRAP_ADMIN_KEY set), a proxy that drops an answer, and a
 * server that counts requests.
 */

import { type ChildProcessWithoutNullStreams, execFileSync, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { accessSync, constants, mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export const ADMIN_KEY = "mk_typescript_client_test_admin_key_0123456789";
// build/test/helpers.js → the repository root is four levels up.
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../..");

export function meterBinary(): string {
  const candidates: string[] = [];
  if (process.env["METER_BIN"]) candidates.push(process.env["METER_BIN"]);
  if (process.env["CARGO_TARGET_DIR"]) candidates.push(path.join(process.env["CARGO_TARGET_DIR"], "debug", "meter"));
  candidates.push(path.join(REPO, "target", "debug", "meter"));
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      // next
    }
  }
  throw new Error(`no meter binary: build it with \`cargo build -p meter\` or set METER_BIN (looked at ${candidates.join(", ")})`);
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export function user(): string {
  return `ts-${randomUUID().slice(0, 12)}`;
}

export class MeterServer {
  readonly bin = meterBinary();
  readonly dir = mkdtempSync(path.join(tmpdir(), "meter-ts-"));
  readonly db = path.join(this.dir, "meter.db");
  readonly serviceKey: string;
  port = 0;
  proc: ChildProcessWithoutNullStreams | null = null;

  constructor() {
    const out = execFileSync(this.bin, ["keys", "create", "--db", this.db, "--tenant", "default", "--role", "service"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    });
    this.serviceKey = out.trim().split("\n")[0]!;
    if (!this.serviceKey.startsWith("mk_")) throw new Error(`unexpected key output: ${out}`);
  }

  get base(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  static async started(): Promise<MeterServer> {
    const s = new MeterServer();
    s.port = await freePort();
    await s.start();
    return s;
  }

  async start(): Promise<void> {
    const proc = spawn(this.bin, ["serve", "--db", this.db, "--addr", `127.0.0.1:${this.port}`, "--aggregate-seconds", "3600"], {
      env: { ...process.env, METER_BOOTSTRAP_ADMIN_KEY: ADMIN_KEY, RUST_LOG: "warn" },
      stdio: ["pipe", "pipe", "pipe"],
    });
    proc.stderr.resume();
    const lines = createInterface({ input: proc.stdout });
    const first = await new Promise<string>((resolve, reject) => {
      lines.once("line", resolve);
      proc.once("exit", (code) => reject(new Error(`meter serve exited with ${code}`)));
    });
    if (!first.includes("listening on")) {
      proc.kill("SIGKILL");
      throw new Error(`meter serve did not start: ${first}`);
    }
    lines.on("line", () => {}); // keep draining stdout
    this.proc = proc;
  }

  async stop(): Promise<void> {
    const proc = this.proc;
    if (proc === null) return;
    this.proc = null;
    const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
    proc.kill("SIGINT");
    const timer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
  }

  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Admin calls the tests use to arrange and inspect state (not part of the client). */
  async admin(method: string, p: string, body?: unknown): Promise<{ status: number; body: any }> {
    const init: RequestInit = { method, headers: { authorization: `Bearer ${ADMIN_KEY}`, "content-type": "application/json" } };
    if (body !== undefined) init.body = JSON.stringify(body);
    const r = await fetch(`${this.base}/api/subscription${p}`, init);
    return { status: r.status, body: await r.json() };
  }

  async putPlan(limits: Record<string, number | string>): Promise<string> {
    const name = `tiny-${randomUUID().slice(0, 8)}`;
    const r = await this.admin("PUT", `/plans/${name}`, { tier: "custom", monthly_price_usd: "1", yearly_price_usd: "10", limits });
    if (r.status !== 200) throw new Error(JSON.stringify(r.body));
    return name;
  }

  async subscribe(userId: string, plan: string): Promise<void> {
    const r = await this.admin("PUT", `/user/${encodeURIComponent(userId)}/subscription`, { plan });
    if (r.status !== 200) throw new Error(JSON.stringify(r.body));
  }

  async usageCalls(userId: string): Promise<number> {
    const r = await this.admin("GET", `/usage/${encodeURIComponent(userId)}`);
    return r.body.data.total_calls;
  }

  async eventIds(userId: string): Promise<string[]> {
    const r = await this.admin("GET", `/user/${encodeURIComponent(userId)}/export`);
    return r.body.data.events.map((e: { event_id: string }) => e.event_id);
  }
}

/**
 * Forwards requests to meter; the first `POST /api/subscription/usage` is forwarded and
 * answered by meter, then its connection is destroyed without the answer.
 */
export class DroppingProxy {
  usagePosts = 0;
  dropped = 0;
  private server: http.Server;
  port = 0;

  constructor(private readonly upstream: string) {
    this.server = http.createServer(async (req, res) => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) {
        if (typeof v === "string" && !["host", "connection", "content-length"].includes(k)) headers[k] = v;
      }
      const init: RequestInit = { method: req.method!, headers };
      if (chunks.length > 0) init.body = Buffer.concat(chunks);
      const up = await fetch(`${this.upstream}${req.url}`, init);
      const payload = Buffer.from(await up.arrayBuffer());
      if (req.method === "POST" && req.url?.startsWith("/api/subscription/usage")) {
        this.usagePosts += 1;
        if (this.dropped === 0) {
          this.dropped = 1;
          req.socket.destroy();
          return;
        }
      }
      const out: Record<string, string> = {};
      up.headers.forEach((v, k) => {
        if (!["connection", "transfer-encoding", "content-length", "content-encoding"].includes(k)) out[k] = v;
      });
      res.writeHead(up.status, { ...out, "content-length": String(payload.length) });
      res.end(payload);
    });
  }

  get base(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async listen(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Answers every request 500 and counts them: proves that bad input sends nothing. */
export class CountingServer {
  requests = 0;
  port = 0;
  private server = http.createServer((_req, res) => {
    this.requests += 1;
    res.writeHead(500).end();
  });

  get base(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async listen(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
