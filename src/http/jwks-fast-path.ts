// Verifiers poll the JWKS more than anything else: a GET of exactly its path is answered from
// prepared bytes on the raw socket, before Fastify's request pipeline. Same headers, request id
// and log line as the Fastify route (routes/well-known.ts), which still serves HEAD, query
// strings and app.inject().
import http from "node:http";
import type { Logger } from "pino";
import type { Services } from "../services.ts";
import { logRequest, requestIdOf } from "./request-log.ts";
import { jwksResponse } from "./routes/well-known.ts";

export const JWKS_PATH = "/.well-known/jwks.json";

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

/** A Fastify `serverFactory`: the JWKS fast path in front of Fastify's handler. */
export function jwksFastPathServer(
  services: Pick<Services, "keys" | "config">,
  logger: Logger,
  clientIp: (req: http.IncomingMessage) => string | undefined,
): (handler: Handler) => http.Server {
  return (handler) =>
    http.createServer((req, res) => {
      if (req.method !== "GET" || req.url !== JWKS_PATH) return handler(req, res);
      const started = process.hrtime.bigint();
      const reqId = requestIdOf(req.headers["x-request-id"]);
      const r = jwksResponse(services, req.headers["if-none-match"]);
      res.writeHead(r.status, { ...r.headers, "x-request-id": reqId, ...(r.body ? { "content-length": r.body.length } : {}) });
      res.end(r.body ?? undefined);
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      logRequest(logger, reqId, { method: "GET", url: JWKS_PATH, status: r.status, ms, ip: clientIp(req) });
    });
}
