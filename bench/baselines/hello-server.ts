// Baselines served by Fastify in their own process, measured the same way as Tessera:
// - GET /: a "hello world" (default options, no logger) with a small JSON body, for the JWKS;
// - POST /token (when SIGNING_ALG is set): the least an HTTP token endpoint in Node does, for
//   client_credentials: parse the form body, sign a JWT of the same shape with jose, answer JSON.
//   No client authentication, no store, no headers beyond Fastify's: the ceiling of any Node
//   issuer on this stack, where "jose signing alone" leaves HTTP out.
import formbody from "@fastify/formbody";
import Fastify from "fastify";
import { generateKeyPair } from "jose";
import { signBenchToken } from "../lib/bench-token.ts";

const port = Number(process.env.PORT);
if (!Number.isInteger(port) || port <= 0) throw new Error("PORT is required");

const app = Fastify();
app.get("/", async () => ({ hello: "world" }));

const alg = process.env.SIGNING_ALG;
if (alg) {
  const { privateKey } = await generateKeyPair(alg, alg === "RS256" || alg === "PS256" ? { modulusLength: 2048 } : {});
  await app.register(formbody);
  app.post("/token", async (request) => {
    const { scope } = request.body as { scope?: string };
    const accessToken = await signBenchToken(privateKey, alg, scope ?? "read");
    return { access_token: accessToken, token_type: "Bearer", expires_in: 900, scope: scope ?? "read" };
  });
}

const stop = () => void app.close().then(() => process.exit(0));
process.once("SIGTERM", stop);
process.once("SIGINT", stop);

await app.listen({ port, host: "127.0.0.1" });
