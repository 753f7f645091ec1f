// Baselines served by Fastify in their own process, measured the same way as Tessera:
// - GET /: a "hello world" (default options, no logger) with a small JSON body, for the JWKS;
// - POST /token (when SIGNING_ALG is set): the least an HTTP token endpoint in Node does, for
//   client_credentials: parse the form body, sign a JWT of the same shape with jose, answer JSON.
//   No client authentication, no store, no headers beyond Fastify's: the ceiling of any Node
//   issuer on this stack, where "jose signing alone" leaves HTTP out.
// - POST /login (when ARGON2_MEMORY_KIB is set too): the same, after verifying the form's
//   password against an argon2id hash with the issuer's parameters (a 400 when it is wrong): the
//   least an HTTP password grant does, for the password grant. No store, no throttle, no refresh
//   token, no audit.
import formbody from "@fastify/formbody";
import argon2 from "argon2";
import Fastify from "fastify";
import { generateKeyPair } from "jose";
import { signBenchToken } from "../lib/bench-token.ts";
import { PASSWORD } from "../lib/http.ts";

const port = Number(process.env.PORT);
if (!Number.isInteger(port) || port <= 0) throw new Error("PORT is required");

const app = Fastify();
app.get("/", async () => ({ hello: "world" }));

const alg = process.env.SIGNING_ALG;
if (alg) {
  const { privateKey } = await generateKeyPair(alg, alg === "RS256" || alg === "PS256" ? { modulusLength: 2048 } : {});
  await app.register(formbody);
  const tokenResponse = async (scope: string | undefined) => ({
    access_token: await signBenchToken(privateKey, alg, scope ?? "read"),
    token_type: "Bearer",
    expires_in: 900,
    scope: scope ?? "read",
  });
  app.post("/token", async (request) => tokenResponse((request.body as { scope?: string }).scope));

  if (process.env.ARGON2_MEMORY_KIB) {
    const options = {
      type: argon2.argon2id,
      memoryCost: Number(process.env.ARGON2_MEMORY_KIB),
      timeCost: Number(process.env.ARGON2_ITERATIONS),
      parallelism: Number(process.env.ARGON2_PARALLELISM),
    };
    // The bench users' password, as the issuer stores it (NFKC).
    const hash = await argon2.hash(PASSWORD.normalize("NFKC"), options);
    app.post("/login", async (request, reply) => {
      const { password, scope } = request.body as { password?: string; scope?: string };
      if (!password || !(await argon2.verify(hash, password.normalize("NFKC")))) return reply.code(400).send({ error: "invalid_grant" });
      return tokenResponse(scope);
    });
  }
}

const stop = () => void app.close().then(() => process.exit(0));
process.once("SIGTERM", stop);
process.once("SIGINT", stop);

await app.listen({ port, host: "127.0.0.1" });
