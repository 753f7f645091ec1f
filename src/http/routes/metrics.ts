// GET /metrics: Prometheus text format. Security events by type (the same audit function that
// writes the log and the AuditEvent table increments these), tokens issued by grant type, the
// password-hash queue, signing keys by state, and the process's own metrics.
//
// Where it is served: the scrape names internals (key states, queue depth, failure counts) and is
// not for the internet. METRICS_PORT serves it on its own listener bound to METRICS_HOST (an
// internal interface; the token is required there too when METRICS_TOKEN is set). Without
// METRICS_PORT, the public listener serves it only behind METRICS_TOKEN; with neither, nowhere
// (404 like any unknown path; server.ts logs how to enable it).
import { timingSafeEqual } from "node:crypto";
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from "fastify";
import type { Logger } from "pino";
import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";
import type { Config } from "../../config.ts";
import type { Services } from "../../services.ts";
import { registerErrorHandler } from "../plugins/errors.ts";
import { securityHeaders } from "../plugins/security-headers.ts";

export interface Metrics {
  registry: Registry;
  tokensIssued: Counter<"grant_type">;
}

const registries = new WeakMap<Services, Metrics>();

/** The issuer's one registry: fed by the main app and the audit function, served by either listener. */
export function metricsOf(s: Services): Metrics {
  let metrics = registries.get(s);
  if (!metrics) registries.set(s, (metrics = createMetrics(s)));
  return metrics;
}

function createMetrics(s: Services): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "tessera_" });
  const audit = new Counter({
    name: "tessera_audit_events_total",
    help: "Security-relevant events by type (reuse detected, grace retry, login failed, key rotated, ...)",
    labelNames: ["type"],
    registers: [registry],
  });
  // Grace retries get their own counter besides the per-type one: a rising rate means clients
  // race their refreshes (or a stolen token is being retried inside the window), worth an alert.
  const graceRetries = new Counter({
    name: "tessera_refresh_grace_retries_total",
    help: "Refresh tokens presented again within REFRESH_REUSE_GRACE and answered with the same successor",
    registers: [registry],
  });
  s.audit.onRecord((type) => {
    audit.inc({ type });
    if (type === "refresh.grace_retry") graceRetries.inc();
  });
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

/** Whether the public listener serves /metrics: only behind a token, and only without METRICS_PORT. */
export function metricsOnPublicListener(config: Pick<Config, "metricsEnabled" | "metricsToken" | "metricsPort">): boolean {
  return config.metricsEnabled && config.metricsToken !== null && config.metricsPort === null;
}

/** GET /metrics on the public listener, when metricsOnPublicListener() says so. */
export function publicMetricsRoutes(app: FastifyInstance, s: Services, metrics: Metrics): void {
  if (metricsOnPublicListener(s.config)) metricsRoute(app, s.config.metricsToken, metrics);
}

/** The METRICS_PORT listener: /metrics and nothing else, same headers and error shapes. */
export async function buildMetricsApp(s: Services, logger: Logger): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // No line per scrape: the scraper's own logs say when it scraped.
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
  });
  await app.register(securityHeaders, { config: s.config });
  registerErrorHandler(app, s.storage);
  metricsRoute(app, s.config.metricsToken, metricsOf(s));
  return app;
}

function metricsRoute(app: FastifyInstance, token: string | null, metrics: Metrics): void {
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
