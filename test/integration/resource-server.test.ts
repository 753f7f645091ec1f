// A resource server as a team would write it: a small Fastify app with the kit's plugin, the
// verifier fetching the issuer's JWKS over real HTTP. Bearer extraction and challenges per
// RFC 6750, scope and role guards, and introspection mode (RFC 7662) against a stub endpoint.
import formbody from "@fastify/formbody";
import Fastify, { type FastifyInstance, type InjectOptions } from "fastify";
import { decodeJwt } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import bearerAuth, { authenticate, requireActive, requireRole, requireScope } from "@tessera/verifier/fastify";
import { basicAuthorization, createIntrospector, createVerifier, type Verifier } from "@tessera/verifier";
import { bearer, challengeParams, passwordGrantClaims } from "../helpers/bearer.ts";
import { badTokens, type BadToken } from "../helpers/forged-tokens.ts";
import { freePort } from "../helpers/ports.ts";
import { describeEachDb, login, startIssuer, type TestIssuer } from "../helpers/issuer.ts";

const CLIENT_ID = "svc:orders"; // a ":" and
const CLIENT_SECRET = "p@ss w/rd=+%"; // characters RFC 6749 §2.3.1 says to form-encode first

/**
 * A stand-in for the issuer's POST /oauth/introspect (RFC 7662): client_secret_basic, form
 * body, `active: false` for revoked (by jti) or unparseable tokens, members for active ones.
 */
async function startIntrospectionStub() {
  const revoked = new Set<string>();
  const calls: { authorization: string | undefined; contentType: string | undefined; body: Record<string, string> }[] = [];
  const state = { failing: false };
  const app = Fastify();
  await app.register(formbody);
  app.post("/oauth/introspect", async (request, reply) => {
    const body = request.body as Record<string, string>;
    calls.push({ authorization: request.headers.authorization, contentType: request.headers["content-type"], body });
    if (state.failing) return reply.code(502).send("bad gateway");
    if (request.headers.authorization !== basicAuthorizationByHand(CLIENT_ID, CLIENT_SECRET)) {
      return reply.code(401).header("www-authenticate", 'Basic realm="issuer"').send({ error: "invalid_client" });
    }
    if (typeof body?.token !== "string") return reply.code(400).send({ error: "invalid_request" });
    let claims: Record<string, unknown>;
    try {
      claims = decodeJwt(body.token);
    } catch {
      return { active: false };
    }
    if (revoked.has(String(claims.jti))) return { active: false };
    const { sub, client_id, scope, exp, iat, jti, sid, aud, iss } = claims;
    return { active: true, token_type: "Bearer", sub, client_id, scope, exp, iat, jti, sid, aud, iss };
  });
  const url = await app.listen({ port: 0, host: "127.0.0.1" });
  return { app, url, endpoint: `${url}/oauth/introspect`, revoked, calls, state };
}

/** RFC 6749 §2.3.1 spelled out independently of the kit: form-urlencode each part, then base64. */
function basicAuthorizationByHand(id: string, secret: string): string {
  const enc = (s: string) => encodeURIComponent(s).replace(/%20/g, "+").replace(/[!'()*~]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `Basic ${Buffer.from(`${enc(id)}:${enc(secret)}`).toString("base64")}`;
}

async function resourceServer(verifier: Verifier, introspectionEndpoint: string, extra: Record<string, unknown> = {}) {
  const app = Fastify();
  await app.register(formbody);
  await app.register(bearerAuth, {
    verifier,
    realm: "orders",
    introspector: createIntrospector({ introspectionEndpoint, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET }),
    ...extra,
  });
  app.get("/public", async (request) => ({ auth: request.auth }));
  app.get("/me", { preHandler: authenticate }, async (request) => request.auth);
  app.post("/me", { preHandler: authenticate }, async (request) => request.auth);
  app.get("/orders", { preHandler: requireScope("orders:read") }, async (request) => ({ sub: request.auth!.sub }));
  app.post("/orders", { preHandler: [authenticate, requireScope("orders:read", "orders:write")] }, async () => ({ ok: true }));
  app.get("/admin", { preHandler: requireRole("admin") }, async (request) => ({ roles: request.auth!.roles }));
  app.post("/refunds", { preHandler: [requireScope("orders:write"), requireActive()] }, async (request) => ({ jti: request.auth!.jti }));
  await app.ready();
  return app;
}


describeEachDb("resource server plugin", (flavor) => {
  let issuer: TestIssuer;
  let other: TestIssuer;
  let stub: Awaited<ReturnType<typeof startIntrospectionStub>>;
  let app: FastifyInstance;
  let bad: BadToken[];
  let verifier: Verifier;
  let base: string;

  const issue = async (scope: string, roles?: string[]) =>
    (await issuer.services.accessTokens.issue({ subject: "user-rs", clientId: "web", scope, sessionId: "session-rs", ...(roles && { roles }) }))
      .token;

  beforeAll(async () => {
    // The issuer is named by the address it listens on, so the kit reaches everything it
    // publishes (JWKS, status lists) at the default places, as a deployed service would.
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    issuer = await startIssuer(flavor, { env: { ISSUER: base } });
    await issuer.app.listen({ port, host: "127.0.0.1" });
    // A second, separate deployment that calls itself by the same name.
    other = await startIssuer(flavor, { env: { ISSUER: base } });
    stub = await startIntrospectionStub();
    verifier = createVerifier({ issuer: base, audience: issuer.config.accessTokenAudience });
    app = await resourceServer(verifier, stub.endpoint);
    bad = await badTokens(issuer, other);
  });
  afterAll(async () => {
    await app?.close();
    await stub?.app.close();
    await other?.close();
    await issuer?.close();
  });

  describe("authentication", () => {
    it("200 with a token from the password grant; request.auth holds the typed claims", async () => {
      const user = await login(issuer.app);
      const res = await app.inject({ method: "GET", url: "/me", headers: bearer(user.access_token) });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toMatchObject(passwordGrantClaims(base, user));
    });

    it('the scheme is case-insensitive ("bearer", "BEARER")', async () => {
      const token = await issue("profile");
      for (const scheme of ["bearer", "BEARER", "BeArEr"]) {
        const res = await app.inject({ method: "GET", url: "/me", headers: { authorization: `${scheme} ${token}` } });
        expect([scheme, res.statusCode]).toEqual([scheme, 200]);
      }
    });

    it("routes without a guard stay public, request.auth null", async () => {
      const res = await app.inject({ method: "GET", url: "/public" });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({ auth: null });
    });

    it('401 without a token: WWW-Authenticate Bearer realm="orders", no error code (RFC 6750 §3.1)', async () => {
      for (const headers of [{}, { authorization: "Basic dXNlcjpwYXNz" }]) {
        const res = await app.inject({ method: "GET", url: "/me", headers });
        expect(res.statusCode).toBe(401);
        expect(res.headers["www-authenticate"]).toBe('Bearer realm="orders"');
        const body = res.json() as { error: string; error_description: string };
        expect(body.error).not.toBe("invalid_token");
        expect(typeof body.error_description).toBe("string");
      }
    });

    it('401 invalid_token for every bad token, WWW-Authenticate error="invalid_token"', async () => {
      const seen: Record<string, unknown> = {};
      for (const t of bad) {
        const res = await app.inject({ method: "GET", url: "/me", headers: bearer(t.token) });
        const { scheme, params } = challengeParams(res.headers["www-authenticate"]);
        const body = res.json() as { error: string; error_description: string };
        seen[t.name] = { status: res.statusCode, scheme, realm: params.realm, error: params.error, bodyError: body.error };
        expect(params.error_description).toBe(body.error_description);
        expect(body.error_description).not.toMatch(/\n|\bat .+:\d+/);
      }
      const expected = { status: 401, scheme: "Bearer", realm: "orders", error: "invalid_token", bodyError: "invalid_token" };
      expect(seen).toEqual(Object.fromEntries(bad.map((t) => [t.name, expected])));
    });

    it("the error_description says what was wrong (expired, audience, alg, embedded key)", async () => {
      const describe_ = async (name: string) => {
        const t = bad.find((b) => b.name.startsWith(name))!;
        const res = await app.inject({ method: "GET", url: "/me", headers: bearer(t.token) });
        return (res.json() as { error_description: string }).error_description;
      };
      expect(await describe_("expired")).toMatch(/expired/);
      expect(await describe_("wrong audience")).toMatch(/audience/);
      expect(await describe_('alg "none"')).toMatch(/algorithm/);
      expect(await describe_("header carries jku")).toMatch(/jku/);
    });

    it("400 invalid_request for a broken Authorization header (not exactly one token)", async () => {
      const token = await issue("profile");
      for (const authorization of ["Bearer", "Bearer ", `Bearer ${token} ${token}`, `Bearer ${token},x`, 'Bearer "quoted"']) {
        const res = await app.inject({ method: "GET", url: "/me", headers: { authorization } });
        expect([authorization.slice(0, 12), res.statusCode]).toEqual([authorization.slice(0, 12), 400]);
        expect(challengeParams(res.headers["www-authenticate"]).params.error).toBe("invalid_request");
      }
    });

    // RFC 6750 §3.1: invalid_request "SHOULD" be 400 (Bad Request); before this was fixed the
    // plugin answered a query-string or form-body token with 401.
    it("a token in the query string or a form body is refused by default (400 invalid_request), even with a good header", async () => {
      const token = await issue("profile");
      const inQuery = await app.inject({ method: "GET", url: `/me?access_token=${token}` });
      expect(inQuery.statusCode).toBe(400);
      expect(challengeParams(inQuery.headers["www-authenticate"])).toMatchObject({
        scheme: "Bearer",
        params: { realm: "orders", error: "invalid_request" },
      });
      expect(inQuery.json()).toMatchObject({ error: "invalid_request" });

      const both = await app.inject({ method: "GET", url: `/me?access_token=${token}`, headers: bearer(token) });
      expect(both.statusCode).toBe(400);
      expect(challengeParams(both.headers["www-authenticate"]).params.error).toBe("invalid_request");

      const inBody = await app.inject({
        method: "POST",
        url: "/me",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        payload: new URLSearchParams({ access_token: token }).toString(),
      });
      expect(inBody.statusCode).toBe(400);
      expect(challengeParams(inBody.headers["www-authenticate"]).params.error).toBe("invalid_request");
      expect(inBody.json()).toMatchObject({ error: "invalid_request" });
    });

    it("every invalid_request is 400 with a Bearer challenge carrying error=\"invalid_request\" (RFC 6750 §3.1)", async () => {
      const open = await resourceServer(verifier, stub.endpoint, { allowQueryToken: true, allowBodyToken: true });
      try {
        const token = await issue("profile");
        const formBody = (params: Record<string, string>) => ({
          headers: { "content-type": "application/x-www-form-urlencoded" },
          payload: new URLSearchParams(params).toString(),
        });
        type Case = [name: string, server: FastifyInstance, req: InjectOptions];
        const cases: Case[] = [
          ["broken Authorization header", app, { method: "GET", url: "/me", headers: { authorization: "Bearer" } }],
          ["query token, not enabled", app, { method: "GET", url: `/me?access_token=${token}` }],
          ["form-body token, not enabled", app, { method: "POST", url: "/me", ...formBody({ access_token: token }) }],
          ["query token and header, query not enabled", app, { method: "GET", url: `/me?access_token=${token}`, headers: bearer(token) }],
          ["query token and header", open, { method: "GET", url: `/me?access_token=${token}`, headers: bearer(token) }],
          [
            "form-body token and header",
            open,
            { method: "POST", url: "/me", ...formBody({ access_token: token }), headers: { ...formBody({}).headers, ...bearer(token) } },
          ],
          ["repeated access_token", open, { method: "GET", url: `/me?access_token=${token}&access_token=${token}` }],
          ["empty access_token", open, { method: "GET", url: "/me?access_token=" }],
          ["empty form-body access_token", open, { method: "POST", url: "/me", ...formBody({ access_token: "" }) }],
        ];
        const seen: Record<string, unknown> = {};
        for (const [name, server, req] of cases) {
          const res = await server.inject(req);
          const { scheme, params } = challengeParams(res.headers["www-authenticate"]);
          const body = res.json() as { error: string; error_description: string };
          seen[name] = { status: res.statusCode, scheme, realm: params.realm, error: params.error, bodyError: body.error };
          expect(params.error_description).toBe(body.error_description);
        }
        const expected = { status: 400, scheme: "Bearer", realm: "orders", error: "invalid_request", bodyError: "invalid_request" };
        expect(seen).toEqual(Object.fromEntries(cases.map(([name]) => [name, expected])));
      } finally {
        await open.close();
      }
    });

    it("query and body tokens work only when explicitly allowed, and never two methods at once", async () => {
      const open = await resourceServer(verifier, stub.endpoint, { allowQueryToken: true, allowBodyToken: true });
      try {
        const token = await issue("profile");
        expect((await open.inject({ method: "GET", url: `/me?access_token=${token}` })).statusCode).toBe(200);
        const form = {
          method: "POST" as const,
          url: "/me",
          headers: { "content-type": "application/x-www-form-urlencoded" },
          payload: new URLSearchParams({ access_token: token }).toString(),
        };
        expect((await open.inject(form)).statusCode).toBe(200);
        // RFC 6750 §2: more than one method in one request is invalid_request.
        const twice = await open.inject({ method: "GET", url: `/me?access_token=${token}`, headers: bearer(token) });
        expect(twice.statusCode).toBe(400);
        expect(challengeParams(twice.headers["www-authenticate"]).params.error).toBe("invalid_request");
        const repeated = await open.inject({ method: "GET", url: `/me?access_token=${token}&access_token=${token}` });
        expect(repeated.statusCode).toBe(400);
        // A bad token arriving that way is still invalid_token.
        const expired = bad.find((b) => b.code === "expired")!;
        expect((await open.inject({ method: "GET", url: `/me?access_token=${expired.token}` })).statusCode).toBe(401);
      } finally {
        await open.close();
      }
    });

    it("protectAll authenticates every route except those that opt out", async () => {
      const all = Fastify();
      await all.register(bearerAuth, { verifier, protectAll: true });
      all.get("/anything", async (request) => ({ sub: request.auth?.sub }));
      all.get("/health", { config: { bearerAuth: false } }, async (request) => ({ auth: request.auth }));
      await all.ready();
      try {
        const none = await all.inject({ method: "GET", url: "/anything" });
        expect(none.statusCode).toBe(401);
        expect(none.headers["www-authenticate"]).toBe('Bearer realm="api"');
        const ok = await all.inject({ method: "GET", url: "/anything", headers: bearer(await issue("profile")) });
        expect(ok.json()).toEqual({ sub: "user-rs" });
        expect((await all.inject({ method: "GET", url: "/health" })).json()).toEqual({ auth: null });
      } finally {
        await all.close();
      }
    });

    it("an unreachable JWKS is 503, not 401 and not 500", async () => {
      const closed = await freePort();
      const blind = createVerifier({ issuer: "https://issuer.test", audience: "api", jwksUri: `http://127.0.0.1:${closed}/jwks.json` });
      const down = await resourceServer(blind, stub.endpoint);
      try {
        const res = await down.inject({ method: "GET", url: "/me", headers: bearer(await issue("profile")) });
        expect(res.statusCode).toBe(503);
        expect(res.json()).toMatchObject({ error: "temporarily_unavailable" });
      } finally {
        await down.close();
      }
    });
  });

  describe("scope and role guards", () => {
    it('requireScope: 403 insufficient_scope with scope="..." when a scope is missing, 200 when present', async () => {
      const without = await app.inject({ method: "GET", url: "/orders", headers: bearer(await issue("profile")) });
      expect(without.statusCode).toBe(403);
      const { scheme, params } = challengeParams(without.headers["www-authenticate"]);
      expect(scheme).toBe("Bearer");
      expect(params).toMatchObject({ realm: "orders", error: "insufficient_scope", scope: "orders:read" });
      expect(without.json()).toMatchObject({ error: "insufficient_scope" });

      const withScope = await app.inject({ method: "GET", url: "/orders", headers: bearer(await issue("profile orders:read")) });
      expect(withScope.statusCode).toBe(200);
      expect(withScope.json()).toEqual({ sub: "user-rs" });
    });

    it("requireScope with several scopes needs all of them", async () => {
      const one = await app.inject({ method: "POST", url: "/orders", headers: bearer(await issue("orders:read")) });
      expect(one.statusCode).toBe(403);
      expect(challengeParams(one.headers["www-authenticate"]).params.scope).toBe("orders:read orders:write");
      const both = await app.inject({ method: "POST", url: "/orders", headers: bearer(await issue("orders:write orders:read")) });
      expect(both.statusCode).toBe(200);
    });

    it("guards authenticate first: no token is 401, a bad token 401 invalid_token, never 403", async () => {
      const none = await app.inject({ method: "GET", url: "/orders" });
      expect(none.statusCode).toBe(401);
      expect(none.headers["www-authenticate"]).toBe('Bearer realm="orders"');
      const expired = bad.find((b) => b.code === "expired")!;
      for (const url of ["/orders", "/admin"]) {
        const res = await app.inject({ method: "GET", url, headers: bearer(expired.token) });
        expect(res.statusCode).toBe(401);
        expect(challengeParams(res.headers["www-authenticate"]).params.error).toBe("invalid_token");
      }
    });

    it("requireRole: roles come from the token's roles claim", async () => {
      const plain = await app.inject({ method: "GET", url: "/admin", headers: bearer(await issue("profile")) });
      expect(plain.statusCode).toBe(403);
      expect(challengeParams(plain.headers["www-authenticate"]).params.error).toBe("insufficient_scope");
      const support = await app.inject({ method: "GET", url: "/admin", headers: bearer(await issue("profile", ["support"])) });
      expect(support.statusCode).toBe(403);
      const admin = await app.inject({ method: "GET", url: "/admin", headers: bearer(await issue("profile", ["support", "admin"])) });
      expect(admin.statusCode).toBe(200);
      expect(admin.json()).toEqual({ roles: ["support", "admin"] });
    });

    it("guard names are checked when routes are declared", () => {
      expect(() => requireScope()).toThrow(TypeError);
      expect(() => requireScope("two words")).toThrow(TypeError);
      expect(() => requireRole('qu"ote')).toThrow(TypeError);
    });
  });

  describe("introspection mode (requireActive)", () => {
    it("client_secret_basic form-encodes id and secret before base64 (RFC 6749 §2.3.1)", () => {
      expect(basicAuthorization(CLIENT_ID, CLIENT_SECRET)).toBe(basicAuthorizationByHand(CLIENT_ID, CLIENT_SECRET));
      expect(Buffer.from(basicAuthorization(CLIENT_ID, CLIENT_SECRET).slice(6), "base64").toString()).toBe(
        "svc%3Aorders:p%40ss+w%2Frd%3D%2B%25",
      );
    });

    it("asks the endpoint per RFC 7662 and passes an active token", async () => {
      const token = await issue("orders:write");
      const before = stub.calls.length;
      const res = await app.inject({ method: "POST", url: "/refunds", headers: bearer(token) });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({ jti: decodeJwt(token).jti });
      expect(stub.calls.slice(before)).toEqual([
        {
          authorization: basicAuthorizationByHand(CLIENT_ID, CLIENT_SECRET),
          contentType: "application/x-www-form-urlencoded",
          body: { token, token_type_hint: "access_token" },
        },
      ]);
    });

    it("401 invalid_token as soon as the token is revoked, while the JWT itself is still valid", async () => {
      const token = await issue("orders:write");
      expect((await app.inject({ method: "POST", url: "/refunds", headers: bearer(token) })).statusCode).toBe(200);
      stub.revoked.add(String(decodeJwt(token).jti));
      const res = await app.inject({ method: "POST", url: "/refunds", headers: bearer(token) });
      expect(res.statusCode).toBe(401);
      expect(challengeParams(res.headers["www-authenticate"]).params).toMatchObject({ realm: "orders", error: "invalid_token" });
      // Routes without introspection still accept it until it expires: that is the trade-off.
      expect((await app.inject({ method: "GET", url: "/me", headers: bearer(token) })).statusCode).toBe(200);
    });

    it("bad tokens and missing scopes are refused before the endpoint is asked", async () => {
      const before = stub.calls.length;
      const expired = bad.find((b) => b.code === "expired")!;
      expect((await app.inject({ method: "POST", url: "/refunds", headers: bearer(expired.token) })).statusCode).toBe(401);
      expect((await app.inject({ method: "POST", url: "/refunds", headers: bearer(await issue("profile")) })).statusCode).toBe(403);
      expect((await app.inject({ method: "POST", url: "/refunds" })).statusCode).toBe(401);
      expect(stub.calls.length).toBe(before);
    });

    it("the endpoint failing or refusing our credentials is 503, never a pass and never a 500", async () => {
      const token = await issue("orders:write");
      stub.state.failing = true;
      try {
        const res = await app.inject({ method: "POST", url: "/refunds", headers: bearer(token) });
        expect(res.statusCode).toBe(503);
        expect(res.json()).toMatchObject({ error: "temporarily_unavailable" });
      } finally {
        stub.state.failing = false;
      }
      const wrongSecret = Fastify();
      await wrongSecret.register(bearerAuth, {
        verifier,
        introspector: createIntrospector({ introspectionEndpoint: stub.endpoint, clientId: CLIENT_ID, clientSecret: "wrong" }),
      });
      wrongSecret.get("/x", { preHandler: requireActive() }, async () => ({ ok: true }));
      try {
        expect((await wrongSecret.inject({ method: "GET", url: "/x", headers: bearer(token) })).statusCode).toBe(503);
      } finally {
        await wrongSecret.close();
      }
    });

    it("the introspector returns the RFC 7662 members", async () => {
      const token = await issue("orders:write");
      const introspector = createIntrospector({ introspectionEndpoint: stub.endpoint, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET });
      const claims = decodeJwt(token);
      await expect(introspector.introspect(token)).resolves.toMatchObject({
        active: true,
        sub: "user-rs",
        client_id: "web",
        scope: "orders:write",
        jti: claims.jti,
        exp: claims.exp,
        sid: "session-rs",
      });
      expect(stub.calls.at(-1)!.body).toEqual({ token });
      await expect(introspector.introspect("not-a-jwt")).resolves.toEqual({ active: false });
    });
  });
});
