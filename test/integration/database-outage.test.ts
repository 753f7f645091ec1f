// Postgres goes away and comes back while the issuer keeps running. A TCP proxy sits between the
// issuer and Postgres so the test can pull the plug (close the listener, cut every connection)
// and put it back (listen again on the same port). While down: 503 temporarily_unavailable with
// Retry-After, promptly, never a 500 or a hang; liveness stays green. Back up: the same requests
// succeed again without a restart, and nothing was half-written during the outage.
import type { LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  freshDatabase,
  PASSWORD,
  passwordGrant,
  refreshGrant,
  register,
  startIssuer,
  uniqueEmail,
  type TestIssuer,
  type TokenPair,
} from "../helpers/issuer.ts";
import { within } from "../helpers/process.ts";
import { TcpProxy } from "../helpers/tcp-proxy.ts";

/** The admin URL's host and port, i.e. where the real Postgres listens. */
function targetOf(url: string): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname || "127.0.0.1", port: Number(u.port || 5432) };
}

function viaProxy(url: string, port: number): string {
  const u = new URL(url);
  u.hostname = "127.0.0.1";
  u.port = String(port);
  return u.toString();
}

// Every request during the outage must settle well inside this bound (the pool gives up on a
// new connection after 3 s; a query on an open connection must give up too); it proves "does
// not hang", it is not a performance target.
const BOUND_MS = 10_000;

function expectUnavailable(res: LightMyRequestResponse, what: string): void {
  expect(res.statusCode, `${what}: ${res.body}`).toBe(503);
  expect(res.json(), what).toMatchObject({ error: "temporarily_unavailable" });
  expect(res.headers["retry-after"], what).toMatch(/^\d+$/);
  expect(res.headers["cache-control"], what).toBe("no-store");
}

/** An issuer on a fresh Postgres database reached through its own TcpProxy, for one describe. */
function useProxiedIssuer() {
  const ctx = {} as { issuer: TestIssuer; proxy: TcpProxy };
  let drop: () => Promise<void> = async () => undefined;
  beforeAll(async () => {
    const info = inject("postgres")!;
    ctx.proxy = new TcpProxy(targetOf(info.adminUrl));
    await ctx.proxy.up();
    const db = await freshDatabase("postgres");
    drop = db.drop;
    // With an explicit databaseUrl the harness leaves the database alone: dropped in afterAll.
    ctx.issuer = await startIssuer("postgres", {
      databaseUrl: viaProxy(db.url, ctx.proxy.port),
      env: { REFRESH_REUSE_GRACE: "0" },
    });
  });
  afterAll(async () => {
    await ctx.proxy?.up().catch(() => undefined); // whatever happened, let the issuer close cleanly
    await ctx.issuer?.close();
    await ctx.proxy?.down();
    await drop();
  });
  const browserLogin = (email: string) =>
    ctx.issuer.app.inject({
      method: "POST",
      url: "/auth/login",
      headers: { "content-type": "application/json", origin: "https://app.test" },
      payload: { email, password: PASSWORD },
    });
  const readyz = () => ctx.issuer.app.inject({ method: "GET", url: "/readyz" });
  const healthz = () => ctx.issuer.app.inject({ method: "GET", url: "/healthz" });
  /** After the database is back: readiness turns green again on its own within ~10 s. */
  const untilReady = async () => {
    const deadline = Date.now() + 10_000;
    let ready = await readyz();
    while (ready.statusCode !== 200 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      ready = await readyz();
    }
    return ready;
  };
  return { ctx, browserLogin, readyz, healthz, untilReady };
}

describe.skipIf(!inject("postgres"))("database outage [postgres]", () => {
  const { ctx, browserLogin, readyz, healthz, untilReady } = useProxiedIssuer();
  const user = { email: uniqueEmail("outage"), password: PASSWORD };
  let pair: TokenPair; // logged in before the outage; its refresh token is tried during it
  const lateEmail = uniqueEmail("outage-register");
  const login = (email = user.email) => browserLogin(email);
  let issuer: TestIssuer;
  let proxy: TcpProxy;
  beforeAll(() => {
    ({ issuer, proxy } = ctx);
  });

  it("while the database is up: register, password grant and /auth/login work through the proxy", async () => {
    await register(issuer.app, user.email, user.password);
    const res = await passwordGrant(issuer.app, user.email, user.password);
    expect(res.statusCode, res.body).toBe(200);
    pair = res.json() as TokenPair;
    expect((await login()).statusCode).toBe(200);
    expect((await readyz()).statusCode).toBe(200);
    expect(proxy.connections).toBeGreaterThan(0); // the issuer really talks through the proxy
  });

  it("database down: token endpoint, /auth/login, /auth/register and /readyz answer 503 promptly; /healthz stays 200", async () => {
    expect(pair).toBeDefined();
    await proxy.down();
    // Twice each: the first round meets the pool's cut connections, the second a refused connect.
    for (let round = 1; round <= 2; round++) {
      const password = await within(BOUND_MS, passwordGrant(issuer.app, user.email, user.password), "password grant");
      expectUnavailable(password, `password grant, round ${round}`);

      const refresh = await within(BOUND_MS, refreshGrant(issuer.app, pair.refresh_token), "refresh grant");
      expectUnavailable(refresh, `refresh grant, round ${round}`);

      const browser = await within(BOUND_MS, login(), "/auth/login");
      expectUnavailable(browser, `/auth/login, round ${round}`);

      const reg = await within(
        BOUND_MS,
        issuer.app.inject({ method: "POST", url: "/auth/register", payload: { email: lateEmail, password: PASSWORD } }),
        "/auth/register",
      );
      expectUnavailable(reg, `/auth/register, round ${round}`);

      const ready = await within(BOUND_MS, readyz(), "/readyz");
      expect(ready.statusCode, ready.body).toBe(503);
      expect(ready.json()).toMatchObject({ status: "unavailable", checks: { database: "unreachable", signingKey: "ok" } });
      expect(ready.headers["retry-after"]).toMatch(/^\d+$/);

      const live = await within(BOUND_MS, healthz(), "/healthz");
      expect(live.statusCode).toBe(200);
      expect(live.json()).toEqual({ status: "ok" });
    }
    // Concurrent requests during the outage: all 503, none 500.
    const burst = await within(
      BOUND_MS,
      Promise.all([
        ...Array.from({ length: 5 }, () => passwordGrant(issuer.app, user.email, user.password)),
        ...Array.from({ length: 5 }, () => refreshGrant(issuer.app, pair.refresh_token)),
      ]),
      "concurrent requests",
    );
    expect(burst.map((r) => r.statusCode)).toEqual(Array(10).fill(503));
  }, 120_000);

  it("the outage is logged with its cause, so an operator can tell what is wrong", () => {
    const lines = issuer.logs.parsed().filter((l) => l.msg === "dependency unavailable" || l.msg === "readiness: database unreachable");
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) {
      const err = line.err as { message?: unknown; code?: unknown } | undefined;
      expect(err, JSON.stringify(line)).toBeDefined();
      expect(err!.message, JSON.stringify(line)).not.toBe("[object Object]");
      // A database error code (P1001, ...) or a readable first line of the message.
      const cause = `${typeof err!.code === "string" ? err!.code : ""} ${typeof err!.message === "string" ? err!.message : ""}`.trim();
      expect(cause, JSON.stringify(line)).not.toBe("");
    }
    // Nothing secret in those lines: no password and no refresh token.
    const text = JSON.stringify(lines);
    expect(text).not.toContain(PASSWORD);
    expect(text).not.toContain(pair.refresh_token);
  });

  it("database back: the same requests succeed again without restarting the issuer; nothing was half-written", async () => {
    await proxy.up();
    // The pool reconnects on its own: readiness turns green within a few seconds.
    const ready = await untilReady();
    expect(ready.statusCode, ready.body).toBe(200);
    expect(ready.json()).toMatchObject({ status: "ready", checks: { database: "ok" } });

    // The refresh attempted during the outage did not consume the token: it works now, once.
    const refreshed = await refreshGrant(issuer.app, pair.refresh_token);
    expect(refreshed.statusCode, refreshed.body).toBe(200);
    const next = refreshed.json() as TokenPair;
    const replay = await refreshGrant(issuer.app, pair.refresh_token);
    expect(replay.statusCode).toBe(400);
    expect(replay.json()).toMatchObject({ error: "invalid_grant" });

    // Password grant and /auth/login work again.
    const password = await passwordGrant(issuer.app, user.email, user.password);
    expect(password.statusCode, password.body).toBe(200);
    const browser = await login();
    expect(browser.statusCode, browser.body).toBe(200);

    // The registration refused during the outage left no account behind: the email is free.
    const reg = await issuer.app.inject({ method: "POST", url: "/auth/register", payload: { email: lateEmail, password: PASSWORD } });
    expect(reg.statusCode, reg.body).toBe(201);
    expect((await login(lateEmail)).statusCode).toBe(200);

    // The replay above was reuse: the family (including `next`) is dead, as after any reuse.
    expect((await refreshGrant(issuer.app, next.refresh_token)).statusCode).toBe(400);
    // No request in this file was answered with a 500.
    const errors = issuer.logs.parsed().filter((l) => l.msg === "unhandled error" || (l.msg === "request" && l.status === 500));
    expect(errors).toEqual([]);
  }, 60_000);
});

describe.skipIf(!inject("postgres"))("database stops answering [postgres]", () => {
  const { ctx, browserLogin, readyz, healthz, untilReady } = useProxiedIssuer();
  const user = { email: uniqueEmail("hang"), password: PASSWORD };
  let pair: TokenPair;

  it("while the database answers: login works and the pool holds open connections", async () => {
    const { issuer, proxy } = ctx;
    await register(issuer.app, user.email, user.password);
    const res = await passwordGrant(issuer.app, user.email, user.password);
    expect(res.statusCode, res.body).toBe(200);
    pair = res.json() as TokenPair;
    // A few concurrent requests leave several idle connections in the pool.
    const warm = await Promise.all([browserLogin(user.email), readyz(), readyz(), passwordGrant(issuer.app, user.email, user.password)]);
    expect(warm.map((r) => r.statusCode)).toEqual([200, 200, 200, 200]);
    expect(proxy.connections).toBeGreaterThan(0);
  });

  it("database silent (partition, hung host): requests answer 503 within the bound instead of hanging; /healthz stays 200", async () => {
    const { issuer, proxy } = ctx;
    expect(pair).toBeDefined();
    proxy.freeze();
    // Liveness does not touch the database.
    const live = await within(BOUND_MS, healthz(), "/healthz");
    expect(live.statusCode).toBe(200);
    // Concurrently, so some meet the pool's open (now silent) connections and some open new ones.
    const [password, refresh, browser, ready] = await within(
      BOUND_MS,
      Promise.all([passwordGrant(issuer.app, user.email, user.password), refreshGrant(issuer.app, pair.refresh_token), browserLogin(user.email), readyz()]),
      "requests while the database is silent",
    );
    expectUnavailable(password, "password grant");
    expectUnavailable(refresh, "refresh grant");
    expectUnavailable(browser, "/auth/login");
    expect(ready.statusCode, ready.body).toBe(503);
    expect(ready.json()).toMatchObject({ status: "unavailable", checks: { database: "unreachable" } });
  }, 60_000);

  it("database answers again: requests succeed without a restart; the refresh token tried meanwhile still works once", async () => {
    const { issuer, proxy } = ctx;
    proxy.thaw();
    const ready = await untilReady();
    expect(ready.statusCode, ready.body).toBe(200);
    expect((await passwordGrant(issuer.app, user.email, user.password)).statusCode).toBe(200);
    expect((await browserLogin(user.email)).statusCode).toBe(200);
    const refreshed = await refreshGrant(issuer.app, pair.refresh_token);
    expect(refreshed.statusCode, refreshed.body).toBe(200);
    expect((await refreshGrant(issuer.app, pair.refresh_token)).statusCode).toBe(400);
  }, 60_000);
});
