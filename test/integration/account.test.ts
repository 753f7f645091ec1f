// The user's own account (issue 10, first section): POST /account/password, GET /account/sessions,
// DELETE /account/sessions[/{id}], with the user's Bearer access token. On both databases.
import { decodeJwt } from "jose";
import { signWithIssuerKey } from "../helpers/forged-tokens.ts";
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, expect, it } from "vitest";
import { hashClientSecret } from "../../src/domain/clients/clients.ts";
import {
  describeEachDb,
  errorOf,
  form,
  passwordGrant,
  PASSWORD,
  refreshGrant,
  register,
  startIssuer,
  statusOf,
  type TestIssuer,
  type TokenPair,
} from "../helpers/issuer.ts";

const NEW_PASSWORD = "a brand new passphrase 2026";
const SERVICE = { id: "billing", secret: "billing-secret-value" };

interface ListedSession {
  id: string;
  client_id: string;
  created_at: string;
  last_used_at: string;
  expires_at: { idle: string; absolute: string };
  current: boolean;
  user_agent?: string;
  address?: string;
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

async function loginAs(app: FastifyInstance, email: string, password: string, headers: Record<string, string> = {}): Promise<TokenPair> {
  const res = await app.inject({
    method: "POST",
    url: "/oauth/token",
    headers: { ...form({}).headers, ...headers },
    payload: new URLSearchParams({ grant_type: "password", username: email, password, client_id: "web" }).toString(),
  });
  if (res.statusCode !== 200) throw new Error(`login failed: ${res.statusCode} ${res.body}`);
  return res.json() as TokenPair;
}

function changePassword(app: FastifyInstance, token: string, body: unknown, extra: Partial<InjectOptions> = {}) {
  return app.inject({ method: "POST", url: "/account/password", headers: bearer(token), payload: body as object, ...extra });
}

const listSessions = (app: FastifyInstance, token: string) =>
  app.inject({ method: "GET", url: "/account/sessions", headers: bearer(token) });

/** A 4xx in the issuer's error shape (and never a 5xx). */
function expectError(res: LightMyRequestResponse, status: number, error?: string): void {
  expect(res.statusCode, res.body).toBe(status);
  const body = res.json() as { error?: unknown; error_description?: unknown };
  expect(typeof body.error).toBe("string");
  expect(typeof body.error_description).toBe("string");
  if (error) expect(body.error).toBe(error);
}

function expectUnauthorized(res: LightMyRequestResponse): void {
  expectError(res, 401);
  expect(String(res.headers["www-authenticate"])).toMatch(/^Bearer/);
}

describeEachDb("account endpoints", (flavor) => {
  let issuer: TestIssuer;
  let app: FastifyInstance;
  beforeAll(async () => {
    issuer = await startIssuer(flavor, { env: { LOGIN_LOCKOUT_THRESHOLD: "3", LOGIN_LOCKOUT_BASE: "60" } });
    app = issuer.app;
    await issuer.services.storage.clients.create({
      id: SERVICE.id,
      name: "Billing",
      type: "confidential",
      secretHash: hashClientSecret(SERVICE.secret),
      grantTypes: ["client_credentials"],
      scopes: ["invoices:read"],
      audiences: [],
      resources: [],
      accessTokenTtl: null,
      refreshTokenTtl: null,
      createdAt: issuer.clock.now(),
      disabledAt: null,
    });
  });
  afterAll(async () => issuer?.close());

  // ---- password change ----

  it("changes the password: other sessions die (refresh refused, status bit set), the caller's stays, old password out, new in", async () => {
    const user = await register(app);
    const mine = await loginAs(app, user.email, user.password);
    const other = await loginAs(app, user.email, user.password);
    expect(await statusOf(issuer, other.access_token)).toBe(0);

    const res = await changePassword(app, mine.access_token, { current_password: PASSWORD, new_password: NEW_PASSWORD });
    expect(res.statusCode, res.body).toBe(204);

    expect(errorOf(await refreshGrant(app, other.refresh_token))).toMatchObject({ status: 400, error: "invalid_grant" });
    expect(await statusOf(issuer, other.access_token)).toBe(1);
    expect(await statusOf(issuer, mine.access_token)).toBe(0);
    const refreshed = await refreshGrant(app, mine.refresh_token);
    expect(refreshed.statusCode, refreshed.body).toBe(200);

    expect(errorOf(await passwordGrant(app, user.email, PASSWORD))).toMatchObject({ status: 400, error: "invalid_grant" });
    expect((await passwordGrant(app, user.email, NEW_PASSWORD)).statusCode).toBe(200);

    const events = await issuer.storage.db.auditEvent.findMany({ where: { userId: user.id, type: "password.changed" } });
    expect(events).toHaveLength(1);
  });

  it("a wrong current password is a failed login (invalid_grant), throttled after the lockout threshold like /auth/login", async () => {
    const user = await register(app);
    const mine = await loginAs(app, user.email, user.password);
    const from = { remoteAddress: "198.51.100.7" };
    for (let i = 0; i < 3; i++) {
      const res = await changePassword(app, mine.access_token, { current_password: `wrong guess ${i}`, new_password: NEW_PASSWORD }, from);
      expect(errorOf(res)).toMatchObject({ status: 400, error: "invalid_grant", description: "Invalid username or password." });
    }
    // Locked: even the right current password is refused from this address, with the same answer.
    const locked = await changePassword(app, mine.access_token, { current_password: PASSWORD, new_password: NEW_PASSWORD }, from);
    expect(errorOf(locked)).toMatchObject({ status: 400, error: "invalid_grant", description: "Invalid username or password." });
    // ...and so is a login from that address: one throttle for both.
    const login = await app.inject({ method: "POST", url: "/oauth/token", ...from, ...form({ grant_type: "password", username: user.email, password: PASSWORD, client_id: "web" }) });
    expect(errorOf(login)).toMatchObject({ status: 400, error: "invalid_grant" });
    const failed = await issuer.storage.db.auditEvent.count({ where: { userId: user.id, type: "login.failed" } });
    expect(failed).toBeGreaterThanOrEqual(4);
    // The wait ends; the password was never changed.
    issuer.clock.advance(3601);
    const again = await loginAs(app, user.email, PASSWORD);
    const ok = await changePassword(app, again.access_token, { current_password: PASSWORD, new_password: NEW_PASSWORD }, from);
    expect(ok.statusCode, ok.body).toBe(204);
  });

  it("a weak new password is refused with the registration error, and nothing changes", async () => {
    const user = await register(app);
    const mine = await loginAs(app, user.email, user.password);
    const registration = await app.inject({ method: "POST", url: "/auth/register", payload: { email: `weak.${Date.now()}@example.test`, password: "short" } });
    const res = await changePassword(app, mine.access_token, { current_password: PASSWORD, new_password: "short" });
    expect(errorOf(res)).toEqual(errorOf(registration));
    expect(res.statusCode).toBe(400);
    expect((await passwordGrant(app, user.email, PASSWORD)).statusCode).toBe(200);
  });

  // ---- sessions ----

  it("lists the live sessions with their metadata, marks the current one, leaves out revoked ones", async () => {
    const user = await register(app);
    const a = await loginAs(app, user.email, user.password, { "user-agent": "Firefox/140 on a laptop" });
    const b = await loginAs(app, user.email, user.password, { "user-agent": "x".repeat(1000) });
    const gone = await loginAs(app, user.email, user.password, { "user-agent": "Revoked/1" });
    await app.inject({ method: "POST", url: "/oauth/revoke", ...form({ token: gone.refresh_token, client_id: "web" }) });
    issuer.clock.advance(5);
    const rotated = await refreshGrant(app, a.refresh_token);
    expect(rotated.statusCode).toBe(200);

    const res = await listSessions(app, b.access_token);
    expect(res.statusCode, res.body).toBe(200);
    expect(res.headers["cache-control"]).toBe("no-store");
    const { sessions } = res.json() as { sessions: ListedSession[] };
    expect(sessions).toHaveLength(2);
    const byAgent = new Map(sessions.map((s) => [s.user_agent?.slice(0, 7), s]));
    const first = byAgent.get("Firefox")!;
    const second = byAgent.get("xxxxxxx")!;
    expect(first.current).toBe(false);
    expect(second.current).toBe(true);
    expect(second.user_agent).toHaveLength(256);
    expect(first.client_id).toBe("web");
    expect(first.address).toBe("127.0.0.1");
    expect(Date.parse(first.last_used_at)).toBeGreaterThan(Date.parse(first.created_at));
    expect(Date.parse(second.last_used_at)).toBe(Date.parse(second.created_at));
    expect(Date.parse(first.expires_at.idle)).toBe(Date.parse(first.last_used_at) + issuer.config.refreshIdleTtl * 1000);
    expect(Date.parse(first.expires_at.absolute)).toBe(Date.parse(first.created_at) + issuer.config.refreshTokenTtl * 1000);
  });

  it("with SESSION_METADATA=false no user agent or address is stored", async () => {
    const other = await startIssuer(flavor, { env: { SESSION_METADATA: "false" } });
    try {
      const user = await register(other.app);
      const pair = await loginAs(other.app, user.email, user.password, { "user-agent": "Secret/1.0" });
      const { sessions } = (await listSessions(other.app, pair.access_token)).json() as { sessions: ListedSession[] };
      expect(sessions).toHaveLength(1);
      expect(sessions[0]).not.toHaveProperty("user_agent");
      expect(sessions[0]).not.toHaveProperty("address");
      const row = await other.storage.db.session.findFirstOrThrow({ where: { userId: user.id } });
      expect(row.userAgent).toBeNull();
      expect(row.address).toBeNull();
    } finally {
      await other.close();
    }
  });

  it("/auth/login keeps the metadata too", async () => {
    const user = await register(app);
    const res = await app.inject({
      method: "POST",
      url: "/auth/login",
      headers: { "user-agent": "Browser/2", origin: "https://app.test" },
      payload: { email: user.email, password: user.password },
    });
    expect(res.statusCode, res.body).toBe(200);
    const row = await issuer.storage.db.session.findFirstOrThrow({ where: { userId: user.id } });
    expect(row.userAgent).toBe("Browser/2");
    expect(row.address).toBe("127.0.0.1");
  });

  it("ends one of the user's own sessions (its refresh token dies); another user's or an unknown id is 404", async () => {
    const user = await register(app);
    const mine = await loginAs(app, user.email, user.password);
    const other = await loginAs(app, user.email, user.password);
    const stranger = await register(app);
    const theirs = await loginAs(app, stranger.email, stranger.password);
    const ids = ((await listSessions(app, mine.access_token)).json() as { sessions: ListedSession[] }).sessions;
    const otherId = ids.find((s) => !s.current)!.id;
    const theirId = ((await listSessions(app, theirs.access_token)).json() as { sessions: ListedSession[] }).sessions[0]!.id;

    expectError(await app.inject({ method: "DELETE", url: `/account/sessions/${theirId}`, headers: bearer(mine.access_token) }), 404, "not_found");
    expect((await refreshGrant(app, theirs.refresh_token)).statusCode).toBe(200);
    expectError(await app.inject({ method: "DELETE", url: `/account/sessions/${crypto.randomUUID()}`, headers: bearer(mine.access_token) }), 404, "not_found");

    const res = await app.inject({ method: "DELETE", url: `/account/sessions/${otherId}`, headers: bearer(mine.access_token) });
    expect(res.statusCode, res.body).toBe(204);
    expect(errorOf(await refreshGrant(app, other.refresh_token))).toMatchObject({ status: 400, error: "invalid_grant" });
    const row = await issuer.storage.db.session.findUniqueOrThrow({ where: { id: otherId } });
    expect(row.revokedReason).toBe("ended_by_user");
    // Already ended: gone from the list, and a second DELETE is the same 404.
    expectError(await app.inject({ method: "DELETE", url: `/account/sessions/${otherId}`, headers: bearer(mine.access_token) }), 404, "not_found");
    const after = (await listSessions(app, mine.access_token)).json() as { sessions: ListedSession[] };
    expect(after.sessions.map((s) => s.current)).toEqual([true]);
  });

  it("ends all sessions, the caller's included", async () => {
    const user = await register(app);
    const mine = await loginAs(app, user.email, user.password);
    const other = await loginAs(app, user.email, user.password);
    const res = await app.inject({ method: "DELETE", url: "/account/sessions", headers: bearer(mine.access_token) });
    expect(res.statusCode, res.body).toBe(204);
    for (const pair of [mine, other]) {
      expect(errorOf(await refreshGrant(app, pair.refresh_token))).toMatchObject({ status: 400, error: "invalid_grant" });
      expect(await statusOf(issuer, pair.access_token)).toBe(1);
    }
    expectUnauthorized(await listSessions(app, mine.access_token));
  });

  // ---- hostile input ----

  it("refuses every route without a valid user's access token: 401 with a Bearer challenge", async () => {
    const user = await register(app);
    const pair = await loginAs(app, user.email, user.password);
    const service = await app.inject({
      method: "POST",
      url: "/oauth/token",
      headers: { ...form({}).headers, authorization: `Basic ${Buffer.from(`${SERVICE.id}:${SERVICE.secret}`).toString("base64")}` },
      payload: new URLSearchParams({ grant_type: "client_credentials" }).toString(),
    });
    expect(service.statusCode, service.body).toBe(200);
    const serviceToken = (service.json() as { access_token: string }).access_token;
    const revokedUser = await register(app);
    const revokedPair = await loginAs(app, revokedUser.email, revokedUser.password);
    await app.inject({ method: "POST", url: "/oauth/revoke", ...form({ token: revokedPair.refresh_token, client_id: "web" }) });

    const routes: InjectOptions[] = [
      { method: "POST", url: "/account/password", payload: { current_password: PASSWORD, new_password: NEW_PASSWORD } },
      { method: "GET", url: "/account/sessions" },
      { method: "DELETE", url: "/account/sessions/00000000-0000-0000-0000-000000000000" },
      { method: "DELETE", url: "/account/sessions" },
    ];
    const authorizations: Array<string | undefined> = [
      undefined,
      "Bearer garbage",
      "Bearer",
      "Bearer a b c",
      `Bearer ${"A".repeat(20000)}`,
      `Basic ${Buffer.from("web:").toString("base64")}`,
      `Bearer ${serviceToken}`,
      `Bearer ${revokedPair.access_token}`,
      `Bearer ${pair.access_token.slice(0, -4)}AAAA`,
    ];
    for (const route of routes) {
      for (const authorization of authorizations) {
        const res = await app.inject({ ...route, headers: { ...(route.headers ?? {}), ...(authorization ? { authorization } : {}) } });
        expectUnauthorized(res);
      }
      // The token as a query or form parameter is not accepted (header only).
      expectUnauthorized(await app.inject({ ...route, url: `${route.url}?access_token=${pair.access_token}` }));
    }
    // A token signed with the issuer's key for this user's live session, but meant for another
    // audience (RFC 9068 §4: the resource checks aud): not for /account.
    const live = decodeJwt(pair.access_token);
    const otherAudience = await signWithIssuerKey(issuer, { ...live, aud: "billing-api", jti: `jti-${Date.now()}` });
    const sameClaims = await signWithIssuerKey(issuer, { ...live, jti: `jti-${Date.now()}-same` });
    expect((await app.inject({ method: "GET", url: "/account/sessions", headers: bearer(sameClaims) })).statusCode).toBe(200);
    for (const route of routes) expectUnauthorized(await app.inject({ ...route, headers: bearer(otherAudience) }));
    // Expired (the fake clock past the access token's lifetime).
    const fresh = await loginAs(app, user.email, user.password);
    issuer.clock.advance(issuer.config.accessTokenTtl + 1);
    for (const route of routes) expectUnauthorized(await app.inject({ ...route, headers: bearer(fresh.access_token) }));
  });

  it("hostile bodies and ids: 4xx in the error shape, never 5xx", async () => {
    const user = await register(app);
    const pair = await loginAs(app, user.email, user.password);
    const auth = bearer(pair.access_token);
    const post = (payload: string, contentType = "application/json") =>
      app.inject({ method: "POST", url: "/account/password", headers: { ...auth, "content-type": contentType }, payload });

    expectError(await post("current_password=x&new_password=y", "application/x-www-form-urlencoded"), 415, "invalid_request");
    expectError(await post("hello", "text/plain"), 415, "invalid_request");
    expectError(await post("{not json"), 400, "invalid_request");
    expectError(await post(""), 400, "invalid_request");
    expectError(await post("[]"), 400, "invalid_request");
    expectError(await post("null"), 400, "invalid_request");
    expectError(await post(JSON.stringify({ current_password: PASSWORD })), 400, "invalid_request");
    expectError(await post(JSON.stringify({ current_password: PASSWORD, new_password: NEW_PASSWORD, admin: true })), 400, "invalid_request");
    expectError(await post(JSON.stringify({ current_password: 12345678, new_password: NEW_PASSWORD })), 400, "invalid_request");
    expectError(await post(JSON.stringify({ current_password: "x".repeat(5000), new_password: NEW_PASSWORD })), 400, "invalid_request");
    expectError(await post(JSON.stringify({ current_password: PASSWORD, new_password: "y".repeat(60000) })), 400, "invalid_request");
    expectError(await post(JSON.stringify({ current_password: PASSWORD, new_password: "z".repeat(70000) })), 413, "invalid_request");
    expectError(await post(JSON.stringify({ current_password: "", new_password: NEW_PASSWORD })), 400, "invalid_request");

    for (const url of ["/account/sessions/%00", "/account/sessions/..%2F..%2Fetc", `/account/sessions/${"a".repeat(65)}`, "/account/sessions/a%20b", "/account/sessions/%zz", "/account/sessions/'%3B--"]) {
      const res = await app.inject({ method: "DELETE", url, headers: auth });
      expect(res.statusCode, `${url}: ${res.body}`).toBeGreaterThanOrEqual(400);
      expect(res.statusCode, url).toBeLessThan(500);
      expectError(res, res.statusCode);
    }
    expectError(await app.inject({ method: "DELETE", url: "/account/sessions/not-a-session", headers: auth }), 404, "not_found");
    // Nothing of the above changed the password or ended the session.
    expect((await listSessions(app, pair.access_token)).statusCode).toBe(200);
    expect((await passwordGrant(app, user.email, PASSWORD)).statusCode).toBe(200);
  });
});
