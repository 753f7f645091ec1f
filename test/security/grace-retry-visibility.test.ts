// A refresh token presented again inside REFRESH_REUSE_GRACE gets the same successor (two tabs,
// a lost response) — and is also exactly what a thief replaying a just-used token looks like
// (RFC 9700 §4.14.2). What an operator sees: a warn-level log line (the level alerts key on),
// without any token in it, and a dedicated Prometheus counter to alert on its rate.
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeEachDb, login, refreshGrant, startIssuer, type TestIssuer, type TokenPair } from "../helpers/issuer.ts";
import { sample } from "../helpers/metrics.ts";

const TOKEN = "scrape-secret-0123456789";

describeEachDb("security: grace retries are visible", (flavor) => {
  let issuer: TestIssuer;
  beforeAll(async () => {
    issuer = await startIssuer(flavor, { env: { REFRESH_REUSE_GRACE: "10", METRICS_TOKEN: TOKEN } });
  });
  afterAll(async () => issuer?.close());

  const scrape = async () => {
    const res = await issuer.app.inject({ method: "GET", url: "/metrics", headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.statusCode).toBe(200);
    return res.body;
  };

  it("a grace retry logs one warn line without the token and increments tessera_refresh_grace_retries_total", async () => {
    const pair = await login(issuer.app);
    const first = await refreshGrant(issuer.app, pair.refresh_token);
    expect(first.statusCode).toBe(200);
    const successor = (first.json() as TokenPair).refresh_token;
    const before = await scrape();
    const from = issuer.logs.lines.length;

    issuer.clock.advance(2);
    const retry = await refreshGrant(issuer.app, pair.refresh_token);
    expect(retry.statusCode, retry.body).toBe(200);
    // It was a grace retry: the same successor came back.
    expect((retry.json() as TokenPair).refresh_token).toBe(successor);

    const lines = issuer.logs.lines.slice(from);
    const events = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.audit === "refresh.grace_retry");
    expect(events).toHaveLength(1);
    expect(events[0]!.level, "pino level of the grace-retry line (40 = warn)").toBe(40);
    expect(events[0]!.sessionId).toEqual(expect.any(String));
    // No token of the session anywhere in what was logged.
    for (const secret of [pair.refresh_token, successor, pair.access_token, (retry.json() as TokenPair).access_token]) {
      expect(lines.join("\n")).not.toContain(secret);
    }

    const after = await scrape();
    expect(after).toContain("# TYPE tessera_refresh_grace_retries_total counter");
    expect(sample(after, "tessera_refresh_grace_retries_total") - sample(before, "tessera_refresh_grace_retries_total")).toBe(1);
    // The per-type audit counter still counts it too.
    const type = { type: "refresh.grace_retry" };
    expect(sample(after, "tessera_audit_events_total", type) - sample(before, "tessera_audit_events_total", type)).toBe(1);
    expect(after).not.toContain(pair.refresh_token);
  });

  it("a plain rotation is not a grace retry: neither the counter nor a warn line move", async () => {
    const pair = await login(issuer.app);
    const before = await scrape();
    const from = issuer.logs.lines.length;
    expect((await refreshGrant(issuer.app, pair.refresh_token)).statusCode).toBe(200);
    const after = await scrape();
    expect(sample(after, "tessera_refresh_grace_retries_total")).toBe(sample(before, "tessera_refresh_grace_retries_total"));
    const warns = issuer.logs.lines.slice(from).map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.level === 40);
    expect(warns).toEqual([]);
  });
});
