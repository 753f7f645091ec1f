// Shared pieces of the route schemas. The schemas are the API description: @fastify/swagger
// turns them into /openapi.json (src/http/openapi.ts). A response schema is also a serializer
// (fast-json-stringify drops what it does not list), so bodies whose members vary are described
// with additionalProperties: true, and prepared byte bodies (JWKS, metadata, status lists) are
// sent as Buffers, which no schema touches.

/** Every error: RFC 6749 §5.2's shape (http/plugins/errors.ts). */
export const errorBody = {
  type: "object",
  description: "An error (RFC 6749 §5.2 shape).",
  required: ["error", "error_description"],
  properties: {
    error: { type: "string", description: "An error code, e.g. invalid_request, invalid_grant, slow_down." },
    error_description: { type: "string" },
    field: { type: "string", description: "The request member at fault (e.g. grant_types, cursor), when one is." },
  },
} as const;

/** The 4xx (and 5xx) answers of every route. */
export const errorReplies = { "4xx": errorBody, "5xx": errorBody } as const;

/** A response without a body (204, 304, RFC 7009's 200). */
export const noBody = (description: string) => ({ type: "null", description }) as const;

/** RFC 6749 §5.1 access token response. */
export const tokenBody = {
  type: "object",
  description: "An access token response (RFC 6749 §5.1).",
  required: ["access_token", "token_type", "expires_in", "scope"],
  additionalProperties: true,
  properties: {
    access_token: { type: "string", description: "A JWT access token (RFC 9068)." },
    token_type: { type: "string", enum: ["Bearer"] },
    expires_in: { type: "integer", description: "Seconds until the access token expires." },
    refresh_token: { type: "string", description: "The session's (rotated) refresh token; not on the browser endpoints (cookie)." },
    scope: { type: "string" },
  },
} as const;

/**
 * The OAuth endpoints' parameters, form-encoded (RFC 6749 §3.2) or a JSON object of strings.
 * Described here, validated by http/params.ts (each value a string that appears once, with
 * RFC 6749 §5.2 errors naming the parameter), so the route's validator accepts everything.
 */
export function oauthParams(properties: Record<string, { description: string }>, required: readonly string[] = []) {
  return {
    type: "object",
    required: [...required],
    additionalProperties: { type: "string" },
    properties: Object.fromEntries(Object.entries(properties).map(([name, p]) => [name, { type: "string", ...p }])),
  } as const;
}

/** Route option: the body schema documents; http/params.ts validates (see oauthParams). */
export const documentedBodyOnly = {
  validatorCompiler: () => () => true,
} as const;

/** The account endpoints' credential: the user's access token (RFC 6750 §2.1). */
export const bearerAuth: { [name: string]: string[] }[] = [{ bearerAuth: [] }];
/** Confidential clients: HTTP Basic (client_secret_basic) or client_id/client_secret in the body. */
export const clientAuth: { [name: string]: string[] }[] = [{ clientBasic: [] }, {}];
