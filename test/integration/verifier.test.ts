// The verifier kit as a microservice uses it: the issuer listens on a real port, the kit fetches
// the JWKS over HTTP from ${ISSUER}/.well-known/jwks.json, and every token the issuer did not
// sign for this audience, in this profile, is refused with a stable code.
import { CompactSign, decodeJwt, decodeProtectedHeader } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createVerifier,
  hasRole,
  hasScope,
  TokenVerificationError,
  type FetchLike,
  type TokenErrorCode,
  type Verifier,
  type VerifierOptions,
} from "@tessera/verifier";
import { b64url, badTokens, claimsLike, mintAt, signWithIssuerKey, type BadToken } from "../helpers/forged-tokens.ts";
import { freePort } from "../helpers/ports.ts";
import { describeEachDb, login, startIssuer, type TestIssuer } from "../helpers/issuer.ts";

/** The rejection, or a failure if the token was accepted. */
async function rejection(verifier: Verifier, token: string): Promise<TokenVerificationError> {
  try {
    const claims = await verifier.verify(token);
    throw new Error(`accepted: ${JSON.stringify(claims)}`);
  } catch (err) {
    if (!(err instanceof TokenVerificationError)) throw err;
    return err;
  }
}

async function codeOf(verifier: Verifier, token: string): Promise<TokenErrorCode> {
  return (await rejection(verifier, token)).code;
}

/** fetch that records the URLs it was asked for. */
function countingFetch(): { fetch: FetchLike; urls: string[] } {
  const urls: string[] = [];
  return { urls, fetch: (url, init) => (urls.push(url), fetch(url, init)) };
}

describeEachDb("verifier kit", (flavor) => {
  let issuer: TestIssuer;
  let other: TestIssuer;
  let base: string;
  let bad: BadToken[];
  const verifierFor = (opts: Partial<VerifierOptions> = {}) =>
    createVerifier({ issuer: base, audience: issuer.config.accessTokenAudience, ...opts });

  beforeAll(async () => {
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    issuer = await startIssuer(flavor, { env: { ISSUER: base } });
    await issuer.app.listen({ port, host: "127.0.0.1" });
    // A second, separate deployment that calls itself by the same name.
    other = await startIssuer(flavor, { env: { ISSUER: base } });
    bad = await badTokens(issuer, other);
  });
  afterAll(async () => {
    await other?.close();
    await issuer?.close();
  });

  describe("accepts", () => {
    it("a token from the password grant, with typed claims and scopes parsed", async () => {
      const user = await login(issuer.app);
      const claims = await verifierFor().verify(user.access_token);
      expect(claims).toMatchObject({
        iss: base,
        sub: user.userId,
        aud: "api",
        client_id: "web",
        scope: user.scope,
        scopes: user.scope.split(" "),
        roles: [],
      });
      expect(typeof claims.sid).toBe("string");
      expect(typeof claims.jti).toBe("string");
      expect(claims.exp - claims.iat).toBe(issuer.config.accessTokenTtl);
      expect(hasScope(claims, "profile")).toBe(true);
      expect(hasScope(claims, "admin")).toBe(false);
    });

    it("roles, several scopes and an audience list", async () => {
      const { token } = await issuer.services.accessTokens.issue({
        subject: "user-roles",
        clientId: "web",
        scope: "orders:read  orders:write",
        roles: ["admin", "support"],
        audience: ["billing", "api"],
      });
      const claims = await verifierFor().verify(token);
      expect(claims.scopes).toEqual(["orders:read", "orders:write"]);
      expect(claims.roles).toEqual(["admin", "support"]);
      expect(claims.aud).toEqual(["billing", "api"]);
      expect(claims.sid).toBeUndefined();
      expect(hasRole(claims, "admin")).toBe(true);
      expect(hasRole(claims, "root")).toBe(false);
      // A service that accepts several audiences takes a token for any one of them.
      const billing = await issuer.services.accessTokens.issue({ subject: "u", clientId: "web", scope: "", audience: "billing" });
      await expect(verifierFor({ audience: ["ledger", "billing"] }).verify(billing.token)).resolves.toMatchObject({
        aud: "billing",
        scope: "",
        scopes: [],
      });
    });

    it('typ "application/at+jwt" (RFC 9068 §4 allows the media type form)', async () => {
      const token = await signWithIssuerKey(issuer, claimsLike(issuer), { typ: "application/at+jwt" });
      await expect(verifierFor().verify(token)).resolves.toMatchObject({ sub: "user-forged" });
    });
  });

  describe("rejects with a stable code", () => {
    it("every forged, foreign or broken token in the suite", async () => {
      const verifier = verifierFor();
      const got: Record<string, TokenErrorCode> = {};
      for (const t of bad) got[t.name] = await codeOf(verifier, t.token);
      expect(got).toEqual(Object.fromEntries(bad.map((t) => [t.name, t.code])));
    });

    it("messages are short fixed sentences: no token, no stack trace, header-safe", async () => {
      const verifier = verifierFor();
      for (const t of bad) {
        const err = await rejection(verifier, t.token);
        expect(err.message).not.toContain(t.token.slice(0, 40));
        expect(err.message).not.toMatch(/\n|\bat .+:\d+/);
        // Usable verbatim as an RFC 6750 error_description: printable ASCII, no quote, no backslash.
        expect(err.message).toMatch(/^[\x20\x21\x23-\x5b\x5d-\x7e]+$/);
        expect(err.name).toBe("TokenVerificationError");
      }
    });

    it("expired with real time: a token minted an hour ago", async () => {
      const token = await mintAt(issuer, new Date(Date.now() - 3600_000));
      expect(await codeOf(verifierFor(), token)).toBe("expired");
    });

    it("exp is checked with a 30 s tolerance by default, configurable", async () => {
      const { token } = await issuer.services.accessTokens.issue({ subject: "u", clientId: "web", scope: "profile" });
      const exp = decodeJwt(token).exp! * 1000;
      // The clock moves past the token's lifetime, and so past any status list's exp: the status
      // check is off here (test/integration/verifier-status-list.test.ts covers lists and clocks).
      const at = (ms: number) => ({ clock: { now: () => new Date(ms) }, statusList: false as const });
      await expect(verifierFor(at(exp + 20_000)).verify(token)).resolves.toMatchObject({ sub: "u" });
      expect(await codeOf(verifierFor(at(exp + 31_000)), token)).toBe("expired");
      expect(await codeOf(verifierFor({ ...at(exp + 20_000), clockTolerance: 0 }), token)).toBe("expired");
    });

    it("not yet valid: nbf ahead, or issued in the future beyond the tolerance", async () => {
      const now = Math.floor(issuer.clock.now().getTime() / 1000);
      const nbf = await signWithIssuerKey(issuer, claimsLike(issuer, { nbf: now + 300 }));
      expect(await codeOf(verifierFor({ clock: { now: () => new Date(now * 1000) } }), nbf)).toBe("not_yet_valid");

      const future = await mintAt(issuer, new Date(Date.now() + 600_000));
      expect(await codeOf(verifierFor(), future)).toBe("not_yet_valid");
      const slightlyAhead = await mintAt(issuer, new Date(Date.now() + 10_000));
      await expect(verifierFor().verify(slightlyAhead)).resolves.toMatchObject({ sub: "user-clock" });
    });

    it("a verifier configured for another issuer or audience refuses genuine tokens", async () => {
      const user = await login(issuer.app);
      const jwksUri = `${base}/.well-known/jwks.json`;
      expect(await codeOf(verifierFor({ issuer: "https://auth.elsewhere.test", jwksUri }), user.access_token)).toBe("wrong_issuer");
      expect(await codeOf(verifierFor({ audience: "billing" }), user.access_token)).toBe("wrong_audience");
      expect(await codeOf(verifierFor({ audience: ["billing", "ledger"] }), user.access_token)).toBe("wrong_audience");
    });

    it("HS256 is refused even by a verifier that allows several asymmetric algorithms", async () => {
      const verifier = verifierFor({ algorithms: ["ES256", "RS256", "PS256", "EdDSA"] });
      for (const t of bad.filter((b) => b.name.startsWith("HS256") || b.name.includes('"none"'))) {
        expect(await codeOf(verifier, t.token)).toBe("alg_not_allowed");
      }
    });

    it("a token signed with an allowed algorithm the service did not pin", async () => {
      // The issuer signs ES256; a service pinned to RS256 must not accept it.
      const user = await login(issuer.app);
      expect(await codeOf(verifierFor({ algorithms: ["RS256"] }), user.access_token)).toBe("alg_not_allowed");
    });

    it("header checks happen before any key is fetched", async () => {
      const { fetch, urls } = countingFetch();
      const verifier = verifierFor({ fetch });
      const early = bad.filter((t) => ["alg_not_allowed", "embedded_key", "wrong_type", "malformed"].includes(t.code));
      expect(early.length).toBeGreaterThanOrEqual(10);
      for (const t of early) expect(await codeOf(verifier, t.token)).toBe(t.code);
      expect(urls).toEqual([]);
    });

    it("garbage of every shape is malformed, never a crash", async () => {
      const verifier = verifierFor();
      const key = issuer.services.keys.signer();
      const header = b64url(JSON.stringify({ alg: "ES256", typ: "at+jwt", kid: key.kid }));
      const samples = [
        "",
        " ",
        "Bearer",
        "a.b",
        "a.b.c.d",
        "a.b.c.d.e",
        "..",
        "!!!.###.$$$",
        `${b64url("not json")}.${b64url("{}")}.sig`,
        `${b64url("[1,2]")}.${b64url("{}")}.sig`,
        `${b64url('"string"')}.${b64url("{}")}.sig`,
        `${header}..`,
        "x".repeat(20_000),
      ];
      for (const s of samples) expect([s.slice(0, 20), await codeOf(verifier, s)]).toEqual([s.slice(0, 20), "malformed"]);
      // Well-formed header and payload, no signature.
      expect(await codeOf(verifier, `${header}.${b64url(JSON.stringify(claimsLike(issuer)))}.`)).toBe("bad_signature");
      // Correctly signed by the issuer's key, but the payload is not a claims object.
      for (const payload of ["[]", "not json", "null"]) {
        const notClaims = await new CompactSign(new TextEncoder().encode(payload))
          .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: "at+jwt" })
          .sign(key.privateKey);
        expect([payload, await codeOf(verifier, notClaims)]).toEqual([payload, "malformed"]);
      }
    });

    it("claims of the wrong type are malformed, missing ones missing_claim", async () => {
      const verifier = verifierFor();
      const cases: [Record<string, unknown>, TokenErrorCode][] = [
        [{ jti: undefined }, "missing_claim"],
        [{ sub: undefined }, "missing_claim"],
        [{ iat: undefined }, "missing_claim"],
        [{ aud: undefined }, "missing_claim"],
        [{ iss: undefined }, "missing_claim"],
        [{ roles: "admin" }, "malformed"],
        [{ scope: ["profile"] }, "malformed"],
        [{ client_id: 42 }, "malformed"],
        [{ exp: "tomorrow" }, "malformed"],
      ];
      for (const [extra, code] of cases) {
        const token = await signWithIssuerKey(issuer, claimsLike(issuer, extra));
        expect([extra, await codeOf(verifier, token)]).toEqual([extra, code]);
      }
      const noKid = await signWithIssuerKey(issuer, claimsLike(issuer), { kid: undefined });
      expect(decodeProtectedHeader(noKid).kid).toBeUndefined();
      expect(await codeOf(verifier, noKid)).toBe("malformed");
    });
  });

  describe("configuration", () => {
    it('refuses "none" and HMAC algorithms and nonsense at construction', () => {
      const base_ = { issuer: "https://issuer.test", audience: "api" };
      for (const algorithms of [["none"], ["HS256"], ["ES256", "HS512"], ["hs384"], [], ["XX999"]]) {
        expect(() => createVerifier({ ...base_, algorithms }), JSON.stringify(algorithms)).toThrow(TypeError);
      }
      expect(() => createVerifier({ ...base_, audience: [] })).toThrow(TypeError);
      expect(() => createVerifier({ ...base_, issuer: "" })).toThrow(TypeError);
      expect(() => createVerifier({ ...base_, clockTolerance: -1 })).toThrow(TypeError);
      const durations: Partial<VerifierOptions>[] = [
        { cacheMaxAge: -1 },
        { cacheMaxAge: Number.NaN },
        { cooldownDuration: -5 },
        { timeoutDuration: Number.POSITIVE_INFINITY },
        { timeoutDuration: 1.5 },
      ];
      for (const d of durations) expect(() => createVerifier({ ...base_, ...d }), JSON.stringify(d)).toThrow(TypeError);
    });
  });

  describe("the key set", () => {
    // These count the key set's requests: the status lists (own tests) are left out.
    it("is fetched once from ${ISSUER}/.well-known/jwks.json and cached", async () => {
      const { fetch, urls } = countingFetch();
      const verifier = verifierFor({ fetch, statusList: false });
      for (let i = 0; i < 5; i++) {
        const { token } = await issuer.services.accessTokens.issue({ subject: `u${i}`, clientId: "web", scope: "profile" });
        await verifier.verify(token);
      }
      expect(urls).toEqual([`${base}/.well-known/jwks.json`]);
    });

    it("an unreachable or broken JWKS is jwks_unavailable, not a token error", async () => {
      const user = await login(issuer.app);
      const closed = await freePort();
      const down = verifierFor({ jwksUri: `http://127.0.0.1:${closed}/.well-known/jwks.json` });
      expect(await codeOf(down, user.access_token)).toBe("jwks_unavailable");
      const err = await rejection(down, user.access_token);
      expect(err.message).not.toMatch(/ECONNREFUSED|\n/);

      const failing: FetchLike = async () => new Response("oops", { status: 500 });
      expect(await codeOf(verifierFor({ fetch: failing }), user.access_token)).toBe("jwks_unavailable");
      const notJson: FetchLike = async () => new Response("<html>", { status: 200 });
      expect(await codeOf(verifierFor({ fetch: notJson }), user.access_token)).toBe("jwks_unavailable");
      const notAKeySet: FetchLike = async () => Response.json({ keys: "nope" });
      expect(await codeOf(verifierFor({ fetch: notAKeySet }), user.access_token)).toBe("jwks_unavailable");
    });

    // Last in this file: rotates the issuer's key.
    it("is fetched again for an unknown kid (key rotation), at most once per cooldown", async () => {
      const { fetch, urls } = countingFetch();
      const eager = verifierFor({ fetch, cooldownDuration: 0, statusList: false });
      const patientFetch = countingFetch();
      // A cooldown far longer than this test; the cache lifetime is the served max-age (300 s here:
      // cacheMaxAge may only shorten it), also longer than this test.
      const patient = verifierFor({ fetch: patientFetch.fetch, cooldownDuration: 3_600_000, cacheMaxAge: 3_600_000, statusList: false });

      const before = (await login(issuer.app)).access_token;
      await eager.verify(before);
      await patient.verify(before);
      expect(urls).toHaveLength(1);
      expect(patientFetch.urls).toHaveLength(1);

      await issuer.services.keyManager.rotateNow();
      await issuer.services.keyReloader.reload();
      const after = (await login(issuer.app)).access_token;
      expect(decodeProtectedHeader(after).kid).not.toBe(decodeProtectedHeader(before).kid);

      // The new kid is not in the cached set: one refetch, and the token verifies.
      await expect(eager.verify(after)).resolves.toMatchObject({ iss: base });
      expect(urls).toHaveLength(2);
      // The old key stays published (retired), so tokens it signed still verify, from cache.
      await expect(eager.verify(before)).resolves.toMatchObject({ iss: base });
      expect(urls).toHaveLength(2);

      // Within the cooldown an unknown kid does not trigger a fetch: unknown_key, until reload().
      expect(await codeOf(patient, after)).toBe("unknown_key");
      expect(patientFetch.urls).toHaveLength(1);
      await patient.jwks.reload();
      await expect(patient.verify(after)).resolves.toMatchObject({ iss: base });
      expect(patientFetch.urls).toHaveLength(2);
    });
  });
});
