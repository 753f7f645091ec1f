// Tokens a resource server must refuse, built the way an attacker (or a confused client) would:
// by hand, with a key of their own, with the issuer's public key as an HMAC secret, or with the
// issuer's real key but the wrong claims. Used by the verifier and resource-server tests.
import {
  exportJWK,
  exportSPKI,
  generateKeyPair,
  importJWK,
  SignJWT,
  type CryptoKey,
  type JSONWebKeySet,
  type JWK,
  type JWTPayload,
} from "jose";
import { TokenVerificationError, type TokenErrorCode, type Verifier } from "@tessera/verifier";
import type { TestIssuer } from "./issuer.ts";

export const b64url = (data: string | Buffer) => Buffer.from(data).toString("base64url");

/** "accepted", or the verifier's stable error code. */
export async function outcome(verifier: Verifier, token: string): Promise<"accepted" | TokenErrorCode> {
  try {
    await verifier.verify(token);
    return "accepted";
  } catch (err) {
    if (err instanceof TokenVerificationError) return err.code;
    throw err;
  }
}
const epoch = (d: Date) => Math.floor(d.getTime() / 1000);

export async function publishedJwks(issuer: TestIssuer): Promise<JSONWebKeySet> {
  const res = await issuer.app.inject({ method: "GET", url: "/.well-known/jwks.json" });
  if (res.statusCode !== 200) throw new Error(`jwks: ${res.statusCode}`);
  return res.json() as JSONWebKeySet;
}

/** The claims a real token of this issuer carries, fresh jti, valid for 10 minutes. */
export function claimsLike(issuer: TestIssuer, extra: Record<string, unknown> = {}): JWTPayload {
  const now = epoch(issuer.clock.now());
  return {
    iss: issuer.config.issuer,
    sub: "user-forged",
    aud: issuer.config.accessTokenAudience,
    client_id: "web",
    scope: "profile",
    sid: "session-forged",
    jti: `jti-${Math.random().toString(36).slice(2)}`,
    iat: now,
    exp: now + 600,
    ...extra,
  };
}

/** Signed with the issuer's real, active key: only the claims or header are wrong. */
export async function signWithIssuerKey(
  issuer: TestIssuer,
  payload: JWTPayload,
  header: Record<string, unknown> = {},
): Promise<string> {
  const key = issuer.services.keys.signer();
  return new SignJWT(payload)
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: "at+jwt", ...header } as { alg: string })
    .sign(key.privateKey);
}

/** A real token minted by the issuer with its clock moved; the clock is put back. */
export async function mintAt(issuer: TestIssuer, at: Date, req: { subject?: string; scope?: string } = {}): Promise<string> {
  const saved = issuer.clock.now();
  issuer.clock.set(at);
  try {
    const { token } = await issuer.services.accessTokens.issue({
      subject: req.subject ?? "user-clock",
      clientId: "web",
      scope: req.scope ?? "profile",
      sessionId: "session-clock",
    });
    return token;
  } finally {
    issuer.clock.set(saved);
  }
}

export interface BadToken {
  name: string;
  token: string;
  code: TokenErrorCode;
}

/**
 * Every way a token can be wrong that the test suite asks for, with the code the verifier must
 * give. `other` is a second, separate Tessera deployment that uses the same ISSUER value.
 */
export async function badTokens(issuer: TestIssuer, other: TestIssuer): Promise<BadToken[]> {
  const realKey = issuer.services.keys.signer();
  const realKid = realKey.kid;
  const published = (await publishedJwks(issuer)).keys.find((k) => k.kid === realKid) as JWK;
  if (!published) throw new Error("active key not published");
  const claims = () => claimsLike(issuer);

  // alg "none": header + payload + empty signature, by hand.
  const algNone = `${b64url(JSON.stringify({ alg: "none", typ: "at+jwt", kid: realKid }))}.${b64url(JSON.stringify(claims()))}.`;

  // HS256 with the issuer's *public* key as the HMAC secret (the classic key-confusion attack).
  const hs256 = (secret: string) =>
    new SignJWT(claims()).setProtectedHeader({ alg: "HS256", kid: realKid, typ: "at+jwt" }).sign(new TextEncoder().encode(secret));
  const pem = await exportSPKI((await importJWK(published, published.alg)) as CryptoKey);

  // An attacker's own key pair, advertised in the header in each way a header can carry a key.
  const attacker = await generateKeyPair("ES256", { extractable: true });
  const attackerJwk = { ...(await exportJWK(attacker.publicKey)), kid: "attacker-key", alg: "ES256", use: "sig" };
  const attackerSigned = (header: Record<string, unknown>, payload: JWTPayload = claims()) =>
    new SignJWT(payload)
      .setProtectedHeader({ alg: "ES256", typ: "at+jwt", kid: "attacker-key", ...header } as { alg: string })
      .sign(attacker.privateKey);

  // A genuine token, payload edited after signing.
  const genuine = (
    await issuer.services.accessTokens.issue({ subject: "user-tamper", clientId: "web", scope: "profile", sessionId: "s-t" })
  ).token;
  const [h, p, s] = genuine.split(".") as [string, string, string];
  const edited = { ...(JSON.parse(Buffer.from(p, "base64url").toString("utf8")) as object), scope: "profile admin", sub: "someone-else" };
  const tampered = `${h}.${b64url(JSON.stringify(edited))}.${s}`;

  // A genuine token of another deployment (same ISSUER value, its own keys).
  const foreign = (await other.services.accessTokens.issue({ subject: "user-foreign", clientId: "web", scope: "profile" })).token;

  return [
    { name: "expired (minted an hour ago)", token: await mintAt(issuer, new Date(issuer.clock.now().getTime() - 3600_000)), code: "expired" },
    {
      name: "wrong audience",
      token: (await issuer.services.accessTokens.issue({ subject: "u", clientId: "web", scope: "profile", audience: "billing" })).token,
      code: "wrong_audience",
    },
    { name: "wrong issuer (issuer's key, other iss)", token: await signWithIssuerKey(issuer, claimsLike(issuer, { iss: "https://evil.test" })), code: "wrong_issuer" },
    { name: 'alg "none"', token: algNone, code: "alg_not_allowed" },
    { name: "HS256 keyed with the public JWK JSON", token: await hs256(JSON.stringify(published)), code: "alg_not_allowed" },
    { name: "HS256 keyed with the public key PEM", token: await hs256(pem), code: "alg_not_allowed" },
    { name: "header carries jwk (attacker key)", token: await attackerSigned({ jwk: attackerJwk }), code: "embedded_key" },
    { name: "header carries jku", token: await attackerSigned({ jku: "https://evil.test/jwks.json" }), code: "embedded_key" },
    { name: "header carries x5u", token: await attackerSigned({ x5u: "https://evil.test/cert.pem" }), code: "embedded_key" },
    { name: "header carries x5c", token: await attackerSigned({ x5c: [b64url("not really a certificate")] }), code: "embedded_key" },
    { name: "header carries jwk with the issuer's kid", token: await attackerSigned({ jwk: attackerJwk, kid: realKid }), code: "embedded_key" },
    { name: "attacker key, issuer's kid copied", token: await attackerSigned({ kid: realKid }), code: "bad_signature" },
    { name: "another deployment's key (unknown kid)", token: foreign, code: "unknown_key" },
    { name: 'typ "JWT" instead of "at+jwt"', token: await signWithIssuerKey(issuer, claims(), { typ: "JWT" }), code: "wrong_type" },
    { name: "no typ", token: await signWithIssuerKey(issuer, claims(), { typ: undefined }), code: "wrong_type" },
    { name: "tampered payload", token: tampered, code: "bad_signature" },
    { name: "missing client_id", token: await signWithIssuerKey(issuer, claimsLike(issuer, { client_id: undefined })), code: "missing_claim" },
    { name: "missing exp", token: await signWithIssuerKey(issuer, claimsLike(issuer, { exp: undefined })), code: "missing_claim" },
    { name: "garbage", token: "garbage", code: "malformed" },
    { name: "three garbage segments", token: "abc.def.ghi", code: "malformed" },
  ];
}
