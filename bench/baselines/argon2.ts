// Baseline for the password-login scenario: raw argon2id verifications with the issuer's
// parameters, CONCURRENCY in flight, in its own process (the parent gives it the issuer's
// UV_THREADPOOL_SIZE). Serves measurement slices on request (see lib/slices.ts).
import argon2 from "argon2";
import { serveSlices, timedLoops } from "../lib/slices.ts";

const env = (name: string) => {
  const v = Number(process.env[name]);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} is required`);
  return v;
};
const concurrency = env("CONCURRENCY");
const options = {
  type: argon2.argon2id,
  memoryCost: env("ARGON2_MEMORY_KIB"),
  timeCost: env("ARGON2_ITERATIONS"),
  parallelism: env("ARGON2_PARALLELISM"),
};
// What the issuer verifies: the NFKC-normalised password against an argon2id hash of it.
const password = "correct horse battery staple".normalize("NFKC");
const hash = await argon2.hash(password, options);
if (!(await argon2.verify(hash, password))) throw new Error("argon2 verify failed on its own hash");

await serveSlices((seconds) => timedLoops(concurrency, seconds, () => argon2.verify(hash, password)));
