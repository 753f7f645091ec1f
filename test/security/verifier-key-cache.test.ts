// Security finding 8: "The verifier kit trusts keys longer than the issuer says."
//
// The issuer serves its JWKS with `Cache-Control: public, max-age=JWKS_MAX_AGE` and `keys revoke`
// promises that a revoked key is gone from every verifier within KEYS_RELOAD_INTERVAL +
// JWKS_MAX_AGE. The kit used to sit on jose's createRemoteJWKSet, which keeps a key set for 600 s
// whatever the response says. Here a real issuer listens on a real port, the kit fetches its
// JWKS over HTTP, and the tests watch what a service sees: which tokens verify, and which JWKS
// requests go out. Headers the issuer does not send itself (no-store, stale-if-error, ...) are
// added by a fetch wrapper standing in for an issuer or proxy that sends them.
import Fastify from "fastify";
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "../../src/admin/clients.ts";
import type { AdminContext } from "../../src/admin/context.ts";
import { revokeKey } from "../../src/admin/keys.ts";
import bearerAuth, { authenticate } from "@tessera/verifier/fastify";
import { createVerifier, type FetchLike, type VerifierOptions } from "@tessera/verifier";
import { outcome } from "../helpers/forged-tokens.ts";
import { freePort } from "../helpers/ports.ts";
import { adminOf, describeEachDb, login, startIssuer, type TestIssuer } from "../helpers/issuer.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

interface Request_ {
  /** what the verifier got: the issuer's status, or the simulated outage */
  status: number | "refused";
  ifNoneMatch: string | null;
  cacheControl: string | null;
  /** performance.now() when the answer reached the verifier */
  at: number;
}

/**
 * The verifier's JWKS requests as the network sees them. `rewrite` edits the issuer's response
 * headers (an issuer or proxy sending other cache directives); `outage` makes requests fail:
 * "refused" connects to a closed port, a number answers with that status.
 */
function network(rewrite?: (headers: Headers) => void) {
  const requests: Request_[] = [];
  const state: { outage: undefined | "refused" | number; closedPort: number } = { outage: undefined, closedPort: 0 };
  const fetchLike: FetchLike = async (url, init) => {
    const ifNoneMatch = new Headers(init.headers).get("if-none-match");
    if (state.outage === "refused") {
      try {
        return await fetch(`http://127.0.0.1:${state.closedPort}/.well-known/jwks.json`, init);
      } finally {
        requests.push({ status: "refused", ifNoneMatch, cacheControl: null, at: performance.now() });
      }
    }
    if (typeof state.outage === "number") {
      requests.push({ status: state.outage, ifNoneMatch, cacheControl: null, at: performance.now() });
      return new Response("unavailable", { status: state.outage });
    }
    const res = await fetch(url, init);
    const headers = new Headers(res.headers);
    rewrite?.(headers);
    requests.push({ status: res.status, ifNoneMatch, cacheControl: headers.get("cache-control"), at: performance.now() });
    return new Response(res.status === 304 ? null : res.body, { status: res.status, headers });
  };
  return { fetch: fetchLike, requests, state };
}

const kidOf = (token: string) => decodeProtectedHeader(token).kid!;

describeEachDb("verifier key cache (security finding 8)", (flavor) => {
  /** JWKS_MAX_AGE=1: a revoked key must be gone from the kit's cache a second after its fetch. */
  let short: TestIssuer;
  let shortJwks: string;
  /** JWKS_MAX_AGE=0: every verification revalidates. */
  let zero: TestIssuer;
  let zeroJwks: string;
  let closedPort: number;

  // The key set alone: status lists would add their own requests to `network()`'s count.
  const verifierFor = (jwksUri: string, opts: Partial<VerifierOptions> = {}) =>
    createVerifier({ issuer: short.config.issuer, audience: short.config.accessTokenAudience, jwksUri, statusList: false, ...opts });

  /** Revokes the key that signed `token`, as `keys revoke` does, and lets this instance reload (its KEYS_RELOAD_INTERVAL tick). */
  async function revokeSigner(issuer: TestIssuer, token: string) {
    const out = await revokeKey(adminOf(issuer), kidOf(token));
    expect(out.json).toMatchObject({ revoked: { kid: kidOf(token) } });
    await issuer.services.keyReloader.reload();
    const served = (await issuer.app.inject({ method: "GET", url: "/.well-known/jwks.json" })).json() as { keys: { kid: string }[] };
    expect(served.keys.map((k) => k.kid)).not.toContain(kidOf(token));
    return out;
  }

  beforeAll(async () => {
    short = await startIssuer(flavor, { env: { JWKS_MAX_AGE: "1", KEYS_RELOAD_INTERVAL: "7", ACCESS_TOKEN_TTL: "120" } });
    shortJwks = `${await short.app.listen({ port: 0, host: "127.0.0.1" })}/.well-known/jwks.json`;
    zero = await startIssuer(flavor, { env: { JWKS_MAX_AGE: "0" } });
    zeroJwks = `${await zero.app.listen({ port: 0, host: "127.0.0.1" })}/.well-known/jwks.json`;
    closedPort = await freePort();
  });
  afterAll(async () => {
    await zero?.close();
    await short?.close();
  });

  describe("a revoked key", () => {
    it("stops verifying once the served max-age has elapsed, whatever cacheMaxAge asks for; jose's default cache would keep it 600 s", async () => {
      const net = network();
      const verifier = verifierFor(shortJwks, { fetch: net.fetch });
      // A service asking for a cache far longer than the issuer allows: it may only shorten it.
      const greedyNet = network();
      const greedy = verifierFor(shortJwks, { fetch: greedyNet.fetch, cacheMaxAge: 3_600_000, cooldownDuration: 3_600_000 });
      // The finding itself: jose's createRemoteJWKSet with its defaults (cacheMaxAge 600 s).
      const joseDefault = createRemoteJWKSet(new URL(shortJwks));

      const token = (await login(short.app)).access_token;
      expect(await outcome(verifier, token)).toBe("accepted");
      expect(await outcome(greedy, token)).toBe("accepted");
      const pinned = { issuer: short.config.issuer, audience: short.config.accessTokenAudience, typ: "at+jwt", algorithms: ["ES256"] };
      await jwtVerify(token, joseDefault, pinned);
      expect(net.requests.map((r) => [r.status, r.cacheControl])).toEqual([[200, "public, max-age=1"]]);

      await revokeSigner(short, token);
      // The served max-age (1 s) has passed since each verifier fetched the key set.
      await sleep(Math.max(net.requests[0]!.at, greedyNet.requests[0]!.at) + 1000 + 50 - performance.now());

      expect(await outcome(verifier, token)).toBe("unknown_key");
      expect(await outcome(greedy, token)).toBe("unknown_key");
      // One fetch after expiry (revalidated with the ETag; the set changed, so a full 200).
      expect(net.requests.map((r) => r.status)).toEqual([200, 200]);
      expect(net.requests[1]!.ifNoneMatch).toMatch(/^(W\/)?"/);
      // jose's own default still hands out the revoked key: the cache `keys revoke` warns about.
      await expect(jwtVerify(token, joseDefault, pinned)).resolves.toMatchObject({ protectedHeader: { kid: kidOf(token) } });

      // The replacement key verifies, from the refreshed cache.
      const fresh = (await login(short.app)).access_token;
      expect(kidOf(fresh)).not.toBe(kidOf(token));
      expect(await outcome(verifier, fresh)).toBe("accepted");
      expect(net.requests).toHaveLength(2);
    });

    it("with max-age=0 (JWKS_MAX_AGE=0) every verification revalidates, and the next one after revocation refuses it", async () => {
      const net = network();
      const verifier = createVerifier({
        issuer: zero.config.issuer,
        audience: zero.config.accessTokenAudience,
        jwksUri: zeroJwks,
        fetch: net.fetch,
        statusList: false,
      });
      const token = (await login(zero.app)).access_token;
      expect(await outcome(verifier, token)).toBe("accepted");
      expect(await outcome(verifier, token)).toBe("accepted");
      // Revalidation, not a full fetch: If-None-Match with the ETag, 304, keys kept.
      expect(net.requests.map((r) => [r.status, r.ifNoneMatch !== null])).toEqual([
        [200, false],
        [304, true],
      ]);
      expect(net.requests[0]!.cacheControl).toBe("public, max-age=0");

      await revokeSigner(zero, token);
      expect(await outcome(verifier, token)).toBe("unknown_key");
      expect(net.requests.map((r) => r.status)).toEqual([200, 304, 200]);
    });
  });

  describe("the cache lifetime follows the served headers", () => {
    it("no-store: nothing is kept, every verification fetches the whole key set", async () => {
      const net = network((h) => h.set("cache-control", "no-store"));
      const verifier = verifierFor(shortJwks, { fetch: net.fetch });
      const token = (await login(short.app)).access_token;
      for (let i = 0; i < 3; i++) expect(await outcome(verifier, token)).toBe("accepted");
      expect(net.requests.map((r) => [r.status, r.ifNoneMatch])).toEqual([
        [200, null],
        [200, null],
        [200, null],
      ]);
      expect(verifier.jwks.fresh).toBe(false);
      expect(verifier.jwks.jwks()).toBeUndefined();
    });

    it("each directive: requests made by two verifications in a row", async () => {
      const token = (await login(short.app)).access_token;
      const httpDate = (offsetSeconds: number) => new Date(Date.now() + offsetSeconds * 1000).toUTCString();
      const cases: [name: string, rewrite: (h: Headers) => void, opts?: Partial<VerifierOptions>][] = [
        ["max-age=300: kept", (h) => h.set("cache-control", "public, max-age=300")],
        ["no Cache-Control, no Expires: kept (60 s default)", (h) => h.delete("cache-control")],
        ["Expires 300 s after Date: kept", (h) => (h.delete("cache-control"), h.set("date", httpDate(0)), h.set("expires", httpDate(300)))],
        ["no-cache: revalidated each time", (h) => h.set("cache-control", "no-cache")],
        ["max-age=0", (h) => h.set("cache-control", "max-age=0")],
        ["max-age=300 with Age: 300 (a CDN held it)", (h) => (h.set("cache-control", "max-age=300"), h.set("age", "300"))],
        ["max-age given twice", (h) => h.set("cache-control", "max-age=300, max-age=600")],
        ["malformed max-age", (h) => h.set("cache-control", "max-age=soon")],
        ["s-maxage is for shared caches", (h) => h.set("cache-control", "s-maxage=300, max-age=0")],
        ["Expires: 0 (invalid date = already expired)", (h) => (h.delete("cache-control"), h.set("expires", "0"))],
        ["cacheMaxAge: 0 shortens max-age=300", (h) => h.set("cache-control", "max-age=300"), { cacheMaxAge: 0 }],
      ];
      const seen: Record<string, number> = {};
      for (const [name, rewrite, opts] of cases) {
        const net = network(rewrite);
        const verifier = verifierFor(shortJwks, { fetch: net.fetch, ...opts });
        expect([name, await outcome(verifier, token), await outcome(verifier, token)]).toEqual([name, "accepted", "accepted"]);
        seen[name] = net.requests.length;
      }
      expect(seen).toEqual(Object.fromEntries(cases.map(([name], i) => [name, i < 3 ? 1 : 2])));
    });
  });

  describe("when the refetch after expiry fails", () => {
    it("without stale-if-error: jwks_unavailable (a 503 from the resource server), never the expired keys", async () => {
      const refused = network();
      refused.state.closedPort = closedPort;
      const erroring = network();
      const verifierA = verifierFor(shortJwks, { fetch: refused.fetch });
      const verifierB = verifierFor(shortJwks, { fetch: erroring.fetch });
      const service = Fastify();
      await service.register(bearerAuth, { verifier: verifierA });
      service.get("/me", { preHandler: authenticate }, async (request) => ({ sub: request.auth!.sub }));
      await service.ready();
      try {
        const token = (await login(short.app)).access_token;
        const call = () => service.inject({ method: "GET", url: "/me", headers: { authorization: `Bearer ${token}` } });
        expect((await call()).statusCode).toBe(200);
        expect(await outcome(verifierB, token)).toBe("accepted");
        refused.state.outage = "refused";
        erroring.state.outage = 503;
        // Within max-age the cached set is used without asking the issuer.
        expect(await outcome(verifierB, token)).toBe("accepted");
        expect(erroring.requests).toHaveLength(1);

        await sleep(Math.max(refused.requests[0]!.at, erroring.requests[0]!.at) + 1000 + 50 - performance.now());
        const down = await call();
        expect(down.statusCode).toBe(503);
        expect(down.json()).toMatchObject({ error: "temporarily_unavailable" });
        expect(await outcome(verifierB, token)).toBe("jwks_unavailable");
        expect(refused.requests.map((r) => r.status)).toEqual([200, "refused"]);
        expect(erroring.requests.map((r) => r.status)).toEqual([200, 503]);
        // Each later verification tries again (the issuer may be back).
        expect(await outcome(verifierB, token)).toBe("jwks_unavailable");
        expect(erroring.requests.map((r) => r.status)).toEqual([200, 503, 503]);

        erroring.state.outage = undefined;
        expect(await outcome(verifierB, token)).toBe("accepted");
      } finally {
        await service.close();
      }
    });

    it("stale-if-error=N (RFC 5861), only when the issuer sends it: the last set stands in for N s of outage, retried once per cooldown", async () => {
      const net = network((h) => h.set("cache-control", "public, max-age=1, stale-if-error=1"));
      net.state.closedPort = closedPort;
      const verifier = verifierFor(shortJwks, { fetch: net.fetch });
      const token = (await login(short.app)).access_token;
      expect(await outcome(verifier, token)).toBe("accepted");
      const fetchedAt = net.requests[0]!.at;
      net.state.outage = "refused";

      await sleep(fetchedAt + 1000 + 50 - performance.now());
      // Stale, issuer unreachable, within stale-if-error: still verifies...
      expect(await outcome(verifier, token)).toBe("accepted");
      // ...and the next verification does not wait for another failed fetch (cooldown 30 s).
      expect(await outcome(verifier, token)).toBe("accepted");
      expect(net.requests.map((r) => r.status)).toEqual([200, "refused"]);

      // Past max-age + stale-if-error: refused.
      await sleep(fetchedAt + 2000 + 50 - performance.now());
      expect(await outcome(verifier, token)).toBe("jwks_unavailable");
    });

    it("stale-if-error never covers a revocation: with the issuer up, the new set is used", async () => {
      const net = network((h) => h.set("cache-control", "public, max-age=1, stale-if-error=600"));
      const verifier = verifierFor(shortJwks, { fetch: net.fetch });
      const token = (await login(short.app)).access_token;
      expect(await outcome(verifier, token)).toBe("accepted");
      await revokeSigner(short, token);
      await sleep(net.requests[0]!.at + 1000 + 50 - performance.now());
      expect(await outcome(verifier, token)).toBe("unknown_key");
    });

    it("must-revalidate forbids stale use; a 404 is not an outage stale-if-error covers", async () => {
      const strict = network((h) => h.set("cache-control", "public, max-age=1, stale-if-error=600, must-revalidate"));
      strict.state.closedPort = closedPort;
      const lenient = network((h) => h.set("cache-control", "public, max-age=1, stale-if-error=600"));
      const strictVerifier = verifierFor(shortJwks, { fetch: strict.fetch });
      const lenientVerifier = verifierFor(shortJwks, { fetch: lenient.fetch });
      const token = (await login(short.app)).access_token;
      expect(await outcome(strictVerifier, token)).toBe("accepted");
      expect(await outcome(lenientVerifier, token)).toBe("accepted");
      strict.state.outage = "refused";
      lenient.state.outage = 404;
      await sleep(Math.max(strict.requests[0]!.at, lenient.requests[0]!.at) + 1000 + 50 - performance.now());
      expect(await outcome(strictVerifier, token)).toBe("jwks_unavailable");
      expect(await outcome(lenientVerifier, token)).toBe("jwks_unavailable");
    });
  });

  describe("keys revoke", () => {
    it("states the bound: KEYS_RELOAD_INTERVAL + JWKS_MAX_AGE, longer verifier caches, and the latest exp", async () => {
      // A client whose access tokens live longer than ACCESS_TOKEN_TTL.
      await createClient(adminOf(short), { name: "long-lived", type: "public", grantTypes: ["password"], scopes: ["profile"], accessTokenTtl: 3600 });
      const token = (await login(short.app)).access_token;
      const kid = kidOf(token);
      const now = short.clock.now().getTime();
      const iso = (ms: number) => new Date(Math.ceil(ms / 1000) * 1000).toISOString();
      const isoText = (ms: number) => iso(ms).replace(/\.000Z$/, "Z");

      const out = await revokeSigner(short, token);
      const { keysReloadInterval, jwksMaxAge } = short.config;
      expect([keysReloadInterval, jwksMaxAge]).toEqual([7, 1]);
      const acceptedUntil = now + (keysReloadInterval + jwksMaxAge) * 1000;
      expect(out.json).toMatchObject({
        revoked: { kid, state: "active" },
        bound: {
          acceptedUntil: iso(acceptedUntil),
          oldJwksServedUntil: iso(now + keysReloadInterval * 1000),
          keysReloadInterval: 7,
          jwksMaxAge: 1,
          longerCacheExample: { seconds: 600, acceptedUntil: iso(now + (keysReloadInterval + 600) * 1000) },
          // the key signed until every instance reloaded, with the longest client TTL
          latestTokenExp: iso(now + (keysReloadInterval + 3600) * 1000),
          longestAccessTokenTtl: 3600,
        },
      });
      expect(out.text).toContain(`from ${isoText(acceptedUntil)} no verifier that honours the JWKS Cache-Control accepts a token signed by ${kid}`);
      expect(out.text).toContain("KEYS_RELOAD_INTERVAL 7s");
      expect(out.text).toContain("JWKS_MAX_AGE 1s");
      expect(out.text).toMatch(/createRemoteJWKSet with its default cacheMaxAge \(600s\)/);
      expect(out.text).toContain(`until ${isoText(now + (keysReloadInterval + 600) * 1000)}`);
      expect(out.text).toContain(`expire by ${isoText(now + (keysReloadInterval + 3600) * 1000)} at the latest`);
      expect(out.text).toMatch(/stolen copy/);
      expect(out.text).toMatch(/live tokens/);
      expect(out.text).toMatch(/stop verifying/);
      expect(out.text).not.toMatch(/undefined|NaN|Invalid Date/);
    });

    it("a next key never signed: no latest exp, only the JWKS bound", async () => {
      await short.services.keyManager.rotate();
      const next = (await short.services.keyManager.list()).find((k) => k.state === "next")!;
      const out = await revokeKey(adminOf(short), next.kid);
      expect(out.json).toMatchObject({ revoked: { kid: next.kid, state: "next" }, bound: { latestTokenExp: null, jwksMaxAge: 1, keysReloadInterval: 7 } });
      expect(out.text).toMatch(new RegExp(`issuer never signed with ${next.kid}`));
    });
  });
});
