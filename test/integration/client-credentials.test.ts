// grant_type=client_credentials (RFC 6749 §4.4) as a service sees it: client authentication with
// client_secret_basic and client_secret_post (§2.3.1), the access token it gets (RFC 9068, sub =
// client_id, no refresh token), grant/scope/audience rules (RFC 8707 resource), secret rotation,
// disabled clients, and the discovery metadata (RFC 8414) that advertises all of it.
import type { LightMyRequestResponse } from "fastify";
import { decodeJwt } from "jose";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { AdminContext } from "../../src/admin/context.ts";
import { createClient, disableClient, rotateClientSecret } from "../../src/admin/clients.ts";
import { hashClientSecret } from "../../src/domain/clients/clients.ts";
import type { ClientRecord } from "../../src/domain/clients/client-store.ts";
import { adminOf, describeEachDb, errorOf, form, startIssuer, verifyAccessToken, type TestIssuer } from "../helpers/issuer.ts";

const ACCESS_TTL = 300;

/** RFC 6749 §2.3.1: id and secret are application/x-www-form-urlencoded, then "id:secret" in base64. */
const formEncode = (s: string) => new URLSearchParams({ x: s }).toString().slice(2);
const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${formEncode(id)}:${formEncode(secret)}`).toString("base64")}`;

type Auth = { method: "basic" | "post"; id: string; secret: string } | { method: "none"; id: string };

interface TokenResponse {
  access_token: string;
  token_type: string;
  expires_in: number;
  scope: string;
  refresh_token?: string;
}

describeEachDb("grant_type=client_credentials", (flavor) => {
  let issuer: TestIssuer;
  let admin: AdminContext;
  /** read/write, no audiences of its own (gets the issuer's default audience) */
  let svc: { id: string; secret: string };
  /** read, may get tokens for billing-api and ledger-api */
  let billing: { id: string; secret: string };

  beforeAll(async () => {
    // CLIENT_CACHE_TTL=0: a disabled client or a rotated secret takes effect on the next request.
    issuer = await startIssuer(flavor, { env: { CLIENT_CACHE_TTL: "0", ACCESS_TOKEN_TTL: String(ACCESS_TTL) } });
    admin = adminOf(issuer);
    svc = await newClient({ grantTypes: "client_credentials", scopes: "read,write" });
    billing = await newClient({ grantTypes: "client_credentials", scopes: "read", audience: "billing-api,ledger-api" });
  });
  afterAll(async () => issuer?.close());

  async function newClient(a: { grantTypes: string; scopes?: string; audience?: string; accessTokenTtl?: string; confidential?: boolean }) {
    const list = (v: string | undefined) => (v ?? "").split(",").filter(Boolean);
    const r = await createClient(admin, {
      name: "svc",
      type: a.confidential === false ? "public" : "confidential",
      grantTypes: list(a.grantTypes),
      scopes: list(a.scopes),
      audiences: list(a.audience),
      accessTokenTtl: a.accessTokenTtl === undefined ? null : Number(a.accessTokenTtl),
    });
    const json = r.json as { client_id: string; client_secret: string };
    return { id: json.client_id, secret: json.client_secret };
  }

  /** A client record with a secret of our choosing (createClient always generates one). */
  async function clientWithSecret(id: string, secret: string | null, patch: Partial<ClientRecord> = {}): Promise<void> {
    await issuer.services.storage.clients.create({
      id,
      name: id,
      type: secret === null ? "public" : "confidential",
      secretHash: secret === null ? null : hashClientSecret(secret),
      grantTypes: ["client_credentials"],
      scopes: ["read"],
      audiences: [],
      resources: [],
      accessTokenTtl: null,
      refreshTokenTtl: null,
      createdAt: issuer.clock.now(),
      disabledAt: null,
      ...patch,
    });
  }

  function token(auth: Auth, params: Record<string, string> = {}, extraHeaders: Record<string, string> = {}): Promise<LightMyRequestResponse> {
    const body: Record<string, string> = { grant_type: "client_credentials", ...params };
    const headers: Record<string, string> = { ...extraHeaders };
    if (auth.method === "basic") headers.authorization = basic(auth.id, auth.secret);
    else if (auth.method === "post") Object.assign(body, { client_id: auth.id, client_secret: auth.secret });
    else body.client_id = auth.id;
    const f = form(body);
    return issuer.app.inject({ method: "POST", url: "/oauth/token", headers: { ...f.headers, ...headers }, payload: f.payload });
  }

  /** Raw form body, for parameters URLSearchParams cannot express (repeated names). */
  function tokenRaw(auth: { id: string; secret: string }, payload: string): Promise<LightMyRequestResponse> {
    return issuer.app.inject({
      method: "POST",
      url: "/oauth/token",
      headers: { "content-type": "application/x-www-form-urlencoded", authorization: basic(auth.id, auth.secret) },
      payload,
    });
  }

  function expectToken(res: LightMyRequestResponse): TokenResponse {
    expect(res.statusCode, res.body).toBe(200);
    expect(res.headers["cache-control"]).toBe("no-store");
    const body = res.json() as TokenResponse;
    expect(body.token_type).toBe("Bearer");
    expect(body).not.toHaveProperty("refresh_token"); // §4.4.3
    expect(body.expires_in).toBe(ACCESS_TTL);
    return body;
  }

  function expectError(res: LightMyRequestResponse, status: number, error: string): void {
    expect({ status: res.statusCode, body: res.json() as unknown }).toMatchObject({ status, body: { error } });
    expect(res.headers["cache-control"]).toBe("no-store");
  }

  it("client_secret_basic: 200 with a Bearer access token for the client itself, every allowed scope, no refresh token", async () => {
    const res = await token({ method: "basic", ...svc });
    const body = expectToken(res);
    expect(body.scope.split(" ").sort()).toEqual(["read", "write"]);
    const claims = await verifyAccessToken(issuer, body.access_token);
    expect(claims.sub).toBe(svc.id);
    expect(claims.client_id).toBe(svc.id);
    expect(claims.scope).toBe(body.scope);
    expect(claims).not.toHaveProperty("sid");
    expect(claims).not.toHaveProperty("roles");
    expect(claims.exp! - claims.iat!).toBe(ACCESS_TTL);
    expect(typeof claims.jti).toBe("string");
  });

  it("client_secret_post: 200, and the granted scope is exactly the requested one", async () => {
    const body = expectToken(await token({ method: "post", ...svc }, { scope: "read" }));
    expect(body.scope).toBe("read");
    const claims = await verifyAccessToken(issuer, body.access_token);
    expect(claims).toMatchObject({ sub: svc.id, client_id: svc.id, scope: "read" });
    expect(claims).not.toHaveProperty("sid");
  });

  it("each request gets a distinct token (new jti)", async () => {
    const a = expectToken(await token({ method: "basic", ...svc }));
    const b = expectToken(await token({ method: "basic", ...svc }));
    expect(decodeJwt(a.access_token).jti).not.toBe(decodeJwt(b.access_token).jti);
  });

  it("Basic credentials are form-urlencoded (§2.3.1): a secret with + / : % = and a space works encoded, not raw", async () => {
    const id = `odd:id+${flavor}`;
    const secret = "a+b/c:d%20e=f g==";
    await clientWithSecret(id, secret);
    const body = expectToken(await token({ method: "basic", id, secret }));
    expect((await verifyAccessToken(issuer, body.access_token)).sub).toBe(id);
    // The same secret in the body (client_secret_post) also works.
    expectToken(await token({ method: "post", id, secret }));
    // Not encoded, "+" would decode to a space and "%20" to a space: a different secret.
    const raw = `Basic ${Buffer.from(`${formEncode(id)}:${secret}`).toString("base64")}`;
    const res = await issuer.app.inject({
      method: "POST",
      url: "/oauth/token",
      ...form({ grant_type: "client_credentials" }),
      headers: { "content-type": "application/x-www-form-urlencoded", authorization: raw },
    });
    expectError(res, 401, "invalid_client");
  });

  it("per-client access token lifetime", async () => {
    const short = await newClient({ grantTypes: "client_credentials", scopes: "read", accessTokenTtl: "60" });
    const res = await token({ method: "basic", ...short });
    expect(res.statusCode, res.body).toBe(200);
    const body = res.json() as TokenResponse;
    expect(body.expires_in).toBe(60);
    const claims = await verifyAccessToken(issuer, body.access_token);
    expect(claims.exp! - claims.iat!).toBe(60);
  });

  it("wrong secret: 401 invalid_client, with WWW-Authenticate: Basic when Basic was used", async () => {
    const viaBasic = await token({ method: "basic", id: svc.id, secret: `${svc.secret}x` });
    expectError(viaBasic, 401, "invalid_client");
    expect(viaBasic.headers["www-authenticate"]).toMatch(/^Basic\b/);
    expectError(await token({ method: "post", id: svc.id, secret: `${svc.secret}x` }), 401, "invalid_client");
    // The secret of one client does not authenticate another.
    expectError(await token({ method: "basic", id: svc.id, secret: billing.secret }), 401, "invalid_client");
    // No secret at all for a confidential client.
    expectError(await token({ method: "none", id: svc.id }), 401, "invalid_client");
    expectError(await token({ method: "post", id: svc.id, secret: "" }), 401, "invalid_client");
  });

  it("unknown client: 401 invalid_client (Basic and post)", async () => {
    const viaBasic = await token({ method: "basic", id: "no-such-client", secret: svc.secret });
    expectError(viaBasic, 401, "invalid_client");
    expect(viaBasic.headers["www-authenticate"]).toMatch(/^Basic\b/);
    expectError(await token({ method: "post", id: "no-such-client", secret: svc.secret }), 401, "invalid_client");
  });

  it("Basic and client_secret at once, or a malformed Basic header: refused", async () => {
    const both = await token({ method: "basic", ...svc }, { client_secret: svc.secret });
    expect(both.statusCode).toBeGreaterThanOrEqual(400);
    expect(both.statusCode).toBeLessThan(500);
    expect(["invalid_request", "invalid_client"]).toContain(errorOf(both).error);
    const malformed = await token({ method: "none", id: svc.id }, {}, { authorization: `Basic ${Buffer.from("no-colon").toString("base64")}` });
    expectError(malformed, 401, "invalid_client");
  });

  it("a disabled client is refused at once (CLIENT_CACHE_TTL=0): 401 invalid_client", async () => {
    const c = await newClient({ grantTypes: "client_credentials", scopes: "read" });
    expectToken(await token({ method: "basic", ...c }));
    expect(await issuer.services.storage.clients.disable(c.id, issuer.clock.now())).toBe(true);
    expectError(await token({ method: "basic", ...c }), 401, "invalid_client");
    expectError(await token({ method: "post", ...c }), 401, "invalid_client");
  });

  it("disableClient (the admin command) has the same effect", async () => {
    const c = await newClient({ grantTypes: "client_credentials", scopes: "read" });
    expectToken(await token({ method: "post", ...c }));
    expect((await disableClient(admin, c.id)).json).toMatchObject({ client_id: c.id, disabled_at: expect.any(String) });
    expectError(await token({ method: "post", ...c }), 401, "invalid_client");
  });

  it("a public client may not use client_credentials: 400 unauthorized_client", async () => {
    // The first-party web client (public).
    expectError(await token({ method: "none", id: issuer.config.webClientId }), 400, "unauthorized_client");
    // Even a public client whose record lists the grant (not creatable through the CLI).
    const id = `public-cc-${flavor}`;
    await clientWithSecret(id, null);
    expectError(await token({ method: "none", id }), 400, "unauthorized_client");
  });

  it("a confidential client without the grant: 400 unauthorized_client", async () => {
    const c = await newClient({ grantTypes: "password,refresh_token", scopes: "read" });
    expectError(await token({ method: "basic", ...c }), 400, "unauthorized_client");
    expectError(await token({ method: "post", ...c }), 400, "unauthorized_client");
  });

  it("a scope the client may not have: 400 invalid_scope (not silently dropped)", async () => {
    expectError(await token({ method: "basic", ...svc }, { scope: "admin" }), 400, "invalid_scope");
    expectError(await token({ method: "basic", ...svc }, { scope: "read admin" }), 400, "invalid_scope");
    expectError(await token({ method: "basic", ...billing }, { scope: "write" }), 400, "invalid_scope");
    // Repeated allowed scopes are fine.
    expect(expectToken(await token({ method: "basic", ...svc }, { scope: "read read" })).scope).toBe("read");
  });

  it("resource (RFC 8707) or audience the client may use: the token's aud is exactly that", async () => {
    const viaResource = expectToken(await token({ method: "basic", ...billing }, { resource: "ledger-api" }));
    expect((await verifyAccessToken(issuer, viaResource.access_token, { audience: "ledger-api" })).aud).toBe("ledger-api");
    const viaAudience = expectToken(await token({ method: "post", ...billing }, { audience: "billing-api" }));
    expect((await verifyAccessToken(issuer, viaAudience.access_token, { audience: "billing-api" })).aud).toBe("billing-api");
    // Both, naming the same resource: fine.
    const both = expectToken(await token({ method: "basic", ...billing }, { resource: "ledger-api", audience: "ledger-api" }));
    expect(decodeJwt(both.access_token).aud).toBe("ledger-api");
    // None requested: one of the client's own audiences, never the issuer default.
    const none = expectToken(await token({ method: "basic", ...billing }));
    expect(["billing-api", "ledger-api"]).toContain(decodeJwt(none.access_token).aud);
    // A token for billing-api is not accepted by a service that pins ledger-api.
    await expect(verifyAccessToken(issuer, viaAudience.access_token, { audience: "ledger-api" })).rejects.toThrow();
  });

  it("a client without audiences of its own gets (and may ask for) the issuer's default audience only", async () => {
    const body = expectToken(await token({ method: "basic", ...svc }, { resource: issuer.config.accessTokenAudience }));
    expect(decodeJwt(body.access_token).aud).toBe(issuer.config.accessTokenAudience);
    expectError(await token({ method: "basic", ...svc }, { resource: "billing-api" }), 400, "invalid_target");
  });

  it("a resource the client may not use: 400 invalid_target", async () => {
    expectError(await token({ method: "basic", ...billing }, { resource: "payroll-api" }), 400, "invalid_target");
    expectError(await token({ method: "post", ...billing }, { audience: "payroll-api" }), 400, "invalid_target");
    expectError(await token({ method: "basic", ...billing }, { resource: issuer.config.accessTokenAudience }), 400, "invalid_target");
  });

  it("resource and audience naming different targets: 400 invalid_request", async () => {
    expectError(await token({ method: "basic", ...billing }, { resource: "billing-api", audience: "ledger-api" }), 400, "invalid_request");
  });

  it("a repeated resource parameter: 400 invalid_request", async () => {
    const res = await tokenRaw(billing, "grant_type=client_credentials&resource=billing-api&resource=ledger-api");
    expectError(res, 400, "invalid_request");
    // Even when both values are the same and allowed.
    expectError(await tokenRaw(billing, "grant_type=client_credentials&resource=billing-api&resource=billing-api"), 400, "invalid_request");
  });

  it("rotate-secret: the old secret stops working at once (CLIENT_CACHE_TTL=0), the new one works", async () => {
    const c = await newClient({ grantTypes: "client_credentials", scopes: "read" });
    expectToken(await token({ method: "basic", ...c }));
    const rotated = await rotateClientSecret(admin, c.id);
    const secret = (rotated.json as { client_secret: string }).client_secret;
    expect(secret).not.toBe(c.secret);
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43,}$/);
    const old = await token({ method: "basic", ...c });
    expectError(old, 401, "invalid_client");
    expect(old.headers["www-authenticate"]).toMatch(/^Basic\b/);
    expectError(await token({ method: "post", ...c }), 401, "invalid_client");
    const body = expectToken(await token({ method: "basic", id: c.id, secret }));
    expect((await verifyAccessToken(issuer, body.access_token)).sub).toBe(c.id);
    expectToken(await token({ method: "post", id: c.id, secret }));
  });

  it("metadata lists client_credentials, the revocation and introspection endpoints and the auth methods", async () => {
    const res = await issuer.app.inject({ method: "GET", url: "/.well-known/oauth-authorization-server" });
    expect(res.statusCode).toBe(200);
    const m = res.json() as Record<string, unknown>;
    const iss = issuer.config.issuer;
    expect(m.issuer).toBe(iss);
    expect(m.grant_types_supported).toEqual(expect.arrayContaining(["client_credentials", "password", "refresh_token"]));
    expect(m.revocation_endpoint).toBe(`${iss}/oauth/revoke`);
    expect(m.introspection_endpoint).toBe(`${iss}/oauth/introspect`);
    expect(m.token_endpoint_auth_methods_supported).toEqual(expect.arrayContaining(["client_secret_basic", "client_secret_post"]));
    expect(m.revocation_endpoint_auth_methods_supported).toEqual(expect.arrayContaining(["client_secret_basic", "client_secret_post"]));
    expect(m.introspection_endpoint_auth_methods_supported).toEqual(expect.arrayContaining(["client_secret_basic", "client_secret_post"]));
    // Introspection requires authentication: "none" is not offered there (RFC 7662 §2.1).
    expect(m.introspection_endpoint_auth_methods_supported).not.toContain("none");
    expect(Array.isArray(m.scopes_supported)).toBe(true);
    // The advertised endpoints exist.
    for (const url of [m.revocation_endpoint, m.introspection_endpoint] as string[]) {
      const r = await issuer.app.inject({ method: "POST", url: new URL(url).pathname, ...form({}) });
      expect(r.statusCode, url).not.toBe(404);
    }
  });
});
