// Finding 4: request checks must not hide reuse. A consumed refresh token presented outside the
// grace window is reuse whatever else the request says (another client_id, a bad scope, a client
// that fails authentication or may not refresh): the family is revoked first (RFC 9700 §4.14.2),
// so a thief cannot probe a session for free.
import type { LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, expect, it } from "vitest";
import { hashClientSecret } from "../../src/domain/clients/clients.ts";
import { describeEachDb, form, login, refreshGrant, startIssuer, verifyAccessToken, type TestIssuer, type TokenPair } from "../helpers/issuer.ts";

describeEachDb("security: reuse is judged before request checks", (flavor) => {
  let issuer: TestIssuer;
  beforeAll(async () => {
    issuer = await startIssuer(flavor, { env: { REFRESH_REUSE_GRACE: "10" } });
    const base = { createdAt: new Date(), disabledAt: null, accessTokenTtl: null, refreshTokenTtl: null, audiences: [], resources: [] };
    // Another public client that may refresh, a confidential one, and one that may not refresh.
    await issuer.storage.clients.create({ ...base, id: "mobile", name: "mobile", type: "public", secretHash: null, grantTypes: ["password", "refresh_token"], scopes: ["profile"] });
    await issuer.storage.clients.create({ ...base, id: "backend", name: "backend", type: "confidential", secretHash: hashClientSecret("backend-secret"), grantTypes: ["password", "refresh_token"], scopes: ["profile"] });
    await issuer.storage.clients.create({ ...base, id: "cli", name: "cli", type: "public", secretHash: null, grantTypes: ["password"], scopes: ["profile"] });
  });
  afterAll(async () => issuer?.close());

  /** A session whose first refresh token was rotated long ago (outside grace), plus its live successor. */
  const consumedOutsideGrace = async () => {
    const pair = await login(issuer.app);
    const rotated = await refreshGrant(issuer.app, pair.refresh_token);
    expect(rotated.statusCode).toBe(200);
    issuer.clock.advance(60);
    const sid = (await verifyAccessToken(issuer, pair.access_token)).sid as string;
    return { consumed: pair.refresh_token, live: (rotated.json() as TokenPair).refresh_token, sid };
  };

  const expectFamilyRevoked = async (res: LightMyRequestResponse, sid: string, live: string) => {
    expect(res.statusCode).toBeGreaterThanOrEqual(400);
    expect(res.statusCode).toBeLessThan(500);
    const session = await issuer.storage.db.session.findUniqueOrThrow({ where: { id: sid } });
    expect(session.revokedReason).toBe("refresh_token_reuse");
    const events = await issuer.storage.audit.list({ type: "refresh.reuse_detected", sessionId: sid });
    expect(events).toHaveLength(1);
    // The legitimate client's current token is dead too.
    const next = await refreshGrant(issuer.app, live);
    expect(next.statusCode).toBe(400);
    expect((next.json() as { error: string }).error).toBe("invalid_grant");
  };

  const cases: Array<[string, (consumed: string) => Promise<LightMyRequestResponse>]> = [
    ["another public client_id", (t) => refreshGrant(issuer.app, t, { client_id: "mobile" })],
    ["an unknown scope", (t) => refreshGrant(issuer.app, t, { scope: "no-such-scope" })],
    ["a scope beyond the session's grant", (t) => refreshGrant(issuer.app, t, { scope: "profile admin:write" })],
    ["an unknown client_id (invalid_client)", (t) => refreshGrant(issuer.app, t, { client_id: "nobody" })],
    ["a confidential client without its secret (invalid_client)", (t) => refreshGrant(issuer.app, t, { client_id: "backend" })],
    [
      "a confidential client with a wrong secret over Basic (invalid_client)",
      (t) =>
        issuer.app.inject({
          method: "POST",
          url: "/oauth/token",
          headers: { "content-type": "application/x-www-form-urlencoded", authorization: `Basic ${Buffer.from("backend:wrong").toString("base64")}` },
          payload: new URLSearchParams({ grant_type: "refresh_token", refresh_token: t }).toString(),
        }),
    ],
    ["a client that may not use refresh_token (unauthorized_client)", (t) => refreshGrant(issuer.app, t, { client_id: "cli" })],
    [
      "no client identification at all",
      (t) => issuer.app.inject({ method: "POST", url: "/oauth/token", ...form({ grant_type: "refresh_token", refresh_token: t }) }),
    ],
  ];

  for (const [name, send] of cases) {
    it(`a consumed token outside grace with ${name}: the family is revoked`, async () => {
      const { consumed, live, sid } = await consumedOutsideGrace();
      const res = await send(consumed);
      await expectFamilyRevoked(res, sid, live);
    });
  }

  it("the same requests with a live (unconsumed) token are refused without consuming or revoking anything", async () => {
    const pair = await login(issuer.app);
    const sid = (await verifyAccessToken(issuer, pair.access_token)).sid as string;
    for (const [, send] of cases) {
      const res = await send(pair.refresh_token);
      expect(res.statusCode).toBeGreaterThanOrEqual(400);
      expect(res.statusCode).toBeLessThan(500);
    }
    const session = await issuer.storage.db.session.findUniqueOrThrow({ where: { id: sid } });
    expect(session.revokedAt).toBeNull();
    expect(await issuer.storage.db.refreshToken.count({ where: { sessionId: sid } })).toBe(1);
    issuer.clock.advance(60);
    expect((await refreshGrant(issuer.app, pair.refresh_token)).statusCode).toBe(200);
  });

  it("a grace retry from another client is reuse, not a retry", async () => {
    const pair = await login(issuer.app);
    const sid = (await verifyAccessToken(issuer, pair.access_token)).sid as string;
    const rotated = await refreshGrant(issuer.app, pair.refresh_token);
    expect(rotated.statusCode).toBe(200);
    issuer.clock.advance(2); // inside the 10 s grace window
    const res = await refreshGrant(issuer.app, pair.refresh_token, { client_id: "mobile" });
    await expectFamilyRevoked(res, sid, (rotated.json() as TokenPair).refresh_token);
  });

  it("a genuine grace retry with a bad scope is refused without revoking the session", async () => {
    const pair = await login(issuer.app);
    const sid = (await verifyAccessToken(issuer, pair.access_token)).sid as string;
    const rotated = await refreshGrant(issuer.app, pair.refresh_token);
    issuer.clock.advance(2);
    const res = await refreshGrant(issuer.app, pair.refresh_token, { scope: "no-such-scope" });
    expect((res.json() as { error: string }).error).toBe("invalid_scope");
    expect((await issuer.storage.db.session.findUniqueOrThrow({ where: { id: sid } })).revokedAt).toBeNull();
    const retry = await refreshGrant(issuer.app, pair.refresh_token);
    expect(retry.statusCode).toBe(200);
    expect((retry.json() as TokenPair).refresh_token).toBe((rotated.json() as TokenPair).refresh_token);
  });
});
