// GET /metrics: what an operator's Prometheus scrapes. Reuse, grace retries and failed logins
// show up by cause, tokens by grant type. On the public listener it exists only behind
// METRICS_TOKEN (test/security/metrics-exposure.test.ts covers the default and METRICS_PORT).
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeEachDb, login, passwordGrant, refreshGrant, startIssuer, type TestIssuer } from "../helpers/issuer.ts";
import { sample } from "../helpers/metrics.ts";

const TOKEN = "scrape-secret-123";

describeEachDb("metrics", (flavor) => {
  let issuer: TestIssuer;
  let locked: TestIssuer;
  let closed: TestIssuer;
  beforeAll(async () => {
    issuer = await startIssuer(flavor, { env: { REFRESH_REUSE_GRACE: "5", METRICS_TOKEN: TOKEN } });
    locked = await startIssuer(flavor, { env: { METRICS_TOKEN: TOKEN } });
    closed = await startIssuer(flavor);
  });
  afterAll(async () => {
    await closed?.close();
    await locked?.close();
    await issuer?.close();
  });

  const scrape = async (i: TestIssuer, headers: Record<string, string> = { authorization: `Bearer ${TOKEN}` }) =>
    i.app.inject({ method: "GET", url: "/metrics", headers });

  it("counts tokens by grant type and security events by cause", async () => {
    const before = (await scrape(issuer)).body;
    const pair = await login(issuer.app);
    const first = await refreshGrant(issuer.app, pair.refresh_token);
    await refreshGrant(issuer.app, pair.refresh_token); // grace retry
    issuer.clock.advance(10);
    await refreshGrant(issuer.app, pair.refresh_token); // reuse
    await passwordGrant(issuer.app, pair.email, "wrong password!");
    expect(first.statusCode).toBe(200);

    const res = await scrape(issuer);
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toMatch(/^text\/plain/);
    const after = res.body;
    const delta = (name: string, labels: Record<string, string>) => sample(after, name, labels) - sample(before, name, labels);
    expect(delta("tessera_tokens_issued_total", { grant_type: "password" })).toBe(1);
    expect(delta("tessera_tokens_issued_total", { grant_type: "refresh_token" })).toBe(2);
    expect(delta("tessera_audit_events_total", { type: "refresh.grace_retry" })).toBe(1);
    expect(delta("tessera_refresh_grace_retries_total", {})).toBe(1);
    expect(delta("tessera_audit_events_total", { type: "refresh.reuse_detected" })).toBe(1);
    expect(delta("tessera_audit_events_total", { type: "login.failed" })).toBe(1);
    expect(sample(after, "tessera_signing_keys", { state: "active", alg: "ES256" })).toBe(1);
    expect(after).toContain("tessera_password_hash_operations");
    expect(after).toContain("tessera_process_resident_memory_bytes");
    // No secret in the scrape.
    expect(after).not.toContain(pair.refresh_token);
    expect(after).not.toContain(pair.access_token);
  });

  it("with METRICS_TOKEN, scrapes need the token", async () => {
    const none = await scrape(locked, {});
    expect(none.statusCode).toBe(401);
    expect(none.headers["www-authenticate"]).toMatch(/^Bearer/);
    expect((await scrape(locked, { authorization: "Bearer wrong-secret-123" })).statusCode).toBe(401);
    expect((await scrape(locked, { authorization: "Bearer scrape-secret-123" })).statusCode).toBe(200);
  });

  it("without METRICS_TOKEN (and no METRICS_PORT), the public listener has no /metrics", async () => {
    expect((await scrape(closed, {})).statusCode).toBe(404);
    expect((await scrape(closed)).statusCode).toBe(404);
  });
});
