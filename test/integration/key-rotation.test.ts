// Signing-key rotation as verifiers see it: the JWKS caching contract (max-age, ETag), next keys
// published before they sign, retired keys published until every token they signed has expired,
// emergency rotation and revocation, moving from one algorithm to another, and a caching
// verifier (jose's createRemoteJWKSet) that never fails and never meets an unknown kid while
// rotations run on shrunken intervals with the real clock.
import type { AddressInfo } from "node:net";
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  jwtVerify,
  type JSONWebKeySet,
  type JWTVerifyOptions,
} from "jose";
import { afterEach, expect, it } from "vitest";
import type { SigningAlg } from "../../src/domain/keys/signing-key.ts";
import { systemClock } from "../../src/domain/clock.ts";
import { FakeClock } from "../helpers/fake-clock.ts";
import type { AppliedAction } from "../../src/domain/keys/key-manager.ts";
import {
  describeEachDb,
  login,
  passwordGrant,
  refreshGrant,
  register,
  startIssuer,
  verifyAccessToken,
  type IssuerOptions,
  type TestIssuer,
  type TokenPair,
} from "../helpers/issuer.ts";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));
const kidOf = (token: string) => decodeProtectedHeader(token).kid!;
const algOf = (token: string) => decodeProtectedHeader(token).alg!;

interface Served {
  status: number;
  etag: string;
  cacheControl: string;
  body: string;
  jwks: JSONWebKeySet;
  kids: string[];
}

async function served(issuer: TestIssuer): Promise<Served> {
  const res = await issuer.app.inject({ method: "GET", url: "/.well-known/jwks.json" });
  expect(res.statusCode).toBe(200);
  const jwks = res.json() as JSONWebKeySet;
  return {
    status: res.statusCode,
    etag: String(res.headers.etag),
    cacheControl: String(res.headers["cache-control"]),
    body: res.body,
    jwks,
    kids: jwks.keys.map((k) => k.kid!).sort(),
  };
}

/** Verify against the JWKS this instance serves now, as a resource server does (every check pinned). */
async function verifyServed(issuer: TestIssuer, token: string, opts: Partial<JWTVerifyOptions> = {}) {
  const { jwks } = await served(issuer);
  return jwtVerify(token, createLocalJWKSet(jwks), {
    algorithms: [issuer.config.signingAlg],
    issuer: issuer.config.issuer,
    audience: issuer.config.accessTokenAudience,
    typ: "at+jwt",
    currentDate: issuer.clock.now(),
    ...opts,
  });
}

/** The moment a token was issued: checking its signature "as of then" isolates key availability from expiry. */
const issuedAt = (token: string) => new Date(decodeJwt(token).iat! * 1000);
const expiresAt = (token: string) => new Date(decodeJwt(token).exp! * 1000);

const started: TestIssuer[] = [];
async function start(flavor: Parameters<typeof startIssuer>[0], opts: IssuerOptions = {}): Promise<TestIssuer> {
  const issuer = await startIssuer(flavor, { ...opts, env: { LOG_LEVEL: "warn", ...opts.env } });
  started.push(issuer);
  return issuer;
}
afterEach(async () => {
  // Second instances first: the first one owns the database and keys dir.
  for (const issuer of started.splice(0).reverse()) {
    issuer.services.keyReloader.stop();
    await issuer.close();
  }
});

const keyInfo = async (issuer: TestIssuer, kid: string) => {
  const info = (await issuer.services.keyManager.list()).find((k) => k.kid === kid);
  expect(info, `key ${kid} in the store`).toBeDefined();
  return info!;
};
const actionsOf = (applied: AppliedAction[]) => applied.map((a) => `${a.action} ${a.kid}`);

describeEachDb("key rotation: JWKS caching contract", (flavor) => {
  const env = { JWKS_MAX_AGE: "123", KEY_ROTATION_INTERVAL: "60", KEYS_RELOAD_INTERVAL: "10", KEY_PUBLISH_MARGIN: "30" };

  it("Cache-Control max-age equals JWKS_MAX_AGE, before and after a rotation", async () => {
    const issuer = await start(flavor, { env });
    const before = await served(issuer);
    expect(before.cacheControl).toMatch(/(^|,)\s*max-age=123\s*(,|$)/);
    await issuer.services.keyManager.rotate();
    await issuer.services.keyReloader.reload();
    const after = await served(issuer);
    expect(after.kids).toHaveLength(2);
    expect(after.cacheControl).toMatch(/(^|,)\s*max-age=123\s*(,|$)/);

    const other = await start(flavor, { env: { ...env, JWKS_MAX_AGE: "7" } });
    expect((await served(other)).cacheControl).toMatch(/(^|,)\s*max-age=7\s*(,|$)/);
  });

  it("the ETag changes exactly when the published set changes; If-None-Match gets 304 only for the current set", async () => {
    const issuer = await start(flavor, { env });
    const { keyManager, keyReloader } = issuer.services;
    const observations: Served[] = [await served(issuer)];
    const observe = async () => {
      const s = await served(issuer);
      observations.push(s);
      return s;
    };

    // Nothing changed: same bytes, same ETag, and a reload finds nothing new.
    expect((await observe()).etag).toBe(observations[0]!.etag);
    expect(await keyReloader.reload()).toBe(false);
    expect((await observe()).etag).toBe(observations[0]!.etag);

    // A rotation creates a next key; this instance publishes it at its next reload, not before.
    const created = await keyManager.rotate();
    expect(created.map((a) => a.action)).toEqual(["create_next"]);
    expect((await observe()).etag).toBe(observations[0]!.etag);
    expect(await keyReloader.reload()).toBe(true);
    const withNext = await observe();
    expect(withNext.etag).not.toBe(observations[0]!.etag);
    expect(withNext.kids).toContain(created[0]!.kid);

    const conditional = (etag: string) =>
      issuer.app.inject({ method: "GET", url: "/.well-known/jwks.json", headers: { "if-none-match": etag } });
    expect((await conditional(withNext.etag)).statusCode).toBe(304);
    const stale = await conditional(observations[0]!.etag);
    expect(stale.statusCode).toBe(200);
    expect(stale.headers.etag).toBe(withNext.etag);
    expect(stale.body).toBe(withNext.body);

    // A rotation with nothing due changes nothing.
    expect(await keyManager.rotate()).toEqual([]);
    expect(await keyReloader.reload()).toBe(false);
    expect((await observe()).etag).toBe(withNext.etag);

    // Promotion (due after 60 s, activatable after 10+123+30 s) adds a new next key.
    issuer.clock.advance(10 + 123 + 30);
    const promoted = await keyManager.rotate();
    expect(promoted.map((a) => a.action)).toEqual(["promote", "retire", "create_next"]);
    await keyReloader.reload();
    await observe();
    // Emergency rotation, then a revocation: both change the set.
    await keyManager.rotateNow();
    await keyReloader.reload();
    await observe();
    await keyManager.revoke(promoted[0]!.kid);
    await keyReloader.reload();
    await observe();

    // Across every observation: ETag equal <=> published set (and bytes) equal.
    for (let i = 1; i < observations.length; i++) {
      const [a, b] = [observations[i - 1]!, observations[i]!];
      expect(a.etag === b.etag, `observation ${i}: etag ${a.etag} -> ${b.etag}, kids ${a.kids} -> ${b.kids}`).toBe(
        a.kids.join() === b.kids.join(),
      );
      expect(a.etag === b.etag).toBe(a.body === b.body);
    }
    // {A}, {A,B}, {A,B,C} after the promotion's new next key, +D (emergency), -B (revoked)
    expect(new Set(observations.map((o) => o.etag)).size).toBe(5);
  });

  it("a next key is published in the JWKS but does not sign until it is promoted and the instance reloads", async () => {
    const issuer = await start(flavor, { env });
    const { keyManager, keyReloader } = issuer.services;
    const old = issuer.services.keys.signer().kid;
    const [createNext] = await keyManager.rotate();
    expect(createNext).toMatchObject({ action: "create_next" });
    const next = createNext!.kid;
    await keyReloader.reload();
    expect((await served(issuer)).kids).toEqual([old, next].sort());

    const t1 = (await login(issuer.app)).access_token;
    expect(kidOf(t1)).toBe(old);
    await verifyServed(issuer, t1);

    // Rotation is due (60 s) but the next key is not yet activatable (10+123+30 s after creation).
    const activatable = (await keyInfo(issuer, next)).activatableAt!;
    expect(activatable.getTime() - (await keyInfo(issuer, next)).createdAt.getTime()).toBe((10 + 123 + 30) * 1000);
    issuer.clock.set(new Date(activatable.getTime() - 1000));
    expect(await keyManager.rotate()).toEqual([]);
    await keyReloader.reload();
    expect(kidOf((await login(issuer.app)).access_token)).toBe(old);

    issuer.clock.set(activatable);
    const promoted = await keyManager.rotate();
    expect(actionsOf(promoted).slice(0, 2)).toEqual([`promote ${next}`, `retire ${old}`]);
    // Promoted in the store; this instance signs with it only after its reload.
    expect(kidOf((await login(issuer.app)).access_token)).toBe(old);
    await keyReloader.reload();
    const t2 = (await login(issuer.app)).access_token;
    expect(kidOf(t2)).toBe(next);
    await verifyServed(issuer, t2);
    // The old key is retired but still published: its tokens keep verifying.
    expect((await keyInfo(issuer, old)).state).toBe("retired");
    await verifyServed(issuer, t1);
  });
});

describeEachDb("key rotation: continuity with a caching verifier and the real clock", (flavor) => {
  it("tokens verify right away and just before they expire while keys rotate: 0 failures, 0 unknown-kid refetches", async () => {
    const JWKS_MAX_AGE = 2;
    const CLOCK_SKEW = 1;
    const issuer = await start(flavor, {
      // startIssuer types its clock as a FakeClock; this test needs the real one (timers and
      // jose's cache both run on real time), and never moves it.
      clock: systemClock as unknown as FakeClock,
      env: {
        JWKS_MAX_AGE: String(JWKS_MAX_AGE),
        KEY_PUBLISH_MARGIN: "1",
        CLOCK_SKEW: String(CLOCK_SKEW),
        KEYS_RELOAD_INTERVAL: "1",
        KEY_ROTATION_INTERVAL: "3",
        ACCESS_TOKEN_TTL: "4",
      },
    });
    const { keyManager, keyReloader } = issuer.services;
    await issuer.app.listen({ port: 0, host: "127.0.0.1" });
    const { port } = issuer.app.server.address() as AddressInfo;
    const jwksUrl = new URL(`http://127.0.0.1:${port}/.well-known/jwks.json`);

    // The verifier honours the served Cache-Control.
    const first = await fetch(jwksUrl, { signal: AbortSignal.timeout(10_000) });
    const maxAge = Number(/max-age=(\d+)/.exec(first.headers.get("cache-control") ?? "")?.[1]);
    expect(maxAge).toBe(JWKS_MAX_AGE);
    const jwks = createRemoteJWKSet(jwksUrl, { cacheMaxAge: maxAge * 1000, cooldownDuration: 30_000 });

    const checks = { immediate: 0, beforeExpiry: 0 };
    const failures: string[] = [];
    const unknownKid: string[] = [];
    const signedBy = new Map<string, number>();

    const verify = async (token: string, phase: keyof typeof checks) => {
      const kid = kidOf(token);
      // A fresh cache without the token's kid would force a refetch (or, in the cooldown, fail).
      if (jwks.fresh && !(jwks.jwks()?.keys ?? []).some((k) => k.kid === kid)) {
        unknownKid.push(`${phase} kid ${kid} at ${new Date().toISOString()}; cached ${(jwks.jwks()?.keys ?? []).map((k) => k.kid).join(",")}`);
      }
      try {
        await jwtVerify(token, jwks, {
          algorithms: ["ES256"],
          issuer: issuer.config.issuer,
          audience: issuer.config.accessTokenAudience,
          typ: "at+jwt",
          clockTolerance: CLOCK_SKEW,
        });
        checks[phase]++;
      } catch (err) {
        failures.push(`${phase} kid ${kid} at ${new Date().toISOString()}: ${(err as Error).name} ${(err as Error).message}`);
      }
    };

    const RUN_MS = 15_000;
    const stopAt = Date.now() + RUN_MS;
    const applied: AppliedAction[] = [];
    const rotator = (async () => {
      while (Date.now() < stopAt) {
        applied.push(...(await keyManager.rotate()));
        await sleep(500);
      }
    })();
    // As the server does: reload every KEYS_RELOAD_INTERVAL (a failed reload is logged).
    keyReloader.start(issuer.config.keysReloadInterval);

    const user = await register(issuer.app);
    const rechecks: Promise<void>[] = [];
    let refreshToken: string | undefined;
    let issued = 0;
    const grantErrors: string[] = [];
    while (Date.now() < stopAt) {
      const res =
        refreshToken && issued % 8 !== 0
          ? await refreshGrant(issuer.app, refreshToken)
          : await passwordGrant(issuer.app, user.email, user.password);
      issued++;
      if (res.statusCode !== 200) {
        grantErrors.push(`${res.statusCode} ${res.body}`);
        refreshToken = undefined;
        continue;
      }
      const body = res.json() as TokenPair;
      refreshToken = body.refresh_token;
      const token = body.access_token;
      signedBy.set(kidOf(token), (signedBy.get(kidOf(token)) ?? 0) + 1);
      await verify(token, "immediate");
      // Again half a second before it expires: its key must still be served and cached.
      rechecks.push(sleep(expiresAt(token).getTime() - 500 - Date.now()).then(() => verify(token, "beforeExpiry")));
      await sleep(100);
    }
    await rotator;
    await Promise.all(rechecks);
    keyReloader.stop();
    const reloadErrors = issuer.logs.lines.filter((l) => l.includes("key reload failed"));

    expect(grantErrors).toEqual([]);
    expect(failures).toEqual([]);
    expect(unknownKid).toEqual([]);
    expect(reloadErrors).toEqual([]);
    expect(checks.immediate).toBe(issued);
    expect(checks.beforeExpiry).toBe(issued);
    // Rotations really happened: at least three keys signed, and a retired key was removed.
    expect([...signedBy.keys()].length, JSON.stringify([...signedBy])).toBeGreaterThanOrEqual(3);
    const removed = applied.filter((a) => a.action === "remove").map((a) => a.kid);
    expect(removed.length, actionsOf(applied).join("\n")).toBeGreaterThanOrEqual(1);
    const finalKids = (await (await fetch(jwksUrl, { signal: AbortSignal.timeout(10_000) })).json() as JSONWebKeySet).keys.map((k) => k.kid);
    for (const kid of removed) {
      expect(finalKids).not.toContain(kid);
      expect(signedBy.has(kid), `removed key ${kid} had signed tokens`).toBe(true);
    }
  }, 60_000);
});

describeEachDb("key rotation: the retired key's window", (flavor) => {
  const ttl = 600;
  const maxAge = 300;
  const skew = 60;
  const reload = 10;
  const env = {
    ACCESS_TOKEN_TTL: String(ttl),
    JWKS_MAX_AGE: String(maxAge),
    KEY_PUBLISH_MARGIN: "30",
    CLOCK_SKEW: String(skew),
    KEYS_RELOAD_INTERVAL: String(reload),
    KEY_ROTATION_INTERVAL: "3600",
  };

  it("tokens signed by a retired key verify until its publishedUntil; then the key leaves the JWKS and they fail", async () => {
    const issuer = await start(flavor, { env });
    const { keyManager, keyReloader } = issuer.services;
    const a = issuer.services.keys.signer().kid;
    const early = (await login(issuer.app)).access_token;
    expect(kidOf(early)).toBe(a);

    await keyManager.rotate(); // next key
    await keyReloader.reload();
    issuer.clock.advance(3600);
    const promoted = await keyManager.rotate();
    expect(actionsOf(promoted).slice(0, 2)).toEqual([expect.stringMatching(/^promote /), `retire ${a}`]);
    const b = promoted[0]!.kid;

    // Until this instance reloads (at most KEYS_RELOAD_INTERVAL later) A still signs.
    const atRetire = (await login(issuer.app)).access_token;
    issuer.clock.advance(reload);
    const lastByA = (await login(issuer.app)).access_token;
    expect([kidOf(atRetire), kidOf(lastByA)]).toEqual([a, a]);
    await keyReloader.reload();
    expect(kidOf((await login(issuer.app)).access_token)).toBe(b);

    const info = await keyInfo(issuer, a);
    expect(info.state).toBe("retired");
    const until = info.publishedUntil!;
    expect(until.getTime() - info.retiredAt!.getTime()).toBe((reload + ttl + maxAge + skew) * 1000);
    // Every token A signed has expired (plus skew) before A leaves the JWKS.
    expect(expiresAt(lastByA).getTime() + skew * 1000).toBeLessThan(until.getTime());

    const refresh = async () => {
      await keyManager.rotate();
      await keyReloader.reload();
    };

    // The last moment a verifier tolerating CLOCK_SKEW accepts the last token A signed.
    issuer.clock.set(new Date(expiresAt(lastByA).getTime() + skew * 1000 - 1000));
    await refresh();
    await verifyServed(issuer, lastByA, { clockTolerance: skew });

    // From retirement to just before publishedUntil, A is served and every token it signed verifies.
    for (let t = info.retiredAt!.getTime(); t < until.getTime(); t += 97_000) {
      issuer.clock.set(new Date(Math.max(t, issuer.clock.now().getTime())));
      await refresh();
      expect((await served(issuer)).kids, `at ${issuer.clock.now().toISOString()}`).toContain(a);
    }
    issuer.clock.set(new Date(until.getTime() - 1000));
    await refresh();
    expect((await served(issuer)).kids).toContain(a);
    for (const token of [early, atRetire, lastByA]) await verifyServed(issuer, token, { currentDate: issuedAt(token) });

    // At publishedUntil the next rotation removes A; the instance stops serving it at its reload.
    issuer.clock.set(until);
    const removal = await keyManager.rotate();
    expect(actionsOf(removal)).toContain(`remove ${a}`);
    expect((await served(issuer)).kids).toContain(a); // not reloaded yet
    await keyReloader.reload();
    expect((await served(issuer)).kids).not.toContain(a);
    for (const token of [early, atRetire, lastByA]) {
      await expect(verifyServed(issuer, token, { currentDate: issuedAt(token) })).rejects.toMatchObject({ code: "ERR_JWKS_NO_MATCHING_KEY" });
    }
    // B's tokens are unaffected.
    await verifyServed(issuer, (await login(issuer.app)).access_token);
  });
});

describeEachDb("key rotation: emergency rotation and revocation", (flavor) => {
  it("rotateNow: a new key signs from the next reload; the old key is retired and its tokens still verify", async () => {
    const issuer = await start(flavor);
    const { keyManager, keyReloader } = issuer.services;
    const old = issuer.services.keys.signer().kid;
    const before = (await login(issuer.app)).access_token;

    const applied = await keyManager.rotateNow();
    expect(applied.map((a) => a.action)).toEqual(["create_active", "retire"]);
    const fresh = applied[0]!.kid;
    expect(applied[1]!.kid).toBe(old);
    expect(kidOf((await login(issuer.app)).access_token)).toBe(old); // not reloaded yet

    await keyReloader.reload();
    const after = (await login(issuer.app)).access_token;
    expect(kidOf(after)).toBe(fresh);
    expect((await served(issuer)).kids).toEqual([old, fresh].sort());
    expect((await keyInfo(issuer, old)).state).toBe("retired");
    expect((await keyInfo(issuer, old)).publishedUntil).not.toBeNull();
    await verifyAccessToken(issuer, before);
    await verifyAccessToken(issuer, after);
  });

  it("revoke: the key leaves the JWKS at the next reload, its tokens fail, and a new key signs", async () => {
    const issuer = await start(flavor);
    const { keyManager, keyReloader } = issuer.services;
    const a = issuer.services.keys.signer().kid;
    const byA = (await login(issuer.app)).access_token;
    // An emergency rotation: A retired (still published), B signs.
    const [{ kid: b }] = (await keyManager.rotateNow()) as [AppliedAction];
    await keyReloader.reload();
    const byB = (await login(issuer.app)).access_token;
    expect(kidOf(byB)).toBe(b);

    // Revoking the signing key: removed, and a replacement signs.
    const { revoked, applied } = await keyManager.revoke(b);
    expect(revoked).toMatchObject({ kid: b, state: "active" });
    expect(applied.map((x) => x.action)).toEqual(["revoke", "create_active"]);
    const c = applied[1]!.kid;
    expect((await served(issuer)).kids).toContain(b); // until this instance reloads
    await keyReloader.reload();
    expect((await served(issuer)).kids).toEqual([a, c].sort());
    await expect(verifyAccessToken(issuer, byB)).rejects.toMatchObject({ code: "ERR_JWKS_NO_MATCHING_KEY" });
    const byC = (await login(issuer.app)).access_token;
    expect(kidOf(byC)).toBe(c);
    await verifyAccessToken(issuer, byC);
    await verifyAccessToken(issuer, byA); // the retired key is untouched

    // Revoking a retired key: removed too, its tokens fail; the signer is unchanged.
    const second = await keyManager.revoke(a);
    expect(second.revoked).toMatchObject({ kid: a, state: "retired" });
    expect(second.applied.map((x) => x.action)).toEqual(["revoke"]);
    await keyReloader.reload();
    expect((await served(issuer)).kids).toEqual([c]);
    await expect(verifyAccessToken(issuer, byA)).rejects.toMatchObject({ code: "ERR_JWKS_NO_MATCHING_KEY" });
    expect(kidOf((await login(issuer.app)).access_token)).toBe(c);
    // Neither revoked key comes back with a rotation.
    await keyManager.rotate();
    await keyReloader.reload();
    expect((await served(issuer)).kids).not.toContain(a);
    expect((await served(issuer)).kids).not.toContain(b);
    // An unknown kid: nothing happens.
    expect(await keyManager.revoke("no-such-kid")).toEqual({ revoked: null, applied: [] });
  });
});

describeEachDb("key rotation: moving from ES256 to RS256", (flavor) => {
  it("an RS256 instance on the same store creates an RS256 next key; ES256 signs until it is activatable, then RS256 signs", async () => {
    const clock = new FakeClock(new Date());
    const es = await start(flavor, { clock, env: { SIGNING_ALG: "ES256" } });
    const rs = await start(flavor, { clock, databaseUrl: es.databaseUrl, keysDir: es.keysDir, env: { SIGNING_ALG: "RS256" } });
    const esKid = es.services.keys.signer().kid;
    expect(es.services.keys.signer().alg).toBe("ES256");
    // The RS256 instance starts on a store with an active ES256 key: no new key, ES256 signs.
    expect(rs.services.keys.signer().kid).toBe(esKid);
    const esToken = (await login(rs.app)).access_token;
    expect([algOf(esToken), kidOf(esToken)]).toEqual(["ES256", esKid]);

    const created = await rs.services.keyManager.rotate();
    expect(created).toEqual([expect.objectContaining({ action: "create_next", alg: "RS256" })]);
    const rsKid = created[0]!.kid;
    for (const i of [es, rs]) await i.services.keyReloader.reload();
    for (const i of [es, rs]) {
      const { jwks } = await served(i);
      expect(jwks.keys.map((k) => [k.kid, k.alg, k.kty]).sort()).toEqual(
        [
          [esKid, "ES256", "EC"],
          [rsKid, "RS256", "RSA"],
        ].sort(),
      );
    }
    const both: SigningAlg[] = ["ES256", "RS256"];
    await verifyAccessToken(rs, esToken, { algorithms: both });

    // Until the RS256 key is activatable, ES256 keeps signing.
    const activatable = (await keyInfo(rs, rsKid)).activatableAt!;
    clock.set(new Date(activatable.getTime() - 1000));
    expect(await rs.services.keyManager.rotate()).toEqual([]);
    await rs.services.keyReloader.reload();
    expect(kidOf((await login(rs.app)).access_token)).toBe(esKid);

    clock.set(activatable);
    const promoted = await rs.services.keyManager.rotate();
    expect(actionsOf(promoted).slice(0, 2)).toEqual([`promote ${rsKid}`, `retire ${esKid}`]);
    for (const i of [es, rs]) await i.services.keyReloader.reload();
    const rsToken = (await login(rs.app)).access_token;
    expect([algOf(rsToken), kidOf(rsToken)]).toEqual(["RS256", rsKid]);
    await verifyAccessToken(rs, rsToken, { algorithms: both });
    await verifyAccessToken(rs, rsToken, { algorithms: ["RS256"] });

    // ES256 is retired but still published by both instances: its tokens keep verifying.
    expect((await keyInfo(rs, esKid)).state).toBe("retired");
    for (const i of [es, rs]) {
      expect((await served(i)).kids).toEqual(expect.arrayContaining([esKid, rsKid]));
      await verifyAccessToken(i, esToken, { algorithms: both });
    }
    // Exactly one active key in the store, and it is the RS256 one.
    const active = (await rs.services.keyManager.list()).filter((k) => k.state === "active");
    expect(active.map((k) => [k.kid, k.alg])).toEqual([[rsKid, "RS256"]]);
  });
});
