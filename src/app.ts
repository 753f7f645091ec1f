// buildApp(services): the HTTP surface. No process concerns here (listen, signals, env);
// tests build it and call app.inject().
import cookie from "@fastify/cookie";
import cors from "@fastify/cors";
import formbody from "@fastify/formbody";
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from "fastify";
import type { Logger } from "pino";
import { clientAddressOf, trustFunction } from "./http/client-address.ts";
import { acceptEmptyJson } from "./http/empty-json.ts";
import { registerErrorHandler } from "./http/plugins/errors.ts";
import { securityHeaders, securityHeadersFor } from "./http/plugins/security-headers.ts";
import { registerRateLimits } from "./http/plugins/rate-limits.ts";
import { accountRoutes } from "./http/routes/account.ts";
import { adminRoutes } from "./http/routes/admin.ts";
import { browserRoutes } from "./http/routes/browser.ts";
import { healthRoutes } from "./http/routes/health.ts";
import { jwksFastPathServer } from "./http/jwks-fast-path.ts";
import { logRequest, requestIdOf } from "./http/request-log.ts";
import { registerOpenApi } from "./http/openapi.ts";
import { publicMetricsRoutes } from "./http/routes/metrics.ts";
import { metricsOf } from "./metrics.ts";
import { revocationIntrospectionRoutes } from "./http/routes/revocation-introspection.ts";
import { statusListRoutes } from "./http/routes/status-lists.ts";
import { tokenRoutes } from "./http/routes/token.ts";
import { wellKnownRoutes } from "./http/routes/well-known.ts";
import type { Services } from "./services.ts";

export async function buildApp(services: Services, logger: Logger): Promise<FastifyInstance> {
  const { config } = services;
  const trust = trustFunction(config.trustProxy);
  const clientIp = clientAddressOf(trust);
  const app: FastifyInstance = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // Fastify's two lines per request are replaced by our one (onResponse below).
    logController: new LogController({ disableRequestLogging: true }),
    requestIdHeader: false,
    genReqId: (req) => requestIdOf(req.headers["x-request-id"]),
    bodyLimit: 64 * 1024,
    // The same trust rule as clientIp (http/client-address.ts): request.ip is the right-most
    // untrusted X-Forwarded-For hop.
    trustProxy: trust,
    return503OnClosing: true,
    // The JWKS, the most polled document, is answered before Fastify's pipeline.
    serverFactory: jwksFastPathServer(services, logger, clientIp),
    // Schemas validate, they do not convert: a JSON number is not a password, and a property a
    // schema does not allow (additionalProperties: false) is refused, not silently dropped.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false } },
    // A malformed URL ("/%zz") is answered before routing, so before every hook: it gets the
    // error shape and the security headers here.
    frameworkErrors: (err, request, reply: FastifyReply) => {
      void reply
        .status(typeof err.statusCode === "number" && err.statusCode >= 400 ? err.statusCode : 400)
        .headers({ ...securityHeadersFor(config, "same-origin"), "x-request-id": request.id, "cache-control": "no-store" })
        .send({ error: "invalid_request", error_description: "The request URL is malformed." });
    },
  });
  // Only form and JSON bodies are accepted anywhere; anything else is 415.
  app.removeContentTypeParser("text/plain");

  // First, so every later hook's and handler's answers (errors, 404, 429) carry them.
  await app.register(securityHeaders, { config });
  registerErrorHandler(app, services.storage.isUnavailable);
  const limits = await registerRateLimits(app, config, logger);

  app.addHook("onRequest", (request, reply, done) => {
    reply.header("x-request-id", request.id);
    done();
  });
  // One log line per request (http/request-log.ts: no query string, so never a token).
  app.addHook("onResponse", (request, reply, done) => {
    logRequest(logger, request.id, { method: request.method, url: request.url, status: reply.statusCode, ms: reply.elapsedTime, ip: request.ip });
    done();
  });

  // The API description (/openapi.json, /docs): before every route, so it sees them all.
  await registerOpenApi(app, config);

  // Prometheus metrics: served here only behind METRICS_TOKEN; METRICS_PORT moves them to their
  // own listener (server.ts). Tokens issued are counted where grants are dispatched.
  if (config.metricsEnabled) publicMetricsRoutes(app, services, metricsOf(services));
  // Public, read-only documents: no cookies, bodies or CORS negotiation on their path, so the
  // JWKS is served with as little per-request work as possible.
  wellKnownRoutes(app, services);
  statusListRoutes(app, services);
  healthRoutes(app, services);
  // The admin API: its own context (its Bearer hook, no cookies, forms or CORS: not for browsers).
  await app.register(async (adminApi) => adminRoutes(adminApi, services));

  // The OAuth and browser endpoints, in their own context with forms and CORS (cookies only
  // where they are read: the browser endpoints; the token endpoint parses none).
  await app.register(async (api) => {
    await api.register(formbody);
    await api.register(cors, { origin: config.allowedOrigins, credentials: true, methods: ["GET", "POST", "DELETE"] });

    acceptEmptyJson(api);

    tokenRoutes(api, services, limits);
    revocationIntrospectionRoutes(api, services, limits);
    await api.register(async (browser) => {
      await browser.register(cookie);
      browserRoutes(browser, services, limits);
    });
    accountRoutes(api, services, limits);
  });
  return app;
}
