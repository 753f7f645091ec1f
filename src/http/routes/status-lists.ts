// Token status lists (draft-ietf-oauth-status-list-20): GET /statuslists/<n> serves list n's
// status list token (§8.1, §8.2; 406 to an Accept that excludes it), GET /statuslists the
// aggregation of every list's URI (§9.3).
// Thin: the lists are prepared by the publisher (domain/tokens/status-publisher.ts) and sent as
// bytes, like the JWKS; nothing is built or signed here.
import type { FastifyInstance } from "fastify";
import { NotFound, OAuthError, TemporarilyUnavailable } from "../../domain/errors.ts";
import { parseListNumber, STATUS_LISTS_PATH } from "../../domain/tokens/status-list.ts";
import type { Services } from "../../services.ts";
import { PUBLIC_DOCUMENT } from "../plugins/security-headers.ts";
import { acceptsMediaType, preparedResponse, sendPrepared } from "../prepared.ts";
import { errorReplies, noBody } from "../schemas.ts";

/** The one representation served: a status list token as a JWT (§5.1); no CWT (§5.2). */
const STATUS_LIST_JWT = "application/statuslist+jwt";

/** RFC 9110 §15.5.7: the request's Accept excludes every representation the resource has. */
class NotAcceptable extends OAuthError {
  constructor() {
    super("not_acceptable", 406, `Status lists are served as ${STATUS_LIST_JWT} only.`);
  }
}

/** §8.4: historical resolution (`?time=`) is optional; a server without it SHOULD answer 501. */
class NotImplemented extends OAuthError {
  constructor(description: string) {
    super("not_implemented", 501, description);
  }
}

// Both are sent as prepared bytes: the schemas describe them, nothing is re-serialized.
const aggregationSchema = {
  tags: ["status-lists"],
  summary: "Status list aggregation (draft-ietf-oauth-status-list §9.3)",
  response: {
    200: { type: "object", required: ["status_lists"], additionalProperties: true, properties: { status_lists: { type: "array", items: { type: "string" } } } },
    304: noBody("Not modified (If-None-Match)."),
    ...errorReplies,
  },
} as const;

const statusListSchema = {
  tags: ["status-lists"],
  summary: "Status list token n (application/statuslist+jwt)",
  description: "406 when Accept excludes application/statuslist+jwt; 501 for historical resolution (?time=).",
  params: { type: "object", required: ["n"], properties: { n: { type: "string", description: "The list number" } } },
  // No type on time: any value (even repeated) is answered 501, by the handler.
  querystring: { type: "object", properties: { time: { description: "Historical resolution: not supported (501)" } } },
  response: {
    200: { description: "The status list token, a JWT.", content: { [STATUS_LIST_JWT]: { schema: { type: "string" } } } },
    304: noBody("Not modified (If-None-Match)."),
    ...errorReplies,
  },
} as const;

export function statusListRoutes(app: FastifyInstance, services: Services): void {
  const { statusLists, config } = services;
  const headers = (contentType: string) => ({
    "content-type": contentType,
    // §8.1: CORS, so browser-based verifiers can fetch the lists.
    "access-control-allow-origin": "*",
    // §5.1 ttl: a verifier fetches a fresh list after this long; caches in between may serve it.
    "cache-control": `public, max-age=${config.statusListTtl}`,
  });

  app.get(STATUS_LISTS_PATH, { ...PUBLIC_DOCUMENT, schema: aggregationSchema }, async (request, reply) =>
    sendPrepared(reply, preparedResponse(statusLists.aggregation, { ifNoneMatch: request.headers["if-none-match"] }, headers("application/json"))),
  );

  app.get<{ Params: { n: string }; Querystring: Record<string, unknown> }>(`${STATUS_LISTS_PATH}/:n`, { ...PUBLIC_DOCUMENT, schema: statusListSchema }, async (request, reply) => {
    if (request.query.time !== undefined) throw new NotImplemented("Historical status lists (the time parameter) are not served.");
    const n = parseListNumber(request.params.n);
    const lookup = n === null ? ({ found: "unknown" } as const) : statusLists.lookup(n);
    if (lookup.found === "unknown") throw new NotFound("No such status list.");
    // §8.1/§8.2: a Relying Party names the type it wants in Accept; one that excludes the JWT
    // (e.g. only application/statuslist+cwt) gets 406. None, */*, or one listing it: the JWT.
    if (!acceptsMediaType(request.headers.accept, STATUS_LIST_JWT)) throw new NotAcceptable();
    // The lists could not be rebuilt for longer than their validity: never serve one past its exp.
    if (lookup.found === "expired") throw new TemporarilyUnavailable("The status list cannot be refreshed now; retry later.");
    // §8.2: Content-Encoding SHOULD be used: gzip takes back most of the JWT's base64 overhead.
    const conditional = { ifNoneMatch: request.headers["if-none-match"], acceptEncoding: request.headers["accept-encoding"] };
    return sendPrepared(reply, preparedResponse(lookup.list, conditional, headers(STATUS_LIST_JWT)));
  });
}
