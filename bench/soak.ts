// `npm run bench:soak`: a steady mixed load for BENCH_SOAK_SECONDS (default 60) on a real Tessera
// child process (started as every bench starts it, lib/server.ts: the built dist when it is
// current, else src through tsx; temp SQLite file, then a temp Postgres database when
// BENCH_DATABASE_URL or TEST_DATABASE_URL is set), checking the goal "RSS and event-loop delay do
// not grow": the first window (min(10 s, half the run)) against the last.
//
// Load: one autocannon instance per kind, each at a fixed rate (overallRate, req/s, spread over
// its connections; autocannon sends each second's quota at the start of the second), not at max
// throughput, so start and end see the same work: client_credentials, JWKS, refresh rotation
// (one chain per connection, as in scenarios/refresh.ts), password grants (few: argon2),
// introspection and revocation of the client_credentials tokens just issued, GET /statuslists/0.
// BENCH_SOAK_WARMUP_SECONDS (default 5) of the same load run before the measured period.
//
// Sampling: GET /metrics on a METRICS_PORT listener every second: prom-client's default metrics
// (tessera_process_resident_memory_bytes, tessera_nodejs_heap_size_used_bytes and the event-loop
// delay histogram, which prom-client resets at each scrape, so each sample covers one second).
// Per window: median RSS and heap, event-loop delay p50 and p99 as the median of the per-second
// figures, max as the max, all beyond the histogram's 10 ms sampling interval. Without /metrics,
// RSS comes from /proc/<pid>/status. Goal: end <= start x 1.1 + 8 MiB (RSS), + 5 ms (delay p50, p99).
//
// `--json`: the report goes to stderr, stdout gets one JSON document. Exits 1 when the server
// did not start or died, or a kind of request failed > 1%; a missed goal is reported, exit 0.
// Env: BENCH_SOAK_SECONDS=60, BENCH_SOAK_WARMUP_SECONDS=5, BENCH_SOAK_SCALE=1 (multiplies every
// rate), BENCH_ONLY=sqlite|postgres, UV_THREADPOOL_SIZE (default 4).
import { randomBytes } from "node:crypto";
import os from "node:os";
import path from "node:path";
import type autocannon from "autocannon";
import { freePort } from "../test/helpers/ports.ts";
import { registerUsers, serverEntry, startTessera } from "./lib/server.ts";
import { createBenchClient } from "./scenarios/client-credentials.ts";
import type { Flavor, Server } from "./scenarios/scenario.ts";
import { FORM, limited, login, passwordBody, post, refreshRequest } from "./lib/http.ts";
import { loadSlice } from "./lib/load.ts";
import { makeTempDir, readMem, runCleanups, runDatabase } from "./lib/proc.ts";
import { heading, note, percentile } from "./lib/report.ts";
import type { Slice } from "./lib/slices.ts";

const JSON_OUTPUT = process.argv.includes("--json");
// With --json, stdout carries only the JSON document (heading/note in lib/report.ts use console.log).
if (JSON_OUTPUT) console.log = (...args: unknown[]) => console.error(...args);
const log = (s: string) => console.log(s);
const num = (name: string, def: number, min: number) => {
  const v = Number(process.env[name] || def);
  if (!Number.isFinite(v) || v < min) throw new Error(`${name}: expected a number >= ${min}`);
  return v;
};
const SECONDS = num("BENCH_SOAK_SECONDS", 60, 2);
const WARMUP = num("BENCH_SOAK_WARMUP_SECONDS", 5, 0);
const SCALE = num("BENCH_SOAK_SCALE", 1, 0.01);
const WINDOW = Math.min(10, SECONDS / 2);
const PG_ADMIN_URL = process.env.BENCH_DATABASE_URL || process.env.TEST_DATABASE_URL || "";
const ONLY = process.env.BENCH_ONLY ?? "";
/** end <= start * ratio + slack (RSS in MiB, event-loop delay in ms) */
const TOLERANCE = { ratio: 1.1, rssSlackMiB: 8, eldSlackMs: 5 };
/** prom-client's event-loop histogram samples every 10 ms and records the whole interval: an idle
 *  loop reads 10 ms. Delays are reported beyond it. */
const ELD_RESOLUTION_MS = 10;
const CHAINS = 8;
const USERS = 4;
const RATES = { client_credentials: 100, jwks: 100, refresh: 40, password: 2, introspect: 40, revoke: 10, status_list: 40 };
type Kind = keyof typeof RATES;

interface Sample { t: number; rssMiB: number; heapMiB: number; eldP50: number; eldP99: number; eldMax: number }
type Window = { rssMiB: number; heapMiB: number; eldP50Ms: number; eldP99Ms: number; eldMaxMs: number; samples: number };

/** One scrape of the metrics listener (unlabelled series only), or RSS from /proc without it. */
async function sample(metricsUrl: string, pid: number, t: number): Promise<Sample> {
  const m = new Map<string, number>();
  try {
    const text = await (await fetch(metricsUrl, { signal: AbortSignal.timeout(2000) })).text();
    for (const l of text.split("\n")) {
      const [name, value] = l.split(" ");
      if (name?.startsWith("tessera_") && value !== undefined) m.set(name.slice(8), Number(value));
    }
  } catch { /* fall back below */ }
  const g = (k: string, f: number) => (m.has(k) ? m.get(k)! * f : NaN);
  const eld = (k: string) => Math.max(0, g(`nodejs_eventloop_lag_${k}_seconds`, 1000) - ELD_RESOLUTION_MS);
  const rss = g("process_resident_memory_bytes", 2 ** -20);
  return {
    t, rssMiB: Number.isFinite(rss) ? rss : (readMem(pid)?.rssKiB ?? NaN) / 1024, heapMiB: g("nodejs_heap_size_used_bytes", 2 ** -20),
    eldP50: eld("p50"), eldP99: eld("p99"), eldMax: eld("max"),
  };
}

function windowOf(samples: Sample[]): Window {
  const med = (f: (s: Sample) => number) => percentile(samples.map(f).filter(Number.isFinite).sort((a, b) => a - b), 0.5);
  return { rssMiB: med((s) => s.rssMiB), heapMiB: med((s) => s.heapMiB), eldP50Ms: med((s) => s.eldP50), eldP99Ms: med((s) => s.eldP99), eldMaxMs: Math.max(...samples.map((s) => s.eldMax).filter(Number.isFinite)), samples: samples.length };
}

/** least-squares slope of RSS over the measured period, MiB per minute */
function slope(s: Sample[]): number {
  const p = s.filter((x) => Number.isFinite(x.rssMiB));
  const mt = p.reduce((a, x) => a + x.t, 0) / p.length, mr = p.reduce((a, x) => a + x.rssMiB, 0) / p.length;
  return (60 * p.reduce((a, x) => a + (x.t - mt) * (x.rssMiB - mr), 0)) / p.reduce((a, x) => a + (x.t - mt) ** 2, 0);
}

/** Tessera as every bench starts it (lib/server.ts), with its metrics on a port of their own. */
async function startServer(flavor: Flavor, databaseUrl: string, keysDir: string): Promise<Server & { metricsUrl: string }> {
  const metricsPort = await freePort();
  const server = await startTessera(flavor, databaseUrl, keysDir, serverEntry().args, { METRICS_PORT: String(metricsPort), METRICS_HOST: "127.0.0.1" });
  return { ...server, metricsUrl: `http://127.0.0.1:${metricsPort}/metrics` };
}

async function soak(flavor: "sqlite" | "postgres", failures: string[]) {
  const scratch = makeTempDir(`tessera-soak-${flavor}-`);
  const db = flavor === "sqlite" ? { url: `file:${path.join(scratch, "tessera.db")}`, drop: async () => {} } : await runDatabase(PG_ADMIN_URL, `bench_soak_${randomBytes(6).toString("hex")}`);
  const keysDir = path.join(scratch, "keys");
  const server = await startServer(flavor, db.url, keysDir);
  const { child, base, metricsUrl } = server;
  try {
    heading(`[${flavor}] Tessera pid ${child.pid} at ${base}; metrics at ${metricsUrl}`);
    const users = await registerUsers(server, USERS);
    const client = await createBenchClient(db.url, keysDir);
    const auth = { ...FORM, authorization: `Basic ${Buffer.from(`${encodeURIComponent(client.id)}:${encodeURIComponent(client.secret)}`).toString("base64")}` };
    const chains = await limited(CHAINS, 4, async (i) => ({ token: await login(base, users[i % users.length]!) }));
    const tokens: string[] = []; // client_credentials access tokens, for introspection and revocation
    const first = await post(`${base}/oauth/token`, "grant_type=client_credentials&scope=read", auth);
    if (typeof first.json.access_token !== "string") throw new Error(`client_credentials: ${first.status} ${JSON.stringify(first.json)}`);
    tokens.push(first.json.access_token);
    for (let i = 0; (await fetch(`${base}/statuslists/0`)).status !== 200; i++) if (i > 100) throw new Error("/statuslists/0 never appeared"); else await new Promise((r) => setTimeout(r, 100));

    const requests: Record<Kind, (n: number) => autocannon.Request> = {
      client_credentials: () => ({ method: "POST", path: "/oauth/token", headers: auth, body: "grant_type=client_credentials&scope=read",
        onResponse: (status, body) => { if (status === 200) { tokens.push((JSON.parse(body) as { access_token: string }).access_token); if (tokens.length > 2000) tokens.shift(); } } }),
      jwks: () => ({ method: "GET", path: "/.well-known/jwks.json" }),
      refresh: (n) => {
        const chain = chains[n % CHAINS]!;
        return refreshRequest(chain);
      },
      password: (n) => ({ method: "POST", path: "/oauth/token", headers: FORM, body: passwordBody(users[n % users.length]!) }),
      introspect: () => ({ method: "POST", path: "/oauth/introspect", headers: auth, setupRequest: (req) => ({ ...req, body: `token=${tokens[tokens.length - 1] ?? "x"}&token_type_hint=access_token` }) }),
      revoke: () => ({ method: "POST", path: "/oauth/revoke", headers: auth, setupRequest: (req) => ({ ...req, body: `token=${(tokens.length > 1 ? tokens.shift() : tokens[0]) ?? "x"}&token_type_hint=access_token` }) }),
      status_list: () => ({ method: "GET", path: "/statuslists/0" }),
    };

    const samples: Sample[] = [];
    const t0 = performance.now() + WARMUP * 1000; // start of the measured period
    const end = t0 + SECONDS * 1000;
    await sample(metricsUrl, child.pid, -WARMUP); // resets the event-loop histogram
    const timer = setInterval(() => void sample(metricsUrl, child.pid, (performance.now() - t0) / 1000).then((s) => samples.push(s)), 1000);
    const kinds = Object.keys(RATES) as Kind[];
    note(`load: ${kinds.map((k) => `${k} ${RATES[k] * SCALE}/s`).join(", ")}; ${WARMUP}s warm-up, then ${SECONDS}s measured`);
    const slices: Slice[] = await Promise.all(kinds.map((k) => {
      const rate = Math.max(1, Math.round(RATES[k] * SCALE));
      let n = 0;
      return loadSlice({ url: base, seconds: WARMUP + SECONDS, end, graceful: true, overallRate: rate, connections: k === "refresh" ? CHAINS : Math.min(rate, k === "password" ? 2 : 4),
        setupClient: (c) => c.setRequests([requests[k](n++)]) });
    }));
    clearInterval(timer);
    await new Promise((r) => setTimeout(r, 1100)); // the last scrape in flight

    // a sample at t covers the second before it: keep those mostly inside the measured period
    const measured = samples.filter((s) => s.t > 0.5 && s.t <= SECONDS + 0.5).sort((a, b) => a.t - b.t);
    if (!child.isRunning()) failures.push(`[${flavor}] the server died:\n${child.tail()}`);
    if (measured.length < 4) throw new Error(`only ${measured.length} samples`);
    const start = windowOf(measured.filter((s) => s.t <= WINDOW));
    const endW = windowOf(measured.filter((s) => s.t > measured[measured.length - 1]!.t - WINDOW));
    const within = (a: number, b: number, slack: number) => (Number.isFinite(a) && Number.isFinite(b) ? b <= a * TOLERANCE.ratio + slack : null);
    const checks = { rss: within(start.rssMiB, endW.rssMiB, TOLERANCE.rssSlackMiB), eldP50: within(start.eldP50Ms, endW.eldP50Ms, TOLERANCE.eldSlackMs), eldP99: within(start.eldP99Ms, endW.eldP99Ms, TOLERANCE.eldSlackMs) };
    const goal = Object.values(checks).includes(false) ? "MISSED" : Object.values(checks).includes(null) ? "not measured" : "met";
    const word = (ok: boolean | null) => (ok === null ? "n/a" : ok ? "ok" : "grew");

    const total = WARMUP + SECONDS;
    const perKind = Object.fromEntries(kinds.map((k, i) => {
      const s = slices[i]!;
      const non2xx = Object.fromEntries(Object.entries(s.statusCodes ?? {}).filter(([c]) => !c.startsWith("2")));
      if (s.failed > 0.01 * (s.ok + s.failed)) failures.push(`[${flavor}] ${k}: ${s.failed} of ${s.ok + s.failed} failed ${JSON.stringify(non2xx)}`);
      return [k, { targetRps: Math.max(1, Math.round(RATES[k] * SCALE)), ok: s.ok, okRps: s.ok / total, non2xx, errors: s.errors ?? 0, timeouts: s.timeouts ?? 0, p50Ms: percentile(s.latencies.sort((a, b) => a - b), 0.5), p99Ms: percentile(s.latencies, 0.99) }];
    }));
    const f = (n: number, d = 1) => (Number.isFinite(n) ? n.toFixed(d) : "n/a");
    log(`  requests over ${total}s (warm-up included):`);
    for (const [k, r] of Object.entries(perKind)) log(`    ${k.padEnd(19)} ${String(r.ok).padStart(7)} ok (${f(r.okRps)}/s of ${r.targetRps}/s)  p50 ${f(r.p50Ms)} ms  p99 ${f(r.p99Ms)} ms  non-2xx ${JSON.stringify(r.non2xx)}  errors ${r.errors} (timeouts ${r.timeouts})`);
    log(`  ${"window".padEnd(22)} ${"RSS MiB".padStart(8)} ${"heap MiB".padStart(9)}   event-loop delay p50 / p99 / max ms (median of per-second p50, p99; max; beyond the ${ELD_RESOLUTION_MS} ms sampling interval)`);
    for (const [name, w] of [[`first ${WINDOW}s`, start], [`last ${WINDOW}s`, endW]] as const)
      log(`  ${`${name} (${w.samples} samples)`.padEnd(22)} ${f(w.rssMiB).padStart(8)} ${f(w.heapMiB).padStart(9)}   ${f(w.eldP50Ms, 2)} / ${f(w.eldP99Ms, 2)} / ${f(w.eldMaxMs, 2)}`);
    const rssSlope = slope(measured);
    log(`  RSS trend over the ${SECONDS}s (least squares): ${f(rssSlope, 2)} MiB/min; peak ${f(Math.max(...measured.map((s) => s.rssMiB)))} MiB`);
    log(`  goal "RSS and event-loop delay do not grow" (end <= start x ${TOLERANCE.ratio} + ${TOLERANCE.rssSlackMiB} MiB for RSS, + ${TOLERANCE.eldSlackMs} ms for delay p50 and p99): ` +
      `${goal} (RSS ${word(checks.rss)}, delay p50 ${word(checks.eldP50)}, p99 ${word(checks.eldP99)})`);
    if (/"level":(50|60)/.test(child.tail())) note(`server logged errors; last lines:\n${child.tail()}`);
    return { flavor, requests: perKind, start, end: endW, rssSlopeMiBPerMin: rssSlope, checks, goal, samples: measured };
  } finally {
    await child.stop();
    await db.drop();
  }
}

const failures: string[] = [];
const results = [];
try {
  log(`Tessera soak: node ${process.version}, ${os.cpus().length} CPUs, load average ${os.loadavg().map((l) => l.toFixed(2)).join(" ")} (other work on the machine skews the figures)`);
  for (const flavor of ["sqlite", "postgres"] as const) {
    if ((flavor === "postgres" && !PG_ADMIN_URL) || (ONLY && ONLY !== flavor)) continue;
    try {
      results.push(await soak(flavor, failures));
    } catch (err) {
      failures.push(`[${flavor}] could not run: ${(err as Error).stack ?? String(err)}`);
    }
  }
  for (const f of failures) log(`  !! ${f}`);
  if (failures.length > 0) process.exitCode = 1;
  if (JSON_OUTPUT) {
    const settings = { seconds: SECONDS, warmupSeconds: WARMUP, windowSeconds: WINDOW, scale: SCALE, rates: RATES, refreshChains: CHAINS, sampleEverySeconds: 1 };
    process.stdout.write(`${JSON.stringify({ at: new Date().toISOString(), machine: { node: process.version, cpus: os.cpus().length, loadavg: os.loadavg() }, settings, tolerance: TOLERANCE, results, failures })}\n`);
  }
} finally {
  await runCleanups();
}
