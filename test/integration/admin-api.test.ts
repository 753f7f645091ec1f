// The admin API (issue 10): each resource's happy path over HTTP, as an operator's automation
// uses it, with what users, clients and verifiers then see. Authorization basics here; every
// route's hostile input and refused tokens in test/security/admin-api-hostile.test.ts. On both
// databases, and across two instances on one database.
import { decodeJwt, decodeProtectedHeader } from "jose";
import type { LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adminCall, adminClient, clientToken, type AdminClient } from "../helpers/admin-api.ts";
import {
  describeEachDb,
  errorOf,
  form,
  login,
  passwordGrant,
  PASSWORD,
  refreshGrant,
  register,
  startInstances,
  startIssuer,
  statusOf,
  uniqueEmail,
  verifyAccessToken,
  type InstanceGroup,
  type TestIssuer,
  type TokenPair,
} from "../helpers/issuer.ts";

interface ClientJson {
  client_id: string;
  name: string;
  type: string;
  grant_types: string[];
  scopes: string[];
  audiences: string[];
  access_token_ttl: number | null;
  disabled_at: string | null;
  client_secret?: string;
}
interface UserJson {
  id: string;
  email: string;
  roles: string[];
  disabled_at: string | null;
}
interface EventJson {
  id: string;
  type: string;
  at: string;
  user_id: string | null;
  client_id: string | null;
  details: Record<string, unknown>;
}

const json = <T>(res: LightMyRequestResponse, status = 200): T => {
  expect(res.statusCode, res.body).toBe(status);
  return res.json() as T;
};

function clientCredentials(issuer: TestIssuer, id: string, secret: string, params: Record<string, string> = {}) {
  const body = form({ grant_type: "client_credentials", ...params });
  return issuer.app.inject({
    method: "POST",
    url: "/oauth/token",
    headers: { ...body.headers, authorization: `Basic ${Buffer.from(`${id}:${secret}`).toString("base64")}` },
    payload: body.payload,
  });
}

function introspect(issuer: TestIssuer, rs: { id: string; secret: string }, token: string) {
  const body = form({ token });
  return issuer.app.inject({
    method: "POST",
    url: "/oauth/introspect",
    headers: { ...body.headers, authorization: `Basic ${Buffer.from(`${rs.id}:${rs.secret}`).toString("base64")}` },
    payload: body.payload,
  });
}

describeEachDb("admin API", (flavor) => {
  let issuer: TestIssuer;
  let ops: AdminClient;
  let writeToken: string;
  let readToken: string;

  beforeAll(async () => {
    issuer = await startIssuer(flavor, { env: { CLIENT_CACHE_TTL: "5" } });
    ops = await adminClient(issuer, ["admin:read", "admin:write"]);
    writeToken = await clientToken(issuer, ops);
    readToken = await clientToken(issuer, ops, { scope: "admin:read" });
  });
  afterAll(async () => issuer?.close());

  const call = (method: "GET" | "POST" | "PATCH" | "PUT" | "DELETE", path: string, body?: unknown, token: string | null = writeToken) =>
    adminCall(issuer, token, method, path, body);

  describe("authorization", () => {
    it("no token: 401 with a bare Bearer challenge; a token without admin:*: 403; admin:read may read but not write", async () => {
      const none = await call("GET", "/clients", undefined, null);
      expect(errorOf(none)).toMatchObject({ status: 401, error: "invalid_token" });
      expect(none.headers["www-authenticate"]).toBe("Bearer");

      const plain = await adminClient(issuer, ["reports"], "not-an-operator");
      const plainToken = await clientToken(issuer, plain);
      const forbidden = await call("GET", "/clients", undefined, plainToken);
      expect(errorOf(forbidden)).toMatchObject({ status: 403, error: "insufficient_scope" });
      expect(forbidden.headers["www-authenticate"]).toMatch(/error="insufficient_scope".*scope="admin:read"/);

      const before = await issuer.storage.db.client.count();
      expect(json<{ clients: ClientJson[] }>(await call("GET", "/clients", undefined, readToken)).clients.length).toBeGreaterThan(0);
      const write = await call("POST", "/clients", { name: "sneaky", type: "confidential", grant_types: ["client_credentials"] }, readToken);
      expect(errorOf(write)).toMatchObject({ status: 403, error: "insufficient_scope" });
      expect(write.headers["www-authenticate"]).toMatch(/scope="admin:write"/);
      expect(await issuer.storage.db.client.count()).toBe(before);
    });

    it("taking admin:write away from a client ends its tokens' write access at once (admin:read still reads)", async () => {
      const other = await adminClient(issuer, ["admin:read", "admin:write"], "second-operator");
      const token = await clientToken(issuer, other);
      expect((await call("POST", `/clients/${other.id}/enable`, undefined, token)).statusCode).toBe(200);
      expect(json<ClientJson>(await call("PATCH", `/clients/${other.id}`, { scopes: ["admin:read"] })).scopes).toEqual(["admin:read"]);
      const refused = await call("POST", `/clients/${other.id}/enable`, undefined, token);
      expect(errorOf(refused)).toMatchObject({ status: 403, error: "insufficient_scope" });
      expect((await call("GET", "/clients?limit=1", undefined, token)).statusCode).toBe(200);
      // Taking the admin audience away ends the rest.
      expect((await call("PATCH", `/clients/${other.id}`, { audiences: [issuer.config.accessTokenAudience] })).statusCode).toBe(200);
      expect(errorOf(await call("GET", "/clients?limit=1", undefined, token))).toMatchObject({ status: 403, error: "insufficient_scope" });
    });

    it("a client may get admin scopes only if an operator allowed them: asking for admin:write without it is invalid_scope", async () => {
      const plain = await adminClient(issuer, ["reports"], "not-an-operator");
      const res = await clientCredentials(issuer, plain.id, plain.secret, { scope: "admin:write", resource: issuer.config.adminApiAudience });
      expect(errorOf(res)).toMatchObject({ status: 400, error: "invalid_scope" });
    });
  });

  describe("clients", () => {
    it("a client created over HTTP gets tokens at once; its secret is shown only in the create response and stored only as a hash", async () => {
      const created = json<ClientJson>(
        await call("POST", "/clients", { name: "billing", type: "confidential", grant_types: ["client_credentials"], scopes: ["read", "write"], audiences: ["billing-api"] }),
        201,
      );
      expect(created).toMatchObject({ name: "billing", type: "confidential", grant_types: ["client_credentials"], scopes: ["read", "write"], audiences: ["billing-api"], disabled_at: null });
      const secret = created.client_secret!;
      expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);

      const token = json<{ access_token: string; scope: string }>(await clientCredentials(issuer, created.client_id, secret, { scope: "read" }));
      expect(await verifyAccessToken(issuer, token.access_token, { audience: "billing-api" })).toMatchObject({ sub: created.client_id, client_id: created.client_id, scope: "read" });

      const read = json<ClientJson>(await call("GET", `/clients/${created.client_id}`, undefined, readToken));
      expect(read).not.toHaveProperty("client_secret");
      expect(read).toMatchObject({ client_id: created.client_id, name: "billing" });
      const row = await issuer.storage.db.client.findUniqueOrThrow({ where: { id: created.client_id } });
      expect(JSON.stringify(row)).not.toContain(secret);
      const events = json<{ events: EventJson[] }>(await call("GET", `/audit-events?client_id=${created.client_id}`, undefined, readToken)).events;
      expect(JSON.stringify(events)).not.toContain(secret);
      expect(issuer.logs.text).not.toContain(secret);
    });

    it("PATCH changes scopes, audiences and lifetimes; the client's next token request follows them", async () => {
      const c = json<ClientJson>(await call("POST", "/clients", { name: "svc", type: "confidential", grant_types: ["client_credentials"], scopes: ["read", "write"] }), 201);
      expect(json<{ scope: string }>(await clientCredentials(issuer, c.client_id, c.client_secret!, { scope: "write" })).scope).toBe("write");

      const patched = json<ClientJson>(await call("PATCH", `/clients/${c.client_id}`, { scopes: ["read"], audiences: ["ledger-api"], access_token_ttl: 120, name: "svc v2" }));
      expect(patched).toMatchObject({ name: "svc v2", scopes: ["read"], audiences: ["ledger-api"], access_token_ttl: 120, grant_types: ["client_credentials"] });

      // The instance that made the change forgets its cached copy at once.
      expect(errorOf(await clientCredentials(issuer, c.client_id, c.client_secret!, { scope: "write" }))).toMatchObject({ status: 400, error: "invalid_scope" });
      const t = json<{ access_token: string; expires_in: number }>(await clientCredentials(issuer, c.client_id, c.client_secret!));
      expect(t.expires_in).toBe(120);
      expect(decodeJwt(t.access_token)).toMatchObject({ aud: "ledger-api", scope: "read" });

      // ttl null goes back to the default.
      expect(json<ClientJson>(await call("PATCH", `/clients/${c.client_id}`, { access_token_ttl: null })).access_token_ttl).toBeNull();
    });

    it("disable stops the client's credentials and its access tokens; enable brings the credentials back", async () => {
      const rs = json<ClientJson>(await call("POST", "/clients", { name: "rs", type: "confidential", grant_types: ["client_credentials"], resources: ["svc-api"] }), 201);
      const c = json<ClientJson>(await call("POST", "/clients", { name: "svc", type: "confidential", grant_types: ["client_credentials"], scopes: ["read"], audiences: ["svc-api"] }), 201);
      const before = json<{ access_token: string }>(await clientCredentials(issuer, c.client_id, c.client_secret!));
      expect(json<{ active: boolean }>(await introspect(issuer, { id: rs.client_id, secret: rs.client_secret! }, before.access_token)).active).toBe(true);

      expect(json<ClientJson>(await call("POST", `/clients/${c.client_id}/disable`)).disabled_at).not.toBeNull();
      expect(errorOf(await clientCredentials(issuer, c.client_id, c.client_secret!))).toMatchObject({ status: 401, error: "invalid_client" });
      expect(json<{ active: boolean }>(await introspect(issuer, { id: rs.client_id, secret: rs.client_secret! }, before.access_token)).active).toBe(false);

      expect(json<ClientJson>(await call("POST", `/clients/${c.client_id}/enable`)).disabled_at).toBeNull();
      expect((await clientCredentials(issuer, c.client_id, c.client_secret!)).statusCode).toBe(200);
    });

    it("rotating the secret: the new one works at once, the old one no more; a public client has none (409)", async () => {
      const c = json<ClientJson>(await call("POST", "/clients", { name: "svc", type: "confidential", grant_types: ["client_credentials"] }), 201);
      const rotated = json<{ client_id: string; client_secret: string }>(await call("POST", `/clients/${c.client_id}/secret`));
      expect(rotated.client_id).toBe(c.client_id);
      expect(rotated.client_secret).not.toBe(c.client_secret);
      expect(errorOf(await clientCredentials(issuer, c.client_id, c.client_secret!))).toMatchObject({ status: 401, error: "invalid_client" });
      expect((await clientCredentials(issuer, c.client_id, rotated.client_secret)).statusCode).toBe(200);

      const pub = json<ClientJson>(await call("POST", "/clients", { name: "spa", type: "public", grant_types: ["password", "refresh_token"] }), 201);
      expect(pub).not.toHaveProperty("client_secret");
      expect(errorOf(await call("POST", `/clients/${pub.client_id}/secret`))).toMatchObject({ status: 409, error: "conflict" });
    });

    it("400 names the field at fault; 404 for an unknown client; 409 for the config-owned web client", async () => {
      const pubCc = await call("POST", "/clients", { name: "x", type: "public", grant_types: ["client_credentials"] });
      expect(pubCc.statusCode).toBe(400);
      expect(pubCc.json()).toMatchObject({ error: "invalid_request", field: "grant_types" });
      const unknownGrant = await call("POST", "/clients", { name: "x", type: "confidential", grant_types: ["implicit"] });
      expect(unknownGrant.json()).toMatchObject({ error: "invalid_request", field: "grant_types" });
      expect(unknownGrant.json().error_description).toContain("implicit");
      expect((await call("POST", "/clients", { name: "x", type: "confidential", grant_types: ["client_credentials"], scopes: ["bad\"scope"] })).json()).toMatchObject({ field: "scopes" });
      expect((await call("POST", "/clients", { type: "confidential", grant_types: ["client_credentials"] })).json()).toMatchObject({ error: "invalid_request", field: "name" });
      expect((await call("POST", "/clients", { name: "x", type: "confidential", grant_types: ["client_credentials"], colour: "red" })).json()).toMatchObject({ field: "colour" });

      for (const path of ["/clients/c_nope", "/clients/c_nope/disable", "/clients/c_nope/enable", "/clients/c_nope/secret"]) {
        const res = path.split("/").length === 3 ? await call("GET", path) : await call("POST", path);
        expect(errorOf(res), path).toMatchObject({ status: 404, error: "not_found" });
      }
      expect(errorOf(await call("PATCH", "/clients/c_nope", { name: "x" }))).toMatchObject({ status: 404, error: "not_found" });
      expect(errorOf(await call("PATCH", `/clients/${issuer.config.webClientId}`, { scopes: ["everything"] }))).toMatchObject({ status: 409, error: "conflict" });
    });

    it("lists every client once, page by page, with an opaque cursor", async () => {
      for (let i = 0; i < 3; i++) await call("POST", "/clients", { name: `paged-${i}`, type: "public", grant_types: ["password"] });
      const total = await issuer.storage.db.client.count();
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const page: { clients: ClientJson[]; next_cursor: string | null } = json(await call("GET", `/clients?limit=2${cursor ? `&cursor=${cursor}` : ""}`, undefined, readToken));
        expect(page.clients.length).toBeLessThanOrEqual(2);
        seen.push(...page.clients.map((c) => c.client_id));
        cursor = page.next_cursor;
        pages++;
      } while (cursor && pages < 100);
      expect(seen.length).toBe(total);
      expect(new Set(seen).size).toBe(total);
      expect(pages).toBe(Math.ceil(total / 2));
    });
  });

  describe("users and sessions", () => {
    it("creates a user who can log in at once; the same email again is 409; a weak password is 400 naming password", async () => {
      const email = uniqueEmail("admin-created");
      const user = json<UserJson>(await call("POST", "/users", { email, password: PASSWORD, roles: ["support"] }), 201);
      expect(user).toMatchObject({ email, roles: ["support"], disabled_at: null });
      const pair = json<TokenPair>(await passwordGrant(issuer.app, email, PASSWORD));
      expect((await verifyAccessToken(issuer, pair.access_token)).roles).toEqual(["support"]);
      expect(errorOf(await call("POST", "/users", { email: email.toUpperCase(), password: PASSWORD }))).toMatchObject({ status: 409, error: "conflict" });
      const weak = await call("POST", "/users", { email: uniqueEmail("weak"), password: "short" });
      expect(weak.statusCode).toBe(400);
      expect(weak.json()).toMatchObject({ error: "invalid_request", field: "password" });
      expect(json<UserJson>(await call("GET", `/users/${user.id}`, undefined, readToken))).toEqual(user);
      expect(issuer.logs.text).not.toContain(PASSWORD);
      expect(errorOf(await call("GET", "/users/no-such-user"))).toMatchObject({ status: 404, error: "not_found" });
    });

    it("lists users by email search, page by page; LIKE wildcards in the search are literal", async () => {
      const tag = `srch${Date.now()}`;
      const emails = [0, 1, 2, 3, 4].map((i) => `${tag}.${i}@example.test`);
      for (const e of emails) await register(issuer.app, e);
      await register(issuer.app, `${tag}_x@example.test`);
      const found: string[] = [];
      let cursor: string | null = null;
      do {
        const page: { users: UserJson[]; next_cursor: string | null } = json(
          await call("GET", `/users?email=${tag.toUpperCase()}.&limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`, undefined, readToken),
        );
        found.push(...page.users.map((u) => u.email));
        cursor = page.next_cursor;
      } while (cursor);
      expect(found).toEqual(emails);
      // "_" and "%" match themselves, not any character.
      expect(json<{ users: UserJson[] }>(await call("GET", `/users?email=${tag}_`, undefined, readToken)).users.map((u) => u.email)).toEqual([`${tag}_x@example.test`]);
      expect(json<{ users: UserJson[] }>(await call("GET", `/users?email=${tag}%25`, undefined, readToken)).users).toEqual([]);
      // A backslash too (an escape character in Postgres LIKE).
      await register(issuer.app, `${tag}\\y@example.test`);
      expect(json<{ users: UserJson[] }>(await call("GET", `/users?email=${encodeURIComponent(`${tag}\\y`)}`, undefined, readToken)).users.map((u) => u.email)).toEqual([`${tag}\\y@example.test`]);
    });

    it("roles set over the API go into access tokens from the next refresh", async () => {
      const pair = await login(issuer.app);
      expect(json<UserJson>(await call("PUT", `/users/${pair.userId}/roles`, { roles: ["ops", "billing"] })).roles).toEqual(["ops", "billing"]);
      const next = json<TokenPair>(await refreshGrant(issuer.app, pair.refresh_token));
      expect((await verifyAccessToken(issuer, next.access_token)).roles).toEqual(["ops", "billing"]);
    });

    it("a disabled user's tokens stop: refresh refused, access token flipped in the status list and inactive, no login; enable lets them log in again", async () => {
      const pair = await login(issuer.app);
      const second = json<TokenPair>(await passwordGrant(issuer.app, pair.email, PASSWORD));
      expect(await statusOf(issuer, pair.access_token)).toBe(0);

      const disabled = json<{ user: UserJson; sessions_revoked: number }>(await call("POST", `/users/${pair.userId}/disable`));
      expect(disabled.sessions_revoked).toBe(2);
      expect(disabled.user.disabled_at).not.toBeNull();

      expect(errorOf(await refreshGrant(issuer.app, pair.refresh_token))).toMatchObject({ status: 400, error: "invalid_grant" });
      expect(errorOf(await refreshGrant(issuer.app, second.refresh_token))).toMatchObject({ status: 400, error: "invalid_grant" });
      expect(await statusOf(issuer, pair.access_token)).toBe(1);
      expect(await statusOf(issuer, second.access_token)).toBe(1);
      const account = await issuer.app.inject({ method: "GET", url: "/account/sessions", headers: { authorization: `Bearer ${pair.access_token}` } });
      expect(errorOf(account)).toMatchObject({ status: 401, error: "invalid_token" });
      expect(errorOf(await passwordGrant(issuer.app, pair.email, PASSWORD))).toMatchObject({ status: 400, error: "invalid_grant" });

      expect(json<UserJson>(await call("POST", `/users/${pair.userId}/enable`)).disabled_at).toBeNull();
      expect((await passwordGrant(issuer.app, pair.email, PASSWORD)).statusCode).toBe(200);
      // The sessions ended by the disable stay ended.
      expect(errorOf(await refreshGrant(issuer.app, second.refresh_token))).toMatchObject({ status: 400, error: "invalid_grant" });
    });

    it("setting a password ends every session; the old password stops, the new one works", async () => {
      const pair = await login(issuer.app);
      const set = json<{ sessions_revoked: number }>(await call("PUT", `/users/${pair.userId}/password`, { password: "an operator-chosen passphrase" }));
      expect(set.sessions_revoked).toBe(1);
      expect(errorOf(await refreshGrant(issuer.app, pair.refresh_token))).toMatchObject({ status: 400, error: "invalid_grant" });
      expect(await statusOf(issuer, pair.access_token)).toBe(1);
      expect(errorOf(await passwordGrant(issuer.app, pair.email, PASSWORD))).toMatchObject({ status: 400, error: "invalid_grant" });
      expect((await passwordGrant(issuer.app, pair.email, "an operator-chosen passphrase")).statusCode).toBe(200);
      expect(issuer.logs.text).not.toContain("an operator-chosen passphrase");
    });

    it("a failure midway loses nothing: a password set whose sessions could not be ended is on record, and the retry ends them", async () => {
      const pair = await login(issuer.app);
      const revocation = issuer.services.sessions.revocation;
      const real = revocation.revokeAllOfUser.bind(revocation);
      revocation.revokeAllOfUser = async () => {
        revocation.revokeAllOfUser = real;
        throw new Error("database went away");
      };
      const failed = await call("PUT", `/users/${pair.userId}/password`, { password: "first attempt passphrase" });
      expect(errorOf(failed)).toMatchObject({ status: 500, error: "server_error" });
      const events = json<{ events: EventJson[] }>(await call("GET", `/audit-events?user_id=${pair.userId}&type=password.reset`)).events;
      expect(events).toHaveLength(1);
      const retry = json<{ sessions_revoked: number }>(await call("PUT", `/users/${pair.userId}/password`, { password: "second attempt passphrase" }));
      expect(retry.sessions_revoked).toBe(1);
      expect(errorOf(await refreshGrant(issuer.app, pair.refresh_token))).toMatchObject({ status: 400, error: "invalid_grant" });
    });

    it("concurrent disables of one user: one user.disabled event, every session ended, the first time kept", async () => {
      const pair = await login(issuer.app);
      const results = await Promise.all([0, 1, 2, 3].map(() => call("POST", `/users/${pair.userId}/disable`)));
      const bodies = results.map((r) => json<{ user: UserJson; sessions_revoked: number }>(r));
      expect(bodies.reduce((n, b) => n + b.sessions_revoked, 0)).toBe(1);
      expect(new Set(bodies.map((b) => b.user.disabled_at)).size).toBe(1);
      expect(json<{ events: EventJson[] }>(await call("GET", `/audit-events?user_id=${pair.userId}&type=user.disabled`)).events).toHaveLength(1);
      expect(errorOf(await refreshGrant(issuer.app, pair.refresh_token))).toMatchObject({ status: 400, error: "invalid_grant" });
    });

    it("lists a user's live sessions, revokes one (the other keeps working), then all", async () => {
      const user = await register(issuer.app);
      const a = json<TokenPair>(await passwordGrant(issuer.app, user.email, PASSWORD));
      const b = json<TokenPair>(await passwordGrant(issuer.app, user.email, PASSWORD));
      const c = json<TokenPair>(await passwordGrant(issuer.app, user.email, PASSWORD));
      const listed = json<{ sessions: Array<{ id: string; user_id: string; client_id: string }> }>(await call("GET", `/users/${user.id}/sessions`, undefined, readToken)).sessions;
      expect(listed.map((s) => s.id).sort()).toEqual([a, b, c].map((p) => decodeJwt(p.access_token).sid as string).sort());
      expect(listed.every((s) => s.user_id === user.id && s.client_id === "web")).toBe(true);

      const sidA = decodeJwt(a.access_token).sid as string;
      const one = await call("DELETE", `/sessions/${sidA}`);
      expect(one.statusCode, one.body).toBe(204);
      expect(one.body).toBe("");
      expect(errorOf(await refreshGrant(issuer.app, a.refresh_token))).toMatchObject({ status: 400, error: "invalid_grant" });
      expect(await statusOf(issuer, a.access_token)).toBe(1);
      const bNext = json<TokenPair>(await refreshGrant(issuer.app, b.refresh_token));
      // Revoking it again changes nothing; an unknown session is 404.
      expect((await call("DELETE", `/sessions/${sidA}`)).statusCode).toBe(204);
      expect(errorOf(await call("DELETE", "/sessions/no-such-session"))).toMatchObject({ status: 404, error: "not_found" });

      expect(json<{ sessions_revoked: number }>(await call("DELETE", `/users/${user.id}/sessions`)).sessions_revoked).toBe(2);
      expect(errorOf(await refreshGrant(issuer.app, bNext.refresh_token))).toMatchObject({ status: 400, error: "invalid_grant" });
      expect(errorOf(await refreshGrant(issuer.app, c.refresh_token))).toMatchObject({ status: 400, error: "invalid_grant" });
      expect(json<{ sessions: unknown[] }>(await call("GET", `/users/${user.id}/sessions`)).sessions).toEqual([]);
    });
  });

  describe("keys", () => {
    it("lists keys; rotate-now signs with a new key at once (published in the JWKS); revoking a kid takes it out of the JWKS; an unknown kid is 404", async () => {
      const listed = json<{ keys: Array<{ kid: string; state: string }> }>(await call("GET", "/keys", undefined, readToken)).keys;
      const active = listed.find((k) => k.state === "active")!;
      expect(active).toBeDefined();

      const rotated = json<{ actions: Array<{ action: string; kid: string }> }>(await call("POST", "/keys/rotate-now"));
      const created = rotated.actions.find((a) => a.action === "create_active")!;
      expect(created.kid).not.toBe(active.kid);
      const jwks = (await issuer.app.inject({ method: "GET", url: "/.well-known/jwks.json" })).json() as { keys: Array<{ kid: string }> };
      expect(jwks.keys.map((k) => k.kid)).toEqual(expect.arrayContaining([created.kid, active.kid]));
      const pair = await login(issuer.app);
      expect(decodeProtectedHeader(pair.access_token).kid).toBe(created.kid);

      const revoked = json<{ revoked: { kid: string } }>(await call("POST", `/keys/${active.kid}/revoke`));
      expect(revoked.revoked.kid).toBe(active.kid);
      const after = (await issuer.app.inject({ method: "GET", url: "/.well-known/jwks.json" })).json() as { keys: Array<{ kid: string }> };
      expect(after.keys.map((k) => k.kid)).not.toContain(active.kid);
      // The admin tokens were signed by the revoked key: they stop working too.
      expect(errorOf(await call("GET", "/keys", undefined, readToken))).toMatchObject({ status: 401, error: "invalid_token" });
      writeToken = await clientToken(issuer, ops);
      readToken = await clientToken(issuer, ops, { scope: "admin:read" });
      expect(errorOf(await call("POST", "/keys/no-such-kid/revoke"))).toMatchObject({ status: 404, error: "not_found" });
      expect(json<{ actions: unknown[] }>(await call("POST", "/keys/rotate")).actions).toEqual(expect.any(Array));
    });
  });

  describe("audit events", () => {
    it("every write names the acting client; filters by type, user, client and time; newest first, page by page", async () => {
      const start = new Date(issuer.clock.now().getTime());
      issuer.clock.advance(1);
      const pair = await login(issuer.app);
      issuer.clock.advance(1);
      await call("PUT", `/users/${pair.userId}/roles`, { roles: ["x"] });
      issuer.clock.advance(1);
      await call("POST", `/users/${pair.userId}/disable`);
      issuer.clock.advance(1);
      await call("POST", `/users/${pair.userId}/enable`);

      const mine = json<{ events: EventJson[] }>(await call("GET", `/audit-events?user_id=${pair.userId}`, undefined, readToken)).events;
      const types = mine.map((e) => e.type);
      // Newest first (the disable's two events share one instant: their order is the id's).
      expect(types[0]).toBe("user.enabled");
      expect(types.slice(1, 3).sort()).toEqual(["sessions.revoked", "user.disabled"]);
      expect(types[3]).toBe("user.roles_changed");
      expect(types).toContain("login.succeeded");
      for (const e of mine.filter((e) => e.type !== "login.succeeded" && e.type !== "user.registered")) {
        expect(e.details.actor, e.type).toEqual({ via: "admin_api", clientId: ops.id });
      }
      const ats = mine.map((e) => Date.parse(e.at));
      expect([...ats].sort((x, y) => y - x)).toEqual(ats);
      // A user's own actions name no operator.
      expect(mine.find((e) => e.type === "login.succeeded")!.details).not.toHaveProperty("actor");

      const byType = json<{ events: EventJson[] }>(await call("GET", `/audit-events?type=user.disabled&user_id=${pair.userId}`)).events;
      expect(byType.map((e) => e.type)).toEqual(["user.disabled"]);
      const window = json<{ events: EventJson[] }>(
        await call("GET", `/audit-events?user_id=${pair.userId}&from=${new Date(start.getTime() + 2500).toISOString()}&to=${new Date(start.getTime() + 3500).toISOString()}`),
      ).events;
      expect(window.map((e) => e.type).sort()).toEqual(["sessions.revoked", "user.disabled"]);

      // Page by page with limit=1: the same events, in the same order, none twice.
      const paged: string[] = [];
      let cursor: string | null = null;
      do {
        const page: { events: EventJson[]; next_cursor: string | null } = json(await call("GET", `/audit-events?user_id=${pair.userId}&limit=1${cursor ? `&cursor=${cursor}` : ""}`));
        paged.push(...page.events.map((e) => e.id));
        cursor = page.next_cursor;
      } while (cursor);
      expect(paged).toEqual(mine.map((e) => e.id));

      const created = json<ClientJson>(await call("POST", "/clients", { name: "audited", type: "public", grant_types: ["password"] }), 201);
      const clientEvents = json<{ events: EventJson[] }>(await call("GET", `/audit-events?client_id=${created.client_id}`)).events;
      expect(clientEvents).toEqual([expect.objectContaining({ type: "client.created", client_id: created.client_id, details: expect.objectContaining({ actor: { via: "admin_api", clientId: ops.id } }) })]);
    });

    it("a bad time or cursor is 400 naming it", async () => {
      expect((await call("GET", "/audit-events?from=yesterday")).json()).toMatchObject({ error: "invalid_request", field: "from" });
      const users = json<{ next_cursor: string | null }>(await call("GET", "/users?limit=1"));
      // A cursor of another list is not one of this list's.
      expect((await call("GET", `/audit-events?cursor=${users.next_cursor}`)).json()).toMatchObject({ error: "invalid_request", field: "cursor" });
    });
  });
});

describeEachDb("admin API across instances", (flavor) => {
  let group: InstanceGroup;
  beforeAll(async () => {
    group = await startInstances(flavor, 2, { env: { CLIENT_CACHE_TTL: "5", KEY_STORE: "database", KEYS_ENCRYPTION_KEY: Buffer.alloc(32, 7).toString("base64") } });
  });
  afterAll(async () => group?.close());

  it("a client created on one instance gets tokens on the other at once; a user disabled on one is refused on the other", async () => {
    const [a, b] = group.instances as [TestIssuer, TestIssuer];
    const ops = await adminClient(a, ["admin:write"]);
    // The admin token from instance B works on instance A: one issuer.
    const token = await clientToken(b, ops);
    const created = json<ClientJson>(await adminCall(a, token, "POST", "/clients", { name: "svc", type: "confidential", grant_types: ["client_credentials"] }), 201);
    expect((await clientCredentials(b, created.client_id, created.client_secret!)).statusCode).toBe(200);

    const pair = await login(b.app);
    expect(json<{ sessions_revoked: number }>(await adminCall(a, token, "POST", `/users/${pair.userId}/disable`)).sessions_revoked).toBe(1);
    expect(errorOf(await refreshGrant(b.app, pair.refresh_token))).toMatchObject({ status: 400, error: "invalid_grant" });
    expect(errorOf(await passwordGrant(b.app, pair.email, PASSWORD))).toMatchObject({ status: 400, error: "invalid_grant" });
    // B's status list shows the revocation after B's own next rebuild.
    await b.services.statusLists.rebuild();
    expect(await statusOf(b, pair.access_token)).toBe(1);
  });
});
