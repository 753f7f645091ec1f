// The kit's Express guards (@tessera/verifier/express) on Express 5 and Express 4, in apps as a
// team would write them, over real HTTP, against a real issuer on a real port (its JWKS, status
// lists and introspection endpoint). The cases of the Fastify resource-server test, where they
// apply, and the same answers as the Fastify plugin, header for header.
import http from "node:http";
import type { AddressInfo } from "node:net";
import formbody from "@fastify/formbody";
import express from "express";
import express4 from "express4";
import Fastify, { type FastifyInstance, type FastifyRequest } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createIntrospector, createVerifier, type Introspector, type Verifier } from "@tessera/verifier";
import { bearerAuth, requireActive, requireRole, requireScope, type ExpressBearerOptions, type LogEntry } from "@tessera/verifier/express";
import fastifyBearerAuth, * as fastifyGuards from "@tessera/verifier/fastify";
import { hashClientSecret } from "../../src/domain/clients/clients.ts";
import { bearer, challengeParams, passwordGrantClaims } from "../helpers/bearer.ts";
import { badTokens, type BadToken } from "../helpers/forged-tokens.ts";
import { describeEachDb, form, login, startIssuer, type TestIssuer } from "../helpers/issuer.ts";
import { freePort } from "../helpers/ports.ts";

/** A confidential client of the issuer that may introspect tokens for audience "api" (RFC 7662 §4). */
const RS = { id: "orders-service", secret: "orders-service-secret/+:" };

type ExpressLib = typeof express;
const LIBS: [string, ExpressLib][] = [
  ["Express 5", express],
  ["Express 4", express4],
];

interface Served {
  url: string;
  logs: LogEntry[];
  close(): Promise<void>;
}

/** `app` on a free port of 127.0.0.1. */
async function listen(app: http.RequestListener, logs: LogEntry[] = []): Promise<Served> {
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    logs,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Answers 500 with the error's message (what a guard without bearerAuth() before it causes). */
const serverError = (err: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
  res.status(500).json({ error: "server_error", message: err.message });
};

/** The resource server: the same routes as the Fastify resource-server test. */
async function expressService(lib: ExpressLib, options: ExpressBearerOptions): Promise<Served> {
  const logs: LogEntry[] = [];
  const app = lib();
  app.use(lib.urlencoded({ extended: false }));
  const auth = bearerAuth({ realm: "orders", log: (e) => logs.push(e), ...options });
  app.get("/public", (req, res) => void res.json({ auth: req.auth ?? null }));
  app.get("/me", auth, (req, res) => void res.json(req.auth));
  app.post("/me", auth, (req, res) => void res.json(req.auth));
  app.get("/orders", auth, requireScope("orders:read"), (req, res) => void res.json({ sub: req.auth!.sub }));
  app.post("/orders", auth, requireScope("orders:read", "orders:write"), (_req, res) => void res.json({ ok: true }));
  app.get("/admin", auth, requireRole("admin"), (req, res) => void res.json({ roles: req.auth!.roles }));
  app.post("/refunds", auth, requireScope("orders:write"), requireActive(), (req, res) => void res.json({ jti: req.auth!.jti }));
  app.get("/active", auth, requireActive(), (req, res) => void res.json({ jti: req.auth!.jti }));
  // A guard without bearerAuth() before it: a programming error, handed to Express (500).
  app.get("/misordered", requireScope("orders:read"), (_req, res) => void res.json({ reached: true }));
  app.use(serverError);
  return listen(app, logs);
}

/**
 * What express-jwt or express-oauth2-jwt-bearer do: set req.auth from their own token. Here an
 * admin that no Tessera token vouches for.
 */
const FOREIGN_AUTH = { iss: "https://elsewhere.test", sub: "mallory", aud: "api", exp: 4102444800, iat: 0, jti: "foreign", client_id: "x", scope: "orders:read", scopes: ["orders:read"], roles: ["admin"] };
const foreignAuth = (req: express.Request, _res: express.Response, next: express.NextFunction) => {
  req.auth = { ...FOREIGN_AUTH };
  next();
};

/** The Fastify plugin with the same routes and options, for answer-for-answer comparison. */
async function fastifyService(options: ExpressBearerOptions): Promise<FastifyInstance> {
  const app = Fastify();
  await app.register(formbody);
  await app.register(fastifyBearerAuth, { realm: "orders", ...options });
  app.get("/me", { preHandler: fastifyGuards.authenticate }, async (req) => req.auth);
  app.post("/me", { preHandler: fastifyGuards.authenticate }, async (req) => req.auth);
  app.get("/orders", { preHandler: fastifyGuards.requireScope("orders:read") }, async (req) => ({ sub: req.auth!.sub }));
  app.get("/admin", { preHandler: fastifyGuards.requireRole("admin") }, async (req) => ({ roles: req.auth!.roles }));
  await app.ready();
  return app;
}

interface Answer {
  status: number;
  challenge: string | null;
  cacheControl: string | null;
  retryAfter: string | null;
  contentType: string | null;
  body: Record<string, unknown>;
}

async function call(base: string, path: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Answer> {
  const res = await fetch(base + path, { ...init, signal: AbortSignal.timeout(15_000) });
  return {
    status: res.status,
    challenge: res.headers.get("www-authenticate"),
    cacheControl: res.headers.get("cache-control"),
    retryAfter: res.headers.get("retry-after"),
    contentType: res.headers.get("content-type"),
    body: (await res.json()) as Record<string, unknown>,
  };
}

/** A form-encoded POST (RFC 6750 §2.2's body method). */
const formPost = (params: Record<string, string>) => {
  const f = form(params);
  return { method: "POST", headers: f.headers, body: f.payload };
};

const paramsOf = (challenge: string | null) => challengeParams(challenge).params;

describeEachDb("Express guards", (flavor) => {
  let issuer: TestIssuer;
  let other: TestIssuer;
  let base: string;
  let verifier: Verifier;
  let introspector: Introspector;
  let bad: BadToken[];

  const issue = async (scope: string, roles?: string[]) =>
    (await issuer.services.accessTokens.issue({ subject: "user-ex", clientId: "web", scope, sessionId: "session-ex", ...(roles && { roles }) }))
      .token;

  beforeAll(async () => {
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    issuer = await startIssuer(flavor, { env: { ISSUER: base, CLIENT_CACHE_TTL: "0" } });
    await issuer.app.listen({ port, host: "127.0.0.1" });
    other = await startIssuer(flavor, { env: { ISSUER: base } });
    await issuer.services.storage.clients.create({
      id: RS.id,
      name: "orders service",
      type: "confidential",
      secretHash: hashClientSecret(RS.secret),
      grantTypes: ["client_credentials"],
      scopes: [],
      audiences: [],
      resources: ["api"],
      accessTokenTtl: null,
      refreshTokenTtl: null,
      createdAt: issuer.clock.now(),
      disabledAt: null,
    });
    // Everything at the issuer's default places: ${ISSUER}/.well-known/jwks.json, its status lists.
    verifier = createVerifier({ issuer: base, audience: issuer.config.accessTokenAudience });
    introspector = createIntrospector({ introspectionEndpoint: `${base}/oauth/introspect`, clientId: RS.id, clientSecret: RS.secret });
    bad = await badTokens(issuer, other);
  });
  afterAll(async () => {
    await other?.close();
    await issuer?.close();
  });

  describe.each(LIBS)("%s", (_name, lib) => {
    let svc: Served;
    beforeAll(async () => {
      svc = await expressService(lib, { verifier, introspector });
    });
    afterAll(async () => svc?.close());

    describe("bearerAuth", () => {
      it("200 with a token from the password grant; req.auth holds the typed claims", async () => {
        const user = await login(issuer.app);
        const res = await call(svc.url, "/me", { headers: bearer(user.access_token) });
        expect(res.status).toBe(200);
        expect(res.body).toMatchObject(passwordGrantClaims(base, user));
      });

      it('the scheme is case-insensitive ("bearer", "BEARER")', async () => {
        const token = await issue("profile");
        for (const scheme of ["bearer", "BEARER", "BeArEr"]) {
          expect([scheme, (await call(svc.url, "/me", { headers: { authorization: `${scheme} ${token}` } })).status]).toEqual([scheme, 200]);
        }
      });

      it("routes without bearerAuth stay public", async () => {
        expect((await call(svc.url, "/public")).body).toEqual({ auth: null });
      });

      it('401 without a token: WWW-Authenticate Bearer realm="orders", no error code (RFC 6750 §3.1)', async () => {
        for (const headers of [{}, { authorization: "Basic dXNlcjpwYXNz" }] as Record<string, string>[]) {
          const res = await call(svc.url, "/me", { headers });
          expect(res.status).toBe(401);
          expect(res.challenge).toBe('Bearer realm="orders"');
          expect(res.cacheControl).toBe("no-store");
          expect(res.body.error).not.toBe("invalid_token");
        }
      });

      it('401 invalid_token for every bad token, error_description = the body\'s, and a log line with the code', async () => {
        const seen: Record<string, unknown> = {};
        const logsBefore = svc.logs.length;
        for (const t of bad) {
          const res = await call(svc.url, "/me", { headers: bearer(t.token) });
          const params = paramsOf(res.challenge);
          seen[t.name] = { status: res.status, realm: params.realm, error: params.error, bodyError: res.body.error };
          expect(params.error_description).toBe(res.body.error_description);
        }
        const expected = { status: 401, realm: "orders", error: "invalid_token", bodyError: "invalid_token" };
        expect(seen).toEqual(Object.fromEntries(bad.map((t) => [t.name, expected])));
        expect(svc.logs.slice(logsBefore).map((l) => [l.level, l.fields.tokenError])).toEqual(bad.map((t) => ["info", t.code]));
      });

      it("400 invalid_request for a broken Authorization header, a token in the query or a form body (RFC 6750 §3.1)", async () => {
        const token = await issue("profile");
        const cases: [string, string, { method?: string; headers?: Record<string, string>; body?: string }][] = [
          ["bare scheme", "/me", { headers: { authorization: "Bearer" } }],
          ["two tokens", "/me", { headers: { authorization: `Bearer ${token} ${token}` } }],
          ["comma", "/me", { headers: { authorization: `Bearer ${token},x` } }],
          ["quoted", "/me", { headers: { authorization: 'Bearer "quoted"' } }],
          ["query token, not enabled", `/me?access_token=${token}`, {}],
          ["query token and header", `/me?access_token=${token}`, { headers: bearer(token) }],
          ["form-body token, not enabled", "/me", formPost({ access_token: token })],
        ];
        const seen: Record<string, unknown> = {};
        for (const [name, path, init] of cases) {
          const res = await call(svc.url, path, init);
          seen[name] = { status: res.status, error: paramsOf(res.challenge).error, bodyError: res.body.error };
        }
        const expected = { status: 400, error: "invalid_request", bodyError: "invalid_request" };
        expect(seen).toEqual(Object.fromEntries(cases.map(([name]) => [name, expected])));
      });

      it("query and body tokens only when allowed, and never two methods at once", async () => {
        const open = await expressService(lib, { verifier, allowQueryToken: true, allowBodyToken: true });
        try {
          const token = await issue("profile");
          expect((await call(open.url, `/me?access_token=${token}`)).status).toBe(200);
          expect((await call(open.url, "/me", formPost({ access_token: token }))).status).toBe(200);
          // RFC 6750 §2.2: never in a GET body... nor in two places, nor twice.
          expect((await call(open.url, `/me?access_token=${token}`, { headers: bearer(token) })).status).toBe(400);
          expect((await call(open.url, `/me?access_token=${token}&access_token=${token}`)).status).toBe(400);
          expect((await call(open.url, "/me?access_token=")).status).toBe(400);
          const expired = bad.find((b) => b.code === "expired")!;
          expect((await call(open.url, `/me?access_token=${expired.token}`)).status).toBe(401);
        } finally {
          await open.close();
        }
      });

      it("an unreachable JWKS is 503 with Retry-After, not 401 and not 500, logged as an error", async () => {
        const closed = await freePort();
        const blind = createVerifier({ issuer: base, audience: "api", jwksUri: `http://127.0.0.1:${closed}/jwks.json` });
        const down = await expressService(lib, { verifier: blind });
        try {
          const res = await call(down.url, "/me", { headers: bearer(await issue("profile")) });
          expect(res).toMatchObject({ status: 503, retryAfter: "5", cacheControl: "no-store", body: { error: "temporarily_unavailable" } });
          expect(down.logs.map((l) => [l.level, l.fields.tokenError])).toEqual([["error", "jwks_unavailable"]]);
        } finally {
          await down.close();
        }
      });
    });

    describe("requireScope, requireRole", () => {
      it('requireScope: 403 insufficient_scope with scope="..." when a scope is missing, 200 when present', async () => {
        const without = await call(svc.url, "/orders", { headers: bearer(await issue("profile")) });
        expect(without.status).toBe(403);
        expect(paramsOf(without.challenge)).toMatchObject({ realm: "orders", error: "insufficient_scope", scope: "orders:read" });
        expect(without.body).toMatchObject({ error: "insufficient_scope", scope: "orders:read" });
        const withScope = await call(svc.url, "/orders", { headers: bearer(await issue("profile orders:read")) });
        expect(withScope).toMatchObject({ status: 200, body: { sub: "user-ex" } });
      });

      it("several scopes: all of them are needed", async () => {
        const one = await call(svc.url, "/orders", { method: "POST", headers: bearer(await issue("orders:read")) });
        expect(one.status).toBe(403);
        expect(paramsOf(one.challenge).scope).toBe("orders:read orders:write");
        expect((await call(svc.url, "/orders", { method: "POST", headers: bearer(await issue("orders:write orders:read")) })).status).toBe(200);
      });

      it("authentication comes first: no token is 401, a bad token 401 invalid_token, never 403", async () => {
        const none = await call(svc.url, "/orders");
        expect([none.status, none.challenge]).toEqual([401, 'Bearer realm="orders"']);
        const expired = bad.find((b) => b.code === "expired")!;
        for (const path of ["/orders", "/admin"]) {
          const res = await call(svc.url, path, { headers: bearer(expired.token) });
          expect([path, res.status, paramsOf(res.challenge).error]).toEqual([path, 401, "invalid_token"]);
        }
      });

      it("requireRole: roles come from the token's roles claim", async () => {
        const plain = await call(svc.url, "/admin", { headers: bearer(await issue("profile")) });
        expect([plain.status, paramsOf(plain.challenge).error]).toEqual([403, "insufficient_scope"]);
        expect((await call(svc.url, "/admin", { headers: bearer(await issue("profile", ["support"])) })).status).toBe(403);
        const admin = await call(svc.url, "/admin", { headers: bearer(await issue("profile", ["support", "admin"])) });
        expect(admin).toMatchObject({ status: 200, body: { roles: ["support", "admin"] } });
      });

      it("a guard without bearerAuth() before it is a server error, never a pass", async () => {
        const res = await call(svc.url, "/misordered", { headers: bearer(await issue("orders:read")) });
        expect(res.status).toBe(500);
        expect(res.body.message).toMatch(/bearerAuth\(\) must come before it/);
      });

      it("a req.auth set by another middleware is not proof: without Tessera's bearerAuth the guard is a server error, with it the real token decides", async () => {
        const app = lib();
        const handler = (req: express.Request, res: express.Response) => void res.json({ sub: req.auth!.sub, roles: req.auth!.roles });
        app.get("/foreign-only", foreignAuth, requireRole("admin"), handler);
        app.get("/foreign-then-tessera", foreignAuth, bearerAuth({ verifier, realm: "orders" }), requireRole("admin"), handler);
        app.get("/tessera-then-foreign", bearerAuth({ verifier, realm: "orders" }), foreignAuth, requireRole("admin"), requireScope("orders:read"), handler);
        app.use(serverError);
        const svc2 = await listen(app);
        try {
          const plain = await issue("profile");
          const admin = await issue("profile orders:read", ["admin"]);
          // No Tessera bearerAuth in the chain: never a pass, whatever req.auth holds.
          for (const headers of [{}, bearer(plain), bearer(admin)]) {
            const res = await call(svc2.url, "/foreign-only", { headers });
            expect([res.status, res.body.message]).toEqual([500, "requireRole: bearerAuth() must come before it in the middleware chain"]);
          }
          // Tessera's bearerAuth after it verifies the request's own token.
          const none = await call(svc2.url, "/foreign-then-tessera");
          expect([none.status, none.challenge]).toEqual([401, 'Bearer realm="orders"']);
          const forged = await call(svc2.url, "/foreign-then-tessera", { headers: bearer(bad.find((b) => b.code === "expired")!.token) });
          expect([forged.status, paramsOf(forged.challenge).error]).toEqual([401, "invalid_token"]);
          expect((await call(svc2.url, "/foreign-then-tessera", { headers: bearer(plain) })).status).toBe(403);
          expect(await call(svc2.url, "/foreign-then-tessera", { headers: bearer(admin) })).toMatchObject({ status: 200, body: { sub: "user-ex", roles: ["admin"] } });
          // Overwritten after bearerAuth: the guards check what bearerAuth verified, and the handler gets it back.
          expect((await call(svc2.url, "/tessera-then-foreign", { headers: bearer(plain) })).status).toBe(403);
          expect(await call(svc2.url, "/tessera-then-foreign", { headers: bearer(admin) })).toMatchObject({ status: 200, body: { sub: "user-ex", roles: ["admin"] } });
        } finally {
          await svc2.close();
        }
      });

      it("two bearerAuth with different audiences in one chain: each verifies, so a token for A is 401 on B's routes", async () => {
        const forOrders = createVerifier({ issuer: base, audience: "orders" });
        const forBilling = createVerifier({ issuer: base, audience: "billing" });
        let ordersChecks = 0;
        const counted: Verifier = { jwks: forOrders.jwks, verify: (t) => (ordersChecks++, forOrders.verify(t)) };
        const app = lib();
        // The whole app takes tokens for "orders"; the billing routes also need "billing".
        app.use(bearerAuth({ verifier: counted, realm: "orders" }));
        app.get("/orders", requireRole("admin"), (req, res) => void res.json({ aud: req.auth!.aud }));
        app.get("/orders-again", bearerAuth({ verifier: counted, realm: "orders-again" }), requireScope("orders:write"), (req, res) => void res.json({ aud: req.auth!.aud }));
        app.get("/billing", bearerAuth({ verifier: forBilling, realm: "billing" }), requireRole("admin"), (req, res) => void res.json({ aud: req.auth!.aud }));
        app.use(serverError);
        const svc2 = await listen(app);
        const mint = async (audience: string | string[]) =>
          (await issuer.services.accessTokens.issue({ subject: "user-ex", clientId: "web", scope: "profile", audience, roles: ["admin"] })).token;
        try {
          const ordersToken = await mint("orders");
          expect(await call(svc2.url, "/orders", { headers: bearer(ordersToken) })).toMatchObject({ status: 200, body: { aud: "orders" } });
          const res = await call(svc2.url, "/billing", { headers: bearer(ordersToken) });
          expect([res.status, paramsOf(res.challenge).realm, paramsOf(res.challenge).error, res.body.error]).toEqual([401, "billing", "invalid_token", "invalid_token"]);
          const both = await mint(["orders", "billing"]);
          expect(await call(svc2.url, "/billing", { headers: bearer(both) })).toMatchObject({ status: 200, body: { aud: ["orders", "billing"] } });
          // The same verifier twice verifies once; the guards answer with the later bearerAuth's realm.
          ordersChecks = 0;
          const again = await call(svc2.url, "/orders-again", { headers: bearer(ordersToken) });
          expect([again.status, paramsOf(again.challenge).realm, ordersChecks]).toEqual([403, "orders-again", 1]);
        } finally {
          await svc2.close();
        }
      });

      it("guard names are checked when routes are declared", () => {
        expect(() => requireScope()).toThrow(TypeError);
        expect(() => requireScope("two words")).toThrow(TypeError);
        expect(() => requireRole('qu"ote')).toThrow(TypeError);
        expect(() => bearerAuth({} as ExpressBearerOptions)).toThrow(TypeError);
      });
    });

    describe("requireActive (introspection at the issuer, RFC 7662)", () => {
      it("an active token passes; after RFC 7009 revocation it is 401 invalid_token at once", async () => {
        const token = (await login(issuer.app)).access_token;
        expect((await call(svc.url, "/active", { headers: bearer(token) })).status).toBe(200);
        const revoked = await fetch(`${base}/oauth/revoke`, formPost({ token, client_id: "web" }));
        expect(revoked.status).toBe(200);
        const res = await call(svc.url, "/active", { headers: bearer(token) });
        expect(res.status).toBe(401);
        expect(paramsOf(res.challenge)).toMatchObject({ realm: "orders", error: "invalid_token", error_description: "the access token is no longer active" });
      });

      it("bad tokens and missing scopes are refused before the issuer is asked", async () => {
        const expired = bad.find((b) => b.code === "expired")!;
        expect((await call(svc.url, "/refunds", { method: "POST", headers: bearer(expired.token) })).status).toBe(401);
        expect((await call(svc.url, "/refunds", { method: "POST", headers: bearer(await issue("profile")) })).status).toBe(403);
        expect((await call(svc.url, "/refunds", { method: "POST" })).status).toBe(401);
      });

      it("the introspection endpoint unreachable or refusing our credentials is 503, never a pass", async () => {
        const closed = await freePort();
        for (const bad_ of [
          createIntrospector({ introspectionEndpoint: `http://127.0.0.1:${closed}/oauth/introspect`, clientId: RS.id, clientSecret: RS.secret }),
          createIntrospector({ introspectionEndpoint: `${base}/oauth/introspect`, clientId: RS.id, clientSecret: "wrong" }),
        ]) {
          const down = await expressService(lib, { verifier, introspector: bad_ });
          try {
            const res = await call(down.url, "/refunds", { method: "POST", headers: bearer(await issue("orders:write")) });
            expect(res).toMatchObject({ status: 503, retryAfter: "5", body: { error: "temporarily_unavailable" } });
            expect(down.logs.map((l) => l.level)).toEqual(["error"]);
          } finally {
            await down.close();
          }
        }
      });
    });

    it("answers exactly as the Fastify plugin does: status, challenge, headers and body", async () => {
      const fastify = await fastifyService({ verifier, introspector });
      try {
        const token = await issue("profile");
        const expired = bad.find((b) => b.code === "expired")!;
        const alg = bad.find((b) => b.code === "alg_not_allowed")!;
        const requests: [string, { method?: string; headers?: Record<string, string>; body?: string }][] = [
          ["/me", {}],
          ["/me", { headers: { authorization: "Basic dXNlcjpwYXNz" } }],
          ["/me", { headers: { authorization: "Bearer" } }],
          [`/me?access_token=${token}`, {}],
          ["/me", formPost({ access_token: token })],
          ["/me", { headers: bearer(expired.token) }],
          ["/me", { headers: bearer(alg.token) }],
          ["/me", { headers: bearer(token) }],
          ["/orders", { headers: bearer(token) }],
          ["/admin", { headers: bearer(token) }],
        ];
        for (const [path, init] of requests) {
          const fromExpress = await call(svc.url, path, init);
          const f = await fastify.inject({
            method: (init.method ?? "GET") as "GET" | "POST",
            url: path,
            headers: init.headers ?? {},
            ...(init.body !== undefined && { payload: init.body }),
          });
          const fromFastify: Answer = {
            status: f.statusCode,
            challenge: (f.headers["www-authenticate"] as string | undefined) ?? null,
            cacheControl: (f.headers["cache-control"] as string | undefined) ?? null,
            retryAfter: (f.headers["retry-after"] as string | undefined) ?? null,
            contentType: (f.headers["content-type"] as string | undefined) ?? null,
            body: f.json(),
          };
          expect([path, init.headers?.authorization?.slice(0, 20), fromExpress]).toEqual([path, init.headers?.authorization?.slice(0, 20), fromFastify]);
        }
      } finally {
        await fastify.close();
      }
    });
  });

  it("the Fastify plugin alike: a request.auth set by another hook is not proof; the guards verify the request's own token", async () => {
    const app = Fastify();
    await app.register(fastifyBearerAuth, { verifier, realm: "orders" });
    const foreign = async (request: FastifyRequest) => {
      request.auth = { ...FOREIGN_AUTH };
    };
    const handler = async (req: FastifyRequest) => ({ sub: req.auth!.sub, roles: req.auth!.roles });
    app.get("/me", { preHandler: [foreign, fastifyGuards.authenticate] }, handler);
    app.get("/admin", { preHandler: [foreign, fastifyGuards.requireRole("admin")] }, handler);
    app.get("/overwritten", { preHandler: [fastifyGuards.authenticate, foreign, fastifyGuards.requireRole("admin")] }, handler);
    await app.ready();
    try {
      const ask = async (url: string, token?: string) => {
        const res = await app.inject({ method: "GET", url, headers: token ? bearer(token) : {} });
        return { status: res.statusCode, body: res.json() as Record<string, unknown> };
      };
      const plain = await issue("profile");
      const admin = await issue("profile", ["admin"]);
      for (const url of ["/me", "/admin", "/overwritten"]) expect([url, (await ask(url)).status]).toEqual([url, 401]);
      expect((await ask("/admin", plain)).status).toBe(403);
      expect((await ask("/overwritten", plain)).status).toBe(403);
      for (const url of ["/me", "/admin", "/overwritten"]) {
        expect([url, await ask(url, admin)]).toEqual([url, { status: 200, body: { sub: "user-ex", roles: ["admin"] } }]);
      }
    } finally {
      await app.close();
    }
  });
});
