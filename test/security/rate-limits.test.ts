// Per-address rate limits (@fastify/rate-limit): one address cannot try more than a few dozen
// passwords a minute, register in bulk, refresh in a loop, or keep guessing client secrets;
// other addresses are not touched. 429 with Retry-After and an RFC 6749 §5.2-shaped body.
// With REDIS_URL the counters are shared by every instance (tested against the real Redis), and
// when Redis goes away the issuer keeps serving, counting per instance until it is back.
import { randomUUID } from "node:crypto";
import type { LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { hashClientSecret } from "../../src/domain/clients/clients.ts";
import { describeEachDb, flavors, form, login, startIssuer, uniqueEmail, type TestIssuer } from "../helpers/issuer.ts";
import { TcpProxy } from "../helpers/tcp-proxy.ts";

/** The defaults, as a deployment gets them (the test harness turns limits off elsewhere). */
const DEFAULT_LIMITS = { RATE_LIMIT_PASSWORD: "", RATE_LIMIT_REGISTER: "", RATE_LIMIT_REFRESH: "", RATE_LIMIT_CLIENT_AUTH_FAILURES: "" };

const passwordAttempt = (issuer: TestIssuer, from: string, email = uniqueEmail("nobody")) =>
  issuer.app.inject({ method: "POST", url: "/oauth/token", remoteAddress: from, ...form({ grant_type: "password", client_id: "web", username: email, password: "a guess at it" }) });
const browserLogin = (issuer: TestIssuer, from: string, email = uniqueEmail("nobody")) =>
  issuer.app.inject({
    method: "POST",
    url: "/auth/login",
    remoteAddress: from,
    headers: { "content-type": "application/json", origin: "https://app.test" },
    payload: { email, password: "a guess at it" },
  });

function expectLimited(res: LightMyRequestResponse): void {
  expect(res.statusCode, res.body).toBe(429);
  expect(res.headers["retry-after"]).toMatch(/^\d+$/);
  expect(Number(res.headers["retry-after"])).toBeGreaterThan(0);
  expect(res.headers["cache-control"]).toBe("no-store");
  expect(res.json()).toEqual({ error: "slow_down", error_description: expect.stringMatching(/^Too many requests from this address; retry in \d+ seconds?\.$/) });
}

describeEachDb("security: per-address rate limits", (flavor) => {
  let issuer: TestIssuer;
  beforeAll(async () => {
    issuer = await startIssuer(flavor, { env: { ...DEFAULT_LIMITS, LOGIN_LOCKOUT_THRESHOLD: "0" } });
    await issuer.storage.clients.create({
      id: "svc",
      name: "svc",
      type: "confidential",
      secretHash: hashClientSecret("the-right-secret"),
      grantTypes: ["client_credentials"],
      scopes: [],
      audiences: [],
      resources: [],
      accessTokenTtl: null,
      refreshTokenTtl: null,
      createdAt: new Date(),
      disabledAt: null,
    });
  });
  afterAll(async () => issuer?.close());

  it("passwords: 30 a minute per address by default, /auth/login and the password grant counted together; other addresses untouched", async () => {
    const from = "198.51.100.30";
    for (let i = 0; i < 30; i++) {
      const res = i % 2 === 0 ? await passwordAttempt(issuer, from) : await browserLogin(issuer, from);
      expect(res.statusCode, `attempt ${i + 1}`).toBe(400);
    }
    expectLimited(await passwordAttempt(issuer, from));
    expectLimited(await browserLogin(issuer, from));
    // Another address is not affected, and neither are the other grants from this one.
    expect((await passwordAttempt(issuer, "198.51.100.31")).statusCode).toBe(400);
    const cc = await issuer.app.inject({
      method: "POST",
      url: "/oauth/token",
      remoteAddress: from,
      headers: { ...form({}).headers, authorization: `Basic ${Buffer.from("svc:the-right-secret").toString("base64")}` },
      payload: "grant_type=client_credentials",
    });
    expect(cc.statusCode).toBe(200);
  });

  it("IPv6: the limit is per /64, so rotating addresses inside one network does not reset it", async () => {
    for (let i = 0; i < 30; i++) expect((await passwordAttempt(issuer, `2001:db8:77:1::${(i + 1).toString(16)}`)).statusCode).toBe(400);
    expectLimited(await passwordAttempt(issuer, "2001:db8:77:1:ffff::1"));
    expect((await passwordAttempt(issuer, "2001:db8:77:2::1")).statusCode).toBe(400);
  });

  it("failed client authentications: after 20, the address gets 429 even with the right secret, on token, introspection and revocation", async () => {
    const from = "198.51.100.40";
    const withSecret = (url: string, secret: string, payload: string) =>
      issuer.app.inject({ method: "POST", url, remoteAddress: from, headers: { ...form({}).headers, authorization: `Basic ${Buffer.from(`svc:${secret}`).toString("base64")}` }, payload });
    for (let i = 0; i < 20; i++) {
      const url = ["/oauth/token", "/oauth/introspect", "/oauth/revoke"][i % 3]!;
      const res = await withSecret(url, `wrong-${i}`, url === "/oauth/token" ? "grant_type=client_credentials" : "token=x");
      expect(res.statusCode).toBe(401);
    }
    expectLimited(await withSecret("/oauth/token", "the-right-secret", "grant_type=client_credentials"));
    expectLimited(await withSecret("/oauth/introspect", "the-right-secret", "token=x"));
    // Successful authentications are not what is counted: another address keeps working.
    const other = await issuer.app.inject({
      method: "POST",
      url: "/oauth/token",
      remoteAddress: "198.51.100.41",
      headers: { ...form({}).headers, authorization: `Basic ${Buffer.from("svc:the-right-secret").toString("base64")}` },
      payload: "grant_type=client_credentials",
    });
    expect(other.statusCode).toBe(200);
  });

  it("registration: 30 an hour per address; CSRF: a form post or a foreign Origin is refused before anything is created", async () => {
    const from = "198.51.100.50";
    const reg = (email: string, headers: Record<string, string> = { "content-type": "application/json" }) =>
      issuer.app.inject({ method: "POST", url: "/auth/register", remoteAddress: from, headers, payload: JSON.stringify({ email, password: "correct horse battery staple" }) });
    const formPost = await reg(uniqueEmail("csrf"), { "content-type": "application/x-www-form-urlencoded" });
    expect(formPost.statusCode).toBe(415);
    const evilEmail = uniqueEmail("csrf");
    const foreign = await reg(evilEmail, { "content-type": "application/json", origin: "https://evil.example" });
    expect(foreign.statusCode).toBe(403);
    expect(await issuer.storage.db.user.count({ where: { email: evilEmail } })).toBe(0);
    for (let i = 0; i < 30; i++) expect((await reg(uniqueEmail("bulk"))).statusCode, `registration ${i + 1}`).toBe(201);
    const email = uniqueEmail("bulk");
    expectLimited(await reg(email));
    expect(await issuer.storage.db.user.count({ where: { email } })).toBe(0);
  });
});

describeEachDb("security: refresh rate limit", (flavor) => {
  let issuer: TestIssuer;
  beforeAll(async () => {
    issuer = await startIssuer(flavor, { env: { RATE_LIMIT_REFRESH: "3/1m" } });
  });
  afterAll(async () => issuer?.close());

  it("refreshes per address are limited on /oauth/token and /auth/refresh alike", async () => {
    const pair = await login(issuer.app);
    let token = pair.refresh_token;
    for (let i = 0; i < 3; i++) {
      issuer.clock.advance(30);
      const res = await issuer.app.inject({ method: "POST", url: "/oauth/token", remoteAddress: "198.51.100.60", ...form({ grant_type: "refresh_token", client_id: "web", refresh_token: token }) });
      expect(res.statusCode).toBe(200);
      token = (res.json() as { refresh_token: string }).refresh_token;
    }
    const limited = await issuer.app.inject({ method: "POST", url: "/oauth/token", remoteAddress: "198.51.100.60", ...form({ grant_type: "refresh_token", client_id: "web", refresh_token: token }) });
    expectLimited(limited);
    const cookie = await issuer.app.inject({
      method: "POST",
      url: "/auth/refresh",
      remoteAddress: "198.51.100.60",
      headers: { "content-type": "application/json", cookie: `refresh_token=${token}` },
    });
    expectLimited(cookie);
    // The refused requests consumed nothing: the token still rotates from another address.
    const elsewhere = await issuer.app.inject({ method: "POST", url: "/oauth/token", remoteAddress: "198.51.100.61", ...form({ grant_type: "refresh_token", client_id: "web", refresh_token: token }) });
    expect(elsewhere.statusCode).toBe(200);
  });

  it("a grace retry refused by the client-authentication limit (a noisy neighbour at a shared address) does not revoke the session", async () => {
    const shared = await startIssuer(flavor, { env: { RATE_LIMIT_CLIENT_AUTH_FAILURES: "2/1m", REFRESH_REUSE_GRACE: "10" } });
    try {
      const pair = await login(shared.app);
      const from = "198.51.100.65";
      const rotate = (token: string) =>
        shared.app.inject({ method: "POST", url: "/oauth/token", remoteAddress: from, ...form({ grant_type: "refresh_token", client_id: "web", refresh_token: token }) });
      const r1 = await rotate(pair.refresh_token);
      expect(r1.statusCode).toBe(200);
      // Someone else at the same address fails client authentication twice.
      for (let i = 0; i < 2; i++) {
        const bad = await shared.app.inject({ method: "POST", url: "/oauth/token", remoteAddress: from, ...form({ grant_type: "client_credentials", client_id: "nobody", client_secret: "x" }) });
        expect(bad.statusCode).toBe(401);
      }
      shared.clock.advance(2);
      // The client's retry of its (just rotated) token is refused for the address...
      expectLimited(await rotate(pair.refresh_token));
      // ...but its session is intact: the successor still rotates from elsewhere.
      const next = await shared.app.inject({
        method: "POST",
        url: "/oauth/token",
        remoteAddress: "198.51.100.66",
        ...form({ grant_type: "refresh_token", client_id: "web", refresh_token: (r1.json() as { refresh_token: string }).refresh_token }),
      });
      expect(next.statusCode, next.body).toBe(200);
    } finally {
      await shared.close();
    }
  });

  it("the limit lifts when its window ends", async () => {
    const short = await startIssuer(flavor, { env: { RATE_LIMIT_PASSWORD: "2/2s", LOGIN_LOCKOUT_THRESHOLD: "0" } });
    try {
      for (let i = 0; i < 2; i++) expect((await passwordAttempt(short, "198.51.100.70")).statusCode).toBe(400);
      expectLimited(await passwordAttempt(short, "198.51.100.70"));
      await new Promise((r) => setTimeout(r, 2100));
      expect((await passwordAttempt(short, "198.51.100.70")).statusCode).toBe(400);
    } finally {
      await short.close();
    }
  });
});

// Both instances share a database of each flavour too (the counters themselves live in Redis).
for (const flavor of flavors()) {
  describe.skipIf(!inject("redis"))(`security: rate limits shared through Redis [redis] [${flavor}]`, () => {
    let proxy: TcpProxy;
    let a: TestIssuer;
    let b: TestIssuer;
    beforeAll(async () => {
      const redisUrl = inject("redis")!;
      const target = new URL(redisUrl);
      proxy = new TcpProxy({ host: target.hostname, port: Number(target.port || 6379) });
      await proxy.up();
      const via = new URL(redisUrl);
      via.hostname = "127.0.0.1";
      via.port = String(proxy.port);
      // A prefix of its own: runs (and files) never count into each other's keys.
      const env = { RATE_LIMIT_PASSWORD: "4/1m", LOGIN_LOCKOUT_THRESHOLD: "0", REDIS_URL: via.toString(), REDIS_KEY_PREFIX: `tessera-test:${randomUUID()}:` };
      a = await startIssuer(flavor, { env });
      b = await startIssuer(flavor, { env, databaseUrl: a.databaseUrl, keysDir: a.keysDir });
      // Wait until both instances are connected (two sockets through the proxy each), or the
      // first commands would fall back to local counters.
      for (let i = 0; i < 100 && proxy.connections < 4; i++) await new Promise((r) => setTimeout(r, 50));
    });
    afterAll(async () => {
      await proxy?.up().catch(() => undefined);
      await b?.close();
      await a?.close();
      await proxy?.down();
    });

    it("two instances count one address together: 2 attempts on each, then both refuse", async () => {
      const from = "203.0.113.80";
      for (const issuer of [a, b, a, b]) expect((await passwordAttempt(issuer, from)).statusCode).toBe(400);
      expectLimited(await passwordAttempt(a, from));
      expectLimited(await passwordAttempt(b, from));
      expect((await passwordAttempt(b, "203.0.113.81")).statusCode).toBe(400);
    });

    it("Redis goes away: the issuer keeps serving and keeps limiting, per instance, then shares again when it is back", async () => {
      const from = "203.0.113.90";
      await proxy.down();
      for (let i = 0; i < 4; i++) expect((await passwordAttempt(a, from)).statusCode, `during the outage, attempt ${i + 1}`).toBe(400);
      expectLimited(await passwordAttempt(a, from));
      // Instance b counts on its own meanwhile: fails open across instances, never wide open.
      expect((await passwordAttempt(b, from)).statusCode).toBe(400);
      expect(a.logs.text).toMatch(/Redis unavailable; counting per instance/);

      await proxy.up();
      const back = "203.0.113.91";
      const deadline = Date.now() + 15_000;
      // Once reconnected, the counters are shared again.
      for (;;) {
        const before = await passwordAttempt(a, back);
        expect(before.statusCode).not.toBe(500);
        if (a.logs.text.includes("Redis is back") && b.logs.text.includes("Redis is back")) break;
        if (Date.now() > deadline) throw new Error("the instances did not reconnect to Redis");
        await new Promise((r) => setTimeout(r, 200));
      }
      const fresh = "203.0.113.92";
      for (const issuer of [a, b, a, b]) expect((await passwordAttempt(issuer, fresh)).statusCode).toBe(400);
      expectLimited(await passwordAttempt(b, fresh));
    });
  });
}
