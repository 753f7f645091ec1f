// The JWKS (RFC 7517) and authorization server metadata (RFC 8414) as a verifier sees them:
// cacheable, public members only, and enough to verify every token with the algorithm pinned.
import { createHmac } from "node:crypto";
import {
  createLocalJWKSet,
  decodeProtectedHeader,
  type CryptoKey,
  exportSPKI,
  importJWK,
  jwtVerify,
  type JSONWebKeySet,
  type JWK,
} from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rotateKeysNow } from "../../src/admin/keys.ts";
import { SIGNING_ALGS, type SigningAlg } from "../../src/domain/keys/signing-key.ts";
import {
  adminOf,
  describeEachDb,
  login,
  startIssuer,
  verifyAccessToken,
  type TestIssuer,
} from "../helpers/issuer.ts";

const JWK_MEMBERS = new Set(["kty", "kid", "use", "alg", "n", "e", "crv", "x", "y"]);
const PRIVATE_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

const b64url = (data: string | Buffer) => Buffer.from(data).toString("base64url");

async function fetchJwks(issuer: TestIssuer): Promise<JSONWebKeySet> {
  const res = await issuer.app.inject({ method: "GET", url: "/.well-known/jwks.json" });
  expect(res.statusCode).toBe(200);
  return res.json() as JSONWebKeySet;
}

/** Verification as a resource server does it, against the served JWKS, with `alg` pinned. */
async function verifyPinned(issuer: TestIssuer, token: string, alg: string) {
  const jwks = createLocalJWKSet(await fetchJwks(issuer));
  return jwtVerify(token, jwks, {
    algorithms: [alg],
    issuer: issuer.config.issuer,
    audience: issuer.config.accessTokenAudience,
    typ: "at+jwt",
    currentDate: issuer.clock.now(),
  });
}

describeEachDb("jwks", (flavor) => {
  let issuer: TestIssuer;
  let shortCache: TestIssuer;
  beforeAll(async () => {
    issuer = await startIssuer(flavor);
    shortCache = await startIssuer(flavor, { env: { JWKS_MAX_AGE: "60" } });
  });
  afterAll(async () => {
    await shortCache?.close();
    await issuer?.close();
  });

  it("over a real socket (the fast path) the JWKS is byte-identical to the route's, with the same headers (security headers too), 304 and one log line", async () => {
    const server = await startIssuer(flavor);
    try {
      const base = await server.app.listen({ port: 0, host: "127.0.0.1" });
      const viaRoute = await server.app.inject({ method: "GET", url: "/.well-known/jwks.json" });
      const res = await fetch(`${base}/.well-known/jwks.json`, { headers: { "x-request-id": "jwks-probe-1" } });
      expect(res.status).toBe(200);
      expect(Buffer.from(await res.arrayBuffer()).equals(viaRoute.rawPayload)).toBe(true);
      const security = ["content-security-policy", "cross-origin-resource-policy", "referrer-policy", "strict-transport-security", "x-content-type-options", "x-frame-options"];
      for (const h of ["content-type", "cache-control", "etag", "access-control-allow-origin", ...security]) {
        expect(res.headers.get(h), h).toBe(String(viaRoute.headers[h]));
      }
      expect(res.headers.get("x-request-id")).toBe("jwks-probe-1");
      const etag = res.headers.get("etag")!;
      const notModified = await fetch(`${base}/.well-known/jwks.json`, { headers: { "if-none-match": `W/${etag}` } });
      expect(notModified.status).toBe(304);
      expect((await notModified.arrayBuffer()).byteLength).toBe(0);
      // One line per request: the injected one (route), then the two over the socket (fast path).
      const lines = server.logs.parsed().filter((l) => l.msg === "request" && l.path === "/.well-known/jwks.json");
      expect(lines.map((l) => l.status)).toEqual([200, 200, 304]);
      expect(lines[1]!.reqId).toBe("jwks-probe-1");
      expect(typeof lines[2]!.reqId).toBe("string");
      // After a rotation the socket serves the new set at once (its prepared headers go with the old one).
      await rotateKeysNow(adminOf(server));
      const rotated = await server.app.inject({ method: "GET", url: "/.well-known/jwks.json" });
      const after = await fetch(`${base}/.well-known/jwks.json`);
      expect(Buffer.from(await after.arrayBuffer()).equals(rotated.rawPayload)).toBe(true);
      expect(rotated.rawPayload.equals(viaRoute.rawPayload)).toBe(false);
      expect(after.headers.get("etag")).toBe(String(rotated.headers.etag));
      expect(after.headers.get("content-length")).toBe(String(rotated.rawPayload.length));
    } finally {
      await server.close();
    }
  });

  it("is served as application/jwk-set+json, publicly cacheable for 300 s by default, with an ETag", async () => {
    const res = await issuer.app.inject({ method: "GET", url: "/.well-known/jwks.json" });
    expect(res.statusCode).toBe(200);
    expect(String(res.headers["content-type"]).split(";")[0]!.trim()).toBe("application/jwk-set+json");
    expect(res.headers["cache-control"]).toBe("public, max-age=300");
    const etag = res.headers.etag;
    expect(etag).toMatch(/^"[^"]+"$/); // a strong entity tag
    const body = res.json() as JSONWebKeySet;
    expect(body.keys.length).toBeGreaterThanOrEqual(1);
    // Stable: the same ETag and bytes on the next request.
    const again = await issuer.app.inject({ method: "GET", url: "/.well-known/jwks.json" });
    expect(again.headers.etag).toBe(etag);
    expect(again.body).toBe(res.body);
  });

  it("JWKS_MAX_AGE=60 sets max-age=60", async () => {
    const res = await shortCache.app.inject({ method: "GET", url: "/.well-known/jwks.json" });
    expect(res.statusCode).toBe(200);
    expect(res.headers["cache-control"]).toBe("public, max-age=60");
  });

  it("If-None-Match with the current ETag -> 304 without a body; a different ETag -> 200 with the set", async () => {
    const first = await issuer.app.inject({ method: "GET", url: "/.well-known/jwks.json" });
    const etag = String(first.headers.etag);
    const cached = await issuer.app.inject({ method: "GET", url: "/.well-known/jwks.json", headers: { "if-none-match": etag } });
    expect(cached.statusCode).toBe(304);
    expect(cached.body).toBe("");
    // RFC 9110 §15.4.5: a 304 carries the ETag and Cache-Control a 200 would have.
    expect(cached.headers.etag).toBe(etag);
    expect(cached.headers["cache-control"]).toBe("public, max-age=300");

    const stale = await issuer.app.inject({ method: "GET", url: "/.well-known/jwks.json", headers: { "if-none-match": '"not-the-etag"' } });
    expect(stale.statusCode).toBe(200);
    expect(stale.body).toBe(first.body);
    // Another instance's ETag (different keys) does not match this one.
    const other = await shortCache.app.inject({ method: "GET", url: "/.well-known/jwks.json" });
    expect(other.headers.etag).not.toBe(etag);
    const cross = await issuer.app.inject({ method: "GET", url: "/.well-known/jwks.json", headers: { "if-none-match": String(other.headers.etag) } });
    expect(cross.statusCode).toBe(200);
  });

  it("If-None-Match uses weak comparison and may list several tags (RFC 9110 §13.1.2): W/<etag> or a list containing it -> 304", async () => {
    const etag = String((await issuer.app.inject({ method: "GET", url: "/.well-known/jwks.json" })).headers.etag);
    // A proxy that compresses (e.g. nginx gzip) hands clients W/"..." for a strong tag.
    for (const inm of [`W/${etag}`, `"something-else", ${etag}`, "*"]) {
      const res = await issuer.app.inject({ method: "GET", url: "/.well-known/jwks.json", headers: { "if-none-match": inm } });
      expect(res.statusCode, `If-None-Match: ${inm}`).toBe(304);
    }
  });

  it("every key has only public members from the allow-list (no d, p, q, dp, dq, qi)", async () => {
    const { keys } = await fetchJwks(issuer);
    for (const key of keys) {
      for (const member of Object.keys(key)) expect(JWK_MEMBERS.has(member), `member ${member}`).toBe(true);
      for (const member of PRIVATE_MEMBERS) expect(key).not.toHaveProperty(member);
      expect(key).toMatchObject({ use: "sig", alg: issuer.config.signingAlg });
      expect(typeof key.kid).toBe("string");
    }
    // The private key behind it does have a "d": the filter is what keeps it out.
    const res = await issuer.app.inject({ method: "GET", url: "/.well-known/jwks.json" });
    expect(res.body).not.toMatch(/"d"\s*:/);
  });

  it("the access token header kid is a key of the served set", async () => {
    const pair = await login(issuer.app);
    const header = decodeProtectedHeader(pair.access_token);
    const { keys } = await fetchJwks(issuer);
    expect(keys.map((k) => k.kid)).toContain(header.kid);
    expect(header).toMatchObject({ alg: issuer.config.signingAlg, typ: "at+jwt" });
    expect(header.kid).toBe(issuer.services.keys.signer().kid);
  });

  it("a token with a tampered payload fails verification", async () => {
    const pair = await login(issuer.app);
    await verifyAccessToken(issuer, pair.access_token); // the control
    const [h, p, s] = pair.access_token.split(".") as [string, string, string];
    const claims = JSON.parse(Buffer.from(p, "base64url").toString("utf8")) as Record<string, unknown>;
    for (const change of [{ sub: "someone-else" }, { scope: "profile admin" }, { exp: Number(claims.exp) + 86400 }]) {
      const forged = `${h}.${b64url(JSON.stringify({ ...claims, ...change }))}.${s}`;
      await expect(verifyAccessToken(issuer, forged)).rejects.toMatchObject({ code: "ERR_JWS_SIGNATURE_VERIFICATION_FAILED" });
    }
  });

  it("an HS256 token signed with the public key bytes as the secret is rejected", async () => {
    const pair = await login(issuer.app);
    const { keys } = await fetchJwks(issuer);
    const header = decodeProtectedHeader(pair.access_token);
    const jwk = keys.find((k) => k.kid === header.kid)!;
    const claims = JSON.parse(Buffer.from(pair.access_token.split(".")[1]!, "base64url").toString("utf8")) as Record<string, unknown>;
    const pem = await exportSPKI((await importJWK(jwk, jwk.alg)) as CryptoKey);
    // The classic key-confusion secrets: the PEM, the JWK JSON, and the raw "x"/"n" member.
    const secrets = [pem, pem.trim(), JSON.stringify(jwk), jwk.x ?? jwk.n ?? ""];
    for (const secret of secrets) {
      const signingInput = `${b64url(JSON.stringify({ alg: "HS256", kid: jwk.kid, typ: "at+jwt" }))}.${b64url(JSON.stringify(claims))}`;
      const forged = `${signingInput}.${createHmac("sha256", secret).update(signingInput).digest("base64url")}`;
      await expect(verifyAccessToken(issuer, forged)).rejects.toThrow();
      await expect(verifyAccessToken(issuer, forged)).rejects.toMatchObject({ code: "ERR_JOSE_ALG_NOT_ALLOWED" });
    }
    // "none" fares no better.
    const unsigned = `${b64url(JSON.stringify({ alg: "none", typ: "at+jwt" }))}.${b64url(JSON.stringify(claims))}.`;
    await expect(verifyAccessToken(issuer, unsigned)).rejects.toThrow();
  });

  it("RFC 8414 metadata names the configured issuer, its endpoints and what it supports", async () => {
    const res = await issuer.app.inject({ method: "GET", url: "/.well-known/oauth-authorization-server" });
    expect(res.statusCode).toBe(200);
    expect(String(res.headers["content-type"])).toMatch(/^application\/json/);
    const meta = res.json() as Record<string, unknown>;
    expect(meta.issuer).toBe("https://issuer.test");
    expect(meta.issuer).toBe(issuer.config.issuer);
    expect(meta.token_endpoint).toBe("https://issuer.test/oauth/token");
    expect(meta.jwks_uri).toBe("https://issuer.test/.well-known/jwks.json");
    expect(meta.grant_types_supported).toEqual(expect.arrayContaining(["password", "refresh_token"]));
    expect(Array.isArray(meta.token_endpoint_auth_methods_supported)).toBe(true);
    expect(meta.token_endpoint_auth_methods_supported).toEqual(expect.arrayContaining(["none", "client_secret_basic"]));
    expect(Array.isArray(meta.response_types_supported)).toBe(true);
    // Every advertised grant type is really accepted by the token endpoint (not unsupported_grant_type).
    for (const grantType of meta.grant_types_supported as string[]) {
      const r = await issuer.app.inject({
        method: "POST",
        url: "/oauth/token",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        payload: new URLSearchParams({ grant_type: grantType, client_id: "web" }).toString(),
      });
      expect((r.json() as { error: string }).error).not.toBe("unsupported_grant_type");
    }
    // The advertised jwks_uri path is the one that serves the key set.
    const jwksPath = new URL(String(meta.jwks_uri)).pathname;
    expect((await issuer.app.inject({ method: "GET", url: jwksPath })).statusCode).toBe(200);
  });
});

describeEachDb("jwks per signing algorithm", (flavor) => {
  for (const alg of SIGNING_ALGS) {
    describe(alg, () => {
      let issuer: TestIssuer;
      beforeAll(async () => {
        issuer = await startIssuer(flavor, { env: alg === "ES256" ? {} : { SIGNING_ALG: alg } });
      });
      afterAll(async () => issuer?.close());

      it(`tokens verify against the JWKS with ${alg} pinned, and fail with any other algorithm pinned`, async () => {
        expect(issuer.config.signingAlg).toBe(alg);
        const pair = await login(issuer.app);
        const { payload, protectedHeader } = await verifyPinned(issuer, pair.access_token, alg);
        expect(protectedHeader).toMatchObject({ alg, typ: "at+jwt" });
        expect(payload).toMatchObject({ sub: pair.userId, iss: "https://issuer.test", aud: "api", client_id: "web" });

        const { keys } = await fetchJwks(issuer);
        const key = keys.find((k) => k.kid === protectedHeader.kid) as JWK;
        expect(key).toBeDefined();
        expect(key.alg).toBe(alg);
        for (const member of Object.keys(key)) expect(JWK_MEMBERS.has(member), `member ${member}`).toBe(true);
        const expectedKty = alg === "ES256" ? "EC" : alg === "EdDSA" ? "OKP" : "RSA";
        expect(key.kty).toBe(expectedKty);

        for (const other of SIGNING_ALGS.filter((a): a is SigningAlg => a !== alg)) {
          await expect(verifyPinned(issuer, pair.access_token, other), `pinned ${other}`).rejects.toThrow();
        }
        await expect(verifyPinned(issuer, pair.access_token, "HS256")).rejects.toThrow();
        // Wrong issuer, audience or typ also fail.
        const jwks = createLocalJWKSet({ keys });
        const opts = { algorithms: [alg], issuer: issuer.config.issuer, audience: "api", typ: "at+jwt", currentDate: issuer.clock.now() };
        await expect(jwtVerify(pair.access_token, jwks, { ...opts, issuer: "https://other.test" })).rejects.toThrow();
        await expect(jwtVerify(pair.access_token, jwks, { ...opts, audience: "other-api" })).rejects.toThrow();
        await expect(jwtVerify(pair.access_token, jwks, { ...opts, typ: "JWT" })).rejects.toThrow();
      });

      it(`${alg}: a tampered payload fails`, async () => {
        const pair = await login(issuer.app);
        const [h, p, s] = pair.access_token.split(".") as [string, string, string];
        const claims = JSON.parse(Buffer.from(p, "base64url").toString("utf8")) as Record<string, unknown>;
        const forged = `${h}.${b64url(JSON.stringify({ ...claims, sub: "attacker" }))}.${s}`;
        await expect(verifyPinned(issuer, forged, alg)).rejects.toMatchObject({ code: "ERR_JWS_SIGNATURE_VERIFICATION_FAILED" });
      });
    });
  }
});
