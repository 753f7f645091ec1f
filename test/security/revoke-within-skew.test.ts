// Services that verify access tokens locally accept one up to CLOCK_SKEW past its `exp` (the
// verifier kit's clockTolerance; jose's, PyJWT's leeway). Revocation (RFC 7009) treated a token
// past its exp as invalid, answered 200 and revoked nothing, while those services still took it.
// A token within CLOCK_SKEW of its exp is now revoked like a live one: a user's revokes its
// session (refresh stops, its status bit is set).
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeEachDb, form, login, refreshGrant, startIssuer, statusOf, type TestIssuer } from "../helpers/issuer.ts";

const ACCESS_TTL = 300;
const SKEW = 60;

describeEachDb("security: revoking an access token just past its exp", (flavor) => {
  let issuer: TestIssuer;
  beforeAll(async () => {
    issuer = await startIssuer(flavor, { env: { ACCESS_TOKEN_TTL: String(ACCESS_TTL), CLOCK_SKEW: String(SKEW) } });
  });
  afterAll(async () => issuer?.close());

  const revoke = (token: string) => issuer.app.inject({ method: "POST", url: "/oauth/revoke", ...form({ token, token_type_hint: "access_token", client_id: "web" }) });

  it("within CLOCK_SKEW of its exp: revoked, and its session with it", async () => {
    const pair = await login(issuer.app);
    issuer.clock.advance(ACCESS_TTL + SKEW - 5);
    expect((await revoke(pair.access_token)).statusCode).toBe(200);
    await issuer.services.statusLists.rebuild();
    expect(await statusOf(issuer, pair.access_token)).toBe(1);
    expect((await refreshGrant(issuer.app, pair.refresh_token)).statusCode).toBe(400);
  });

  it("past exp and CLOCK_SKEW: nothing to revoke (no service takes it any more), 200 and the session goes on", async () => {
    const pair = await login(issuer.app);
    issuer.clock.advance(ACCESS_TTL + SKEW + 5);
    expect((await revoke(pair.access_token)).statusCode).toBe(200);
    expect((await refreshGrant(issuer.app, pair.refresh_token)).statusCode).toBe(200);
  });
});
