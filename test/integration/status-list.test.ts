// Token Status List (draft-ietf-oauth-status-list-20) end to end, on each database: the status
// claim in every access token (a session's tokens share its index, client_credentials tokens
// have their own), the list tokens as a service verifies them (JWKS, typ, claims, caching
// headers, 304, gzip), every revocation path flipping the right bit and nothing else, pruning
// that never clears a bit a live token still needs, several instances on one database (disjoint
// indices, the same bits within ttl/2), and hostile requests on the new routes.
import { gunzipSync } from "node:zlib";
import { getListFromStatusListJWT } from "@sd-jwt/jwt-status-list";
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from "jose";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { AdminContext } from "../../src/admin/context.ts";
import { disableUser } from "../../src/admin/users.ts";
import { ConfigError, loadConfig } from "../../src/config.ts";
import { hashClientSecret } from "../../src/domain/clients/clients.ts";
import { pruneExpired } from "../../src/domain/retention.ts";
import { LIST_SIZE, statusIndexOf } from "../../src/domain/tokens/status-list.ts";
import { FakeClock } from "../helpers/fake-clock.ts";
import {
  adminOf,
  describeEachDb,
  errorOf,
  form,
  login,
  PASSWORD,
  passwordGrant,
  refreshGrant,
  register,
  startInstances,
  startIssuer,
  statusOf,
  statusRefOf,
  uniqueEmail,
  type Flavor,
  type InstanceGroup,
  type TestIssuer,
  type TokenPair,
} from "../helpers/issuer.ts";

const TTL = 10;
const SERVICE = { id: "billing", secret: "billing-secret-value" };
/** A password client whose access tokens live two days: longer than the day revoked sessions are kept by default. */
const LONG_LIVED = { id: "long-lived", secret: "long-lived-secret", accessTokenTtl: 2 * 86400 };

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString("base64")}`;

async function createClients(issuer: TestIssuer): Promise<void> {
  const base = { type: "confidential" as const, audiences: [], resources: [], refreshTokenTtl: null, createdAt: issuer.clock.now(), disabledAt: null };
  await issuer.services.storage.clients.create({
    ...base,
    id: SERVICE.id,
    name: "Billing",
    secretHash: hashClientSecret(SERVICE.secret),
    grantTypes: ["client_credentials"],
    scopes: ["invoices:read"],
    accessTokenTtl: null,
  });
  await issuer.services.storage.clients.create({
    ...base,
    id: LONG_LIVED.id,
    name: "Long-lived",
    secretHash: hashClientSecret(LONG_LIVED.secret),
    grantTypes: ["password", "refresh_token"],
    scopes: ["profile"],
    accessTokenTtl: LONG_LIVED.accessTokenTtl,
  });
}

async function serviceToken(issuer: TestIssuer): Promise<string> {
  const res = await issuer.app.inject({
    method: "POST",
    url: "/oauth/token",
    headers: { ...form({}).headers, authorization: basic(SERVICE.id, SERVICE.secret) },
    payload: new URLSearchParams({ grant_type: "client_credentials" }).toString(),
  });
  expect(res.statusCode, res.body).toBe(200);
  return (res.json() as { access_token: string }).access_token;
}

function revoke(issuer: TestIssuer, token: string, auth: { id: string; secret?: string }) {
  const params: Record<string, string> = { token };
  const headers: Record<string, string> = { ...form({}).headers };
  if (auth.secret) headers.authorization = basic(auth.id, auth.secret);
  else params.client_id = auth.id;
  return issuer.app.inject({ method: "POST", url: "/oauth/revoke", headers, payload: new URLSearchParams(params).toString() });
}

/** The token's index in the issuer's index space (list number and position, §6.2). */
const idxOf = (token: string): number => {
  const claims = decodeJwt(token);
  const idx = statusIndexOf(claims, claims.iss!);
  if (idx === null) throw new Error("the token has no status claim of its issuer");
  return idx;
};
const getList = (issuer: TestIssuer, n: number | string, headers: Record<string, string> = {}) => issuer.app.inject({ method: "GET", url: `/statuslists/${n}`, headers });
const browser = (url: string, cookie?: string) =>
  ({
    method: "POST",
    url,
    headers: { "content-type": "application/json", origin: "https://app.test" },
    payload: url === "/auth/login" ? undefined : "",
    ...(cookie ? { cookies: { refresh_token: cookie } } : {}),
  }) as const;

describeEachDb("token status list", (flavor) => {
  let issuer: TestIssuer;
  let admin: AdminContext;

  beforeAll(async () => {
    issuer = await startIssuer(flavor, { env: { STATUS_LIST_TTL: String(TTL), CLIENT_CACHE_TTL: "0", REFRESH_REUSE_GRACE: "10" } });
    admin = adminOf(issuer);
    await createClients(issuer);
  });
  afterAll(async () => issuer?.close());

  // ---- the claim ----

  it("password and refresh tokens carry their session's index, the same across refreshes; two sessions differ", async () => {
    const pair = await login(issuer.app);
    const ref = statusRefOf(pair.access_token)!;
    expect(Number.isSafeInteger(ref.idx) && ref.idx >= 0 && ref.idx < LIST_SIZE).toBe(true);
    expect(ref.uri).toBe(`${issuer.config.issuer}/statuslists/${Math.floor(idxOf(pair.access_token) / LIST_SIZE)}`);
    let refresh = pair.refresh_token;
    for (let i = 0; i < 2; i++) {
      issuer.clock.advance(30);
      const r = await refreshGrant(issuer.app, refresh);
      expect(r.statusCode, r.body).toBe(200);
      const body = r.json() as TokenPair;
      expect(statusRefOf(body.access_token)).toEqual(ref);
      refresh = body.refresh_token;
    }
    const other = await login(issuer.app);
    expect(idxOf(other.access_token)).not.toBe(idxOf(pair.access_token));
    // The session row holds it (what the list is built from).
    const sid = decodeJwt(pair.access_token).sid as string;
    expect(Number((await issuer.storage.db.session.findUnique({ where: { id: sid } }))!.statusIdx)).toBe(idxOf(pair.access_token));
  });

  it("client_credentials tokens each get an index of their own", async () => {
    const tokens = [await serviceToken(issuer), await serviceToken(issuer), await serviceToken(issuer)];
    const indices = tokens.map(idxOf);
    expect(new Set(indices).size).toBe(3);
    const session = await login(issuer.app);
    expect(indices).not.toContain(idxOf(session.access_token));
  });

  it("a session from before the status list (no index) gets access tokens without a status claim", async () => {
    const pair = await login(issuer.app);
    await issuer.storage.db.session.update({ where: { id: decodeJwt(pair.access_token).sid as string }, data: { statusIdx: null } });
    issuer.clock.advance(30);
    const r = await refreshGrant(issuer.app, pair.refresh_token);
    expect(r.statusCode, r.body).toBe(200);
    expect(decodeJwt((r.json() as TokenPair).access_token)).not.toHaveProperty("status");
  });

  // ---- the list token ----

  it("GET /statuslists/<n>: a status list token that verifies with the JWKS, with the draft's claims and caching headers", async () => {
    const pair = await login(issuer.app);
    const n = Math.floor(idxOf(pair.access_token) / LIST_SIZE);
    await issuer.services.statusLists.rebuild();
    const res = await getList(issuer, n);
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toBe("application/statuslist+jwt");
    expect(res.headers["cache-control"]).toBe(`public, max-age=${TTL}`);
    expect(res.headers.etag).toMatch(/^"[A-Za-z0-9_-]{27}"$/); // strong
    expect(res.headers.vary).toBe("accept-encoding");
    expect(res.headers["access-control-allow-origin"]).toBe("*");
    expect(res.headers["cross-origin-resource-policy"]).toBe("cross-origin");
    expect(res.headers["x-content-type-options"]).toBe("nosniff");
    expect(res.headers["content-encoding"]).toBeUndefined();

    const jwks = (await issuer.app.inject({ method: "GET", url: "/.well-known/jwks.json" })).json() as JSONWebKeySet;
    const { payload, protectedHeader } = await jwtVerify(res.body, createLocalJWKSet(jwks), {
      algorithms: ["ES256"],
      typ: "statuslist+jwt",
      issuer: issuer.config.issuer,
      subject: statusRefOf(pair.access_token)!.uri,
      currentDate: issuer.clock.now(),
    });
    expect(protectedHeader).toEqual({ alg: "ES256", kid: issuer.services.keys.signer().kid, typ: "statuslist+jwt" });
    const now = Math.floor(issuer.clock.now().getTime() / 1000);
    // Signed at this rebuild or an earlier one with the same bits: re-signed once half of its
    // validity (300 s at this ttl) has passed, so exp stays at least 150 s ahead.
    expect(payload.iat).toBeLessThanOrEqual(now);
    expect(now - payload.iat!).toBeLessThan(150);
    expect(payload.exp).toBe(payload.iat! + 300);
    expect(payload.ttl).toBe(TTL);
    expect(payload.status_list).toEqual({ bits: 1, lst: expect.stringMatching(/^[A-Za-z0-9_-]+$/) as unknown });
    expect(await statusOf(issuer, pair.access_token)).toBe(0);

    // 304 for the ETag held; the same list again without a rebuild: the same bytes.
    const again = await getList(issuer, n, { "if-none-match": String(res.headers.etag) });
    expect(again.statusCode).toBe(304);
    expect(again.body).toBe("");
    expect(again.headers.etag).toBe(res.headers.etag);
    expect(again.headers["cache-control"]).toBe(`public, max-age=${TTL}`);
    expect((await getList(issuer, n)).body).toBe(res.body);
    // §8.2 Content-Encoding: gzip when accepted, its own ETag; not when refused.
    const gz = await getList(issuer, n, { "accept-encoding": "br, gzip;q=0.8" });
    expect(gz.headers["content-encoding"]).toBe("gzip");
    expect(gunzipSync(gz.rawPayload).toString()).toBe(res.body);
    expect(gz.headers.etag).not.toBe(res.headers.etag);
    expect((await getList(issuer, n, { "accept-encoding": "gzip", "if-none-match": String(gz.headers.etag) })).statusCode).toBe(304);
    expect((await getList(issuer, n, { "accept-encoding": "gzip;q=0, br" })).headers["content-encoding"]).toBeUndefined();
    // HEAD: the headers, no body.
    const head = await issuer.app.inject({ method: "HEAD", url: `/statuslists/${n}` });
    expect(head.statusCode).toBe(200);
    expect(head.headers["content-type"]).toBe("application/statuslist+jwt");
  });

  it("the metadata advertises the aggregation endpoint, which lists every list served", async () => {
    const meta = (await issuer.app.inject({ method: "GET", url: "/.well-known/oauth-authorization-server" })).json() as Record<string, unknown>;
    expect(meta.status_list_aggregation_endpoint).toBe(`${issuer.config.issuer}/statuslists`);
    const res = await issuer.app.inject({ method: "GET", url: new URL(String(meta.status_list_aggregation_endpoint)).pathname });
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toBe("application/json");
    expect(res.headers["cache-control"]).toBe(`public, max-age=${TTL}`);
    const { status_lists } = res.json() as { status_lists: string[] };
    // Every list holding an index handed out so far, and the next one.
    expect(status_lists).toEqual([`${issuer.config.issuer}/statuslists/0`, `${issuer.config.issuer}/statuslists/1`]);
    for (const uri of status_lists) expect((await issuer.app.inject({ method: "GET", url: new URL(uri).pathname })).statusCode).toBe(200);
    expect((await issuer.app.inject({ method: "GET", url: "/statuslists", headers: { "if-none-match": String(res.headers.etag) } })).statusCode).toBe(304);
  });

  // ---- revocations flip bits ----

  it("logout (/auth/logout) sets its session's bit at once on this instance; a live session's bit stays 0", async () => {
    const user = await register(issuer.app);
    const live = await login(issuer.app);
    const res = await issuer.app.inject({ ...browser("/auth/login"), payload: JSON.stringify({ email: user.email, password: user.password }) });
    expect(res.statusCode, res.body).toBe(200);
    const access = (res.json() as { access_token: string }).access_token;
    const cookie = res.cookies.find((c) => c.name === "refresh_token")!.value;
    await issuer.services.statusLists.rebuild();
    expect(await statusOf(issuer, access)).toBe(0);
    expect((await issuer.app.inject(browser("/auth/logout", cookie))).statusCode).toBe(204);
    // No rebuild here: the instance that revoked has rebuilt already.
    expect(await statusOf(issuer, access)).toBe(1);
    expect(await statusOf(issuer, live.access_token)).toBe(0);
  });

  it("reuse detection sets the bit of the whole session (every access token of it)", async () => {
    const pair = await login(issuer.app);
    issuer.clock.advance(30);
    const next = (await refreshGrant(issuer.app, pair.refresh_token)).json() as TokenPair;
    issuer.clock.advance(30); // past the grace window
    expect(errorOf(await refreshGrant(issuer.app, pair.refresh_token)).error).toBe("invalid_grant");
    expect(await statusOf(issuer, pair.access_token)).toBe(1);
    expect(await statusOf(issuer, next.access_token)).toBe(1);
  });

  it("disabling a user (the operator command) sets the bits of all their sessions at the next rebuild", async () => {
    const email = uniqueEmail("disabled");
    await register(issuer.app, email);
    const a = (await passwordGrant(issuer.app, email, PASSWORD)).json() as TokenPair;
    const b = (await passwordGrant(issuer.app, email, PASSWORD)).json() as TokenPair;
    const bystander = await login(issuer.app);
    expect((await disableUser(admin, { email })).json).toMatchObject({ user: { disabled_at: expect.any(String) } });
    // The command runs in its own process in production: the servers see it at their next
    // rebuild (every ttl/2); here, that rebuild is triggered.
    await issuer.services.statusLists.rebuild();
    expect(await statusOf(issuer, a.access_token)).toBe(1);
    expect(await statusOf(issuer, b.access_token)).toBe(1);
    expect(await statusOf(issuer, bystander.access_token)).toBe(0);
  });

  it("RFC 7009 revocation of a client_credentials token sets its own bit, and only its own", async () => {
    const [revoked, kept] = [await serviceToken(issuer), await serviceToken(issuer)];
    expect((await revoke(issuer, revoked, SERVICE)).statusCode).toBe(200);
    expect(await statusOf(issuer, revoked)).toBe(1);
    expect(await statusOf(issuer, kept)).toBe(0);
    const row = await issuer.storage.db.revokedAccessToken.findFirst({ where: { statusIdx: BigInt(idxOf(revoked)) } });
    expect(row?.clientId).toBe(SERVICE.id);
  });

  it("RFC 7009 revocation of a user access token revokes its session: the shared bit, its sibling tokens and its refresh token", async () => {
    const pair = await login(issuer.app);
    issuer.clock.advance(30);
    const next = (await refreshGrant(issuer.app, pair.refresh_token)).json() as TokenPair;
    const bystander = await login(issuer.app);
    expect((await revoke(issuer, pair.access_token, { id: "web" })).statusCode).toBe(200);
    expect(await statusOf(issuer, pair.access_token)).toBe(1);
    expect(await statusOf(issuer, next.access_token)).toBe(1);
    expect(errorOf(await refreshGrant(issuer.app, next.refresh_token)).error).toBe("invalid_grant");
    expect(await statusOf(issuer, bystander.access_token)).toBe(0);
    expect((await refreshGrant(issuer.app, bystander.refresh_token)).statusCode).toBe(200);
  });

  it("another client cannot revoke a user's session through its access token", async () => {
    const pair = await login(issuer.app);
    expect(errorOf(await revoke(issuer, pair.access_token, SERVICE)).error).toBe("unauthorized_client");
    expect(await statusOf(issuer, pair.access_token)).toBe(0);
    expect((await refreshGrant(issuer.app, pair.refresh_token)).statusCode).toBe(200);
  });

  it("RFC 7009 revocation of a user access token whose session row is gone (pruned) still sets its bit, until the token expires", async () => {
    const pair = await login(issuer.app);
    const bystander = await login(issuer.app);
    await issuer.storage.db.session.delete({ where: { id: decodeJwt(pair.access_token).sid as string } });
    expect((await revoke(issuer, pair.access_token, { id: "web" })).statusCode).toBe(200);
    expect(await statusOf(issuer, pair.access_token)).toBe(1);
    expect(await statusOf(issuer, bystander.access_token)).toBe(0);
    // The deny-list entry holds the index, and goes CLOCK_SKEW after the token's exp (its bit with it).
    const row = await issuer.storage.db.revokedAccessToken.findUnique({ where: { jti: decodeJwt(pair.access_token).jti! } });
    expect(Number(row!.statusIdx)).toBe(idxOf(pair.access_token));
    expect(row!.expiresAt.getTime()).toBe(decodeJwt(pair.access_token).exp! * 1000);
  });

  it("revoking the same client_credentials token twice rebuilds the lists once; a duplicate is not a revocation", async () => {
    const token = await serviceToken(issuer);
    await issuer.services.statusLists.rebuild();
    const rebuilds = vi.spyOn(issuer.services.statusLists, "rebuild");
    try {
      expect((await revoke(issuer, token, SERVICE)).statusCode).toBe(200);
      expect((await revoke(issuer, token, SERVICE)).statusCode).toBe(200);
      expect(rebuilds).toHaveBeenCalledTimes(1);
      expect(await statusOf(issuer, token)).toBe(1);
    } finally {
      rebuilds.mockRestore();
    }
  });

  it("a revocation's answer does not wait for the rebuild it starts (the rebuild still starts at once)", async () => {
    const [cc, pair] = [await serviceToken(issuer), await login(issuer.app)];
    await issuer.services.statusLists.rebuild();
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const rebuild = issuer.services.statusLists.rebuild.bind(issuer.services.statusLists);
    const started: Promise<void>[] = [];
    const rebuilds = vi.spyOn(issuer.services.statusLists, "rebuild").mockImplementation(() => {
      const run = held.then(rebuild);
      started.push(run);
      return run;
    });
    try {
      const answers = await Promise.race([
        Promise.all([revoke(issuer, cc, SERVICE), revoke(issuer, pair.refresh_token, { id: "web" })]),
        new Promise<"held">((resolve) => setTimeout(() => resolve("held"), 3000)),
      ]);
      expect(answers, "the revocations waited for the rebuild").not.toBe("held");
      expect((answers as { statusCode: number }[]).map((r) => r.statusCode)).toEqual([200, 200]);
      expect(rebuilds).toHaveBeenCalledTimes(2);
    } finally {
      release();
      rebuilds.mockRestore();
    }
    await Promise.all(started);
    expect(await statusOf(issuer, cc)).toBe(1);
    expect(await statusOf(issuer, pair.access_token)).toBe(1);
  });

  // ---- content negotiation (§8.1, §8.2) ----

  it("Accept: the JWT for no Accept, */*, application/*, or a list naming statuslist+jwt; 406 JSON when it is excluded", async () => {
    const jwt = (await getList(issuer, 0)).body;
    for (const accept of [
      undefined,
      "*/*",
      "application/*",
      "application/statuslist+jwt",
      "application/statuslist+cwt, application/statuslist+jwt;q=0.5",
      "APPLICATION/STATUSLIST+JWT",
      "text/html, */*;q=0.1",
      "application/statuslist+jwt; charset=utf-8",
    ]) {
      const res = await getList(issuer, 0, accept === undefined ? {} : { accept });
      expect(res.statusCode, String(accept)).toBe(200);
      expect(res.headers["content-type"], String(accept)).toBe("application/statuslist+jwt");
      expect(res.body, String(accept)).toBe(jwt);
    }
    for (const accept of [
      "application/statuslist+cwt",
      "application/json",
      "text/*",
      "application/statuslist+jwt;q=0",
      "*/*, application/statuslist+jwt;q=0",
      "application/*;q=0.5, application/statuslist+jwt;q=0",
      "application/statuslist+cwt, */*;q=0",
    ]) {
      const res = await getList(issuer, 0, { accept });
      expect(errorOf(res), accept).toMatchObject({ status: 406, error: "not_acceptable" });
      expect(res.headers["content-type"], accept).toMatch(/^application\/json/);
    }
    expect((await issuer.app.inject({ method: "HEAD", url: "/statuslists/0", headers: { accept: "application/statuslist+cwt" } })).statusCode).toBe(406);
    // An unknown list is still 404 whatever the Accept.
    expect(errorOf(await getList(issuer, 99, { accept: "application/statuslist+cwt" }))).toMatchObject({ status: 404 });
  });

  // ---- pruning ----

  it("pruning keeps a revoked session, and its bit, until the longest-lived access token of it has expired", async () => {
    const email = uniqueEmail("long");
    await register(issuer.app, email);
    const res = await issuer.app.inject({
      method: "POST",
      url: "/oauth/token",
      headers: { ...form({}).headers, authorization: basic(LONG_LIVED.id, LONG_LIVED.secret) },
      payload: new URLSearchParams({ grant_type: "password", username: email, password: PASSWORD }).toString(),
    });
    expect(res.statusCode, res.body).toBe(200);
    const pair = res.json() as TokenPair;
    expect(pair.expires_in).toBe(LONG_LIVED.accessTokenTtl);
    expect((await revoke(issuer, pair.refresh_token, LONG_LIVED)).statusCode).toBe(200);
    const clock = new FakeClock(issuer.clock.now());
    const prune = () => pruneExpired(issuer.storage, clock, issuer.services.audit, issuer.config);
    const sessionGone = async () => (await issuer.storage.db.session.count({ where: { statusIdx: BigInt(idxOf(pair.access_token)) } })) === 0;
    // A day and more later, the token is still valid for most of a day: the session stays, the bit too.
    clock.advance(86400 + 3600);
    await prune();
    expect(await sessionGone()).toBe(false);
    await issuer.services.statusLists.rebuild();
    expect(await statusOf(issuer, pair.access_token)).toBe(1);
    // Past the token's exp and the clock skew verifiers allow: now it may go.
    clock.advance(LONG_LIVED.accessTokenTtl + issuer.config.clockSkew - 86400 - 3600 + 1);
    await prune();
    expect(await sessionGone()).toBe(true);
  });

  // ---- expiry ----

  it("a list is never served past its exp: 503 until a rebuild succeeds", async () => {
    await issuer.services.statusLists.rebuild();
    const exp = decodeJwt((await getList(issuer, 0)).body).exp!;
    const saved = issuer.clock.now();
    try {
      issuer.clock.set(new Date(exp * 1000));
      const res = await getList(issuer, 0);
      expect(errorOf(res)).toMatchObject({ status: 503, error: "temporarily_unavailable" });
      expect(res.headers["retry-after"]).toBeDefined();
      expect(res.headers["cache-control"]).toBe("no-store");
      await issuer.services.statusLists.rebuild();
      expect((await getList(issuer, 0)).statusCode).toBe(200);
    } finally {
      issuer.clock.set(saved);
      await issuer.services.statusLists.rebuild();
    }
  });

  // ---- hostile input ----

  it("unknown, malformed and hostile list numbers: 4xx JSON, never 5xx", async () => {
    const urls = [
      "/statuslists/2",
      "/statuslists/-1",
      "/statuslists/1e3",
      "/statuslists/01",
      "/statuslists/0x0",
      "/statuslists/1.0",
      "/statuslists/%2B1",
      "/statuslists/%20",
      "/statuslists/9007199254740992",
      `/statuslists/${"9".repeat(5000)}`,
      "/statuslists/%00",
      "/statuslists/0%00",
      "/statuslists/%zz",
      "/statuslists/..%2F..%2Fetc%2Fpasswd",
      "/statuslists/0/",
      "/statuslists/0/1",
      "/statuslists/",
      "/statuslists/%E2%80%AE0",
    ];
    for (const url of urls) {
      const res = await issuer.app.inject({ method: "GET", url });
      expect(res.statusCode, url).toBeGreaterThanOrEqual(400);
      expect(res.statusCode, url).toBeLessThan(500);
      expect(res.headers["content-type"], url).toMatch(/^application\/json/);
      expect(typeof (res.json() as { error: unknown }).error, url).toBe("string");
    }
    expect(errorOf(await getList(issuer, 2))).toMatchObject({ status: 404, error: "not_found" });
    expect(errorOf(await getList(issuer, -1))).toMatchObject({ status: 404, error: "not_found" });
    // Other methods: not served.
    expect((await issuer.app.inject({ method: "POST", url: "/statuslists/0" })).statusCode).toBe(404);
    // §8.4: historical resolution is not supported; the draft asks for 501 then.
    expect(errorOf(await issuer.app.inject({ method: "GET", url: "/statuslists/0?time=1686925000" }))).toMatchObject({ status: 501, error: "not_implemented" });
  });
});

// ---- sessions that ended while their last access tokens are still valid ----

describeEachDb("token status list, sessions past their end with live access tokens", (flavor) => {
  // Sessions end 600 s after login, or 300 s without a refresh; access tokens live 900 s (the
  // default), so the last ones of a session outlive it.
  const env = { REFRESH_TOKEN_TTL: "600", REFRESH_IDLE_TTL: "300", STATUS_LIST_TTL: String(TTL), LOG_LEVEL: "warn" };
  let issuer: TestIssuer;
  let admin: AdminContext;
  beforeAll(async () => {
    issuer = await startIssuer(flavor, { env });
    admin = adminOf(issuer);
  });
  afterAll(async () => issuer?.close());

  const prune = () => pruneExpired(issuer.storage, issuer.clock, issuer.services.audit, issuer.config);
  const sessionKept = async (token: string) => (await issuer.storage.db.session.count({ where: { id: decodeJwt(token).sid as string } })) === 1;
  /** the longest access-token lifetime (no client overrides it here) plus the clock skew */
  const outlive = () => issuer.config.accessTokenTtl + issuer.config.clockSkew;

  /** A user whose session has run to its absolute end (600 s) with a refresh at 580 s: its last access token is valid until 1480 s. */
  async function endedSession(): Promise<{ email: string; last: TokenPair; end: Date }> {
    const email = uniqueEmail("ended");
    await register(issuer.app, email);
    const start = issuer.clock.now();
    let pair = (await passwordGrant(issuer.app, email, PASSWORD)).json() as TokenPair;
    for (const at of [290, 580]) {
      issuer.clock.set(new Date(start.getTime() + at * 1000));
      const r = await refreshGrant(issuer.app, pair.refresh_token);
      expect(r.statusCode, r.body).toBe(200);
      pair = r.json() as TokenPair;
    }
    issuer.clock.set(new Date(start.getTime() + 610 * 1000));
    expect(errorOf(await refreshGrant(issuer.app, pair.refresh_token)).description).toMatch(/expired/);
    return { email, last: pair, end: new Date(start.getTime() + 600 * 1000) };
  }

  it("past its absolute end, a session whose last access token is valid is kept by pruning: disabling the user then sets its bit", async () => {
    const { email, last } = await endedSession();
    await prune();
    expect(await sessionKept(last.access_token)).toBe(true);
    expect((await disableUser(admin, { email })).json).toMatchObject({ user: { disabled_at: expect.any(String) } });
    await issuer.services.statusLists.rebuild();
    expect(await statusOf(issuer, last.access_token)).toBe(1);
  });

  it("idle past its refresh token's deadline, a session whose access token is valid is kept too: RFC 7009 revocation sets its bit", async () => {
    const pair = await login(issuer.app);
    issuer.clock.advance(301);
    expect(errorOf(await refreshGrant(issuer.app, pair.refresh_token)).description).toMatch(/expired/);
    await prune();
    expect(await sessionKept(pair.access_token)).toBe(true);
    expect((await revoke(issuer, pair.access_token, { id: "web" })).statusCode).toBe(200);
    expect(await statusOf(issuer, pair.access_token)).toBe(1);
  });

  it("an unrevoked session is pruned only once its end plus the longest access-token lifetime plus CLOCK_SKEW has passed", async () => {
    const { last, end } = await endedSession();
    issuer.clock.set(new Date(end.getTime() + outlive() * 1000));
    await prune();
    expect(await sessionKept(last.access_token)).toBe(true);
    issuer.clock.advance(1);
    await prune();
    expect(await sessionKept(last.access_token)).toBe(false);
  });
});

// ---- several instances on one database ----

function twoInstances(flavor: Flavor): void {
  const env = { STATUS_LIST_TTL: "2", LOG_LEVEL: "warn" };
  let group: InstanceGroup;
  let a: TestIssuer;
  let b: TestIssuer;

  beforeAll(async () => {
    group = await startInstances(flavor, 2, { clock: new FakeClock(new Date()), env, shareKeysDir: true });
    [a, b] = group.instances as [TestIssuer, TestIssuer];
  });
  afterAll(async () => group?.close());

  it("sessions started concurrently on both instances never share an index; nor do indices handed out by thousands", async () => {
    const users = await Promise.all(Array.from({ length: 8 }, () => register(a.app)));
    const logins = await Promise.all(users.flatMap((u) => [passwordGrant(a.app, u.email, u.password), passwordGrant(b.app, u.email, u.password)]));
    const indices = logins.map((r) => {
      expect(r.statusCode, r.body).toBe(200);
      return idxOf((r.json() as TokenPair).access_token);
    });
    expect(new Set(indices).size).toBe(indices.length);
    // Several blocks each, reserved concurrently by both instances from the one counter.
    const many = await Promise.all(Array.from({ length: 2 * 2500 }, (_, i) => (i % 2 === 0 ? a : b).services.statusIndices.allocate()));
    const all = [...indices, ...many];
    expect(new Set(all).size).toBe(all.length);
  });

  it("a revocation through one instance shows in the other's list after its rebuild", async () => {
    const pair = await login(a.app);
    await b.services.statusLists.rebuild();
    expect(await statusOf(a, pair.access_token, b)).toBe(0);
    const cookieLess = await a.app.inject({ method: "POST", url: "/oauth/revoke", ...form({ token: pair.refresh_token, client_id: "web" }) });
    expect(cookieLess.statusCode).toBe(200);
    expect(await statusOf(a, pair.access_token, a)).toBe(1);
    // b has not rebuilt yet: its list still shows the old bit (at most ttl/2 more).
    expect(await statusOf(a, pair.access_token, b)).toBe(0);
    await b.services.statusLists.rebuild();
    expect(await statusOf(a, pair.access_token, b)).toBe(1);
  });

  it("with its timer running, the other instance serves a revocation within ttl/2 (STATUS_LIST_TTL=2)", async () => {
    b.services.statusLists.start();
    try {
      const token = await (async () => {
        const pair = await login(b.app);
        await b.services.statusLists.rebuild();
        expect(await statusOf(b, pair.access_token, b)).toBe(0);
        await a.app.inject({ method: "POST", url: "/oauth/revoke", ...form({ token: pair.access_token, client_id: "web" }) });
        return pair.access_token;
      })();
      const started = Date.now();
      while ((await statusOf(b, token, b)) !== 1) {
        if (Date.now() - started > 1000 + 1500) throw new Error("b did not show the revocation within ttl/2 (+1.5 s slack)");
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      b.services.statusLists.stop();
    }
  });

  it("both instances serve the same bits, signed with the same key", async () => {
    await Promise.all([a.services.statusLists.rebuild(), b.services.statusLists.rebuild()]);
    const [la, lb] = [await getList(a, 0), await getList(b, 0)];
    const [pa, pb] = [decodeJwt(la.body), decodeJwt(lb.body)];
    expect(pa.status_list).toEqual(pb.status_list);
    expect(decodeProtectedHeader(la.body).kid).toBe(decodeProtectedHeader(lb.body).kid);
  });
}

describeEachDb("token status list, two instances on one database", (flavor) => twoInstances(flavor));

describeEachDb("token status list, across a list boundary", (flavor) => {
  let group: InstanceGroup;
  let issuer: TestIssuer;

  beforeAll(async () => {
    group = await startInstances(flavor, 1, { clock: new FakeClock(new Date()), env: { STATUS_LIST_TTL: "2", LOG_LEVEL: "warn" } });
    issuer = group.instances[0]!;
    // No index handed out yet (the first block is reserved on first use): start just before list 1.
    await issuer.storage.db.statusIndexCounter.update({ where: { id: 1 }, data: { next: BigInt(LIST_SIZE - 2) } });
  });
  afterAll(async () => group?.close());

  it("a token names the list that holds its index and its position in that list (§6.2); revoking one on list 1 sets exactly that bit", async () => {
    const pairs = [];
    for (let i = 0; i < 4; i++) pairs.push(await login(issuer.app));
    const refs = pairs.map((p) => statusRefOf(p.access_token)!);
    const base = `${issuer.config.issuer}/statuslists`;
    expect(refs).toEqual([
      { idx: LIST_SIZE - 2, uri: `${base}/0` },
      { idx: LIST_SIZE - 1, uri: `${base}/0` },
      { idx: 0, uri: `${base}/1` },
      { idx: 1, uri: `${base}/1` },
    ]);
    const revoked = await revoke(issuer, pairs[2]!.access_token, { id: "web" });
    expect(revoked.statusCode).toBe(200);
    await issuer.services.statusLists.rebuild();
    expect(await Promise.all(pairs.map((p) => statusOf(issuer, p.access_token)))).toEqual([0, 0, 1, 0]);
    // A third-party reader sees the same: bit 0 of list 1 set, list 0's last entries clear.
    const list1 = getListFromStatusListJWT((await getList(issuer, 1)).body);
    expect([list1.getStatus(0), list1.getStatus(1)]).toEqual([1, 0]);
    const list0 = getListFromStatusListJWT((await getList(issuer, 0)).body);
    expect([list0.getStatus(LIST_SIZE - 2), list0.getStatus(LIST_SIZE - 1)]).toEqual([0, 0]);
  });
});

describe("token status list: configuration", () => {
  it("STATUS_LIST_TTL is validated: 1 s to 3600 s", () => {
    expect(loadConfig({}).statusListTtl).toBe(10);
    expect(loadConfig({ STATUS_LIST_TTL: "1m" }).statusListTtl).toBe(60);
    for (const bad of ["0", "-1", "abc", "2h"]) expect(() => loadConfig({ STATUS_LIST_TTL: bad }), bad).toThrow(ConfigError);
  });
});
