// WORKERS=2: the server as an operator runs it on a multi-core host, one primary and two workers
// behind one port (node:cluster). Every request below goes on a new connection, which the primary
// hands to the workers in turn; the request log's `worker` field says which one served it, and
// each test checks that both did, so what it asserts holds whichever worker a client reaches.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { inflateSync } from "node:zlib";
import { decodeJwt } from "jose";
import { afterAll, beforeAll, expect, it, vi } from "vitest";
import { describeEachDb, freshDatabase, PASSWORD, statusRefOf, uniqueEmail, type Flavor } from "../helpers/issuer.ts";
import { freePort } from "../helpers/ports.ts";
import { killAllIssuers, spawnIssuer, type IssuerProcess } from "../helpers/process.ts";

const ORIGIN = "https://app.test";

/** One request on a connection of its own (no keep-alive), so the primary picks a worker for it. */
function request(url: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? "GET", headers: opts.headers, agent: false, timeout: 15_000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("timeout", () => req.destroy(new Error(`${url}: timed out`)));
    req.on("error", reject);
    req.end(opts.body);
  });
}
const formPost = (url: string, params: Record<string, string>, headers: Record<string, string> = {}) =>
  request(url, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded", ...headers }, body: new URLSearchParams(params).toString() });

/** Which workers served requests to `urlPath` since log line `from`. */
function workersServing(proc: IssuerProcess, urlPath: string, from: number): Set<unknown> {
  return new Set(
    proc
      .logs()
      .slice(from)
      .filter((l) => l.msg === "request" && l.path === urlPath)
      .map((l) => l.worker),
  );
}

/** The pids of the primary's worker processes (not the build tool's helpers). */
function workerPids(primary: number): number[] {
  const kids = readFileSync(`/proc/${primary}/task/${primary}/children`, "utf8").split(/\s+/).filter(Boolean).map(Number);
  return kids.filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("server.ts");
    } catch {
      return false;
    }
  });
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** How many workers have logged "Tessera listening" so far (a replacement logs it again). */
const workersListened = (proc: IssuerProcess) => proc.logs().filter((l) => typeof l.msg === "string" && /^Tessera listening on .*\(issuer/.test(l.msg)).length;

interface Cluster {
  proc: IssuerProcess;
  base: string;
  port: number;
  keysDir: string;
  /** kills what is left, drops the database, removes the keys */
  close(): Promise<void>;
}

/** WORKERS=2 on a fresh database, with `env` over the defaults; resolves once both workers listen. */
async function startCluster(flavor: Flavor, env: Record<string, string> = {}): Promise<Cluster> {
  const db = await freshDatabase(flavor);
  const keysDir = mkdtempSync(path.join(os.tmpdir(), "tessera-cluster-keys-"));
  const close = async () => {
    await killAllIssuers();
    await db.drop();
    rmSync(keysDir, { recursive: true, force: true });
  };
  try {
    const proc = spawnIssuer({ WORKERS: "2", PORT: "0", HOST: "127.0.0.1", ISSUER: "https://issuer.test", KEYS_DIR: keysDir, DATABASE_URL: db.url, LOG_LEVEL: "info", PRUNE_INTERVAL: "0", ...env });
    const port = await proc.until(() => {
      for (const line of proc.stdout) {
        const m = /Tessera listening on http:\/\/127\.0\.0\.1:(\d+) with 2 workers/.exec(line);
        if (m) return Number(m[1]);
      }
      return undefined;
    }, "both workers listening", 90_000);
    return { proc, port, base: `http://127.0.0.1:${port}`, keysDir, close };
  } catch (err) {
    await close();
    throw err;
  }
}

describeEachDb("WORKERS=2: one host, two workers", (flavor) => {
  let cluster: Cluster;
  let proc: IssuerProcess;
  let base: string;
  let metricsUrl: string;
  let keysDir: string;

  beforeAll(async () => {
    const metricsPort = await freePort();
    metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
    cluster = await startCluster(flavor, {
      ALLOWED_ORIGINS: ORIGIN,
      COOKIE_SECURE: "false",
      METRICS_PORT: String(metricsPort),
      // Far timers: what a worker learns from its sibling, it cannot have learned from them.
      STATUS_LIST_TTL: "3600",
      KEYS_RELOAD_INTERVAL: "3600",
      RATE_LIMIT_CLIENT_AUTH_FAILURES: "4/1m",
      RATE_LIMIT_PASSWORD: "0",
      RATE_LIMIT_REGISTER: "0",
      // A drain that takes a moment: a second signal arriving meanwhile must not cut it short.
      SHUTDOWN_DELAY: "1",
    });
    ({ proc, base, keysDir } = cluster);
  }, 120_000);

  afterAll(async () => {
    await cluster?.close();
  });

  it("the first start creates one signing key for the host, which every worker serves", async () => {
    expect(readdirSync(keysDir).filter((n) => n.endsWith(".json") && !n.startsWith(".")), proc.output()).toHaveLength(1);
    const from = proc.logs().length;
    const bodies = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const res = await request(`${base}/.well-known/jwks.json`);
      expect(res.status).toBe(200);
      bodies.add(res.body);
    }
    expect(bodies.size).toBe(1);
    expect((JSON.parse([...bodies][0]!) as { keys: unknown[] }).keys).toHaveLength(1);
    expect(workersServing(proc, "/.well-known/jwks.json", from)).toEqual(new Set([0, 1]));
  });

  it("a session revoked through one worker is revoked in every worker's status list at once", async () => {
    const email = uniqueEmail("cluster");
    expect((await request(`${base}/auth/register`, { method: "POST", headers: { "content-type": "application/json", origin: ORIGIN }, body: JSON.stringify({ email, password: PASSWORD }) })).status).toBe(201);
    const login = await formPost(`${base}/oauth/token`, { grant_type: "password", username: email, password: PASSWORD, client_id: "web" });
    expect(login.status, login.body).toBe(200);
    const { access_token, refresh_token } = JSON.parse(login.body) as { access_token: string; refresh_token: string };
    const ref = statusRefOf(access_token)!;
    const listPath = new URL(ref.uri).pathname;
    const bit = async () => {
      const res = await request(`${base}${listPath}`);
      expect(res.status).toBe(200);
      const { lst } = decodeJwt(res.body).status_list as { lst: string };
      const bytes = inflateSync(Buffer.from(lst, "base64url"));
      return ((bytes[ref.idx >> 3] ?? 0) >> (ref.idx & 7)) & 1;
    };
    expect(await bit()).toBe(0);
    expect((await formPost(`${base}/oauth/revoke`, { token: refresh_token, client_id: "web" })).status).toBe(200);
    // The sibling rebuilds its lists as soon as it hears of the revocation: within a moment, not
    // at its next rebuild (STATUS_LIST_TTL=3600 here: half an hour away).
    const from = proc.logs().length;
    await vi.waitFor(
      async () => {
        for (let i = 0; i < 6; i++) expect(await bit()).toBe(1);
      },
      { timeout: 3000, interval: 50 },
    );
    expect(workersServing(proc, listPath, from)).toEqual(new Set([0, 1]));
  });

  it("one scrape of METRICS_PORT sums what every worker counted", async () => {
    const registered = async () => {
      const res = await request(metricsUrl);
      expect(res.status).toBe(200);
      return { text: res.body, n: Number(/^tessera_audit_events_total\{type="user\.registered"\} (\d+)/m.exec(res.body)?.[1] ?? 0) };
    };
    const before = (await registered()).n;
    const from = proc.logs().length;
    for (let i = 0; i < 4; i++) {
      const res = await request(`${base}/auth/register`, { method: "POST", headers: { "content-type": "application/json", origin: ORIGIN }, body: JSON.stringify({ email: uniqueEmail("metrics"), password: PASSWORD }) });
      expect(res.status).toBe(201);
    }
    expect(workersServing(proc, "/auth/register", from)).toEqual(new Set([0, 1]));
    const after = await registered();
    expect(after.n - before).toBe(4);
    // Both workers load the same one key: it is counted once.
    expect(after.text).toMatch(/^tessera_signing_keys\{state="active",alg="ES256"\} 1$/m);
  });

  it("a worker that dies is replaced, and the other serves meanwhile", async () => {
    const pids = workerPids(proc.pid);
    expect(pids).toHaveLength(2);
    const victim = pids[0]!;
    const listenedBefore = workersListened(proc);
    // Both workers registered users in the test before: each has its share of this counter.
    const registered = (body: string) => Number(/^tessera_audit_events_total\{type="user\.registered"\} (\d+)/m.exec(body)?.[1] ?? NaN);
    const before = await request(metricsUrl);
    expect(registered(before.body)).toBeGreaterThanOrEqual(4);
    process.kill(victim, "SIGKILL");
    await proc.until(() => (proc.logs().some((l) => l.msg === "worker exited; starting another" && l.signal === "SIGKILL") ? true : undefined), "the worker's exit", 10_000);
    // Served by the one left while the replacement starts; a scrape meanwhile answers with the
    // workers that are listening, and counts the restart.
    expect((await request(`${base}/.well-known/jwks.json`)).status).toBe(200);
    const scrape = await request(metricsUrl);
    expect(scrape.status, scrape.body).toBe(200);
    expect(scrape.body).toMatch(/^tessera_worker_restarts_total 1$/m);
    // The dead worker's count stays in the sum (as of the scrape before): a counter never goes down.
    expect(registered(scrape.body)).toBe(registered(before.body));
    await proc.until(() => (workersListened(proc) > listenedBefore ? true : undefined), "the replacement listening", 60_000);
    const now = workerPids(proc.pid);
    expect(now).toHaveLength(2);
    expect(now).not.toContain(victim);
    const from = proc.logs().length;
    for (let i = 0; i < 6; i++) expect((await request(`${base}/.well-known/jwks.json`)).status).toBe(200);
    expect(workersServing(proc, "/.well-known/jwks.json", from)).toEqual(new Set([0, 1]));
  });

  // Last but one: the address is refused client authentication for a minute after it.
  it("a rate limit counts for the host, not for each worker", async () => {
    const from = proc.logs().length;
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) {
      const res = await formPost(`${base}/oauth/token`, { grant_type: "client_credentials" }, { authorization: `Basic ${Buffer.from("nobody:wrong").toString("base64")}` });
      statuses.push(res.status);
    }
    // RATE_LIMIT_CLIENT_AUTH_FAILURES=4/1m: four failures, then refused; two workers counting on
    // their own would have let eight through.
    expect(statuses).toEqual([401, 401, 401, 401, 429, 429, 429, 429, 429, 429]);
    expect(workersServing(proc, "/oauth/token", from)).toEqual(new Set([0, 1]));
  });

  it("a worker that starts while an address is over its limit refuses that address too", async () => {
    const [victim] = workerPids(proc.pid);
    const listenedBefore = workersListened(proc);
    process.kill(victim!, "SIGKILL");
    const fromStart = proc.logs().length;
    await proc.until(() => (workersListened(proc) > listenedBefore ? true : undefined), "the replacement listening", 60_000);
    // It had the list before it listened: no connection can reach it before it knows.
    const started = proc.logs().slice(fromStart);
    const handedOver = started.findIndex((l) => l.msg === "addresses at their limit on this host, refused from the first connection" && (l.limited as number) >= 1);
    const listening = started.findIndex((l) => typeof l.msg === "string" && l.msg.startsWith("Tessera listening") && l.worker !== undefined);
    expect(handedOver, proc.tail(20)).toBeGreaterThanOrEqual(0);
    expect(handedOver).toBeLessThan(listening);
    const from = proc.logs().length;
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const res = await formPost(`${base}/oauth/token`, { grant_type: "client_credentials" }, { authorization: `Basic ${Buffer.from("nobody:wrong").toString("base64")}` });
      statuses.push(res.status);
    }
    expect(statuses).toEqual([429, 429, 429, 429, 429, 429]);
    expect(workersServing(proc, "/oauth/token", from)).toEqual(new Set([0, 1]));
  });

  it("SIGTERM to the whole process group (Ctrl-C, systemd) drains every worker once; the primary exits 0 and leaves none behind", async () => {
    const pids = workerPids(proc.pid);
    expect(pids).toHaveLength(2);
    // As a process group gets it: each worker hears it from the group and again from the primary.
    for (const pid of [...pids, proc.pid]) process.kill(pid, "SIGTERM");
    expect(await proc.exited(30_000), proc.tail(30)).toEqual({ code: 0, signal: null });
    const drained = proc.logs().filter((l) => l.msg === "shutdown complete").map((l) => l.worker);
    expect(new Set(drained)).toEqual(new Set([0, 1]));
    expect(pids.filter(alive)).toEqual([]);
  });
});

describeEachDb("WORKERS=2: shutdown while a worker is being replaced", (flavor) => {
  let cluster: Cluster | undefined;
  afterAll(async () => {
    await cluster?.close();
  });

  it("SIGTERM during the restart delay stops the primary at once with exit 0", async () => {
    // With METRICS_PORT, as in production: its listener keeps the primary's event loop alive.
    cluster = await startCluster(flavor, { METRICS_PORT: String(await freePort()) });
    const { proc } = cluster;
    const [victim] = workerPids(proc.pid);
    process.kill(victim!, "SIGKILL");
    // A worker that dies within 30 s of its start is replaced after a delay (500 ms the first time).
    await proc.until(() => (proc.logs().some((l) => l.msg === "worker exited; starting another" && (l.restartInMs as number) > 0) ? true : undefined), "the worker's exit", 10_000);
    proc.child.kill("SIGTERM");
    const started = Date.now();
    expect(await proc.exited(15_000), proc.tail(20)).toEqual({ code: 0, signal: null });
    expect(Date.now() - started).toBeLessThan(10_000); // not the 20 s "took too long" path
    expect(proc.logs().some((l) => l.msg === "workers took too long to stop; exiting")).toBe(false);
    expect(proc.logs().find((l) => l.msg === "all workers stopped")).toMatchObject({ exitCode: 0 });
  }, 120_000);
});

describeEachDb("WORKERS=2: when the primary does not answer", (flavor) => {
  let cluster: Cluster | undefined;
  afterAll(async () => {
    await cluster?.close();
  });

  it("a worker limits client authentication failures on its own counters", async () => {
    cluster = await startCluster(flavor, { RATE_LIMIT_CLIENT_AUTH_FAILURES: "4/1m" });
    const { proc, port } = cluster;
    // One kept-alive connection: a worker's own socket, which keeps working while the primary
    // (which hands out new connections) is stopped.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const attempt = () =>
      new Promise<number>((resolve, reject) => {
        const body = "grant_type=client_credentials";
        const req = http.request(
          { host: "127.0.0.1", port, path: "/oauth/token", method: "POST", agent, timeout: 15_000, headers: { "content-type": "application/x-www-form-urlencoded", "content-length": Buffer.byteLength(body), authorization: `Basic ${Buffer.from("nobody:wrong").toString("base64")}` } },
          (res) => {
            res.resume();
            res.on("end", () => resolve(res.statusCode ?? 0));
          },
        );
        req.on("error", reject);
        req.end(body);
      });
    try {
      expect(await attempt()).toBe(401); // the connection is open
      process.kill(proc.pid, "SIGSTOP");
      const statuses: number[] = [];
      try {
        for (let i = 0; i < 8; i++) statuses.push(await attempt());
      } finally {
        process.kill(proc.pid, "SIGCONT");
      }
      // The first failure went to the primary (counted there before it stopped answering, or
      // not); from the timeout on, this worker counts on its own and refuses at 4.
      expect(statuses.filter((s) => s === 401).length).toBeLessThanOrEqual(4);
      expect(statuses.slice(-4)).toEqual([429, 429, 429, 429]);
    } finally {
      agent.destroy();
    }
  }, 120_000);
});
