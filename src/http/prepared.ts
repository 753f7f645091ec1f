// Answers for public documents served from prepared bytes (the JWKS, the token status lists):
// 200 with the bytes, or 304 when the client already holds them (RFC 9110 §13.1.2), with the
// same headers either way; the gzip encoding when the document has one and the client accepts it.
import type { FastifyReply } from "fastify";
import type { PublishedDocument } from "../domain/published.ts";

/** RFC 9110 §13.1.2: "*" or a list of entity tags, compared weakly (W/ prefixes ignored). */
function ifNoneMatch(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  if (header.trim() === "*") return true;
  const opaque = (t: string) => t.trim().replace(/^W\//, "");
  return header.split(",").some((t) => opaque(t) === opaque(etag));
}

/** RFC 9110 §12.5.3: whether `Accept-Encoding` accepts gzip (by name, x-gzip, or `*`) with a q above 0. */
export function acceptsGzip(header: string | undefined): boolean {
  if (!header) return false;
  const q = new Map<string, number>();
  for (const part of header.toLowerCase().split(",")) {
    const [coding = "", ...params] = part.split(";").map((s) => s.trim());
    const qParam = params.find((p) => p.startsWith("q="));
    const value = qParam === undefined ? 1 : Number(qParam.slice(2));
    if (coding !== "") q.set(coding, Number.isFinite(value) ? value : 0);
  }
  const weight = q.get("gzip") ?? q.get("x-gzip") ?? q.get("*") ?? 0;
  return weight > 0;
}

export interface PreparedResponse {
  status: 200 | 304;
  headers: Record<string, string>;
  body: Buffer | null;
}

export function preparedResponse(
  doc: PublishedDocument,
  request: { ifNoneMatch: string | undefined; acceptEncoding?: string | undefined },
  headers: Record<string, string>,
): PreparedResponse {
  const gzip = doc.gzip && acceptsGzip(request.acceptEncoding) ? doc.gzip : null;
  const chosen = gzip ?? doc;
  const all: Record<string, string> = {
    ...headers,
    ...(doc.gzip ? { vary: "accept-encoding" } : {}),
    ...(gzip ? { "content-encoding": "gzip" } : {}),
    etag: chosen.etag,
  };
  return ifNoneMatch(request.ifNoneMatch, chosen.etag) ? { status: 304, headers: all, body: null } : { status: 200, headers: all, body: chosen.body };
}

/** Sends a prepared response through Fastify. */
export function sendPrepared(reply: FastifyReply, r: PreparedResponse): FastifyReply {
  reply.status(r.status).headers(r.headers);
  return r.body ? reply.send(r.body) : reply.send();
}
