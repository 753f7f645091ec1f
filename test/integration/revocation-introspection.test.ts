// Revocation (RFC 7009, POST /oauth/revoke) and introspection (RFC 7662, POST /oauth/introspect)
// round trips as clients and resource servers see them: access tokens go on a deny-list (a user's
// access token revokes its session too: it shares the session's status list bit), refresh tokens
// revoke their whole session, only the owning client may revoke or introspect its
// refresh tokens, anything unknown/foreign/expired is a 200 no-op and {active:false}, disabled
// users lose every session, and the deny-list does not outlive the tokens on it.
import type { LightMyRequestResponse } from "fastify";
import { decodeJwt, exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { AdminContext } from "../../src/admin/context.ts";
import { disableUser } from "../../src/admin/users.ts";
import { hashClientSecret } from "../../src/domain/clients/clients.ts";
import {
  PASSWORD,
  describeEachDb,
  errorOf,
  form,
  login,
  adminOf,
  passwordGrant,
  refreshGrant,
  register,
  startIssuer,
  uniqueEmail,
  verifyAccessToken,
  type TestIssuer,
  type TokenPair,
} from "../helpers/issuer.ts";

const ACCESS_TTL = 300;
const INACTIVE = { active: false };

const formEncode = (s: string) => new URLSearchParams({ x: s }).toString().slice(2);
const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${formEncode(id)}:${formEncode(secret)}`).toString("base64")}`;

type Auth = { method: "basic" | "post"; id: string; secret: string } | { method: "none"; id: string } | { method: "anonymous" };

/** Confidential clients of this suite (secrets chosen here, stored as hashes). */
const RS = { id: "resource-server", secret: "rs-secret/with+odd:chars" }; // introspects, owns nothing
const BACKEND = { id: "backend", secret: "backend-secret-value" }; // logs users in (password grant)
const OTHER = { id: "other-backend", secret: "other-backend-secret" }; // another password client

describeEachDb("revocation and introspection", (flavor) => {
  let issuer: TestIssuer;
  let admin: AdminContext;

  beforeAll(async () => {
    issuer = await startIssuer(flavor, {
      env: { CLIENT_CACHE_TTL: "0", ACCESS_TOKEN_TTL: String(ACCESS_TTL), REFRESH_REUSE_GRACE: "10" },
    });
    const s = issuer.services;
    admin = adminOf(issuer);
    const base = { type: "confidential" as const, audiences: [], resources: [], accessTokenTtl: null, refreshTokenTtl: null, createdAt: s.clock.now(), disabledAt: null };
    // The resource server user tokens are meant for (aud "api"): RFC 7662 §4, only it (and the
    // client a token was issued to) may introspect them.
    await s.storage.clients.create({ ...base, id: RS.id, name: "RS", secretHash: hashClientSecret(RS.secret), grantTypes: ["client_credentials"], scopes: ["read"], resources: ["api"] });
    for (const c of [BACKEND, OTHER]) {
      await s.storage.clients.create({ ...base, id: c.id, name: c.id, secretHash: hashClientSecret(c.secret), grantTypes: ["password", "refresh_token"], scopes: ["profile", "orders"] });
    }
  });
  afterAll(async () => issuer?.close());

  function call(url: string, auth: Auth, params: Record<string, string>): Promise<LightMyRequestResponse> {
    const body: Record<string, string> = { ...params };
    const headers: Record<string, string> = {};
    if (auth.method === "basic") headers.authorization = basic(auth.id, auth.secret);
    else if (auth.method === "post") Object.assign(body, { client_id: auth.id, client_secret: auth.secret });
    else if (auth.method === "none") body.client_id = auth.id;
    const f = form(body);
    return issuer.app.inject({ method: "POST", url, headers: { ...f.headers, ...headers }, payload: f.payload });
  }

  const revoke = (auth: Auth, token: string, extra: Record<string, string> = {}) => call("/oauth/revoke", auth, { token, ...extra });
  const introspectRes = (auth: Auth, token: string, extra: Record<string, string> = {}) => call("/oauth/introspect", auth, { token, ...extra });

  /** RFC 7662 §2.2: 200 JSON, never cached. */
  async function introspect(token: string, auth: Auth = { method: "basic", ...RS }, extra: Record<string, string> = {}): Promise<Record<string, unknown>> {
    const res = await introspectRes(auth, token, extra);
    expect(res.statusCode, res.body).toBe(200);
    expect(res.headers["content-type"]).toMatch(/^application\/json/);
    expect(res.headers["cache-control"]).toBe("no-store");
    return res.json() as Record<string, unknown>;
  }

  const web: Auth = { method: "none", id: "web" };

  async function expectRevoked200(auth: Auth, token: string, extra: Record<string, string> = {}): Promise<void> {
    const res = await revoke(auth, token, extra);
    expect(res.statusCode, res.body).toBe(200);
  }

  function expectError(res: LightMyRequestResponse, status: number, error: string): void {
    expect({ status: res.statusCode, body: res.json() as unknown }).toMatchObject({ status, body: { error } });
  }

  /** Password grant through a confidential client with client_secret_basic. */
  async function loginVia(client: { id: string; secret: string }, email: string, password = PASSWORD): Promise<TokenPair> {
    const res = await call("/oauth/token", { method: "basic", ...client }, { grant_type: "password", username: email, password });
    expect(res.statusCode, res.body).toBe(200);
    return res.json() as TokenPair;
  }

  async function refreshVia(client: { id: string; secret: string }, refreshToken: string): Promise<LightMyRequestResponse> {
    return call("/oauth/token", { method: "basic", ...client }, { grant_type: "refresh_token", refresh_token: refreshToken });
  }

  // ---- introspection of access tokens ----

  it("a fresh user access token: active with the RFC 7662 members (Basic and post)", async () => {
    const pair = await login(issuer.app);
    const jwt = decodeJwt(pair.access_token);
    for (const auth of [{ method: "basic", ...RS }, { method: "post", ...RS }] as Auth[]) {
      const r = await introspect(pair.access_token, auth);
      expect(r).toMatchObject({
        active: true,
        token_type: "Bearer",
        sub: pair.userId,
        client_id: "web",
        scope: pair.scope,
        iss: issuer.config.issuer,
        exp: jwt.exp,
        iat: jwt.iat,
        jti: jwt.jti,
        sid: jwt.sid,
      });
      expect(typeof r.exp).toBe("number");
      expect(typeof r.iat).toBe("number");
      expect(typeof r.sid).toBe("string");
      expect(r.scope).toBe("profile");
      expect(r).not.toHaveProperty("roles"); // a user without roles
    }
  });

  it("a user with roles: introspection (and the token) carry them", async () => {
    const email = uniqueEmail("roles");
    await issuer.services.users.register(email, PASSWORD, ["admin", "ops"]);
    const res = await passwordGrant(issuer.app, email, PASSWORD);
    expect(res.statusCode, res.body).toBe(200);
    const { access_token } = res.json() as TokenPair;
    expect((await verifyAccessToken(issuer, access_token)).roles).toEqual(["admin", "ops"]);
    const r = await introspect(access_token);
    expect(r).toMatchObject({ active: true, client_id: "web" });
    expect(r.roles).toEqual(["admin", "ops"]);
  });

  it("a client_credentials token: active, sub = client_id, no sid", async () => {
    const res = await call("/oauth/token", { method: "basic", ...RS }, { grant_type: "client_credentials" });
    expect(res.statusCode, res.body).toBe(200);
    const { access_token } = res.json() as { access_token: string };
    const r = await introspect(access_token, { method: "post", ...RS });
    expect(r).toMatchObject({ active: true, sub: RS.id, client_id: RS.id, scope: "read", token_type: "Bearer" });
    expect(r).not.toHaveProperty("sid");
    // Neither issued to BACKEND nor meant for it (RFC 7662 §4): it learns nothing.
    expect(await introspect(access_token, { method: "post", ...BACKEND })).toEqual(INACTIVE);
    // The client revokes its own token: inactive from then on.
    await expectRevoked200({ method: "basic", ...RS }, access_token);
    expect(await introspect(access_token, { method: "post", ...RS })).toEqual(INACTIVE);
  });

  // ---- revoking access tokens ----

  it("the public web client revokes its own access token: 200, then {active:false} and nothing else; twice is still 200", async () => {
    const pair = await login(issuer.app);
    expect((await introspect(pair.access_token)).active).toBe(true);
    const res = await revoke(web, pair.access_token);
    expect(res.statusCode, res.body).toBe(200);
    expect(await introspect(pair.access_token)).toEqual(INACTIVE);
    expect(await introspect(pair.access_token, { method: "post", ...RS })).toEqual(INACTIVE);
    // A user's access token shares its session's status list bit: its session is revoked with it.
    expectError(await refreshGrant(issuer.app, pair.refresh_token), 400, "invalid_grant");
    await expectRevoked200(web, pair.access_token);
    await expectRevoked200(web, pair.access_token, { token_type_hint: "access_token" });
    expect(await introspect(pair.access_token)).toEqual(INACTIVE);
  });

  it("concurrent revocations of one token all answer 200", async () => {
    const pair = await login(issuer.app);
    const results = await Promise.all([
      ...Array.from({ length: 8 }, () => revoke(web, pair.access_token)),
      ...Array.from({ length: 8 }, () => revoke(web, pair.refresh_token)),
    ]);
    expect(results.map((r) => r.statusCode)).toEqual(Array(16).fill(200));
    expect(await introspect(pair.access_token)).toEqual(INACTIVE);
    expectError(await refreshGrant(issuer.app, pair.refresh_token), 400, "invalid_grant");
  });

  // ---- revoking refresh tokens ----

  it("revoking a refresh token revokes the whole session: every token of the family is dead", async () => {
    const pair = await login(issuer.app);
    const family = [pair.refresh_token];
    const accessTokens = [pair.access_token];
    for (let i = 0; i < 2; i++) {
      issuer.clock.advance(30); // past the grace window
      const r = await refreshGrant(issuer.app, family.at(-1)!);
      expect(r.statusCode, r.body).toBe(200);
      const body = r.json() as TokenPair;
      family.push(body.refresh_token);
      accessTokens.push(body.access_token);
    }
    for (const at of accessTokens) expect((await introspect(at)).active).toBe(true);
    // Revoke the current one.
    await expectRevoked200(web, family.at(-1)!);
    for (const rt of family) expectError(await refreshGrant(issuer.app, rt), 400, "invalid_grant");
    // The session's access tokens are inactive now (their session is revoked).
    for (const at of accessTokens) expect(await introspect(at)).toEqual(INACTIVE);
    // Again, and with an old token of the same family: still 200.
    await expectRevoked200(web, family.at(-1)!);
    await expectRevoked200(web, family[0]!, { token_type_hint: "refresh_token" });
  });

  it("revoking an older (consumed) refresh token of a family also ends the session", async () => {
    const pair = await login(issuer.app);
    issuer.clock.advance(30);
    const r = await refreshGrant(issuer.app, pair.refresh_token);
    expect(r.statusCode).toBe(200);
    const current = (r.json() as TokenPair).refresh_token;
    await expectRevoked200(web, pair.refresh_token);
    expectError(await refreshGrant(issuer.app, current), 400, "invalid_grant");
  });

  it("revoking one session leaves the user's other sessions alone", async () => {
    const email = uniqueEmail("two-sessions");
    await register(issuer.app, email);
    const a = (await passwordGrant(issuer.app, email, PASSWORD)).json() as TokenPair;
    const b = (await passwordGrant(issuer.app, email, PASSWORD)).json() as TokenPair;
    await expectRevoked200(web, a.refresh_token);
    expectError(await refreshGrant(issuer.app, a.refresh_token), 400, "invalid_grant");
    expect((await refreshGrant(issuer.app, b.refresh_token)).statusCode).toBe(200);
    expect((await introspect(b.access_token)).active).toBe(true);
  });

  // ---- introspecting refresh tokens ----

  it("introspection needs a confidential client: the public web client gets 401 invalid_client", async () => {
    const pair = await login(issuer.app);
    expectError(await introspectRes(web, pair.refresh_token), 401, "invalid_client");
    expectError(await introspectRes(web, pair.access_token), 401, "invalid_client");
  });

  it("a refresh token introspected by a confidential client that does not own it: {active:false}", async () => {
    const pair = await login(issuer.app); // owned by web
    expect(await introspect(pair.refresh_token, { method: "basic", ...RS })).toEqual(INACTIVE);
    expect(await introspect(pair.refresh_token, { method: "basic", ...RS }, { token_type_hint: "refresh_token" })).toEqual(INACTIVE);
    const email = uniqueEmail("backend-owned");
    await register(issuer.app, email);
    const own = await loginVia(BACKEND, email);
    expect(await introspect(own.refresh_token, { method: "basic", ...OTHER })).toEqual(INACTIVE);
    expect(await introspect(own.refresh_token, { method: "post", ...RS })).toEqual(INACTIVE);
  });

  it("the owning confidential client introspects its refresh token: active; after rotation the old is inactive, the new active", async () => {
    const email = uniqueEmail("owner");
    const user = await register(issuer.app, email);
    const pair = await loginVia(BACKEND, email);
    const sid = decodeJwt(pair.access_token).sid;
    const r = await introspect(pair.refresh_token, { method: "basic", ...BACKEND });
    expect(r).toMatchObject({ active: true, client_id: BACKEND.id, sub: user.id, sid, scope: pair.scope, iss: issuer.config.issuer });
    expect(typeof r.exp).toBe("number");
    expect(r.exp as number).toBeGreaterThan(Math.floor(issuer.clock.now().getTime() / 1000));
    // post auth, and a wrong hint, give the same answer.
    expect(await introspect(pair.refresh_token, { method: "post", ...BACKEND }, { token_type_hint: "access_token" })).toMatchObject({ active: true, sid });

    issuer.clock.advance(1);
    const rotated = await refreshVia(BACKEND, pair.refresh_token);
    expect(rotated.statusCode, rotated.body).toBe(200);
    const next = (rotated.json() as TokenPair).refresh_token;
    expect(await introspect(pair.refresh_token, { method: "basic", ...BACKEND })).toEqual(INACTIVE);
    expect(await introspect(next, { method: "basic", ...BACKEND })).toMatchObject({ active: true, client_id: BACKEND.id, sub: user.id, sid });

    // The owner revokes it: inactive, and the session's access token too.
    await expectRevoked200({ method: "basic", ...BACKEND }, next);
    expect(await introspect(next, { method: "basic", ...BACKEND })).toEqual(INACTIVE);
    expect(await introspect(pair.access_token)).toEqual(INACTIVE);
  });

  // ---- unknown, foreign, expired ----

  it("unknown, garbage, refresh-shaped unknown and foreign tokens: revoke 200 (no-op), introspect {active:false}", async () => {
    const otherIssuerKey = await generateKeyPair("ES256");
    const now = Math.floor(issuer.clock.now().getTime() / 1000);
    const claims = { client_id: "web", scope: "profile", sid: "x" };
    const foreignIssuer = await new SignJWT(claims)
      .setProtectedHeader({ alg: "ES256", typ: "at+jwt", kid: "other" })
      .setIssuer("https://other-issuer.test")
      .setSubject("someone")
      .setAudience(issuer.config.accessTokenAudience)
      .setIssuedAt(now)
      .setExpirationTime(now + 300)
      .setJti("foreign-1")
      .sign(otherIssuerKey.privateKey);
    // Our iss and our kid, but signed with a key we never published.
    const ourKid = (await issuer.app.inject({ method: "GET", url: "/.well-known/jwks.json" })).json().keys[0].kid as string;
    const forged = await new SignJWT(claims)
      .setProtectedHeader({ alg: "ES256", typ: "at+jwt", kid: ourKid })
      .setIssuer(issuer.config.issuer)
      .setSubject("someone")
      .setAudience(issuer.config.accessTokenAudience)
      .setIssuedAt(now)
      .setExpirationTime(now + 300)
      .setJti("forged-1")
      .sign(otherIssuerKey.privateKey);
    // Our iss, the foreign public key embedded in the header (must never be trusted).
    const embedded = await new SignJWT(claims)
      .setProtectedHeader({ alg: "ES256", typ: "at+jwt", jwk: await exportJWK(otherIssuerKey.publicKey) })
      .setIssuer(issuer.config.issuer)
      .setSubject("someone")
      .setIssuedAt(now)
      .setExpirationTime(now + 300)
      .setJti("embedded-1")
      .sign(otherIssuerKey.privateKey);
    const tokens = {
      unknown: "definitely-not-a-token",
      garbage: "%%%\u00e9\u00e9.!!.??",
      refreshShaped: "A".repeat(43),
      jwtShaped: "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
      foreignIssuer,
      forged,
      embedded,
    };
    for (const [name, token] of Object.entries(tokens)) {
      for (const auth of [web, { method: "basic", ...RS } as Auth]) {
        const res = await revoke(auth, token);
        expect(res.statusCode, `${name}: ${res.body}`).toBe(200);
      }
      expect(await introspect(token), name).toEqual(INACTIVE);
      expect(await introspect(token, { method: "basic", ...BACKEND }, { token_type_hint: "refresh_token" }), name).toEqual(INACTIVE);
    }
  });

  it("an access token past its exp and CLOCK_SKEW (60 s): revoke 200 (no-op), introspect {active:false}", async () => {
    const pair = await login(issuer.app);
    expect((await introspect(pair.access_token)).active).toBe(true);
    issuer.clock.advance(ACCESS_TTL + 1);
    // Introspection answers for the issuer, without leeway.
    expect(await introspect(pair.access_token)).toEqual(INACTIVE);
    // Revocation still takes it until CLOCK_SKEW has passed too (test/security/revoke-within-skew).
    issuer.clock.advance(60);
    await expectRevoked200(web, pair.access_token);
    expect(await introspect(pair.access_token)).toEqual(INACTIVE);
    // Its session is not affected: the refresh token still works.
    expect((await refreshGrant(issuer.app, pair.refresh_token)).statusCode).toBe(200);
  });

  // ---- whose token is it ----

  it("a client revoking another client's token: 400 unauthorized_client, and the token stays active", async () => {
    const webPair = await login(issuer.app);
    // A confidential client tries the web client's access and refresh tokens.
    expectError(await revoke({ method: "basic", ...BACKEND }, webPair.access_token), 400, "unauthorized_client");
    expectError(await revoke({ method: "basic", ...BACKEND }, webPair.refresh_token), 400, "unauthorized_client");
    expect((await introspect(webPair.access_token)).active).toBe(true);
    // The public web client tries a confidential client's tokens.
    const email = uniqueEmail("victim");
    await register(issuer.app, email);
    const backendPair = await loginVia(BACKEND, email);
    expectError(await revoke(web, backendPair.access_token), 400, "unauthorized_client");
    expectError(await revoke(web, backendPair.refresh_token), 400, "unauthorized_client");
    expectError(await revoke({ method: "post", ...OTHER }, backendPair.refresh_token), 400, "unauthorized_client");
    expect((await introspect(backendPair.access_token)).active).toBe(true);
    expect((await introspect(backendPair.refresh_token, { method: "basic", ...BACKEND })).active).toBe(true);
    // Both sessions still refresh.
    expect((await refreshGrant(issuer.app, webPair.refresh_token)).statusCode).toBe(200);
    expect((await refreshVia(BACKEND, backendPair.refresh_token)).statusCode).toBe(200);
  });

  // ---- parameters and client authentication ----

  it("a wrong or unknown token_type_hint is ignored", async () => {
    // A refresh token revoked with hint=access_token.
    const a = await login(issuer.app);
    await expectRevoked200(web, a.refresh_token, { token_type_hint: "access_token" });
    expectError(await refreshGrant(issuer.app, a.refresh_token), 400, "invalid_grant");
    // An access token revoked with hint=refresh_token.
    const b = await login(issuer.app);
    await expectRevoked200(web, b.access_token, { token_type_hint: "refresh_token" });
    expect(await introspect(b.access_token)).toEqual(INACTIVE);
    // An unknown hint.
    const c = await login(issuer.app);
    expect(await introspect(c.access_token, { method: "basic", ...RS }, { token_type_hint: "refresh_token" })).toMatchObject({ active: true, sub: c.userId });
    expect(await introspect(c.access_token, { method: "basic", ...RS }, { token_type_hint: "id_token" })).toMatchObject({ active: true, sub: c.userId });
    await expectRevoked200(web, c.access_token, { token_type_hint: "bogus" });
    expect(await introspect(c.access_token)).toEqual(INACTIVE);
  });

  it("a missing token parameter: 400 invalid_request on both endpoints", async () => {
    expectError(await call("/oauth/revoke", web, {}), 400, "invalid_request");
    expectError(await call("/oauth/revoke", { method: "basic", ...RS }, {}), 400, "invalid_request");
    expectError(await call("/oauth/introspect", { method: "basic", ...RS }, {}), 400, "invalid_request");
    expectError(await call("/oauth/introspect", { method: "basic", ...RS }, { token: "" }), 400, "invalid_request");
  });

  it("introspection without (valid) client authentication: 401 invalid_client", async () => {
    const pair = await login(issuer.app);
    const anonymous = await introspectRes({ method: "anonymous" }, pair.access_token);
    expectError(anonymous, 401, "invalid_client");
    const wrong = await introspectRes({ method: "basic", id: RS.id, secret: "wrong" }, pair.access_token);
    expectError(wrong, 401, "invalid_client");
    expect(wrong.headers["www-authenticate"]).toMatch(/^Basic\b/);
    expectError(await introspectRes({ method: "post", id: RS.id, secret: "wrong" }, pair.access_token), 401, "invalid_client");
    expectError(await introspectRes({ method: "basic", id: "nobody", secret: "x" }, pair.access_token), 401, "invalid_client");
    // The answer tells nothing about the token.
    expect(anonymous.json()).not.toHaveProperty("active");
  });

  it("revocation without client identification, or with a wrong secret: 401 invalid_client and nothing is revoked", async () => {
    const pair = await login(issuer.app);
    expectError(await revoke({ method: "anonymous" }, pair.access_token), 401, "invalid_client");
    const wrong = await revoke({ method: "basic", id: BACKEND.id, secret: "wrong" }, pair.access_token);
    expectError(wrong, 401, "invalid_client");
    expect(wrong.headers["www-authenticate"]).toMatch(/^Basic\b/);
    // A public client that sends a secret is refused too.
    expectError(await revoke({ method: "post", id: "web", secret: "anything" }, pair.refresh_token), 401, "invalid_client");
    expect((await introspect(pair.access_token)).active).toBe(true);
    expect((await refreshGrant(issuer.app, pair.refresh_token)).statusCode).toBe(200);
  });

  // ---- disabled users ----

  it("disabling a user revokes all their sessions; login then fails exactly like a wrong password", async () => {
    const email = uniqueEmail("disabled");
    await register(issuer.app, email);
    const s1 = (await passwordGrant(issuer.app, email, PASSWORD)).json() as TokenPair;
    const s2 = (await passwordGrant(issuer.app, email, PASSWORD)).json() as TokenPair;
    const s3 = await loginVia(BACKEND, email);
    const wrongPassword = await passwordGrant(issuer.app, email, `${PASSWORD}!`);
    expectError(wrongPassword, 400, "invalid_grant");

    const r = await disableUser(admin, { email });
    expect((r.json as { sessions_revoked: number }).sessions_revoked).toBe(3);

    expectError(await refreshGrant(issuer.app, s1.refresh_token), 400, "invalid_grant");
    expectError(await refreshGrant(issuer.app, s2.refresh_token), 400, "invalid_grant");
    expectError(await refreshVia(BACKEND, s3.refresh_token), 400, "invalid_grant");
    for (const at of [s1.access_token, s2.access_token, s3.access_token]) expect(await introspect(at)).toEqual(INACTIVE);
    expect(await introspect(s3.refresh_token, { method: "basic", ...BACKEND })).toEqual(INACTIVE);

    const loginAfter = await passwordGrant(issuer.app, email, PASSWORD);
    expect(loginAfter.statusCode).toBe(wrongPassword.statusCode);
    expect(loginAfter.json()).toEqual(wrongPassword.json());
    // And the same as an account that does not exist.
    expect((await passwordGrant(issuer.app, uniqueEmail("nobody"), PASSWORD)).json()).toEqual(wrongPassword.json());
  });

  it("a user disabled in the database without its sessions revoked (the race) cannot refresh either", async () => {
    const pair = await login(issuer.app);
    expect(await issuer.services.storage.users.setDisabled(pair.userId, issuer.clock.now())).not.toBeNull();
    expectError(await refreshGrant(issuer.app, pair.refresh_token), 400, "invalid_grant");
    expectError(await passwordGrant(issuer.app, pair.email, PASSWORD), 400, "invalid_grant");
  });

  // ---- the deny-list ----

  it("the deny-list entry is pruned once the revoked access token has expired", async () => {
    const pair = await login(issuer.app);
    const jti = decodeJwt(pair.access_token).jti!;
    const exp = decodeJwt(pair.access_token).exp!;
    await expectRevoked200(web, pair.access_token);
    const count = () => issuer.storage.db.revokedAccessToken.count({ where: { jti } });
    expect(await count()).toBe(1);
    // Still needed while the token has not expired.
    await issuer.services.revocation.pruneExpired();
    expect(await count()).toBe(1);
    expect(await introspect(pair.access_token)).toEqual(INACTIVE);
    // Past its exp the token is dead anyway: the entry goes.
    issuer.clock.set(new Date((exp + 1) * 1000));
    expect(await issuer.services.revocation.pruneExpired()).toBeGreaterThanOrEqual(1);
    expect(await count()).toBe(0);
    expect(await introspect(pair.access_token)).toEqual(INACTIVE);
  });

  it("errors on these endpoints are OAuth JSON errors, never 500", async () => {
    for (const url of ["/oauth/revoke", "/oauth/introspect"]) {
      const repeated = await issuer.app.inject({
        method: "POST",
        url,
        headers: { "content-type": "application/x-www-form-urlencoded", authorization: basic(RS.id, RS.secret) },
        payload: "token=a&token=b",
      });
      expectError(repeated, 400, "invalid_request");
      expect(errorOf(repeated).description).toEqual(expect.any(String));
    }
  });
});
