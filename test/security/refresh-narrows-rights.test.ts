// Finding 3: a refresh must not keep rights that were taken away. Every refresh grants what the
// session was granted, narrowed to what the client and the user may have *now* (RFC 6749 §3.3:
// the response's `scope` says what was granted), and the access token carries exactly that.
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeEachDb, passwordGrant, refreshGrant, startIssuer, uniqueEmail, verifyAccessToken, type TestIssuer, type TokenPair } from "../helpers/issuer.ts";

describeEachDb("security: refresh narrows to current rights", (flavor) => {
  let issuer: TestIssuer;
  beforeAll(async () => {
    issuer = await startIssuer(flavor, {
      // CLIENT_CACHE_TTL=0: an operator's change to the client is seen by the next request.
      env: { WEB_CLIENT_SCOPES: "profile reports:read admin:write", SCOPE_ROLES: "admin:write=admin;reports:read=analyst|admin", CLIENT_CACHE_TTL: "0" },
    });
  });
  afterAll(async () => issuer?.close());

  const PW = "correct horse battery staple";
  const loginAs = async (roles: string[]) => {
    const email = uniqueEmail("rights");
    const user = await issuer.services.users.register(email, PW, roles);
    const res = await passwordGrant(issuer.app, email, PW);
    expect(res.statusCode).toBe(200);
    return { user, pair: res.json() as TokenPair };
  };
  const refresh = async (token: string) => {
    issuer.clock.advance(30); // outside any grace window
    const res = await refreshGrant(issuer.app, token);
    expect(res.statusCode, res.body).toBe(200);
    const body = res.json() as TokenPair;
    return { body, claims: await verifyAccessToken(issuer, body.access_token) };
  };

  it("a role taken from the user: the next refresh drops the scope it gated and the role, and says so", async () => {
    const { user, pair } = await loginAs(["admin"]);
    expect(pair.scope.split(" ").sort()).toEqual(["admin:write", "profile", "reports:read"]);

    await issuer.storage.db.user.update({ where: { id: user.id }, data: { roles: "analyst" } });
    const r1 = await refresh(pair.refresh_token);
    expect(r1.body.scope.split(" ").sort()).toEqual(["profile", "reports:read"]);
    expect(r1.claims.scope).toBe(r1.body.scope);
    expect(r1.claims.roles).toEqual(["analyst"]);

    await issuer.storage.db.user.update({ where: { id: user.id }, data: { roles: "" } });
    const r2 = await refresh(r1.body.refresh_token);
    expect(r2.body.scope).toBe("profile");
    expect(r2.claims.scope).toBe("profile");
    expect(r2.claims.roles).toBeUndefined();
  });

  it("a scope taken from the client: the next refresh no longer grants it", async () => {
    const { pair } = await loginAs(["admin"]);
    try {
      await issuer.storage.db.client.update({ where: { id: "web" }, data: { scopes: "profile reports:read" } });
      const r = await refresh(pair.refresh_token);
      expect(r.body.scope.split(" ").sort()).toEqual(["profile", "reports:read"]);
      expect(r.claims.scope).toBe(r.body.scope);
      // Asking for it explicitly does not bring it back.
      issuer.clock.advance(30);
      const asked = await refreshGrant(issuer.app, r.body.refresh_token, { scope: "admin:write profile" });
      expect(asked.statusCode).toBe(200);
      expect((asked.json() as TokenPair).scope).toBe("profile");
    } finally {
      await issuer.storage.db.client.update({ where: { id: "web" }, data: { scopes: "profile reports:read admin:write" } });
    }
  });

  it("a role given back within the session's grant is granted again (the session's grant is the ceiling, not a memory of the narrowing)", async () => {
    const { user, pair } = await loginAs(["admin"]);
    await issuer.storage.db.user.update({ where: { id: user.id }, data: { roles: "" } });
    const r1 = await refresh(pair.refresh_token);
    expect(r1.body.scope).toBe("profile");
    await issuer.storage.db.user.update({ where: { id: user.id }, data: { roles: "admin" } });
    const r2 = await refresh(r1.body.refresh_token);
    expect(r2.body.scope.split(" ").sort()).toEqual(["admin:write", "profile", "reports:read"]);
  });
});
