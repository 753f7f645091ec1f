// The kit's Token Status List check (draft-ietf-oauth-status-list-20) over real HTTP: a stand-in
// issuer (test/helpers/list-server.ts) publishes a JWKS and status list tokens, well-formed or
// forged, and counts what the kit asks for. What must hold: a set bit refuses the token; a list
// the kit cannot trust is never used, neither to accept nor to "un-revoke"; each list is fetched
// once per ttl, revalidated with its ETag, by one request however many verifications wait; an
// outage is bridged by the last valid list for maxStale, then fails closed (or open, if asked);
// and no token can make the kit fetch from anywhere but the issuer's origin.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { deflateSync } from "node:zlib";
import express from "express";
import Fastify from "fastify";
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createVerifier,
  TokenVerificationError,
  type StatusListWarning,
  type VerifierOptions,
} from "@tessera/verifier";
import { bearerAuth as expressBearerAuth } from "@tessera/verifier/express";
import fastifyBearerAuth, { authenticate } from "@tessera/verifier/fastify";
import { b64url, outcome } from "../helpers/forged-tokens.ts";
import {
  encodeList,
  epochSeconds,
  listClaims,
  listWith,
  signJwt,
  startListServer,
  testKey,
  type ListServer,
  type Served,
  type TestKey,
} from "../helpers/list-server.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The draft's §4.1 examples: the compressed arrays and the statuses they hold. */
const DRAFT_1_BIT = { lst: "eNrbuRgAAhcBXQ", values: [1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1] };
const DRAFT_2_BITS = { lst: "eNo76fITAAPfAgc", values: [1, 2, 0, 3, 0, 1, 0, 1, 1, 2, 3, 3] };

describe("verifier kit: Token Status List", () => {
  let server: ListServer;
  let key: TestKey;
  let attacker: TestKey;
  let base: string;
  let lists = 0;
  /** A path no other test uses. */
  const newPath = () => `/statuslists/${++lists}`;

  const verifierFor = (opts: Partial<VerifierOptions> = {}) => createVerifier({ issuer: base, audience: "api", ...opts });

  /** An access token of the stand-in issuer whose status is entry `idx` of the list at `uri`. */
  const token = (idx: unknown, uri: unknown, extra: Record<string, unknown> = {}) => {
    const now = epochSeconds();
    return signJwt(key, "at+jwt", {
      iss: base,
      sub: "user-1",
      aud: "api",
      client_id: "web",
      scope: "profile",
      jti: `jti-${Math.random().toString(36).slice(2)}`,
      iat: now,
      exp: now + 600,
      status: { status_list: { idx, uri } },
      ...extra,
    });
  };

  /** Publishes a list signed by the issuer's key at `path`; `extra` edits its claims, `header` its header. */
  async function publish(path: string, lst: string, extra: Record<string, unknown> = {}, opts: { bits?: number; cacheControl?: number | string | null } = {}) {
    const jws = await signJwt(key, "statuslist+jwt", listClaims(base, base + path, lst, extra, opts.bits ?? 1));
    server.serveList(path, jws, opts.cacheControl);
    return jws;
  }

  /** A list with a 1 s ttl, entries `revoked` set, and a verifier that bridges 1.5 s of failed refreshes. */
  async function bridgedList(revoked: number[]) {
    const path = newPath();
    await publish(path, listWith(8, revoked), { ttl: 1 });
    const warnings: StatusListWarning[] = [];
    const verifier = verifierFor({ statusList: { maxStale: 1500, onWarning: (w) => warnings.push(w) } });
    return { path, warnings, verifier };
  }

  beforeAll(async () => {
    key = await testKey("issuer-key-1");
    attacker = await testKey("attacker-key");
    server = await startListServer([key.jwk]);
    base = server.base;
  });
  afterAll(async () => server?.close());

  describe("the check", () => {
    it("reads each entry at its bits, least significant bit first (the draft's §4.1 examples): 0 accepts, any other value is `revoked`", async () => {
      // The independent encoder agrees with the draft, so the lists below mean what they say.
      expect(encodeList(DRAFT_1_BIT.values, 1)).toBe(DRAFT_1_BIT.lst);
      const one = newPath();
      const two = newPath();
      await publish(one, DRAFT_1_BIT.lst);
      await publish(two, DRAFT_2_BITS.lst, {}, { bits: 2 });
      const verifier = verifierFor();
      const expected = (values: number[]) => values.map((v) => (v === 0 ? "accepted" : "revoked"));
      const got1 = [];
      for (let i = 0; i < DRAFT_1_BIT.values.length; i++) got1.push(await outcome(verifier, await token(i, base + one)));
      expect(got1).toEqual(expected(DRAFT_1_BIT.values));
      const got2 = [];
      for (let i = 0; i < DRAFT_2_BITS.values.length; i++) got2.push(await outcome(verifier, await token(i, base + two)));
      expect(got2).toEqual(expected(DRAFT_2_BITS.values));
      // One request per list for all those verifications, asking for the JWT form (§8.1).
      expect([server.count(one), server.count(two)]).toEqual([1, 1]);
      expect(server.requests.find((r) => r.path === one)!.accept).toBe("application/statuslist+jwt");
    });

    it("says what the status is: revoked (1), suspended (2), other values by number; claims carry the reference", async () => {
      const path = newPath();
      await publish(path, listWith(8, { 1: 1, 2: 2, 3: 3 }, 2), {}, { bits: 2 });
      const verifier = verifierFor();
      const messageOf = async (idx: number) => verifier.verify(await token(idx, base + path)).then(() => "accepted", (e: Error) => e.message);
      expect(await messageOf(1)).toBe("the access token has been revoked");
      expect(await messageOf(2)).toBe("the access token has been suspended");
      expect(await messageOf(3)).toMatch(/status is 3/);
      const claims = await verifier.verify(await token(0, base + path));
      expect(claims.status).toEqual({ status_list: { idx: 0, uri: base + path } });
    });

    it("a token without a status claim fetches nothing; statusList: false never fetches and accepts a revoked token", async () => {
      const path = newPath();
      await publish(path, listWith(8, [0]));
      const before = server.requests.length;
      const plain = await signJwt(key, "at+jwt", { iss: base, sub: "u", aud: "api", client_id: "web", jti: "j-plain", iat: epochSeconds(), exp: epochSeconds() + 60 });
      expect(await outcome(verifierFor(), plain)).toBe("accepted");
      expect(await outcome(verifierFor({ statusList: false }), await token(0, base + path))).toBe("accepted");
      expect(server.requests.slice(before).filter((r) => r.path !== "/.well-known/jwks.json")).toEqual([]);
    });

    it("the token is validated first (§8.3): an expired or foreign token is refused without its list being fetched", async () => {
      const path = newPath();
      await publish(path, listWith(8));
      const verifier = verifierFor();
      expect(await outcome(verifier, await token(0, base + path, { exp: epochSeconds() - 3600, iat: epochSeconds() - 4000 }))).toBe("expired");
      expect(await outcome(verifier, await token(0, base + path, { aud: "billing" }))).toBe("wrong_audience");
      const forged = await signJwt(attacker, "at+jwt", { iss: base, sub: "u", aud: "api", client_id: "web", jti: "j", iat: epochSeconds(), exp: epochSeconds() + 60, status: { status_list: { idx: 0, uri: base + path } } });
      expect(await outcome(verifier, forged)).toBe("unknown_key");
      expect(server.count(path)).toBe(0);
    });
  });

  describe("lists the kit does not trust: never used, the token is refused (status_unavailable)", () => {
    // Every list below says entry 0 is VALID: accepting the token would mean trusting it.
    const cases: [string, (path: string) => Promise<Served>][] = [
      ["signed by a key that is not in the JWKS", async (p) => ({ body: await signJwt(attacker, "statuslist+jwt", listClaims(base, base + p, listWith(8))) })],
      [
        "signed by another key under the issuer's kid",
        async (p) => ({ body: await signJwt(attacker, "statuslist+jwt", listClaims(base, base + p, listWith(8)), { kid: key.kid }) }),
      ],
      [
        "the issuer's key embedded in the header (jwk), signed by the attacker",
        async (p) => ({ body: await signJwt(attacker, "statuslist+jwt", listClaims(base, base + p, listWith(8)), { kid: key.kid, jwk: attacker.jwk }) }),
      ],
      [
        'alg "none"',
        async (p) => ({ body: `${b64url(JSON.stringify({ alg: "none", typ: "statuslist+jwt", kid: key.kid }))}.${b64url(JSON.stringify(listClaims(base, base + p, listWith(8))))}.` }),
      ],
      [
        "HS256 keyed with the issuer's public JWK",
        async (p) => ({
          body: await new SignJWT(listClaims(base, base + p, listWith(8)))
            .setProtectedHeader({ alg: "HS256", kid: key.kid, typ: "statuslist+jwt" })
            .sign(new TextEncoder().encode(JSON.stringify(key.jwk))),
        }),
      ],
      ["sub is another list's uri (§8.3 4a)", async (p) => ({ body: await signJwt(key, "statuslist+jwt", listClaims(base, `${base + p}0`, listWith(8))) })],
      ["sub missing", async (p) => ({ body: await signJwt(key, "statuslist+jwt", listClaims(base, base + p, listWith(8), { sub: undefined })) })],
      ["iss is another issuer", async (p) => ({ body: await signJwt(key, "statuslist+jwt", listClaims("https://evil.test", base + p, listWith(8))) })],
      ['typ "JWT"', async (p) => ({ body: await signJwt(key, "JWT", listClaims(base, base + p, listWith(8))) })],
      ['typ "at+jwt" (an access token is not a list)', async (p) => ({ body: await signJwt(key, "at+jwt", listClaims(base, base + p, listWith(8))) })],
      ["no typ", async (p) => ({ body: await signJwt(key, "statuslist+jwt", listClaims(base, base + p, listWith(8)), { typ: undefined }) })],
      [
        "expired (exp 2 minutes ago)",
        async (p) => ({ body: await signJwt(key, "statuslist+jwt", listClaims(base, base + p, listWith(8), { iat: epochSeconds() - 600, exp: epochSeconds() - 120 })) }),
      ],
      ["no exp", async (p) => ({ body: await signJwt(key, "statuslist+jwt", listClaims(base, base + p, listWith(8), { exp: undefined })) })],
      ["no iat", async (p) => ({ body: await signJwt(key, "statuslist+jwt", listClaims(base, base + p, listWith(8), { iat: undefined })) })],
      ["issued 10 minutes in the future", async (p) => ({ body: await signJwt(key, "statuslist+jwt", listClaims(base, base + p, listWith(8), { iat: epochSeconds() + 600 })) })],
      ["bits 3", async (p) => ({ body: await signJwt(key, "statuslist+jwt", listClaims(base, base + p, listWith(8), {}, 3)) })],
      ["lst not base64url", async (p) => ({ body: await signJwt(key, "statuslist+jwt", listClaims(base, base + p, "eNrbuRgAAhcBXQ==+/")) })],
      ["lst not ZLIB (raw DEFLATE)", async (p) => ({ body: await signJwt(key, "statuslist+jwt", listClaims(base, base + p, "y2BgAAAA")) })],
      ["ttl negative", async (p) => ({ body: await signJwt(key, "statuslist+jwt", listClaims(base, base + p, listWith(8), { ttl: -5 })) })],
      ["no status_list", async (p) => ({ body: await signJwt(key, "statuslist+jwt", listClaims(base, base + p, listWith(8), { status_list: undefined })) })],
      ["not a JWS", async () => ({ body: "<html>maintenance</html>", headers: { "content-type": "text/html" } })],
      ["404", async () => ({ status: 404, body: "no such list" })],
      ["500", async () => ({ status: 500, body: "oops" })],
    ];

    it.each(cases)("%s", async (_name, make) => {
      const path = newPath();
      server.serve(path, await make(path));
      const warnings: StatusListWarning[] = [];
      const err = await verifierFor({ statusList: { onWarning: (w) => warnings.push(w) } })
        .verify(await token(0, base + path))
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(err).toBeInstanceOf(TokenVerificationError);
      expect((err as TokenVerificationError).code).toBe("status_unavailable");
      // A short fixed sentence, usable as an RFC 6750 error_description.
      expect((err as TokenVerificationError).message).toMatch(/^[\x20\x21\x23-\x5b\x5d-\x7e]+$/);
      // The hook hears of it once, with the reason as the cause (for the service's logs).
      expect(warnings.map((w) => [w.kind, w.uri])).toEqual([["unavailable", base + path]]);
      expect(warnings[0]!.cause).toBeInstanceOf(Error);
    });

    it("a forged list cannot un-revoke a token: the last valid list stands in for maxStale, then the token is refused as unavailable", async () => {
      const { path, warnings, verifier } = await bridgedList([0]);
      const revoked = await token(0, base + path);
      expect(await outcome(verifier, revoked)).toBe("revoked");
      const fetchedAt = Date.now(); // the list was requested before this
      // The "issuer" now serves a list signed by another key that says entry 0 is VALID.
      server.serve(path, { body: await signJwt(attacker, "statuslist+jwt", listClaims(base, base + path, listWith(8), { ttl: 1 }), { kid: key.kid }) });
      await sleep(1100);
      expect(await outcome(verifier, revoked)).toBe("revoked");
      expect(warnings.map((w) => [w.kind, w.uri])).toEqual([["stale", base + path]]);
      await sleep(fetchedAt + 1000 + 1500 + 200 - Date.now());
      expect(await outcome(verifier, revoked)).toBe("status_unavailable");
      expect(server.count(path)).toBeGreaterThanOrEqual(2);
    });
  });

  describe("fetching and caching", () => {
    it("once per ttl, then revalidated with If-None-Match: a 304 keeps the list, a new list is seen after the ttl", async () => {
      const path = newPath();
      await publish(path, listWith(8, [5]), { ttl: 1 });
      const verifier = verifierFor();
      for (let i = 0; i < 10; i++) expect(await outcome(verifier, await token(4, base + path))).toBe("accepted");
      expect(server.count(path)).toBe(1);
      await sleep(1100);
      expect(await outcome(verifier, await token(5, base + path))).toBe("revoked");
      const [initial, revalidation] = server.requests.filter((r) => r.path === path);
      expect(initial!.ifNoneMatch).toBeNull();
      expect(revalidation!.ifNoneMatch).toMatch(/^"/);

      // Entry 4 is revoked now: seen once the ttl has passed, not before.
      await publish(path, listWith(8, [4, 5]), { ttl: 1 });
      const revokedAt = Date.now();
      const four = await token(4, base + path);
      expect(await outcome(verifier, four)).toBe("accepted");
      let seen = await outcome(verifier, four);
      while (seen === "accepted" && Date.now() - revokedAt < 3000) {
        await sleep(50);
        seen = await outcome(verifier, four);
      }
      expect(seen).toBe("revoked");
      expect(Date.now() - revokedAt).toBeLessThan(2000); // the ttl, and some slack
      expect(server.count(path)).toBe(3);
    });

    it("the refresh interval is min(ttl, maxAge), never under 1 s; the ttl claim takes precedence over Cache-Control (§8.2), max-age counts only without one", async () => {
      type Case = { ttl: number | undefined; cacheControl: number | string | null; opts?: { maxAge: number }; refetched: boolean };
      const cases: Record<string, Case> = {
        "ttl 1, max-age 3600": { ttl: 1, cacheControl: 3600, refetched: true },
        "ttl 60, max-age 1": { ttl: 60, cacheControl: 1, refetched: false },
        // A CDN's no-cache / no-store does not make the kit refetch every second.
        "ttl 60, no-cache": { ttl: 60, cacheControl: "no-cache", refetched: false },
        "ttl 60, no-store, max-age=0": { ttl: 60, cacheControl: "no-store, max-age=0", refetched: false },
        "ttl 60, max-age 60, maxAge 1000 ms": { ttl: 60, cacheControl: 60, opts: { maxAge: 1000 }, refetched: true },
        "ttl 60, max-age 60": { ttl: 60, cacheControl: 60, refetched: false },
        // Refetched after the 1 s floor, not on every verification.
        "ttl 0.001, max-age 0": { ttl: 0.001, cacheControl: 0, refetched: true },
        "no ttl, max-age 1": { ttl: undefined, cacheControl: 1, refetched: true },
        "no ttl, max-age 60": { ttl: undefined, cacheControl: 60, refetched: false },
        "no ttl, no-cache (the 1 s floor)": { ttl: undefined, cacheControl: "no-cache", refetched: true },
        "no ttl, no Cache-Control (maxAge, 300 s)": { ttl: undefined, cacheControl: null, refetched: false },
        "no ttl, no Cache-Control, maxAge 1000 ms": { ttl: undefined, cacheControl: null, opts: { maxAge: 1000 }, refetched: true },
      };
      const setups = await Promise.all(
        Object.entries(cases).map(async ([name, c]) => {
          const path = newPath();
          await publish(path, listWith(8), { ttl: c.ttl }, { cacheControl: c.cacheControl });
          const verifier = verifierFor({ statusList: c.opts ?? {} });
          const t = await token(1, base + path);
          for (let i = 0; i < 5; i++) expect(await outcome(verifier, t)).toBe("accepted");
          return { name, path, verifier, t };
        }),
      );
      // Well under a second has passed: nothing refetched yet, not even with ttl 0.001.
      expect(Object.fromEntries(setups.map((s) => [s.name, server.count(s.path)]))).toEqual(
        Object.fromEntries(setups.map((s) => [s.name, 1])),
      );
      await sleep(1100);
      for (const s of setups) await outcome(s.verifier, s.t);
      expect(Object.fromEntries(setups.map((s) => [s.name, server.count(s.path) > 1]))).toEqual(
        Object.fromEntries(Object.entries(cases).map(([name, c]) => [name, c.refetched])),
      );
    });

    it("no rollback: an older list (earlier iat), validly signed and unexpired, never replaces the held one; it counts as a revalidation", async () => {
      const path = newPath();
      const warnings: StatusListWarning[] = [];
      const verifier = verifierFor({ statusList: { maxStale: 1500, onWarning: (w) => warnings.push(w) } });
      const t = await token(0, base + path);
      const issuedAt = epochSeconds();
      // L2, the current list: entry 0 revoked.
      await publish(path, listWith(8, [0]), { ttl: 1, iat: issuedAt });
      expect(await outcome(verifier, t)).toBe("revoked");
      const fetchedAt = Date.now();
      // L1: issued 10 s earlier, entry 0 still valid; what a lagging instance behind the load
      // balancer, a stale cache or a replay serves.
      await publish(path, listWith(8), { ttl: 1, iat: issuedAt - 10, exp: issuedAt + 290 });
      await sleep(1100);
      expect(await outcome(verifier, t)).toBe("revoked");
      expect(server.count(path)).toBe(2);
      // Served again and again, well past ttl + maxStale: the issuer answers, so the held list is
      // revalidated each time, never dropped (no status_unavailable), never replaced.
      while (Date.now() < fetchedAt + 1000 + 1500 + 1000) {
        await sleep(250);
        expect(await outcome(verifier, t)).toBe("revoked");
      }
      expect(server.count(path)).toBeGreaterThanOrEqual(4);
      expect(warnings).toEqual([]);
      // A newer list is taken at the next refresh.
      await publish(path, listWith(8), { ttl: 1, iat: epochSeconds() });
      await sleep(1100);
      expect(await outcome(verifier, t)).toBe("accepted");
    });

    it("a slow issuer does not hold requests while a valid list is held: they are answered from it, and the refresh is used once it arrives", async () => {
      const path = newPath();
      await publish(path, listWith(8), { ttl: 1 });
      const verifier = verifierFor();
      const t = await token(3, base + path);
      expect(await outcome(verifier, t)).toBe("accepted");
      // Entry 3 is revoked now, but the issuer takes 3 s to answer the refresh.
      const jws = await signJwt(key, "statuslist+jwt", listClaims(base, base + path, listWith(8, [3]), { ttl: 1 }));
      server.serve(path, { body: jws, headers: { "content-type": "application/statuslist+jwt" }, delay: 3000 });
      await sleep(1100);
      // Past the ttl: the refresh starts, and this verification is answered from the held list
      // (had it waited for the refresh, it would say revoked).
      expect(await outcome(verifier, t)).toBe("accepted");
      expect(server.count(path)).toBe(2);
      await sleep(3200);
      expect(await outcome(verifier, t)).toBe("revoked");
    });

    it("single flight: 50 concurrent verifications of an unknown list make one request", async () => {
      const path = newPath();
      const jws = await signJwt(key, "statuslist+jwt", listClaims(base, base + path, listWith(64, [7])));
      server.serve(path, { body: jws, headers: { "content-type": "application/statuslist+jwt" }, delay: 200 });
      const verifier = verifierFor();
      const tokens = await Promise.all(Array.from({ length: 50 }, (_, i) => token(i, base + path)));
      const results = await Promise.all(tokens.map((t) => outcome(verifier, t)));
      expect(results.filter((r) => r === "revoked")).toHaveLength(1);
      expect(results.filter((r) => r === "accepted")).toHaveLength(49);
      expect(server.count(path)).toBe(1);
    });

    it("issuer down: the last list is used within maxStale (with a warning), then 503 status_unavailable, then it recovers", async () => {
      const { path, warnings, verifier } = await bridgedList([3]);
      const valid = await token(2, base + path);
      const revoked = await token(3, base + path);
      expect(await outcome(verifier, valid)).toBe("accepted");
      const fetchedAt = Date.now(); // the list was requested before this
      server.outage = "reset";
      try {
        await sleep(1100);
        // Past the ttl, within maxStale: the last list still answers, both ways.
        expect(await outcome(verifier, valid)).toBe("accepted");
        expect(await outcome(verifier, revoked)).toBe("revoked");
        expect(warnings.map((w) => w.kind)).toEqual(["stale"]);
        // Retried once per refresh interval, not per request.
        const attempts = server.count(path);
        for (let i = 0; i < 10; i++) await outcome(verifier, valid);
        expect(server.count(path)).toBe(attempts);
        await sleep(fetchedAt + 1000 + 1500 + 200 - Date.now());
        expect(await outcome(verifier, valid)).toBe("status_unavailable");
        expect(await outcome(verifier, revoked)).toBe("status_unavailable");
      } finally {
        server.outage = undefined;
      }
      await sleep(1100);
      expect(await outcome(verifier, valid)).toBe("accepted");
      expect(await outcome(verifier, revoked)).toBe("revoked");
    });

    it("failOpen: with no usable list the token is accepted with a warning; a list that says revoked still refuses", async () => {
      const down = newPath();
      server.serve(down, { status: 503, body: "down" });
      const warnings: StatusListWarning[] = [];
      const open = verifierFor({ statusList: { failOpen: true, onWarning: (w) => warnings.push(w) } });
      expect(await outcome(open, await token(0, base + down))).toBe("accepted");
      expect(warnings.map((w) => [w.kind, w.uri])).toEqual([["fail_open", base + down]]);
      expect(await outcome(verifierFor({ statusList: { onWarning: () => undefined } }), await token(0, base + down))).toBe("status_unavailable");

      const up = newPath();
      await publish(up, listWith(8, [0]));
      expect(await outcome(open, await token(0, base + up))).toBe("revoked");
      // failOpen does not cover what the token itself gets wrong.
      expect(await outcome(open, await token(8, base + up))).toBe("status_invalid");
    });

    it("a list that never came is retried at most once a second, not per request", async () => {
      const path = newPath();
      server.serve(path, { status: 503, body: "down" });
      const verifier = verifierFor({ statusList: { onWarning: () => undefined } });
      const t = await token(0, base + path);
      for (let i = 0; i < 20; i++) expect(await outcome(verifier, t)).toBe("status_unavailable");
      expect(server.count(path)).toBe(1);
      await publish(path, listWith(8));
      await sleep(1100);
      expect(await outcome(verifier, t)).toBe("accepted");
      expect(server.count(path)).toBe(2);
    });

    it("a redirect is not followed (§11.4): the list is unavailable and the target gets no request", async () => {
      const elsewhere = await startListServer([key.jwk]);
      try {
        const path = newPath();
        elsewhere.serveList(path, await signJwt(key, "statuslist+jwt", listClaims(base, base + path, listWith(8))));
        server.serve(path, { status: 302, headers: { location: elsewhere.base + path } });
        expect(await outcome(verifierFor({ statusList: { onWarning: () => undefined } }), await token(0, base + path))).toBe("status_unavailable");
        expect(elsewhere.requests).toEqual([]);
      } finally {
        await elsewhere.close();
      }
    });

    it("a list held in cache stops being used at its exp (the verifier's clock)", async () => {
      const path = newPath();
      const now = Date.now();
      await publish(path, listWith(8), { ttl: 3600, iat: epochSeconds(now), exp: epochSeconds(now) + 60 });
      const clock = { at: now, now: () => new Date(clock.at) };
      const verifier = verifierFor({ clock, statusList: { onWarning: () => undefined } });
      const t = await token(0, base + path, { exp: epochSeconds(now) + 3600 });
      expect(await outcome(verifier, t)).toBe("accepted");
      clock.at = now + 60_000 + 25_000; // within the 30 s tolerance
      expect(await outcome(verifier, t)).toBe("accepted");
      clock.at = now + 60_000 + 31_000;
      expect(await outcome(verifier, t)).toBe("status_unavailable");
    });
  });

  describe("references and lists the kit refuses", () => {
    it("a list on another origin is refused (status_invalid) without any request to it", async () => {
      const evil = await startListServer([key.jwk]);
      try {
        const path = newPath();
        // Even a list the issuer's key really signed: the origin is what is refused.
        evil.serveList(path, await signJwt(key, "statuslist+jwt", listClaims(base, evil.base + path, listWith(8))));
        const port = new URL(base).port;
        const uris = [
          evil.base + path,
          `https://127.0.0.1:${port}${path}`,
          `http://localhost:${port}${path}`,
          `http://user:secret@127.0.0.1:${port}${path}`,
          "file:///etc/passwd",
          "not a uri",
          path,
        ];
        const verifier = verifierFor();
        const got: Record<string, unknown> = {};
        for (const uri of uris) got[uri] = await outcome(verifier, await token(0, uri));
        expect(got).toEqual(Object.fromEntries(uris.map((u) => [u, "status_invalid"])));
        expect(evil.requests).toEqual([]);
      } finally {
        await evil.close();
      }
    });

    it("a malformed status claim is status_invalid (§6.2)", async () => {
      const path = newPath();
      await publish(path, listWith(8));
      const verifier = verifierFor();
      const uri = base + path;
      const claims: unknown[] = [
        "revoked",
        [],
        {},
        { status_list: null },
        { status_list: { uri } },
        { status_list: { idx: -1, uri } },
        { status_list: { idx: 1.5, uri } },
        { status_list: { idx: "3", uri } },
        { status_list: { idx: 0 } },
        { status_list: { idx: 0, uri: 42 } },
      ];
      for (const status of claims) {
        const t = await token(0, uri, { status });
        expect([status, await outcome(verifier, t)]).toEqual([status, "status_invalid"]);
      }
    });

    it("an index past the end of the list is refused (§8.3 step 6)", async () => {
      const path = newPath();
      await publish(path, DRAFT_1_BIT.lst); // 16 entries
      const verifier = verifierFor();
      expect(await outcome(verifier, await token(15, base + path))).toBe("revoked");
      for (const idx of [16, 17, 2 ** 40, Number.MAX_SAFE_INTEGER]) expect([idx, await outcome(verifier, await token(idx, base + path))]).toEqual([idx, "status_invalid"]);
    });

    it("a list bomb is refused without being inflated: maxListBytes bounds the decompressed size", async () => {
      const bomb = newPath();
      // 64 MiB of zeros compress to about 64 KB: far over the 4 MiB default.
      const lst = deflateSync(Buffer.alloc(64 * 1024 * 1024)).toString("base64url");
      expect(lst.length).toBeLessThan(200_000);
      await publish(bomb, lst);
      const before = process.memoryUsage().arrayBuffers;
      const started = Date.now();
      expect(await outcome(verifierFor({ statusList: { onWarning: () => undefined } }), await token(0, base + bomb))).toBe("status_unavailable");
      expect(Date.now() - started).toBeLessThan(5000);
      expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(40 * 1024 * 1024);

      // The bound is exact: 2048 bytes pass a 2048-byte limit, 2049 do not.
      const fits = newPath();
      const over = newPath();
      await publish(fits, deflateSync(Buffer.alloc(2048)).toString("base64url"));
      await publish(over, deflateSync(Buffer.alloc(2049)).toString("base64url"));
      const small = verifierFor({ statusList: { maxListBytes: 2048, onWarning: () => undefined } });
      expect(await outcome(small, await token(16383, base + fits))).toBe("accepted");
      expect(await outcome(small, await token(0, base + over))).toBe("status_unavailable");

      // The default, 4 MiB (32 Mi 1-bit or 4 Mi 8-bit entries; Tessera's lists inflate to 128 KiB).
      const atDefault = newPath();
      const pastDefault = newPath();
      await publish(atDefault, deflateSync(Buffer.alloc(4 * 1024 * 1024)).toString("base64url"));
      await publish(pastDefault, deflateSync(Buffer.alloc(4 * 1024 * 1024 + 1)).toString("base64url"));
      const byDefault = verifierFor({ statusList: { onWarning: () => undefined } });
      expect(await outcome(byDefault, await token(4 * 1024 * 1024 * 8 - 1, base + atDefault))).toBe("accepted");
      expect(await outcome(byDefault, await token(0, base + pastDefault))).toBe("status_unavailable");
    });

    it("a response larger than maxResponseBytes is refused", async () => {
      const path = newPath();
      const jws = await publish(path, listWith(8), { padding: "x".repeat(10_000) });
      expect(jws.length).toBeGreaterThan(10_000);
      expect(await outcome(verifierFor({ statusList: { maxResponseBytes: 8192, onWarning: () => undefined } }), await token(0, base + path))).toBe("status_unavailable");
      expect(await outcome(verifierFor(), await token(0, base + path))).toBe("accepted");
    });

    it("bad options are refused at construction", () => {
      for (const statusList of [{ maxStale: -1 }, { maxAge: Number.NaN }, { timeoutDuration: 1.5 }, { maxListBytes: 0 }, { maxLists: 1.5 }]) {
        expect(() => verifierFor({ statusList }), JSON.stringify(statusList)).toThrow(TypeError);
      }
    });
  });

  describe("in the guards", () => {
    it("status_unavailable is 503 with Retry-After (the token may be fine); revoked is 401 invalid_token; Fastify and Express alike", async () => {
      const okPath = newPath();
      const downPath = newPath();
      await publish(okPath, listWith(8, [1]));
      server.serve(downPath, { status: 503, body: "down" });
      const verifier = verifierFor({ statusList: { onWarning: () => undefined } });
      const cases = { valid: await token(0, base + okPath), revoked: await token(1, base + okPath), unavailable: await token(0, base + downPath) };

      const fastify = Fastify();
      await fastify.register(fastifyBearerAuth, { verifier, realm: "orders" });
      fastify.get("/me", { preHandler: authenticate }, async (req) => ({ sub: req.auth!.sub }));
      const app = express();
      app.get("/me", expressBearerAuth({ verifier, realm: "orders" }), (req, res) => void res.json({ sub: req.auth!.sub }));
      const listener = http.createServer(app);
      await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
      try {
        const url = `http://127.0.0.1:${(listener.address() as AddressInfo).port}/me`;
        for (const [name, t] of Object.entries(cases)) {
          const f = await fastify.inject({ method: "GET", url: "/me", headers: { authorization: `Bearer ${t}` } });
          const e = await fetch(url, { headers: { authorization: `Bearer ${t}` } });
          const answer = (status: number, headers: (h: string) => string | undefined | null, body: unknown) => ({
            status,
            retryAfter: headers("retry-after") ?? null,
            challenge: headers("www-authenticate") ?? null,
            error: (body as { error?: string }).error ?? null,
          });
          const fromFastify = answer(f.statusCode, (h) => f.headers[h] as string | undefined, f.json());
          const fromExpress = answer(e.status, (h) => e.headers.get(h), await e.json());
          expect([name, fromExpress]).toEqual([name, fromFastify]);
          if (name === "valid") expect(fromFastify).toMatchObject({ status: 200, error: null });
          if (name === "revoked") {
            expect(fromFastify).toMatchObject({ status: 401, error: "invalid_token", retryAfter: null });
            expect(fromFastify.challenge).toMatch(/^Bearer realm="orders", error="invalid_token", error_description="the access token has been revoked"$/);
          }
          if (name === "unavailable") expect(fromFastify).toMatchObject({ status: 503, error: "temporarily_unavailable", retryAfter: "5", challenge: null });
        }
      } finally {
        await fastify.close();
        listener.closeAllConnections();
        await new Promise((resolve) => listener.close(resolve));
      }
    });
  });

  it("the key set is the verifier's: a list signed by a key published later is verified after one JWKS refetch", async () => {
    const rotated = await testKey("issuer-key-2");
    const path = newPath();
    const verifier = verifierFor({ cooldownDuration: 0 });
    await publish(path, listWith(8));
    expect(await outcome(verifier, await token(0, base + path))).toBe("accepted");
    // The issuer rotates: a new key is published and signs the next list.
    server.keys.push(rotated.jwk);
    const other = newPath();
    server.serveList(other, await signJwt(rotated, "statuslist+jwt", listClaims(base, base + other, listWith(8, [0]))));
    expect(await outcome(verifier, await token(0, base + other))).toBe("revoked");
  });
});
