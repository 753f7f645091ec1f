// The access token of a request to a Bearer-protected route: the Authorization header only
// (RFC 6750 §2.1; never a query or form parameter, so never in a URL or a log line).
import type { FastifyRequest } from "fastify";
import { InvalidToken } from "../domain/tokens/bearer-access.ts";

// RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token.
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;

/** The presented access token; null when there is none (no header, or another scheme). */
export function bearerToken(request: FastifyRequest): string | null {
  const header = request.headers.authorization;
  if (typeof header !== "string" || !/^bearer(\s|$)/i.test(header)) return null;
  const match = BEARER.exec(header);
  if (!match?.[1]) throw new InvalidToken("The Authorization header is malformed.");
  return match[1];
}
