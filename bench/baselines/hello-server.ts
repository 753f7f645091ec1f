// Baseline for the JWKS scenario: a Fastify "hello world" (default options, no logger) serving a
// small JSON body, in its own process, measured the same way as Tessera.
import Fastify from "fastify";

const port = Number(process.env.PORT);
if (!Number.isInteger(port) || port <= 0) throw new Error("PORT is required");

const app = Fastify();
app.get("/", async () => ({ hello: "world" }));

const stop = () => void app.close().then(() => process.exit(0));
process.once("SIGTERM", stop);
process.once("SIGINT", stop);

await app.listen({ port, host: "127.0.0.1" });
