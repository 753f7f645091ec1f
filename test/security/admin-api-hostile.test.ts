// The admin API (/admin/v1) under hostile input and hostile tokens, on both databases:
// - malformed, mistyped, oversized and unknown input at every route is a 4xx in the issuer's
//   error shape ({error, error_description}, Cache-Control: no-store), never a 5xx; a 400 caused
//   by one member names it in `field`;
// - every token the admin API must refuse (none, garbage, another scheme, a user's token, a
//   token for another audience, expired, of a disabled client, forged) is a 401 invalid_token at
//   every route, and a valid token without the scope a route needs is a 403 insufficient_scope;
//   a refused request writes nothing.
import fc from "fast-check";
import type { InjectOptions, LightMyRequestResponse } from "fastify";
import { decodeJwt, exportJWK, exportSPKI, generateKeyPair, importJWK, SignJWT, type CryptoKey, type JWK, type JWTPayload } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeCursor } from "../../src/admin/paging.ts";
import { listKeys } from "../../src/admin/keys.ts";
import { ADMIN_ROUTES, adminCall, adminClient, clientToken, type AdminClient } from "../helpers/admin-api.ts";
import { challengeParams } from "../helpers/bearer.ts";
import { b64url, publishedJwks, signWithIssuerKey } from "../helpers/forged-tokens.ts";
import { adminOf, describeEachDb, login, startIssuer, type Flavor, type TestIssuer } from "../helpers/issuer.ts";

type Route = (typeof ADMIN_ROUTES)[number];
type Method = Route["method"];

interface Ids {
  client: string;
  user: string;
  session: string;
  kid: string;
}

const KB = 1024;
const RUNS = 40;

/** The route's path with its placeholders filled in (each id URL-encoded). */
function pathOf(route: Pick<Route, "path">, ids: Ids): string {
  return route.path.replace(/\{(client|user|session|kid)\}/g, (_, name: keyof Ids) => encodeURIComponent(ids[name]));
}

/** The route's path with every placeholder replaced by `raw` (inserted as is: already encoded). */
const pathWithRawId = (route: Route, raw: string): string => route.path.replace(/\{(client|user|session|kid)\}/g, raw);

const hasPlaceholder = (route: Route) => /\{/.test(route.path);
const paramNameOf = (route: Route) => (route.path.includes("{kid}") ? "kid" : "id");
const bodyRoutes = ADMIN_ROUTES.filter((r) => r.body !== undefined);
const nonGetRoutes = ADMIN_ROUTES.filter((r) => r.method !== "GET");
const writeRoutes = ADMIN_ROUTES.filter((r) => r.access === "write");
const readRoutes = ADMIN_ROUTES.filter((r) => r.access === "read");
const listRoutes = ["/clients", "/users", "/audit-events"] as const;
const label = (r: Pick<Route, "method" | "path">) => `${r.method} ${r.path}`;

/** A raw request to /admin/v1 (any headers, any payload). */
function raw(
  issuer: TestIssuer,
  token: string | null,
  method: Method,
  path: string,
  opts: { headers?: Record<string, string>; payload?: string | Buffer } = {},
): Promise<LightMyRequestResponse> {
  return issuer.app.inject({
    method,
    url: `/admin/v1${path}`,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...opts.headers },
    ...(opts.payload !== undefined ? { payload: opts.payload } : {}),
  } as InjectOptions);
}

/** What the request did, for the assertion message. */
const shown = (what: string, res: LightMyRequestResponse) => `${what} -> ${res.statusCode} ${res.body.slice(0, 300)}`;

/** A 4xx (never a 5xx) in the documented error shape, not cached. */
function expectErrorShape(res: LightMyRequestResponse, what: string): { error: string; error_description: string; field?: unknown } {
  expect(res.statusCode, shown(what, res)).toBeGreaterThanOrEqual(400);
  expect(res.statusCode, shown(what, res)).toBeLessThan(500);
  expect(String(res.headers["content-type"]), shown(what, res)).toMatch(/^application\/json/);
  const body = res.json() as Record<string, unknown>;
  expect(body !== null && typeof body === "object" && !Array.isArray(body), shown(what, res)).toBe(true);
  expect(typeof body.error, shown(what, res)).toBe("string");
  expect(typeof body.error_description, shown(what, res)).toBe("string");
  expect(String(res.headers["cache-control"]), shown(what, res)).toContain("no-store");
  if ("field" in body) expect(typeof body.field, shown(what, res)).toBe("string");
  return body as { error: string; error_description: string; field?: unknown };
}

/** A 400 invalid_request naming `field`. */
function expectBadField(res: LightMyRequestResponse, field: string, what: string): void {
  const body = expectErrorShape(res, what);
  expect(res.statusCode, shown(what, res)).toBe(400);
  expect(body.error, shown(what, res)).toBe("invalid_request");
  expect(body.field, shown(what, res)).toBe(field);
}

/** For properties: a 2xx, or a 4xx in the error shape; never a 5xx. Returns false (with the reason logged) instead of throwing. */
function acceptableOutcome(res: LightMyRequestResponse): boolean {
  if (res.statusCode >= 200 && res.statusCode < 300) return true;
  if (res.statusCode < 400 || res.statusCode >= 500) return false;
  let body: unknown;
  try {
    body = res.json();
  } catch {
    return false;
  }
  const b = body as Record<string, unknown> | null;
  return (
    b !== null &&
    typeof b === "object" &&
    typeof b.error === "string" &&
    typeof b.error_description === "string" &&
    String(res.headers["cache-control"]).includes("no-store")
  );
}

/** 401 invalid_token with a Bearer challenge; `presented`: the challenge carries error="invalid_token" (RFC 6750 §3.1). */
function expectInvalidToken(res: LightMyRequestResponse, what: string, presented: boolean): void {
  const body = expectErrorShape(res, what);
  expect(res.statusCode, shown(what, res)).toBe(401);
  expect(body.error, shown(what, res)).toBe("invalid_token");
  const challenge = challengeParams(res.headers["www-authenticate"]);
  expect(challenge.scheme, shown(what, res)).toBe("Bearer");
  if (presented) expect(challenge.params.error, shown(what, res)).toBe("invalid_token");
  else expect(challenge.params.error, shown(`${what} (no error in the challenge)`, res)).toBeUndefined();
}

/** 403 insufficient_scope naming the scope needed. */
function expectInsufficientScope(res: LightMyRequestResponse, scope: string, what: string): void {
  const body = expectErrorShape(res, what);
  expect(res.statusCode, shown(what, res)).toBe(403);
  expect(body.error, shown(what, res)).toBe("insufficient_scope");
  const header = String(res.headers["www-authenticate"]);
  expect(header, shown(what, res)).toMatch(/^Bearer /);
  expect(header, shown(what, res)).toContain('error="insufficient_scope"');
  expect(header, shown(what, res)).toContain(`scope="${scope}"`);
}

/** Everything an admin request could change: clients, users, sessions, audit trail, keys. */
async function snapshot(issuer: TestIssuer): Promise<string> {
  const db = issuer.storage.db;
  return JSON.stringify({
    clients: await db.client.findMany({ orderBy: { id: "asc" } }),
    users: await db.user.findMany({ orderBy: { id: "asc" }, select: { id: true, email: true, passwordHash: true, roles: true, disabledAt: true } }),
    sessions: await db.session.findMany({ orderBy: { id: "asc" }, select: { id: true, revokedAt: true, revokedReason: true } }),
    audit: await db.auditEvent.count(),
    keys: (await listKeys(adminOf(issuer))).json,
  });
}

/** A user with a live session: its id, the session id and the user's access token. */
async function userWithSession(issuer: TestIssuer): Promise<{ userId: string; sessionId: string; accessToken: string }> {
  const tokens = await login(issuer.app);
  const sid = decodeJwt(tokens.access_token).sid;
  if (typeof sid !== "string") throw new Error("the user's access token has no sid");
  return { userId: tokens.userId, sessionId: sid, accessToken: tokens.access_token };
}

// ---------------------------------------------------------------------------------------------
// Hostile input with a valid admin:write token
// ---------------------------------------------------------------------------------------------

describeEachDb("admin API: hostile input", (flavor: Flavor) => {
  let issuer: TestIssuer;
  let writer: string;
  let ids: Ids;

  beforeAll(async () => {
    issuer = await startIssuer(flavor);
    const ops = await adminClient(issuer, ["admin:write"], "ops");
    writer = await clientToken(issuer, ops);
    // The targets of the id routes: a client and a user that are not the caller.
    const target = await adminClient(issuer, ["read"], "target");
    const u = await userWithSession(issuer);
    ids = { client: target.id, user: u.userId, session: u.sessionId, kid: issuer.services.keys.signer().kid };
  });
  afterAll(async () => {
    await issuer?.close();
  });

  it("the valid requests of every route work with this token (control)", async () => {
    // Reads only here: writes are exercised with refusals below.
    for (const route of readRoutes) {
      const res = await adminCall(issuer, writer, route.method, pathOf(route, ids));
      expect(res.statusCode, shown(label(route), res)).toBe(200);
    }
  });

  it("malformed JSON at every route with a body is 400 invalid_request, and nothing is written", async () => {
    const before = await snapshot(issuer);
    const bodies = ["{", '{"name": ', "{'name':'x'}", "[1,", "nul", '{"a":1}}', "\u0000", '{"__proto__": {"x": 1}}', '{"constructor": {"prototype": {"x": 1}}}'];
    for (const route of nonGetRoutes) {
      for (const payload of bodies) {
        const what = `${label(route)} body ${JSON.stringify(payload)}`;
        const res = await raw(issuer, writer, route.method, pathOf(route, ids), { headers: { "content-type": "application/json" }, payload });
        const body = expectErrorShape(res, what);
        expect(res.statusCode, shown(what, res)).toBe(400);
        expect(body.error, shown(what, res)).toBe("invalid_request");
      }
    }
    expect(await snapshot(issuer)).toBe(before);
  });

  it("a body that is not JSON (text/plain, a form, XML, no content type) is 415 at every route with a body, and nothing is written", async () => {
    const before = await snapshot(issuer);
    const variants: Array<{ name: string; headers: Record<string, string>; payload: string }> = [
      { name: "text/plain", headers: { "content-type": "text/plain" }, payload: '{"name":"x"}' },
      { name: "form", headers: { "content-type": "application/x-www-form-urlencoded" }, payload: "name=x&type=confidential&grant_types=client_credentials" },
      { name: "xml", headers: { "content-type": "application/xml" }, payload: "<name>x</name>" },
      { name: "multipart", headers: { "content-type": "multipart/form-data; boundary=x" }, payload: '--x\r\nContent-Disposition: form-data; name="name"\r\n\r\nx\r\n--x--' },
    ];
    for (const route of nonGetRoutes) {
      for (const v of variants) {
        const what = `${label(route)} as ${v.name}`;
        const res = await raw(issuer, writer, route.method, pathOf(route, ids), { headers: v.headers, payload: v.payload });
        const body = expectErrorShape(res, what);
        expect(res.statusCode, shown(what, res)).toBe(415);
        expect(body.error, shown(what, res)).toBe("invalid_request");
      }
    }
    // A body without a Content-Type (DELETE bodies are read only when they name their type).
    for (const route of nonGetRoutes.filter((r) => r.method !== "DELETE")) {
      const what = `${label(route)} without a content type`;
      const res = await raw(issuer, writer, route.method, pathOf(route, ids), { payload: Buffer.from(JSON.stringify(route.body ?? {})) });
      const body = expectErrorShape(res, what);
      expect(res.statusCode, shown(what, res)).toBe(415);
      expect(body.error, shown(what, res)).toBe("invalid_request");
    }
    expect(await snapshot(issuer)).toBe(before);
  });

  it("a ~100 KB body (over the 64 KB limit) is 413 at every route with a body, JSON or not, and nothing is written", async () => {
    const before = await snapshot(issuer);
    const huge = "x".repeat(100 * KB);
    for (const route of nonGetRoutes) {
      const payloads = [JSON.stringify({ name: huge, type: "confidential", grant_types: ["client_credentials"] }), JSON.stringify({ password: huge, email: huge, roles: [huge] }), JSON.stringify(huge)];
      for (const payload of payloads) {
        const what = `${label(route)} with a ${payload.length}-byte JSON body`;
        const res = await raw(issuer, writer, route.method, pathOf(route, ids), { headers: { "content-type": "application/json" }, payload });
        const body = expectErrorShape(res, what);
        expect(res.statusCode, shown(what, res)).toBe(413);
        expect(body.error, shown(what, res)).toBe("invalid_request");
      }
    }
    expect(await snapshot(issuer)).toBe(before);
  });

  it("bodies of the wrong type (number, string, array, null, boolean) are 400 at every route that takes a body, and nothing is written", async () => {
    const before = await snapshot(issuer);
    for (const route of bodyRoutes) {
      for (const body of [42, "a string", [], [route.body], null, true, 0, -1.5]) {
        const what = `${label(route)} body ${JSON.stringify(body)}`;
        const res = await adminCall(issuer, writer, route.method, pathOf(route, ids), JSON.stringify(body));
        const err = expectErrorShape(res, what);
        expect(res.statusCode, shown(what, res)).toBe(400);
        expect(err.error, shown(what, res)).toBe("invalid_request");
      }
    }
    expect(await snapshot(issuer)).toBe(before);
  });

  it("members of the wrong type, nested objects and unknown members are 400 naming the member, and nothing is written", async () => {
    const before = await snapshot(issuer);
    const okClient = { name: "x", type: "confidential", grant_types: ["client_credentials"] };
    const okUser = { email: "hostile@example.test", password: "correct horse battery staple" };
    const cases: Array<{ method: Method; path: string; body: unknown; field: string }> = [
      // POST /clients
      { method: "POST", path: "/clients", body: { ...okClient, name: 42 }, field: "name" },
      { method: "POST", path: "/clients", body: { ...okClient, name: { nested: { deeper: "x" } } }, field: "name" },
      { method: "POST", path: "/clients", body: { ...okClient, name: ["x"] }, field: "name" },
      { method: "POST", path: "/clients", body: { ...okClient, name: null }, field: "name" },
      { method: "POST", path: "/clients", body: { ...okClient, type: "root" }, field: "type" },
      { method: "POST", path: "/clients", body: { ...okClient, grant_types: "client_credentials" }, field: "grant_types" },
      { method: "POST", path: "/clients", body: { ...okClient, grant_types: [1] }, field: "grant_types.0" },
      { method: "POST", path: "/clients", body: { ...okClient, grant_types: [{ a: 1 }] }, field: "grant_types.0" },
      { method: "POST", path: "/clients", body: { ...okClient, scopes: { admin: true } }, field: "scopes" },
      { method: "POST", path: "/clients", body: { ...okClient, access_token_ttl: "3600" }, field: "access_token_ttl" },
      { method: "POST", path: "/clients", body: { ...okClient, access_token_ttl: 1.5 }, field: "access_token_ttl" },
      { method: "POST", path: "/clients", body: { ...okClient, refresh_token_ttl: 1e12 }, field: "refresh_token_ttl" },
      { method: "POST", path: "/clients", body: { ...okClient, is_admin: true }, field: "is_admin" },
      { method: "POST", path: "/clients", body: { ...okClient, client_id: "c_chosen" }, field: "client_id" },
      { method: "POST", path: "/clients", body: { ...okClient, secretHash: "x" }, field: "secretHash" },
      { method: "POST", path: "/clients", body: { name: "x", type: "confidential" }, field: "grant_types" },
      // PATCH /clients/{id}
      { method: "PATCH", path: `/clients/${ids.client}`, body: { name: 7 }, field: "name" },
      { method: "PATCH", path: `/clients/${ids.client}`, body: { scopes: "admin:write" }, field: "scopes" },
      { method: "PATCH", path: `/clients/${ids.client}`, body: { type: "public" }, field: "type" },
      { method: "PATCH", path: `/clients/${ids.client}`, body: { disabled_at: null }, field: "disabled_at" },
      { method: "PATCH", path: `/clients/${ids.client}`, body: { name: "y", secret: "z" }, field: "secret" },
      // POST /users
      { method: "POST", path: "/users", body: { ...okUser, email: 1 }, field: "email" },
      { method: "POST", path: "/users", body: { ...okUser, password: 12345678901234 }, field: "password" },
      { method: "POST", path: "/users", body: { ...okUser, password: ["correct horse battery staple"] }, field: "password" },
      { method: "POST", path: "/users", body: { ...okUser, roles: "admin" }, field: "roles" },
      { method: "POST", path: "/users", body: { ...okUser, roles: [null] }, field: "roles.0" },
      { method: "POST", path: "/users", body: { ...okUser, id: "chosen" }, field: "id" },
      { method: "POST", path: "/users", body: { ...okUser, disabled_at: null }, field: "disabled_at" },
      { method: "POST", path: "/users", body: { email: okUser.email }, field: "password" },
      // PUT /users/{id}/roles and /password
      { method: "PUT", path: `/users/${ids.user}/roles`, body: { roles: "admin" }, field: "roles" },
      { method: "PUT", path: `/users/${ids.user}/roles`, body: { roles: [["admin"]] }, field: "roles.0" },
      { method: "PUT", path: `/users/${ids.user}/roles`, body: { roles: ["a"], email: "x@example.test" }, field: "email" },
      { method: "PUT", path: `/users/${ids.user}/roles`, body: {}, field: "roles" },
      { method: "PUT", path: `/users/${ids.user}/password`, body: { password: { toString: "x" } }, field: "password" },
      { method: "PUT", path: `/users/${ids.user}/password`, body: { password: "another passphrase here", old_password: "x" }, field: "old_password" },
      { method: "PUT", path: `/users/${ids.user}/password`, body: {}, field: "password" },
    ];
    for (const c of cases) {
      const res = await adminCall(issuer, writer, c.method, c.path, c.body);
      expectBadField(res, c.field, `${c.method} ${c.path} ${JSON.stringify(c.body)}`);
    }
    // PATCH with nothing to change
    const empty = await adminCall(issuer, writer, "PATCH", `/clients/${ids.client}`, {});
    expectErrorShape(empty, "PATCH with {}");
    expect(empty.statusCode).toBe(400);
    expect(await snapshot(issuer)).toBe(before);
  });

  it("5 KB strings in bounded members are 400 naming the member, and nothing is written", async () => {
    const before = await snapshot(issuer);
    const s5k = "a".repeat(5 * KB);
    const cases: Array<{ method: Method; path: string; body: unknown; field: string }> = [
      { method: "POST", path: "/clients", body: { name: s5k, type: "confidential", grant_types: ["client_credentials"] }, field: "name" },
      { method: "POST", path: "/clients", body: { name: "x", type: "confidential", grant_types: ["client_credentials"], scopes: [s5k] }, field: "scopes.0" },
      { method: "POST", path: "/clients", body: { name: "x", type: "confidential", grant_types: ["client_credentials"], audiences: [s5k] }, field: "audiences.0" },
      { method: "PATCH", path: `/clients/${ids.client}`, body: { name: s5k }, field: "name" },
      { method: "PATCH", path: `/clients/${ids.client}`, body: { resources: [s5k] }, field: "resources.0" },
      { method: "POST", path: "/users", body: { email: `${s5k}@example.test`, password: "correct horse battery staple" }, field: "email" },
      { method: "POST", path: "/users", body: { email: "five-k@example.test", password: s5k }, field: "password" },
      { method: "PUT", path: `/users/${ids.user}/roles`, body: { roles: [s5k] }, field: "roles.0" },
      { method: "PUT", path: `/users/${ids.user}/password`, body: { password: s5k }, field: "password" },
    ];
    for (const c of cases) {
      const res = await adminCall(issuer, writer, c.method, c.path, c.body);
      expectBadField(res, c.field, `${c.method} ${c.path} with a 5 KB string`);
    }
    // 101 list members (the limit is 100)
    const many = Array.from({ length: 101 }, (_, i) => `r${i}`);
    expectBadField(await adminCall(issuer, writer, "PUT", `/users/${ids.user}/roles`, { roles: many }), "roles", "PUT roles with 101 members");
    expect(await snapshot(issuer)).toBe(before);
  });

  it("a 400 caused by a bad value names its member in `field`", async () => {
    const before = await snapshot(issuer);
    const ok = { name: "x", type: "confidential", grant_types: ["client_credentials"] };
    expectBadField(await adminCall(issuer, writer, "POST", "/clients", { ...ok, grant_types: ["implicit"] }), "grant_types", "grant_types implicit");
    expectBadField(await adminCall(issuer, writer, "POST", "/clients", { ...ok, grant_types: [] }), "grant_types", "grant_types []");
    expectBadField(await adminCall(issuer, writer, "POST", "/clients", { ...ok, type: "public" }), "grant_types", "public client_credentials client");
    expectBadField(await adminCall(issuer, writer, "POST", "/clients", { ...ok, name: "   " }), "name", "blank name");
    expectBadField(await adminCall(issuer, writer, "POST", "/clients", { ...ok, name: "a\u0007b" }), "name", "control character in name");
    expectBadField(await adminCall(issuer, writer, "POST", "/clients", { ...ok, scopes: ["has space"] }), "scopes", "scope with a space");
    expectBadField(await adminCall(issuer, writer, "POST", "/clients", { ...ok, audiences: ["é"] }), "audiences", "non-ASCII audience");
    expectBadField(await adminCall(issuer, writer, "PATCH", `/clients/${ids.client}`, { access_token_ttl: -5 }), "access_token_ttl", "ttl -5");
    expectBadField(await adminCall(issuer, writer, "PATCH", `/clients/${ids.client}`, { access_token_ttl: 0 }), "access_token_ttl", "ttl 0");
    expectBadField(await adminCall(issuer, writer, "PATCH", `/clients/${ids.client}`, { refresh_token_ttl: 366 * 86400 + 1 }), "refresh_token_ttl", "ttl over a year");
    expectBadField(await adminCall(issuer, writer, "PATCH", `/clients/${ids.client}`, { grant_types: ["implicit"] }), "grant_types", "PATCH grant_types implicit");
    expectBadField(await adminCall(issuer, writer, "POST", "/users", { email: "short-pw@example.test", password: "short" }), "password", "short password");
    expectBadField(await adminCall(issuer, writer, "POST", "/users", { email: "not-an-email", password: "correct horse battery staple" }), "email", "not-an-email");
    expectBadField(await adminCall(issuer, writer, "POST", "/users", { email: "", password: "correct horse battery staple" }), "email", "empty email");
    expectBadField(await adminCall(issuer, writer, "POST", "/users", { email: "roles@example.test", password: "correct horse battery staple", roles: ["has space"] }), "roles", "role with a space");
    expectBadField(await adminCall(issuer, writer, "PUT", `/users/${ids.user}/roles`, { roles: ["a b"] }), "roles", "PUT role with a space");
    expectBadField(await adminCall(issuer, writer, "PUT", `/users/${ids.user}/password`, { password: "short" }), "password", "PUT short password");
    expect(await snapshot(issuer)).toBe(before);
  });

  it("path ids with odd characters are a 4xx at every route with an id (400 naming it when it is not a visible-ASCII id), and nothing is written", async () => {
    const before = await snapshot(issuer);
    const malformed = [
      "a%2Fb", // an encoded slash
      "%2F..%2F..%2Fkeys",
      "%00",
      "a%00b",
      encodeURIComponent("ünïcødé"),
      encodeURIComponent("🔑"),
      "a%20b",
      "%09",
      "%7F",
    ];
    const unknown = ["x".repeat(300), "..", "%2E%2E", "%2e", "nonexistent", "'%3B--", "%22%3E%3Cscript%3E", "$%7Bjndi%3Aldap%3A%2F%2Fx%7D", "*", "%25"];
    for (const route of ADMIN_ROUTES.filter(hasPlaceholder)) {
      for (const id of malformed) {
        const what = `${route.method} ${pathWithRawId(route, id).slice(0, 120)}`;
        const res = await raw(issuer, writer, route.method, pathWithRawId(route, id), route.body !== undefined ? { headers: { "content-type": "application/json" }, payload: JSON.stringify(route.body) } : {});
        expectBadField(res, paramNameOf(route), what);
      }
      for (const id of unknown) {
        const what = `${route.method} ${pathWithRawId(route, id)}`;
        const res = await raw(issuer, writer, route.method, pathWithRawId(route, id), route.body !== undefined ? { headers: { "content-type": "application/json" }, payload: JSON.stringify(route.body) } : {});
        expectErrorShape(res, what);
      }
    }
    expect(await snapshot(issuer)).toBe(before);
  });

  it("garbage query parameters on the lists are 400 naming the parameter", async () => {
    const cases: Array<[string, string]> = [
      ["limit=0", "limit"],
      ["limit=-1", "limit"],
      ["limit=abc", "limit"],
      ["limit=999999", "limit"],
      ["limit=9999", "limit"],
      ["limit=201", "limit"],
      ["limit=1.5", "limit"],
      ["limit=", "limit"],
      ["limit=%201", "limit"],
      ["limit=1&limit=2", "limit"],
      ["cursor=garbage", "cursor"],
      ["cursor=!!!", "cursor"],
      ["cursor=", "cursor"],
      [`cursor=${"A".repeat(2000)}`, "cursor"],
      [`cursor=${b64url("[]")}`, "cursor"],
      [`cursor=${b64url("null")}`, "cursor"],
      [`cursor=${b64url('"k"')}`, "cursor"],
      [`cursor=${b64url(JSON.stringify({ k: "keys", id: "x" }))}`, "cursor"],
      ["cursor=a&cursor=b", "cursor"],
      ["unknown=1", "unknown"],
      ["__proto__=1", "__proto__"],
    ];
    for (const list of listRoutes) {
      for (const [query, field] of cases) {
        const res = await adminCall(issuer, writer, "GET", `${list}?${query}`);
        expectBadField(res, field, `GET ${list}?${query.slice(0, 80)}`);
      }
    }
    // A well-formed cursor of another list is not one for this list.
    const ofClients = encodeCursor("clients", { id: "c_x" });
    const ofUsers = encodeCursor("users", { email: "a@example.test" });
    const ofAudit = encodeCursor("audit", { at: new Date().toISOString(), id: "x" });
    expectBadField(await adminCall(issuer, writer, "GET", `/clients?cursor=${ofUsers}`), "cursor", "users cursor on /clients");
    expectBadField(await adminCall(issuer, writer, "GET", `/users?cursor=${ofClients}`), "cursor", "clients cursor on /users");
    expectBadField(await adminCall(issuer, writer, "GET", `/audit-events?cursor=${ofClients}`), "cursor", "clients cursor on /audit-events");
    expectBadField(await adminCall(issuer, writer, "GET", `/clients?cursor=${ofAudit}`), "cursor", "audit cursor on /clients");
    // The right kind, wrong contents.
    expectBadField(await adminCall(issuer, writer, "GET", `/clients?cursor=${b64url(JSON.stringify({ k: "clients" }))}`), "cursor", "clients cursor without id");
    expectBadField(await adminCall(issuer, writer, "GET", `/clients?cursor=${b64url(JSON.stringify({ k: "clients", id: 5 }))}`), "cursor", "clients cursor with a numeric id");
    expectBadField(await adminCall(issuer, writer, "GET", `/users?cursor=${b64url(JSON.stringify({ k: "users", email: "x".repeat(600) }))}`), "cursor", "users cursor with a long email");
    expectBadField(await adminCall(issuer, writer, "GET", `/audit-events?cursor=${encodeCursor("audit", { at: "not-a-date", id: "x" })}`), "cursor", "audit cursor with a bad date");

    // The audit list's own filters.
    const audit: Array<[string, string]> = [
      ["from=not-a-date", "from"],
      ["from=2026-13-45T00:00:00Z", "from"],
      ["from=2026-01-01", "from"],
      ["from=1767225600", "from"],
      [`from=${"9".repeat(65)}`, "from"],
      ["to=yesterday", "to"],
      ["to=2026-01-01T25:61:61Z", "to"],
      ["type=", "type"],
      [`type=${"t".repeat(201)}`, "type"],
      ["user_id=", "user_id"],
      [`client_id=${"c".repeat(201)}`, "client_id"],
      ["from=a&from=b", "from"],
    ];
    for (const [query, field] of audit) {
      expectBadField(await adminCall(issuer, writer, "GET", `/audit-events?${query}`), field, `GET /audit-events?${query.slice(0, 80)}`);
    }
    expectBadField(await adminCall(issuer, writer, "GET", `/users?email=${"e".repeat(255)}`), "email", "email filter of 255 characters");
    // NFKC makes U+FDFA 18 characters: 15 of them are 270 once normalized.
    expectBadField(await adminCall(issuer, writer, "GET", `/users?email=${encodeURIComponent("\uFDFA".repeat(15))}`), "email", "email filter that grows under NFKC");
  });

  // Found by this file (fixed since): the audit filter accepts a date-time that does not exist (February 30th): JavaScript's
  // Date rolls it over to March 2nd and the request is answered 200 instead of 400 field "from".
  it("an impossible calendar date in the audit filter is 400 naming it", async () => {
    expectBadField(await adminCall(issuer, writer, "GET", "/audit-events?from=2026-02-30T00:00:00Z"), "from", "from=2026-02-30T00:00:00Z");
  });

  /** The requests (of `urls`, GETs) that are not a 2xx or a 4xx in the error shape, with the error the issuer logged. */
  async function unacceptable(urls: Array<string | { method: Method; url: string; body: unknown }>): Promise<string[]> {
    const failures: string[] = [];
    for (const request of urls) {
      const { method, url, body } = typeof request === "string" ? { method: "GET" as Method, url: request, body: undefined } : request;
      const logged = issuer.logs.lines.length;
      const res = await adminCall(issuer, writer, method, url, body);
      if (acceptableOutcome(res)) continue;
      const err = issuer.logs
        .parsed()
        .slice(logged)
        .map((l) => l.err as { type?: string; code?: string; message?: string } | undefined)
        .filter((e) => e !== undefined)
        .map((e) => [e.type, e.code, e.message].filter(Boolean).join(" "))
        .find(Boolean);
      failures.push(`${method} /admin/v1${url}${body !== undefined ? ` ${JSON.stringify(body).slice(0, 120)}` : ""} -> ${res.statusCode} ${res.body.slice(0, 200)}${err ? ` (logged: ${err.slice(-400)})` : ""}`);
    }
    return failures;
  }

  it("odd but well-formed filter values (quotes, LIKE wildcards, unicode, date extremes) are a 2xx or a 4xx, never a 5xx", async () => {
    const values = ["%25", "_", "%5C", "'%20OR%201%3D1--", "%22", encodeURIComponent("ünï"), encodeURIComponent("🔑"), "%E2%80%AE", "%EF%BF%BF", "%ED%A0%80", "%FF"];
    const urls = values.flatMap((v) => [`/users?email=${v}`, `/audit-events?type=${v}`, `/audit-events?user_id=${v}`, `/audit-events?client_id=${v}`]);
    // The extremes of the dates the filters accept (4-digit years, any offset); year 0000: see the test below.
    for (const at of ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z", "2026-01-01T00:00:00+23:59", "2026-01-01T00:00:00-99:99"]) {
      urls.push(`/audit-events?from=${encodeURIComponent(at)}`, `/audit-events?to=${encodeURIComponent(at)}`);
    }
    expect(await unacceptable(urls)).toEqual([]);
  });

  // Found by this file (a 500 on Postgres until the admin functions refused such values): a NUL character in a list filter reaches Postgres, which refuses it in a
  // text parameter ("invalid byte sequence for encoding UTF8: 0x00"): 500 server_error instead of
  // a 400 naming the filter (or an empty list). SQLite answers 200.
  it("a NUL character in a list filter (email, type, user_id, client_id) is a 2xx or a 4xx, never a 5xx", async () => {
    const urls = ["%00", "a%00b"].flatMap((v) => [`/users?email=${v}`, `/audit-events?type=${v}`, `/audit-events?user_id=${v}`, `/audit-events?client_id=${v}`]);
    expect(await unacceptable(urls)).toEqual([]);
  });

  // Found by this file (a 500 on Postgres until the admin functions refused such values): year 0000 passes the audit filter's RFC 3339 check and JavaScript's Date,
  // but Postgres refuses it ("date/time field value out of range"): 500 server_error instead of
  // 400 naming `from` / `to`. SQLite answers 200.
  it("an audit filter date in year 0000 is a 2xx or a 4xx, never a 5xx", async () => {
    expect(await unacceptable(["/audit-events?from=0000-01-01T00%3A00%3A00Z", "/audit-events?to=0000-01-01T00%3A00%3A00Z"])).toEqual([]);
  });

  /** GET of the list a cursor belongs to, with that cursor. */
  const cursorUrl = (c: string) =>
    `/${({ clients: "clients", users: "users", audit: "audit-events" } as Record<string, string>)[(JSON.parse(Buffer.from(c, "base64url").toString()) as { k: string }).k]}?cursor=${c}`;

  it("cursors of the right kind whose position is odd (far away, at the length limit, unicode) are a 2xx or a 4xx, never a 5xx", async () => {
    const cursors = [
      encodeCursor("clients", { id: "x".repeat(512) }),
      encodeCursor("clients", { id: "\uFFFF" }),
      encodeCursor("users", { email: "é".repeat(512) }),
      encodeCursor("users", { email: "🔑" }),
      encodeCursor("audit", { at: "9999-12-31T23:59:59.999Z", id: "x" }),
      encodeCursor("audit", { at: "1970-01-01T00:00:00.000Z", id: "" }),
    ];
    expect(await unacceptable(cursors.map(cursorUrl))).toEqual([]);
  });

  // Found by this file (a 500 on Postgres until the admin functions refused such values): a cursor whose decoded position holds a NUL character ("\u0000" in its
  // JSON) passes decodeCursor and reaches Postgres: 500 server_error instead of 400 field "cursor".
  it("a cursor whose position holds a NUL character is a 4xx (or 2xx), never a 5xx", async () => {
    const cursors = [
      encodeCursor("clients", { id: "\u0000" }),
      encodeCursor("clients", { id: "zzzz\u0000" }),
      encodeCursor("users", { email: "\u0000" }),
      encodeCursor("audit", { at: new Date(0).toISOString(), id: "\u0000" }),
    ];
    expect(await unacceptable(cursors.map(cursorUrl))).toEqual([]);
  });

  // Found by this file (fixed since): an audit cursor whose `at` is a valid JavaScript date far outside 4-digit years (the
  // extremes Date can hold) passes decodeCursor's check and reaches the database: 500 server_error
  // instead of 400 field "cursor".
  it("an audit cursor at the extremes of the Date range is a 4xx (400 naming cursor), not a 5xx", async () => {
    const urls = [
      `/audit-events?cursor=${encodeCursor("audit", { at: "+275760-09-13T00:00:00.000Z", id: "x" })}`,
      `/audit-events?cursor=${encodeCursor("audit", { at: "-271821-04-20T00:00:00.000Z", id: "x" })}`,
      `/audit-events?cursor=${encodeCursor("audit", { at: "+010000-01-01T00:00:00.000Z", id: "x" })}`,
    ];
    expect(await unacceptable(urls)).toEqual([]);
  });

  // Found by this file (fixed since): a cursor of the right kind whose position holds a lone UTF-16 surrogate (JSON "\ud800",
  // which JSON.parse accepts) is passed to the database as is: 500 server_error instead of 400 field "cursor".
  it("a cursor whose position is a lone UTF-16 surrogate is a 4xx (400 naming cursor), not a 5xx", async () => {
    const urls = [
      `/users?cursor=${encodeCursor("users", { email: "\uD800" })}`,
      `/clients?cursor=${encodeCursor("clients", { id: "\uDFFF" })}`,
      `/audit-events?cursor=${encodeCursor("audit", { at: new Date(0).toISOString(), id: "\uD800" })}`,
    ];
    expect(await unacceptable(urls)).toEqual([]);
  });

  it("NUL characters and lone UTF-16 surrogates in body members are a 2xx or a 4xx, never a 5xx", async () => {
    const odd = ["a\u0000b", "a\uD800b", "\uDFFF"];
    // A client name with a lone surrogate: see the test below.
    const requests = odd.flatMap((v) => [
      { method: "POST" as Method, url: "/clients", body: { name: v.replace(/[\uD800-\uDFFF]/g, ""), type: "confidential", grant_types: ["client_credentials"] } },
      { method: "POST" as Method, url: "/clients", body: { name: "x", type: "confidential", grant_types: [v] } },
      { method: "POST" as Method, url: "/clients", body: { name: "x", type: "confidential", grant_types: ["client_credentials"], scopes: [v] } },
      { method: "PATCH" as Method, url: `/clients/${ids.client}`, body: { audiences: [v] } },
      { method: "POST" as Method, url: "/users", body: { email: `${v}@example.test`, password: "correct horse battery staple" } },
      { method: "PUT" as Method, url: `/users/${ids.user}/roles`, body: { roles: [v] } },
    ]);
    expect(await unacceptable(requests)).toEqual([]);
  });

  // Found by this file (fixed since): a client name holding a lone UTF-16 surrogate (JSON "\ud800", which JSON.parse accepts)
  // passes the schema and valid.clientName (it refuses only control characters) and fails in the
  // database: POST /admin/v1/clients {"name":"a\ud800b","type":"confidential","grant_types":["client_credentials"]}
  // -> 500 server_error (PrismaClientUnknownRequestError in db.client.create) instead of 400 field "name".
  it("a client name with a lone UTF-16 surrogate is 400 naming name, not a 5xx, and nothing is written", async () => {
    const before = await snapshot(issuer);
    const outcomes: string[] = [];
    for (const [method, url, body] of [
      ["POST", "/clients", { name: "a\uD800b", type: "confidential", grant_types: ["client_credentials"] }],
      ["POST", "/clients", { name: "\uDFFF", type: "public", grant_types: ["password"] }],
      ["PATCH", `/clients/${ids.client}`, { name: "b\uDBFF" }],
    ] as Array<[Method, string, unknown]>) {
      const res = await adminCall(issuer, writer, method, url, body);
      outcomes.push(`${method} ${url} -> ${res.statusCode} ${(res.json() as { field?: string }).field ?? "-"}`);
    }
    expect(outcomes).toEqual([`POST /clients -> 400 name`, `POST /clients -> 400 name`, `PATCH /clients/${ids.client} -> 400 name`]);
    expect(await snapshot(issuer)).toBe(before);
  });

  it("property: arbitrary JSON bodies at every route with a body are a 2xx or a 4xx in the error shape, never a 5xx", async () => {
    // Keys the schemas know, and some they do not, so that many bodies get past the type checks.
    const knownKeys = ["name", "type", "grant_types", "scopes", "audiences", "resources", "access_token_ttl", "refresh_token_ttl", "email", "password", "roles", "__proto__", "constructor", "x"];
    const body = fc.oneof(
      fc.jsonValue(),
      fc.dictionary(fc.constantFrom(...knownKeys), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }),
      fc.dictionary(fc.constantFrom(...knownKeys), fc.oneof(fc.string({ unit: "binary", maxLength: 40 }), fc.array(fc.string({ unit: "binary", maxLength: 20 }), { maxLength: 3 }), fc.integer(), fc.constant(null)), { maxKeys: 4 }),
    );
    const route = fc.constantFrom(...bodyRoutes);
    await fc.assert(
      fc.asyncProperty(route, body, async (r, b) => {
        const res = await adminCall(issuer, writer, r.method, pathOf(r, ids), JSON.stringify(b) ?? "null");
        if (!acceptableOutcome(res)) throw new Error(`${label(r)} ${JSON.stringify(b).slice(0, 300)} -> ${res.statusCode} ${res.body.slice(0, 300)}`);
      }),
      { numRuns: RUNS * 5 },
    );
  });

  it("property: arbitrary strings as cursor, email, type, from and limit are a 2xx or a 4xx in the error shape, never a 5xx", async () => {
    // NUL characters included: they were a 500 on Postgres (the tests above).
    const str = (unit: "grapheme-ascii" | "binary" | "binary-ascii", maxLength: number) => fc.string({ unit, maxLength });
    const value = fc.oneof(
      str("grapheme-ascii", 60),
      str("binary", 60),
      str("binary-ascii", 60),
      fc.base64String({ maxLength: 80 }).map((t) => t.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "")),
      fc.jsonValue({ maxDepth: 2 }).map((j) => b64url(JSON.stringify(j) ?? "null")),
      fc
        .record(
          { k: fc.constantFrom("clients", "users", "audit"), id: str("binary", 20), email: str("binary", 20), at: fc.oneof(str("grapheme-ascii", 30), fc.date({ noInvalidDate: true, min: new Date("0001-01-01T00:00:00Z"), max: new Date("9999-12-31T23:59:59Z") }).map((d) => d.toISOString())) },
          { requiredKeys: ["k"] },
        )
        .map((o) => b64url(JSON.stringify(o))),
    );
    const query = fc.constantFrom(
      ["/clients", "cursor"],
      ["/users", "cursor"],
      ["/users", "email"],
      ["/audit-events", "cursor"],
      ["/audit-events", "type"],
      ["/audit-events", "user_id"],
      ["/audit-events", "from"],
      ["/clients", "limit"],
    );
    await fc.assert(
      fc.asyncProperty(query, value, async ([list, param], v) => {
        const url = `${list}?${param}=${encodeURIComponent(v)}`;
        const res = await adminCall(issuer, writer, "GET", url);
        if (!acceptableOutcome(res)) throw new Error(`GET ${url.slice(0, 300)} -> ${res.statusCode} ${res.body.slice(0, 300)}`);
      }),
      { numRuns: RUNS * 5 },
    );
  });

  it("property: arbitrary path ids are a 2xx or a 4xx in the error shape at the read routes, never a 5xx", async () => {
    const id = fc.oneof(fc.string({ minLength: 1, maxLength: 60 }), fc.string({ unit: "binary", minLength: 1, maxLength: 60 }));
    const route = fc.constantFrom(...readRoutes.filter(hasPlaceholder));
    await fc.assert(
      fc.asyncProperty(route, id, async (r, v) => {
        const url = pathWithRawId(r, encodeURIComponent(v));
        const res = await adminCall(issuer, writer, "GET", url);
        if (!acceptableOutcome(res)) throw new Error(`GET ${url.slice(0, 300)} -> ${res.statusCode} ${res.body.slice(0, 300)}`);
      }),
      { numRuns: RUNS },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Tokens the admin API must refuse
// ---------------------------------------------------------------------------------------------

describeEachDb("admin API: refused tokens", (flavor: Flavor) => {
  let issuer: TestIssuer;
  let ops: AdminClient;
  let writer: string;
  let ids: Ids;
  let user: { userId: string; sessionId: string; accessToken: string };

  beforeAll(async () => {
    // No client cache: a disabled client is disabled for the next request on this instance.
    issuer = await startIssuer(flavor, { env: { CLIENT_CACHE_TTL: "0" } });
    ops = await adminClient(issuer, ["admin:write", "admin:read"], "ops");
    writer = await clientToken(issuer, ops);
    const target = await adminClient(issuer, ["read"], "target");
    user = await userWithSession(issuer);
    ids = { client: target.id, user: user.userId, session: user.sessionId, kid: issuer.services.keys.signer().kid };
  });
  afterAll(async () => {
    await issuer?.close();
  });

  /** Calls every route with `authorization` (a valid body where it takes one); each must be a 401. */
  async function expectRefusedEverywhere(authorization: string | null, what: string, presented: boolean): Promise<void> {
    const before = await snapshot(issuer);
    for (const route of ADMIN_ROUTES) {
      const res = await raw(issuer, null, route.method, pathOf(route, ids), {
        headers: { ...(authorization !== null ? { authorization } : {}), ...(route.body !== undefined ? { "content-type": "application/json" } : {}) },
        ...(route.body !== undefined ? { payload: JSON.stringify(route.body) } : {}),
      });
      expectInvalidToken(res, `${what}: ${label(route)}`, presented);
    }
    expect(await snapshot(issuer), `${what}: something was written`).toBe(before);
  }

  it("the admin token works at every read route (control)", async () => {
    for (const route of readRoutes) {
      const res = await adminCall(issuer, writer, route.method, pathOf(route, ids));
      expect(res.statusCode, shown(label(route), res)).toBe(200);
    }
  });

  it("no Authorization header: 401 with a bare Bearer challenge at every route", async () => {
    await expectRefusedEverywhere(null, "no token", false);
  });

  it("another scheme (Basic, Digest, Token) counts as no token: 401 with a bare Bearer challenge at every route", async () => {
    await expectRefusedEverywhere("Basic xyz", "Basic", false);
    await expectRefusedEverywhere(`Basic ${Buffer.from(`${ops.id}:${ops.secret}`).toString("base64")}`, "Basic with the admin client's real credentials", false);
    await expectRefusedEverywhere(`Token ${writer}`, "Token scheme with a valid token", false);
  });

  it("garbage and malformed Bearer credentials: 401 invalid_token at every route", async () => {
    await expectRefusedEverywhere("Bearer garbage", "Bearer garbage", true);
    await expectRefusedEverywhere("Bearer abc.def.ghi", "Bearer abc.def.ghi", true);
    await expectRefusedEverywhere("Bearer", "Bearer without a token", true);
    await expectRefusedEverywhere(`Bearer ${writer} extra`, "Bearer with two tokens", true);
    await expectRefusedEverywhere(`Bearer ${writer.slice(0, -4)}AAAA`, "a valid token with its signature changed", true);
  });

  it("a user's access token from the password grant: 401 invalid_token at every route", async () => {
    await expectRefusedEverywhere(`Bearer ${user.accessToken}`, "user's access token", true);
  });

  it("a user's token meant for the admin audience, with a session: 401 invalid_token at every route", async () => {
    // Genuinely issued and signed, live session, admin audience and scope: still a user, not an operator's automation.
    const { token } = await issuer.services.accessTokens.issue({
      subject: user.userId,
      clientId: "web",
      scope: "admin:write admin:read",
      sessionId: user.sessionId,
      audience: issuer.config.adminApiAudience,
    });
    await expectRefusedEverywhere(`Bearer ${token}`, "user token for the admin audience", true);
    // And a token whose sub is not its client_id (a user without a session).
    const noSession = await issuer.services.accessTokens.issue({ subject: user.userId, clientId: ops.id, scope: "admin:write", audience: issuer.config.adminApiAudience });
    await expectRefusedEverywhere(`Bearer ${noSession.token}`, "sub is not client_id", true);
  });

  it("a client_credentials token for another audience: 401 invalid_token at every route", async () => {
    const apiToken = await clientToken(issuer, ops, { resource: issuer.config.accessTokenAudience });
    expect(decodeJwt(apiToken).aud).not.toContain(issuer.config.adminApiAudience);
    await expectRefusedEverywhere(`Bearer ${apiToken}`, "token for the api audience", true);
  });

  it("forged tokens (alg none, HS256 with the public key, attacker keys, tampered, wrong typ/iss): 401 invalid_token at every route", async () => {
    const signer = issuer.services.keys.signer();
    const epoch = Math.floor(issuer.clock.now().getTime() / 1000);
    const claims = (extra: JWTPayload = {}): JWTPayload => ({
      iss: issuer.config.issuer,
      sub: ops.id,
      client_id: ops.id,
      aud: issuer.config.adminApiAudience,
      scope: "admin:write admin:read",
      jti: `jti-${Math.random().toString(36).slice(2)}`,
      iat: epoch,
      exp: epoch + 600,
      ...extra,
    });

    // Control: the same claims signed with the issuer's real key are accepted, so the forgeries
    // below are refused for their forgery and not for their claims.
    const genuine = await signWithIssuerKey(issuer, claims());
    const control = await adminCall(issuer, genuine, "GET", "/clients");
    expect(control.statusCode, shown("control: admin claims with the issuer's key", control)).toBe(200);

    const published = (await publishedJwks(issuer)).keys.find((k) => k.kid === signer.kid) as JWK;
    const pem = await exportSPKI((await importJWK(published, published.alg)) as CryptoKey);
    const hs256 = (secret: string) =>
      new SignJWT(claims()).setProtectedHeader({ alg: "HS256", kid: signer.kid, typ: "at+jwt" }).sign(new TextEncoder().encode(secret));
    const attacker = await generateKeyPair("ES256", { extractable: true });
    const attackerJwk = { ...(await exportJWK(attacker.publicKey)), kid: "attacker-key", alg: "ES256", use: "sig" };
    const attackerSigned = (header: Record<string, unknown>) =>
      new SignJWT(claims()).setProtectedHeader({ alg: "ES256", typ: "at+jwt", kid: "attacker-key", ...header } as { alg: string }).sign(attacker.privateKey);
    // A genuine admin:read token, its scope edited after signing.
    const readOnly = await adminClient(issuer, ["admin:read"], "read-only-for-tamper");
    const readToken = await clientToken(issuer, readOnly);
    const [h, p, s] = readToken.split(".") as [string, string, string];
    const tampered = `${h}.${b64url(JSON.stringify({ ...(JSON.parse(Buffer.from(p, "base64url").toString("utf8")) as object), scope: "admin:write admin:read" }))}.${s}`;

    const forged: Array<[string, string]> = [
      ['alg "none"', `${b64url(JSON.stringify({ alg: "none", typ: "at+jwt", kid: signer.kid }))}.${b64url(JSON.stringify(claims()))}.`],
      ['alg "none" without kid', `${b64url(JSON.stringify({ alg: "none", typ: "at+jwt" }))}.${b64url(JSON.stringify(claims()))}.`],
      ["HS256 keyed with the public JWK", await hs256(JSON.stringify(published))],
      ["HS256 keyed with the public PEM", await hs256(pem)],
      ["attacker key, issuer's kid", await attackerSigned({ kid: signer.kid })],
      ["attacker key in an embedded jwk", await attackerSigned({ jwk: attackerJwk })],
      ["attacker key via jku", await attackerSigned({ jku: "https://evil.test/jwks.json" })],
      ["tampered scope", tampered],
      ['typ "JWT" (issuer key)', await signWithIssuerKey(issuer, claims(), { typ: "JWT" })],
      ["wrong iss (issuer key)", await signWithIssuerKey(issuer, claims({ iss: "https://evil.test" }))],
      ["no exp (issuer key)", await signWithIssuerKey(issuer, claims({ exp: undefined }))],
      ["unknown client (issuer key)", await signWithIssuerKey(issuer, claims({ sub: "c_nobody", client_id: "c_nobody" }))],
    ];
    for (const [name, token] of forged) await expectRefusedEverywhere(`Bearer ${token}`, name, true);
  });

  it("an expired admin token: 401 invalid_token at every route", async () => {
    const token = await clientToken(issuer, ops);
    const ttl = (decodeJwt(token).exp ?? 0) - (decodeJwt(token).iat ?? 0);
    expect(ttl).toBeGreaterThan(0);
    const saved = issuer.clock.now();
    try {
      // Just before expiry it works...
      issuer.clock.advance(ttl - 5);
      const stillValid = await adminCall(issuer, token, "GET", "/clients");
      expect(stillValid.statusCode, shown("just before expiry", stillValid)).toBe(200);
      // ...and after it (beyond any leeway), it is refused everywhere.
      issuer.clock.advance(5 + 120);
      await expectRefusedEverywhere(`Bearer ${token}`, "expired admin token", true);
    } finally {
      issuer.clock.set(saved);
    }
  });

  it("an admin token of a client disabled since: 401 invalid_token at every route", async () => {
    const victim = await adminClient(issuer, ["admin:write", "admin:read"], "victim");
    const victimToken = await clientToken(issuer, victim);
    const ok = await adminCall(issuer, victimToken, "GET", "/clients");
    expect(ok.statusCode, shown("victim before disable", ok)).toBe(200);

    const disabled = await adminCall(issuer, writer, "POST", `/clients/${victim.id}/disable`);
    expect(disabled.statusCode, shown("disable", disabled)).toBe(200);
    expect((disabled.json() as { disabled_at: unknown }).disabled_at).toEqual(expect.any(String));

    await expectRefusedEverywhere(`Bearer ${victimToken}`, "token of a disabled client", true);
    // It cannot enable itself either.
    const selfEnable = await adminCall(issuer, victimToken, "POST", `/clients/${victim.id}/enable`);
    expectInvalidToken(selfEnable, "disabled client enabling itself", true);
    expect((await issuer.storage.db.client.findUnique({ where: { id: victim.id } }))?.disabledAt).not.toBeNull();
  });

  it("refusal comes before the body is read: no token with a 100 KB or malformed body is still 401", async () => {
    const before = await snapshot(issuer);
    for (const route of nonGetRoutes) {
      for (const payload of ["x".repeat(100 * KB), "{"]) {
        const res = await raw(issuer, null, route.method, pathOf(route, ids), { headers: { "content-type": "application/json" }, payload });
        expectInvalidToken(res, `${label(route)} no token, ${payload.length}-byte body`, false);
      }
    }
    expect(await snapshot(issuer)).toBe(before);
  });

  it("unknown routes under /admin/v1 are a 4xx in the error shape, with or without a token", async () => {
    for (const [method, path] of [
      ["GET", "/nope"],
      ["DELETE", "/clients"],
      ["PUT", "/clients"],
      ["GET", "/sessions"],
      ["POST", "/keys"],
      ["GET", "/clients/x/y/z"],
    ] as Array<[Method, string]>) {
      for (const token of [null, writer, "garbage"]) {
        const res = await adminCall(issuer, token, method, path);
        expectErrorShape(res, `${method} ${path} token ${token === null ? "none" : token.slice(0, 8)}`);
      }
    }
  });

  describe("a valid token without the scope the route needs", () => {
    it("admin:read at every write route: 403 insufficient_scope naming admin:write, and nothing is written", async () => {
      const reader = await adminClient(issuer, ["admin:read"], "reader");
      const readToken = await clientToken(issuer, reader);
      // Control: it reads.
      for (const route of readRoutes) {
        const res = await adminCall(issuer, readToken, route.method, pathOf(route, ids));
        expect(res.statusCode, shown(`admin:read on ${label(route)}`, res)).toBe(200);
      }
      const before = await snapshot(issuer);
      for (const route of writeRoutes) {
        const res = await adminCall(issuer, readToken, route.method, pathOf(route, ids), route.body);
        expectInsufficientScope(res, "admin:write", `admin:read on ${label(route)}`);
        // Even a malformed body: the scope is judged first.
        if (route.method !== "DELETE") {
          const bad = await raw(issuer, readToken, route.method, pathOf(route, ids), { headers: { "content-type": "application/json" }, payload: "{" });
          expectInsufficientScope(bad, "admin:write", `admin:read with a malformed body on ${label(route)}`);
        }
      }
      // Nor can it write to itself (grant itself admin:write).
      const escalate = await adminCall(issuer, readToken, "PATCH", `/clients/${reader.id}`, { scopes: ["admin:read", "admin:write"] });
      expectInsufficientScope(escalate, "admin:write", "admin:read granting itself admin:write");
      expect(await snapshot(issuer)).toBe(before);
    });

    it("a client with an unrelated scope ('read'): 403 at every read route (admin:read) and every write route (admin:write)", async () => {
      const other = await adminClient(issuer, ["read"], "unrelated");
      const token = await clientToken(issuer, other);
      expect(decodeJwt(token).scope).toBe("read");
      const before = await snapshot(issuer);
      for (const route of ADMIN_ROUTES) {
        const res = await adminCall(issuer, token, route.method, pathOf(route, ids), route.body);
        expectInsufficientScope(res, route.access === "read" ? "admin:read" : "admin:write", `scope read on ${label(route)}`);
      }
      expect(await snapshot(issuer)).toBe(before);
    });

    it("a client with no scope at all, and an admin:write client asking for a narrower token: 403 where the token lacks the scope", async () => {
      const bare = await adminClient(issuer, [], "bare");
      const bareToken = await clientToken(issuer, bare);
      const narrowed = await clientToken(issuer, ops, { scope: "admin:read" });
      expect(decodeJwt(narrowed).scope).toBe("admin:read");
      const before = await snapshot(issuer);
      for (const route of ADMIN_ROUTES) {
        const res = await adminCall(issuer, bareToken, route.method, pathOf(route, ids), route.body);
        expectInsufficientScope(res, route.access === "read" ? "admin:read" : "admin:write", `no scope on ${label(route)}`);
      }
      for (const route of writeRoutes) {
        const res = await adminCall(issuer, narrowed, route.method, pathOf(route, ids), route.body);
        expectInsufficientScope(res, "admin:write", `narrowed admin:read token on ${label(route)}`);
      }
      expect(await snapshot(issuer)).toBe(before);
    });
  });
});
