// Liveness (the process answers) and readiness (database reachable, a signing key loaded).
import type { FastifyInstance } from "fastify";
import type { Services } from "../../services.ts";

export function healthRoutes(app: FastifyInstance, services: Services): void {
  app.get("/healthz", async (_request, reply) => reply.header("cache-control", "no-store").send({ status: "ok" }));

  app.get("/readyz", async (request, reply) => {
    const checks = { database: "ok", signingKey: services.keys.hasSigner() ? "ok" : "missing" };
    try {
      await services.storage.ping();
    } catch (err) {
      checks.database = "unreachable";
      request.log.warn({ err: { message: (err as Error).message } }, "readiness: database unreachable");
    }
    // While draining for shutdown, stop attracting traffic (load balancers poll this).
    const draining = services.lifecycle.draining;
    const ready = !draining && checks.database === "ok" && checks.signingKey === "ok";
    reply.header("cache-control", "no-store");
    if (!ready) reply.header("retry-after", "5");
    return reply.status(ready ? 200 : 503).send({ status: ready ? "ready" : draining ? "draining" : "unavailable", checks });
  });
}
