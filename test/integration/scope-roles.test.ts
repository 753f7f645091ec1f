// Scopes narrowed to what the client AND the user may have: role-gated scopes (SCOPE_ROLES) are
// granted only to users with one of the roles; the response's `scope` says what was granted.
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeEachDb, passwordGrant, refreshGrant, startIssuer, uniqueEmail, verifyAccessToken, type TestIssuer, type TokenPair } from "../helpers/issuer.ts";

describeEachDb("scopes and roles", (flavor) => {
  let issuer: TestIssuer;
  beforeAll(async () => {
    issuer = await startIssuer(flavor, {
      env: { WEB_CLIENT_SCOPES: "profile reports:read admin:write", SCOPE_ROLES: "admin:write=admin;reports:read=analyst|admin" },
    });
  });
  afterAll(async () => issuer?.close());

  const userWith = async (roles: string[]) => {
    const email = uniqueEmail("roles");
    await issuer.services.users.register(email, "correct horse battery staple", roles);
    return email;
  };
  const grant = async (email: string, scope?: string) => {
    const res = await passwordGrant(issuer.app, email, "correct horse battery staple", scope ? { scope } : {});
    expect(res.statusCode).toBe(200);
    const body = res.json() as TokenPair;
    return { body, claims: await verifyAccessToken(issuer, body.access_token) };
  };

  it("a user without roles gets only the ungated scopes, and the response says so", async () => {
    const { body, claims } = await grant(await userWith([]), "profile reports:read admin:write");
    expect(body.scope).toBe("profile");
    expect(claims.scope).toBe("profile");
    expect(claims.roles).toBeUndefined();
  });

  it("roles open their scopes: analyst gets reports:read, admin gets both, and roles are in the token", async () => {
    const analyst = await grant(await userWith(["analyst"]));
    expect(analyst.body.scope.split(" ").sort()).toEqual(["profile", "reports:read"]);
    expect(analyst.claims.roles).toEqual(["analyst"]);
    const admin = await grant(await userWith(["admin"]));
    expect(admin.body.scope.split(" ").sort()).toEqual(["admin:write", "profile", "reports:read"]);
    expect(admin.claims.roles).toEqual(["admin"]);
  });

  it("the narrowed scope is the session's: a refresh cannot widen it", async () => {
    const { body } = await grant(await userWith([]), "profile reports:read");
    const wider = await refreshGrant(issuer.app, body.refresh_token, { scope: "profile reports:read" });
    expect(wider.statusCode).toBe(400);
    expect((wider.json() as { error: string }).error).toBe("invalid_scope");
    // The refused request did not consume the token: it still rotates normally, well outside
    // any grace window.
    issuer.clock.advance(60);
    const same = await refreshGrant(issuer.app, body.refresh_token);
    expect(same.statusCode).toBe(200);
    expect((same.json() as TokenPair).scope).toBe("profile");
  });

  it("a scope the client may not have is still invalid_scope, whatever the user's roles", async () => {
    const res = await passwordGrant(issuer.app, await userWith(["admin"]), "correct horse battery staple", { scope: "billing:write" });
    expect(res.statusCode).toBe(400);
    expect((res.json() as { error: string }).error).toBe("invalid_scope");
  });
});
