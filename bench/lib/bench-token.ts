// The access token the signing baselines make: the header and claims of a Tessera
// client_credentials token (bench/baselines/jose-sign.ts, bench/baselines/hello-server.ts).
import { randomUUID } from "node:crypto";
import { SignJWT, type CryptoKey, type KeyObject } from "jose";

export async function signBenchToken(privateKey: CryptoKey | KeyObject, alg: string, scope = "read"): Promise<string> {
  const iat = Math.floor(Date.now() / 1000);
  return new SignJWT({ client_id: "c_bench", scope })
    .setProtectedHeader({ alg, kid: "bench", typ: "at+jwt" })
    .setIssuer("http://127.0.0.1")
    .setSubject("c_bench")
    .setAudience("api")
    .setIssuedAt(iat)
    .setExpirationTime(iat + 900)
    .setJti(randomUUID())
    .sign(privateKey);
}
