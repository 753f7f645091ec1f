// Finding 6: introspection must not tell any client everything. RFC 7662 §2.2 and §4: a client
// may introspect tokens issued to it, or meant for it (the token's `aud` is one of the resources
// the client *is*, `resources`; the audiences it may request tokens for do not count); for
// anything else the answer is {"active": false}, exactly as for an unknown token. Tokens of a
// client or a user disabled since are inactive.
import { afterAll, beforeAll, expect, it } from "vitest";
import { hashClientSecret } from "../../src/domain/clients/clients.ts";
import { describeEachDb, form, register, startIssuer, type TestIssuer, type TokenPair } from "../helpers/issuer.ts";

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString("base64")}`;
const INACTIVE = { active: false };

describeEachDb("security: introspection is limited to the token's client and the resource servers it is meant for", (flavor) => {
  let issuer: TestIssuer;
  // A first-party backend that logs users in; resource servers for two audiences; an unrelated
  // confidential client; a service using client_credentials for the billing audience.
  const APP = { id: "app", secret: "app-secret" };
  const API_RS = { id: "api-rs", secret: "api-rs-secret" };
  const BILLING_RS = { id: "billing-rs", secret: "billing-rs-secret" };
  const STRANGER = { id: "stranger", secret: "stranger-secret" };
  const WORKER = { id: "worker", secret: "worker-secret" };
  const OTHER_WORKER = { id: "other-worker", secret: "other-worker-secret" };

  beforeAll(async () => {
    issuer = await startIssuer(flavor, { env: { CLIENT_CACHE_TTL: "0" } });
    const s = issuer.storage;
    const base = { type: "confidential" as const, accessTokenTtl: null, refreshTokenTtl: null, createdAt: new Date(), disabledAt: null, scopes: ["profile", "invoices:read"] };
    await s.clients.create({ ...base, id: APP.id, name: "app", secretHash: hashClientSecret(APP.secret), grantTypes: ["password", "refresh_token"], audiences: [], resources: [] });
    await s.clients.create({ ...base, id: API_RS.id, name: "api rs", secretHash: hashClientSecret(API_RS.secret), grantTypes: ["client_credentials"], audiences: [], resources: ["api"] });
    await s.clients.create({ ...base, id: BILLING_RS.id, name: "billing rs", secretHash: hashClientSecret(BILLING_RS.secret), grantTypes: ["client_credentials"], audiences: [], resources: ["https://billing.internal"] });
    await s.clients.create({ ...base, id: STRANGER.id, name: "stranger", secretHash: hashClientSecret(STRANGER.secret), grantTypes: ["client_credentials"], audiences: ["https://elsewhere.internal"], resources: [] });
    await s.clients.create({ ...base, id: WORKER.id, name: "worker", secretHash: hashClientSecret(WORKER.secret), grantTypes: ["client_credentials"], audiences: ["https://billing.internal"], resources: [] });
    // Another caller of billing (allowed to request billing tokens), not billing itself.
    await s.clients.create({ ...base, id: OTHER_WORKER.id, name: "other worker", secretHash: hashClientSecret(OTHER_WORKER.secret), grantTypes: ["client_credentials"], audiences: ["https://billing.internal"], resources: [] });
  });
  afterAll(async () => issuer?.close());

  const introspect = async (as: { id: string; secret: string }, token: string) => {
    const res = await issuer.app.inject({ method: "POST", url: "/oauth/introspect", headers: { ...form({}).headers, authorization: basic(as.id, as.secret) }, payload: new URLSearchParams({ token }).toString() });
    expect(res.statusCode).toBe(200);
    return res.json() as Record<string, unknown>;
  };
  const userToken = async () => {
    const user = await register(issuer.app);
    const res = await issuer.app.inject({
      method: "POST",
      url: "/oauth/token",
      headers: { ...form({}).headers, authorization: basic(APP.id, APP.secret) },
      payload: new URLSearchParams({ grant_type: "password", username: user.email, password: user.password }).toString(),
    });
    expect(res.statusCode).toBe(200);
    return { user, pair: res.json() as TokenPair };
  };
  const workerToken = async () => {
    const res = await issuer.app.inject({
      method: "POST",
      url: "/oauth/token",
      headers: { ...form({}).headers, authorization: basic(WORKER.id, WORKER.secret) },
      payload: new URLSearchParams({ grant_type: "client_credentials", resource: "https://billing.internal" }).toString(),
    });
    expect(res.statusCode).toBe(200);
    return (res.json() as { access_token: string }).access_token;
  };

  it("a user's access token: its client and the audience's resource server see it; other clients learn nothing", async () => {
    const { user, pair } = await userToken();
    expect(await introspect(APP, pair.access_token)).toMatchObject({ active: true, sub: user.id, client_id: APP.id });
    expect(await introspect(API_RS, pair.access_token)).toMatchObject({ active: true, sub: user.id, aud: "api" });
    expect(await introspect(STRANGER, pair.access_token)).toEqual(INACTIVE);
    expect(await introspect(BILLING_RS, pair.access_token)).toEqual(INACTIVE);
  });

  it("a client_credentials token for billing: the billing resource server sees it, the api one does not", async () => {
    const token = await workerToken();
    expect(await introspect(BILLING_RS, token)).toMatchObject({ active: true, client_id: WORKER.id, aud: "https://billing.internal" });
    expect(await introspect(WORKER, token)).toMatchObject({ active: true });
    expect(await introspect(API_RS, token)).toEqual(INACTIVE);
    expect(await introspect(STRANGER, token)).toEqual(INACTIVE);
    // Being allowed to call billing is not being billing: another caller learns nothing.
    expect(await introspect(OTHER_WORKER, token)).toEqual(INACTIVE);
  });

  it("refresh tokens: only the client they were issued to learns anything", async () => {
    const { pair } = await userToken();
    expect(await introspect(APP, pair.refresh_token)).toMatchObject({ active: true });
    for (const other of [API_RS, BILLING_RS, STRANGER]) expect(await introspect(other, pair.refresh_token)).toEqual(INACTIVE);
  });

  it("the token of a client disabled since is inactive", async () => {
    const token = await workerToken();
    expect((await introspect(BILLING_RS, token)).active).toBe(true);
    await issuer.storage.clients.disable(WORKER.id, new Date());
    try {
      expect(await introspect(BILLING_RS, token)).toEqual(INACTIVE);
    } finally {
      await issuer.storage.db.client.update({ where: { id: WORKER.id }, data: { disabledAt: null } });
    }
  });

  it("the token of a user disabled since is inactive, even before their sessions are revoked", async () => {
    const { user, pair } = await userToken();
    expect((await introspect(API_RS, pair.access_token)).active).toBe(true);
    await issuer.storage.db.user.update({ where: { id: user.id }, data: { disabledAt: new Date() } });
    expect(await introspect(API_RS, pair.access_token)).toEqual(INACTIVE);
    expect(await introspect(APP, pair.refresh_token)).toEqual(INACTIVE);
  });
});
