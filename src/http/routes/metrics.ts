// GET /metrics: Prometheus text format. Security events by type (the same audit function that
// writes the log and the AuditEvent table increments these), tokens issued by grant type, the
// password-hash queue, signing keys by state, and the process's own metrics.
import { timingSafeEqual } from "node:crypto";
import type { FastifyInstance } from "fastify";
import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";
import type { Services } from "../../services.ts";

export interface Metrics {
  registry: Registry;
  tokensIssued: Counter<"grant_type">;
}

export function createMetrics(s: Services): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "tessera_" });
  const audit = new Counter({
    name: "tessera_audit_events_total",
    help: "Security-relevant events by type (reuse detected, grace retry, login failed, key rotated, ...)",
    labelNames: ["type"],
    registers: [registry],
  });
  s.audit.onRecord((type) => audit.inc({ type }));
  const tokensIssued = new Counter({
    name: "tessera_tokens_issued_total",
    help: "Token responses from the token and browser endpoints, by grant type",
    labelNames: ["grant_type"],
    registers: [registry],
  });
  new Gauge({
    name: "tessera_password_hash_operations",
    help: "argon2 operations running and waiting in the bounded queue",
    labelNames: ["state"],
    registers: [registry],
    collect() {
      const { running, waiting } = s.hasher.load;
      this.set({ state: "running" }, running);
      this.set({ state: "waiting" }, waiting);
    },
  });
  new Gauge({
    name: "tessera_signing_keys",
    help: "Signing keys this instance has loaded, by state and algorithm",
    labelNames: ["state", "alg"],
    registers: [registry],
    collect() {
      this.reset();
      for (const k of s.keys.keys) this.inc({ state: k.state, alg: k.alg });
    },
  });
  return { registry, tokensIssued };
}

export function metricsRoutes(app: FastifyInstance, s: Services, metrics: Metrics): void {
  const token = s.config.metricsToken;
  app.get("/metrics", async (request, reply) => {
    if (token !== null) {
      const presented = Buffer.from(/^Bearer (.+)$/i.exec(request.headers.authorization ?? "")?.[1] ?? "");
      const expected = Buffer.from(token);
      if (presented.length !== expected.length || !timingSafeEqual(presented, expected)) {
        return reply
          .status(401)
          .header("www-authenticate", 'Bearer realm="metrics"')
          .header("cache-control", "no-store")
          .send({ error: "invalid_token", error_description: "A valid metrics token is required." });
      }
    }
    return reply.header("content-type", metrics.registry.contentType).header("cache-control", "no-store").send(await metrics.registry.metrics());
  });
}
