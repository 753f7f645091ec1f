// buildApp(services): the HTTP surface. No process concerns here (listen, signals, env);
// tests build it and call app.inject().
import { randomUUID } from "node:crypto";
import http from "node:http";
import cookie from "@fastify/cookie";
import cors from "@fastify/cors";
import formbody from "@fastify/formbody";
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from "fastify";
import type { Logger } from "pino";
import { clientAddressOf, trustFunction } from "./http/client-address.ts";
import { registerErrorHandler } from "./http/plugins/errors.ts";
import { securityHeaders, securityHeadersFor } from "./http/plugins/security-headers.ts";
import { registerRateLimits } from "./http/plugins/rate-limits.ts";
import { browserRoutes } from "./http/routes/browser.ts";
import { healthRoutes } from "./http/routes/health.ts";
import { metricsOf, publicMetricsRoutes } from "./http/routes/metrics.ts";
import { revocationIntrospectionRoutes } from "./http/routes/revocation-introspection.ts";
import { tokenRoutes } from "./http/routes/token.ts";
import { jwksResponse, wellKnownRoutes } from "./http/routes/well-known.ts";
import type { Services } from "./services.ts";

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/;

/** Which grant a successful response issued, for the metrics counter (null: not a token response). */
function tokenGrantOf(url: string, body: unknown): string | null {
  const path = url.split("?")[0];
  if (path === "/oauth/token") {
    const gt = (body as { grant_type?: unknown } | undefined)?.grant_type;
    return typeof gt === "string" && ["password", "refresh_token", "client_credentials"].includes(gt) ? gt : null;
  }
  if (path === "/auth/login") return "password";
  if (path === "/auth/refresh") return "refresh_token";
  return null;
}

export async function buildApp(services: Services, logger: Logger): Promise<FastifyInstance> {
  const { config } = services;
  const trust = trustFunction(config.trustProxy);
  const clientIp = clientAddressOf(trust);
  const app: FastifyInstance = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // Fastify's two lines per request are replaced by our one (onResponse below).
    logController: new LogController({ disableRequestLogging: true }),
    requestIdHeader: false,
    // Honour a well-formed upstream X-Request-Id so logs correlate across services.
    genReqId: (req) => {
      const incoming = req.headers["x-request-id"];
      return typeof incoming === "string" && REQUEST_ID.test(incoming) ? incoming : randomUUID();
    },
    bodyLimit: 64 * 1024,
    // The same trust rule as clientIp (http/client-address.ts): request.ip is the right-most
    // untrusted X-Forwarded-For hop.
    trustProxy: trust,
    return503OnClosing: true,
    // Verifiers poll the JWKS more than anything else: a GET of exactly that path is answered
    // from prepared bytes before Fastify's request pipeline (same headers as the route, which
    // still serves HEAD, query strings and app.inject()).
    serverFactory: (handler) =>
      http.createServer((req, res) => {
        if (req.method !== "GET" || req.url !== "/.well-known/jwks.json") return handler(req, res);
        const started = process.hrtime.bigint();
        const incoming = req.headers["x-request-id"];
        const reqId = typeof incoming === "string" && REQUEST_ID.test(incoming) ? incoming : randomUUID();
        const r = jwksResponse(services, req.headers["if-none-match"]);
        res.writeHead(r.status, { ...r.headers, "x-request-id": reqId, ...(r.body ? { "content-length": r.body.length } : {}) });
        res.end(r.body ?? undefined);
        if (logger.isLevelEnabled("info")) {
          const ms = Number(process.hrtime.bigint() - started) / 1e6;
          logger.info({ reqId, method: "GET", path: "/.well-known/jwks.json", status: r.status, ms: Math.round(ms * 10) / 10, ip: clientIp(req) }, "request");
        }
      }),
    // Schemas validate, they do not convert: a JSON number is not a password.
    ajv: { customOptions: { coerceTypes: false } },
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
  registerErrorHandler(app, services.storage);
  const limits = await registerRateLimits(app, config, logger);

  app.addHook("onRequest", (request, reply, done) => {
    reply.header("x-request-id", request.id);
    done();
  });
  // One log line per request. The URL is logged without its query string: RFC 6750 §2.3 lets
  // clients put tokens there, and we never log a token.
  app.addHook("onResponse", (request, reply, done) => {
    if (!logger.isLevelEnabled("info")) return done();
    request.log.info(
      {
        method: request.method,
        path: request.url.split("?")[0],
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime * 10) / 10,
        ip: request.ip,
      },
      "request",
    );
    done();
  });

  // Prometheus metrics (and the token counter's hook, which every route below inherits).
  const metrics = services.config.metricsEnabled ? metricsOf(services) : null;
  if (metrics) {
    // Served here only behind METRICS_TOKEN; METRICS_PORT moves it to its own listener (server.ts).
    publicMetricsRoutes(app, services, metrics);
    // Count token responses by grant type (the token endpoint and the browser endpoints).
    app.addHook("onSend", (request, reply, payload, done) => {
      const grant = tokenGrantOf(request.url, request.body);
      if (grant && reply.statusCode === 200) metrics.tokensIssued.inc({ grant_type: grant });
      done(null, payload);
    });
  }
  // Public, read-only documents: no cookies, bodies or CORS negotiation on their path, so the
  // JWKS is served with as little per-request work as possible.
  wellKnownRoutes(app, services);
  healthRoutes(app, services);

  // The OAuth and browser endpoints, in their own context with cookies, forms and CORS.
  await app.register(async (api) => {
    await api.register(cookie);
    await api.register(formbody);
    await api.register(cors, { origin: config.allowedOrigins, credentials: true, methods: ["GET", "POST"] });

    // Bodiless POSTs to the cookie endpoints still carry Content-Type: application/json (the
    // CSRF check wants it); treat an empty JSON body as {} instead of failing.
    const defaultJson = api.getDefaultJsonParser("error", "error");
    api.addContentTypeParser("application/json", { parseAs: "string" }, (request, body, done) => {
      const text = typeof body === "string" ? body : body.toString("utf8");
      if (text.trim() === "") return done(null, {});
      return defaultJson(request, text, done);
    });

    tokenRoutes(api, services, limits);
    revocationIntrospectionRoutes(api, services, limits);
    browserRoutes(api, services, limits);
  });
  return app;
}
