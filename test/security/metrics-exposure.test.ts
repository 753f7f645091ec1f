// /metrics names internals (key states, queue depth, failure counts by cause) and is not for the
// public listener. What an operator and an outsider see: by default the public listener answers
// /metrics like any unknown path (404) and the server says at start how to enable it; with
// METRICS_TOKEN it answers only with the token; with METRICS_PORT a separate listener on
// METRICS_HOST serves it (the token required there too when set) and the public port does not.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, expect, it } from "vitest";
import { freePort } from "../helpers/ports.ts";
import { describeEachDb, freshDatabase, login, PASSWORD, startIssuer, uniqueEmail, type TestIssuer } from "../helpers/issuer.ts";
import { killAllIssuers, spawnIssuer, type IssuerProcess } from "../helpers/process.ts";
import { sampleOf as sample } from "../helpers/metrics.ts";

const TOKEN = "scrape-secret-0123456789";
const ORIGIN = "https://app.test";

const get = (url: string, headers: Record<string, string> = {}) => fetch(url, { headers, signal: AbortSignal.timeout(15_000) });

describeEachDb("security: /metrics is not public by default", (flavor) => {
  let open: TestIssuer;
  let locked: TestIssuer;
  beforeAll(async () => {
    open = await startIssuer(flavor);
    locked = await startIssuer(flavor, { env: { METRICS_TOKEN: TOKEN } });
  });
  afterAll(async () => {
    await locked?.close();
    await open?.close();
  });

  it("without METRICS_TOKEN or METRICS_PORT, GET /metrics on the public listener is a 404 like any unknown path", async () => {
    await login(open.app); // something to count
    const res = await open.app.inject({ method: "GET", url: "/metrics" });
    const unknown = await open.app.inject({ method: "GET", url: "/no-such-path" });
    expect(res.statusCode).toBe(404);
    expect(res.headers["content-type"]).toBe(unknown.headers["content-type"]);
    expect((res.json() as { error: string }).error).toBe("not_found");
    expect(res.body).not.toContain("tessera_");
    // Not behind a token either: a guessed token changes nothing.
    const withToken = await open.app.inject({ method: "GET", url: "/metrics", headers: { authorization: `Bearer ${TOKEN}` } });
    expect(withToken.statusCode).toBe(404);
  });

  it("with METRICS_TOKEN, the public listener answers 401 without the token and 200 with it", async () => {
    const none = await locked.app.inject({ method: "GET", url: "/metrics" });
    expect(none.statusCode).toBe(401);
    expect(none.headers["www-authenticate"]).toMatch(/^Bearer /);
    expect(none.body).not.toContain("tessera_");
    const wrong = await locked.app.inject({ method: "GET", url: "/metrics", headers: { authorization: "Bearer scrape-secret-0123456788" } });
    expect(wrong.statusCode).toBe(401);
    const ok = await locked.app.inject({ method: "GET", url: "/metrics", headers: { authorization: `Bearer ${TOKEN}` } });
    expect(ok.statusCode).toBe(200);
    expect(ok.headers["content-type"]).toMatch(/^text\/plain/);
    expect(ok.body).toContain("tessera_tokens_issued_total");
  });
});

describeEachDb("security: METRICS_PORT, a real server", (flavor) => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    await killAllIssuers();
  });
  afterAll(async () => {
    await killAllIssuers();
    for (const c of cleanups.reverse()) await c();
  });

  async function start(extra: Record<string, string>): Promise<{ proc: IssuerProcess; baseUrl: string }> {
    const dir = mkdtempSync(path.join(os.tmpdir(), "tessera-metrics-"));
    const db = await freshDatabase(flavor);
    cleanups.push(async () => {
      await db.drop();
      rmSync(dir, { recursive: true, force: true });
    });
    const proc = spawnIssuer({
      PORT: "0",
      HOST: "127.0.0.1",
      ISSUER: "https://issuer.test",
      ALLOWED_ORIGINS: ORIGIN,
      KEYS_DIR: path.join(dir, "keys"),
      DATABASE_URL: db.url,
      LOG_LEVEL: "info",
      PRUNE_INTERVAL: "0",
      ...extra,
    });
    const { baseUrl } = await proc.listening(90_000);
    return { proc, baseUrl };
  }

  async function passwordGrantOverHttp(baseUrl: string): Promise<void> {
    const email = uniqueEmail("metrics");
    const reg = await fetch(`${baseUrl}/auth/register`, {
      method: "POST",
      headers: { "content-type": "application/json", origin: ORIGIN },
      body: JSON.stringify({ email, password: PASSWORD }),
      signal: AbortSignal.timeout(15_000),
    });
    expect(reg.status, await reg.clone().text()).toBe(201);
    const res = await fetch(`${baseUrl}/oauth/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "password", client_id: "web", username: email, password: PASSWORD }).toString(),
      signal: AbortSignal.timeout(15_000),
    });
    expect(res.status, await res.clone().text()).toBe(200);
  }

  it("by default the server warns once at start how to enable /metrics, and the public port answers 404", async () => {
    const { proc, baseUrl } = await start({});
    const warnings = proc.logs().filter((l) => l.level === 40 && /metrics/i.test(String(l.msg)));
    expect(warnings, proc.output()).toHaveLength(1);
    expect(String(warnings[0]!.msg)).toMatch(/METRICS_PORT/);
    expect(String(warnings[0]!.msg)).toMatch(/METRICS_TOKEN/);
    const res = await get(`${baseUrl}/metrics`);
    expect(res.status).toBe(404);
    expect(await res.text()).not.toContain("tessera_");
  }, 120_000);

  it("METRICS_PORT serves /metrics on METRICS_HOST:METRICS_PORT, fed by the public listener's traffic; the public port answers 404; SIGTERM closes both", async () => {
    const metricsPort = await freePort();
    const { proc, baseUrl } = await start({ METRICS_PORT: String(metricsPort), METRICS_HOST: "127.0.0.1" });
    const metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
    expect(proc.logs().some((l) => l.level === 40 && /metrics/i.test(String(l.msg))), "no enable-metrics warning").toBe(false);

    await passwordGrantOverHttp(baseUrl);
    const scrape = await get(metricsUrl);
    expect(scrape.status).toBe(200);
    expect(scrape.headers.get("content-type")).toMatch(/^text\/plain/);
    expect(scrape.headers.get("x-content-type-options")).toBe("nosniff");
    const text = await scrape.text();
    expect(sample(text, "tessera_tokens_issued_total", { grant_type: "password" })).toBe(1);
    expect(sample(text, "tessera_signing_keys", { state: "active" })).toBe(1);
    // Only /metrics there.
    expect((await get(`http://127.0.0.1:${metricsPort}/healthz`)).status).toBe(404);
    // And not on the public port.
    const pub = await get(`${baseUrl}/metrics`);
    expect(pub.status).toBe(404);
    expect(await pub.text()).not.toContain("tessera_");

    proc.child.kill("SIGTERM");
    expect(await proc.exited(30_000), proc.output()).toEqual({ code: 0, signal: null });
    await expect(get(metricsUrl)).rejects.toThrow();
  }, 120_000);

  it("METRICS_PORT with METRICS_TOKEN: the metrics listener requires the token; the public port still answers 404", async () => {
    const metricsPort = await freePort();
    const { baseUrl } = await start({ METRICS_PORT: String(metricsPort), METRICS_TOKEN: TOKEN });
    const metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
    const none = await get(metricsUrl);
    expect(none.status).toBe(401);
    expect(none.headers.get("www-authenticate")).toMatch(/^Bearer /);
    expect(await none.text()).not.toContain("tessera_");
    expect((await get(metricsUrl, { authorization: "Bearer not-the-token-0123456" })).status).toBe(401);
    const ok = await get(metricsUrl, { authorization: `Bearer ${TOKEN}` });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain("tessera_tokens_issued_total");
    expect((await get(`${baseUrl}/metrics`, { authorization: `Bearer ${TOKEN}` })).status).toBe(404);
  }, 120_000);

  it("the metrics listener is bound to METRICS_HOST only (127.0.0.1 by default): not reachable on the machine's other addresses", async () => {
    const external = Object.values(os.networkInterfaces())
      .flat()
      .find((a) => a && a.family === "IPv4" && !a.internal)?.address;
    const metricsPort = await freePort();
    const { proc } = await start({ METRICS_PORT: String(metricsPort) });
    expect(proc.stdout.join("\n")).toContain(`metrics listening on http://127.0.0.1:${metricsPort}/metrics`);
    expect((await get(`http://127.0.0.1:${metricsPort}/metrics`)).status).toBe(200);
    if (external) await expect(get(`http://${external}:${metricsPort}/metrics`)).rejects.toThrow();
  }, 120_000);
});
