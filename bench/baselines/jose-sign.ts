// Baseline for the client_credentials scenario: what jose alone can sign per second with the
// issuer's algorithm (ES256 by default), CONCURRENCY signatures in flight, in its own process.
// Same header and claim shape as a Tessera client_credentials token.
import { generateKeyPair } from "jose";
import { signBenchToken } from "../lib/bench-token.ts";
import { serveSlices, timedLoops } from "../lib/slices.ts";

const concurrency = Number(process.env.CONCURRENCY);
const alg = process.env.SIGNING_ALG || "ES256";
if (!Number.isInteger(concurrency) || concurrency <= 0) throw new Error("CONCURRENCY is required");
const { privateKey } = await generateKeyPair(alg, alg === "RS256" || alg === "PS256" ? { modulusLength: 2048 } : {});

await serveSlices((seconds) =>
  timedLoops(concurrency, seconds, async () => {
    await signBenchToken(privateKey, alg);
    return true;
  }),
);
