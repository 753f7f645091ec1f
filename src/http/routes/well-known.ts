// JWKS (RFC 7517 §5) and authorization server metadata (RFC 8414).
import type { FastifyInstance } from "fastify";
import { grants } from "../../grants/index.ts";
import { STATUS_LISTS_PATH } from "../../domain/tokens/status-list.ts";
import type { Services } from "../../services.ts";
import { preparedResponse, sendPrepared, type PreparedResponse } from "../prepared.ts";
import { PUBLIC_DOCUMENT, securityHeadersFor } from "../plugins/security-headers.ts";
import { errorReplies, noBody } from "../schemas.ts";

// Both documents are sent as prepared bytes: the schemas describe them, nothing is re-serialized.
const jwksSchema = {
  tags: ["well-known"],
  summary: "Public signing keys (RFC 7517 JWK Set)",
  response: {
    200: {
      description: "The JWK Set.",
      content: {
        "application/jwk-set+json": {
          schema: { type: "object", required: ["keys"], additionalProperties: true, properties: { keys: { type: "array", items: { type: "object", additionalProperties: true } } } },
        },
      },
    },
    304: noBody("Not modified (If-None-Match)."),
    ...errorReplies,
  },
} as const;

const metadataSchema = {
  tags: ["well-known"],
  summary: "Authorization server metadata (RFC 8414)",
  response: {
    200: {
      type: "object",
      description: "RFC 8414 §2 metadata, with status_list_aggregation_endpoint.",
      required: ["issuer", "token_endpoint", "jwks_uri"],
      additionalProperties: true,
      properties: {
        issuer: { type: "string" },
        token_endpoint: { type: "string" },
        jwks_uri: { type: "string" },
        service_documentation: { type: "string" },
      },
    },
    ...errorReplies,
  },
} as const;

/** The JWKS response, shared by the Fastify route and the socket fast path (http/jwks-fast-path.ts). */
export function jwksResponse(services: Pick<Services, "keys" | "config">, ifNoneMatchHeader: string | undefined): PreparedResponse {
  // Prepared bytes: the JWKS is rebuilt only when the key set changes.
  return preparedResponse(services.keys.jwks, { ifNoneMatch: ifNoneMatchHeader }, {
    // The socket fast path skips Fastify's hooks: the security headers travel with the response
    // (the same values the plugin sets on the route, Cross-Origin-Resource-Policy: cross-origin).
    ...securityHeadersFor(services.config, "cross-origin"),
    "content-type": "application/jwk-set+json",
    // Public key material: any origin may read it (browser-based verifiers, tooling).
    "access-control-allow-origin": "*",
    "cache-control": `public, max-age=${services.config.jwksMaxAge}`,
  });
}

export function wellKnownRoutes(app: FastifyInstance, services: Services): void {
  const { config } = services;

  app.get("/.well-known/jwks.json", { ...PUBLIC_DOCUMENT, schema: jwksSchema }, async (request, reply) =>
    sendPrepared(reply, jwksResponse(services, request.headers["if-none-match"])),
  );

  const authMethods = ["client_secret_basic", "client_secret_post"];
  const metadata = Buffer.from(
    JSON.stringify({
      issuer: config.issuer,
      token_endpoint: `${config.issuer}/oauth/token`,
      jwks_uri: `${config.issuer}/.well-known/jwks.json`,
      revocation_endpoint: `${config.issuer}/oauth/revoke`,
      introspection_endpoint: `${config.issuer}/oauth/introspect`,
      grant_types_supported: [...grants.keys()],
      // No authorization endpoint, so no response types (RFC 8414 §2: required, may be empty).
      response_types_supported: [],
      // "none": public clients (the first-party web client) identify with client_id only.
      token_endpoint_auth_methods_supported: ["none", ...authMethods],
      revocation_endpoint_auth_methods_supported: ["none", ...authMethods],
      introspection_endpoint_auth_methods_supported: authMethods,
      scopes_supported: config.webClientScopes,
      // RFC 9068 access tokens and their signing algorithm(s).
      access_token_signing_alg_values_supported: [config.signingAlg],
      // draft-ietf-oauth-status-list-20 §9.1: where the token status lists are listed.
      status_list_aggregation_endpoint: `${config.issuer}${STATUS_LISTS_PATH}`,
      service_documentation: `${config.issuer}/docs`,
    }),
  );

  // Read cross-origin like the JWKS (SPAs, verifiers' discovery): CORP cross-origin.
  app.get("/.well-known/oauth-authorization-server", { ...PUBLIC_DOCUMENT, schema: metadataSchema }, async (_request, reply) =>
    reply
      .header("content-type", "application/json")
      .header("access-control-allow-origin", "*")
      .header("cache-control", "public, max-age=3600")
      .send(metadata),
  );
}
