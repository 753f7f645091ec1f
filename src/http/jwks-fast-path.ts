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
  // The 200 without a conditional header, the common case, as a flat header list built once per
  // key set (the ring swaps the document object when the keys change): no per-request objects.
  const plain = new WeakMap<object, { headers: string[]; body: Buffer }>();
  const plainFor = (doc: object) => {
    let hit = plain.get(doc);
    if (!hit) {
      const r = jwksResponse(services, undefined);
      const headers = Object.entries(r.headers).flat();
      headers.push("content-length", String(r.body!.length));
      plain.set(doc, (hit = { headers, body: r.body! }));
    }
    return hit;
  };
  const logging = () => logger.isLevelEnabled("info");
  return (handler) =>
    http.createServer((req, res) => {
      if (req.method !== "GET" || req.url !== JWKS_PATH) return handler(req, res);
      const started = logging() ? process.hrtime.bigint() : 0n;
      const reqId = requestIdOf(req.headers["x-request-id"]);
      let status: number;
      if (req.headers["if-none-match"] === undefined) {
        const { headers, body } = plainFor(services.keys.jwks);
        res.writeHead((status = 200), [...headers, "x-request-id", reqId]);
        res.end(body);
      } else {
        const r = jwksResponse(services, req.headers["if-none-match"]);
        res.writeHead((status = r.status), { ...r.headers, "x-request-id": reqId, ...(r.body ? { "content-length": r.body.length } : {}) });
        res.end(r.body ?? undefined);
      }
      if (started === 0n) return;
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      logRequest(logger, reqId, { method: "GET", url: JWKS_PATH, status, ms, ip: clientIp(req) });
    });
}
