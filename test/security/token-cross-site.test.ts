// A page on another site can make its visitor's browser POST a form to /oauth/token (a "simple"
// request: no CORS preflight). It cannot read the answer, but each such password grant was a
// guess counted against the visitor's own address: a few of them locked the real owner out of
// their account from their own network. Browsers say where such a request comes from (Origin,
// and Sec-Fetch-Site): the token endpoint now refuses one from an origin not in ALLOWED_ORIGINS,
// before anything is counted, as the browser endpoints already did.
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeEachDb, errorOf, form, register, startIssuer, type TestIssuer } from "../helpers/issuer.ts";

const ALLOWED = "https://app.test"; // startIssuer's ALLOWED_ORIGINS

describeEachDb("security: cross-site requests to the token endpoint", (flavor) => {
  let issuer: TestIssuer;
  beforeAll(async () => {
    issuer = await startIssuer(flavor, { env: { LOGIN_LOCKOUT_THRESHOLD: "3", LOGIN_LOCKOUT_BASE: "600" } });
  });
  afterAll(async () => issuer?.close());

  const grant = (email: string, password: string, headers: Record<string, string> = {}) =>
    issuer.app.inject({ method: "POST", url: "/oauth/token", ...form({ grant_type: "password", username: email, password, client_id: "web" }), headers: { "content-type": "application/x-www-form-urlencoded", ...headers } });

  it("a form posted from another site is refused before the password is looked at: the owner is not locked out by it", async () => {
    const user = await register(issuer.app);
    const crossSite: Array<Record<string, string>> = [{ origin: "https://evil.example", "sec-fetch-site": "cross-site" }, { origin: "null" }, { "sec-fetch-site": "cross-site" }];
    for (const headers of crossSite) {
      for (let i = 0; i < 3; i++) {
        const res = await grant(user.email, "a wrong guess!", headers);
        expect(errorOf(res)).toMatchObject({ status: 400, error: "invalid_request" });
        expect(errorOf(res).description).toMatch(/origin|cross-site/i);
      }
    }
    expect(await issuer.storage.db.loginFailure.count({ where: { userId: user.id } })).toBe(0);
    expect((await grant(user.email, user.password)).statusCode).toBe(200);
  });

  it("the allowed origin, same-site requests and clients that send no Origin get their tokens", async () => {
    const user = await register(issuer.app);
    const fromApp = await grant(user.email, user.password, { origin: ALLOWED, "sec-fetch-site": "cross-site" });
    expect(fromApp.statusCode).toBe(200);
    expect(fromApp.headers["access-control-allow-origin"]).toBe(ALLOWED);
    expect((await grant(user.email, user.password, { "sec-fetch-site": "same-origin" })).statusCode).toBe(200);
    expect((await grant(user.email, user.password, { "sec-fetch-site": "none" })).statusCode).toBe(200);
    expect((await grant(user.email, user.password)).statusCode).toBe(200);
  });

  it("apps and browser extensions, whose origins are not web pages' (and cannot be listed in ALLOWED_ORIGINS), are not refused", async () => {
    const user = await register(issuer.app);
    for (const origin of ["chrome-extension://abcdefghijklmnopabcdefghijklmnop", "moz-extension://4b2c0b3e-9d1f-4b53-8a9e-2f0f1f7d9a11", "capacitor://localhost", "ionic://localhost"]) {
      const res = await grant(user.email, user.password, { origin, "sec-fetch-site": "cross-site" });
      expect(res.statusCode, origin).toBe(200);
    }
  });
});
