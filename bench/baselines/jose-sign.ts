// Baseline for the client_credentials scenario: what jose alone can sign per second with the
// issuer's algorithm (ES256 by default), CONCURRENCY signatures in flight, in its own process.
// Same header and claim shape as a Tessera client_credentials token.
import { randomUUID } from "node:crypto";
import { generateKeyPair, SignJWT } from "jose";
import { serveSlices, timedLoops } from "../lib/slices.ts";

const concurrency = Number(process.env.CONCURRENCY);
const alg = process.env.SIGNING_ALG || "ES256";
if (!Number.isInteger(concurrency) || concurrency <= 0) throw new Error("CONCURRENCY is required");
const { privateKey } = await generateKeyPair(alg, alg === "RS256" || alg === "PS256" ? { modulusLength: 2048 } : {});

await serveSlices((seconds) =>
  timedLoops(concurrency, seconds, async () => {
    const iat = Math.floor(Date.now() / 1000);
    await new SignJWT({ client_id: "c_bench", scope: "read" })
      .setProtectedHeader({ alg, kid: "bench", typ: "at+jwt" })
      .setIssuer("http://127.0.0.1")
      .setSubject("c_bench")
      .setAudience("api")
      .setIssuedAt(iat)
      .setExpirationTime(iat + 900)
      .setJti(randomUUID())
      .sign(privateKey);
    return true;
  }),
);
