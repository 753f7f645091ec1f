// GET /metrics: the issuer's registry (src/metrics.ts) in Prometheus text format.
//
// Where it is served: the scrape names internals (key states, queue depth, failure counts) and is
// not for the internet. METRICS_PORT serves it on its own listener bound to METRICS_HOST (an
// internal interface; the token is required there too when METRICS_TOKEN is set). Without
// METRICS_PORT, the public listener serves it only behind METRICS_TOKEN; with neither, nowhere
// (404 like any unknown path; server.ts logs how to enable it).
import { timingSafeEqual } from "node:crypto";
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from "fastify";
import type { Logger } from "pino";
import type { Config } from "../../config.ts";
import { metricsOf, type Metrics } from "../../metrics.ts";
import type { Services } from "../../services.ts";
import { registerErrorHandler } from "../plugins/errors.ts";
import { securityHeaders } from "../plugins/security-headers.ts";
import { errorReplies } from "../schemas.ts";

const metricsSchema = {
  tags: ["health"],
  summary: "Prometheus metrics (Bearer METRICS_TOKEN)",
  response: { 200: { description: "Prometheus text exposition format.", content: { "text/plain": { schema: { type: "string" } } } }, ...errorReplies },
} as const;

/** Whether the public listener serves /metrics: only behind a token, and only without METRICS_PORT. */
export function metricsOnPublicListener(config: Pick<Config, "metricsEnabled" | "metricsToken" | "metricsPort">): boolean {
  return config.metricsEnabled && config.metricsToken !== null && config.metricsPort === null;
}

/** GET /metrics on the public listener, when metricsOnPublicListener() says so. */
export function publicMetricsRoutes(app: FastifyInstance, services: Services, metrics: Metrics): void {
  if (metricsOnPublicListener(services.config)) metricsRoute(app, services.config.metricsToken, metrics);
}

/** The METRICS_PORT listener: /metrics and nothing else, same headers and error shapes. */
export function buildMetricsApp(services: Services, logger: Logger): Promise<FastifyInstance> {
  return buildMetricsListener(services.config, logger, metricsOf(services), services.storage.isUnavailable);
}

/** The METRICS_PORT listener over any source of metrics (the cluster primary's: every worker's). */
export async function buildMetricsListener(
  config: Config,
  logger: Logger,
  metrics: Pick<Metrics, "render">,
  isUnavailable: (err: unknown) => boolean,
): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // No line per scrape: the scraper's own logs say when it scraped.
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
  });
  await app.register(securityHeaders, { config });
  registerErrorHandler(app, isUnavailable);
  metricsRoute(app, config.metricsToken, metrics);
  return app;
}

function metricsRoute(app: FastifyInstance, token: string | null, metrics: Pick<Metrics, "render">): void {
  app.get("/metrics", { schema: metricsSchema }, async (request, reply) => {
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
    const { contentType, body } = await metrics.render();
    return reply.header("content-type", contentType).header("cache-control", "no-store").send(body);
  });
}
