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

/** RFC 9110 §12.4.2: the items of an Accept-style header (lower case) with their weight: q, 1 without one, 0 when malformed. */
function weighted(header: string): { item: string; q: number }[] {
  return header
    .toLowerCase()
    .split(",")
    .flatMap((part) => {
      const [item = "", ...params] = part.split(";").map((s) => s.trim());
      if (item === "") return [];
      const qParam = params.find((p) => p.startsWith("q="));
      const value = qParam === undefined ? 1 : Number(qParam.slice(2));
      return [{ item, q: Number.isFinite(value) ? value : 0 }];
    });
}

/** RFC 9110 §12.5.3: whether `Accept-Encoding` accepts gzip (by name, x-gzip, or `*`) with a q above 0. */
export function acceptsGzip(header: string | undefined): boolean {
  if (!header) return false;
  const q = new Map(weighted(header).map(({ item, q }) => [item, q]));
  const weight = q.get("gzip") ?? q.get("x-gzip") ?? q.get("*") ?? 0;
  return weight > 0;
}

/**
 * RFC 9110 §12.5.1: whether `Accept` admits `mediaType` (lower case, "type/subtype"): the most
 * specific range that matches it (the media type itself, then its type with any subtype, then any
 * type) has a q above 0. No header, or an empty one, admits anything; parameters other than q are
 * ignored.
 */
export function acceptsMediaType(header: string | undefined, mediaType: string): boolean {
  if (header === undefined || header.trim() === "") return true;
  const [type] = mediaType.split("/");
  const ranks = new Map([
    [mediaType, 3],
    [`${type}/*`, 2],
    ["*/*", 1],
  ]);
  let best = { rank: 0, q: 0 };
  for (const { item: range, q } of weighted(header)) {
    const rank = ranks.get(range) ?? 0;
    if (rank === 0 || rank < best.rank) continue;
    // The same range listed twice: the higher weight counts.
    best = rank > best.rank ? { rank, q } : { rank, q: Math.max(best.q, q) };
  }
  return best.q > 0;
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
