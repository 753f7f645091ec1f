// Liveness (the process answers) and readiness (database reachable, a signing key loaded).
import type { FastifyInstance } from "fastify";
import type { Services } from "../../services.ts";
import { errorReplies } from "../schemas.ts";

const readiness = {
  type: "object",
  required: ["status", "checks"],
  properties: {
    status: { type: "string", enum: ["ready", "draining", "unavailable"] },
    checks: {
      type: "object",
      required: ["database", "signingKey"],
      properties: { database: { type: "string", enum: ["ok", "unreachable"] }, signingKey: { type: "string", enum: ["ok", "missing"] } },
    },
  },
} as const;

export function healthRoutes(app: FastifyInstance, services: Services): void {
  app.get(
    "/healthz",
    { schema: { tags: ["health"], summary: "Liveness", response: { 200: { type: "object", required: ["status"], properties: { status: { type: "string", enum: ["ok"] } } }, ...errorReplies } } },
    async (_request, reply) => reply.header("cache-control", "no-store").send({ status: "ok" }));

  app.get("/readyz", { schema: { tags: ["health"], summary: "Readiness: database reachable and a signing key loaded", response: { 200: readiness, 503: readiness, "4xx": errorReplies["4xx"] } } }, async (request, reply) => {
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
