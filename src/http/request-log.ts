// The request id and the one log line per request, shared by the Fastify hooks (app.ts) and the
// JWKS socket fast path (jwks-fast-path.ts), so both log the same fields the same way. The path
// is logged without its query string: RFC 6750 §2.3 lets clients put tokens there, and we never
// log a token.
import { randomUUID } from "node:crypto";
import type { Logger } from "pino";

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/;

/** A well-formed upstream X-Request-Id (so logs correlate across services), or a new one. */
export function requestIdOf(header: string | string[] | undefined): string {
  return typeof header === "string" && REQUEST_ID.test(header) ? header : randomUUID();
}

export interface RequestLine {
  method: string;
  url: string;
  status: number;
  ms: number;
  ip: string | undefined;
}

/** One info line per request, `reqId` first (as Fastify's request logger binds it). */
export function logRequest(logger: Pick<Logger, "info" | "isLevelEnabled">, reqId: string, line: RequestLine): void {
  if (!logger.isLevelEnabled("info")) return;
  logger.info(
    { reqId, method: line.method, path: line.url.split("?")[0], status: line.status, ms: Math.round(line.ms * 10) / 10, ip: line.ip },
    "request",
  );
}
