// The API description: @fastify/swagger collects every route's schema (registered before the
// routes, it sees the nested OAuth context's too) into an OpenAPI 3.1 document served at
// /openapi.json, and @fastify/swagger-ui renders it at /docs from assets served here (no CDN).
import { readFileSync } from "node:fs";
import path from "node:path";
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import type { FastifyInstance } from "fastify";
import type { Config } from "../config.ts";
import { projectRoot } from "../project-root.ts";
import { errorReplies } from "./schemas.ts";

// The root package.json (src/http/ in development, dist/src/http/ when built: found, not assumed).
const { version } = JSON.parse(readFileSync(path.join(projectRoot(), "package.json"), "utf8")) as { version: string };

export const DOCS_PREFIX = "/docs";

/**
 * The docs page's own CSP (set by swagger-ui on its routes only, replacing the JSON one): its
 * scripts, styles, images and the description it fetches come from this origin; nothing else.
 * Swagger UI injects <style> elements at run time (their content varies with what is expanded),
 * so styles also allow 'unsafe-inline'; scripts do not.
 */
export const DOCS_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** Register before any route. */
export async function registerOpenApi(app: FastifyInstance, config: Pick<Config, "issuer" | "adminApiAudience">): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: "3.1.0",
      info: { title: "Tessera", version, description: "OAuth-style token issuer: JWT access tokens, rotating refresh tokens, JWKS, token status lists." },
      servers: [{ url: config.issuer }],
      tags: [
        { name: "oauth", description: "Token, revocation and introspection endpoints (RFC 6749, 7009, 7662)" },
        { name: "browser", description: "The first-party web client's cookie endpoints" },
        { name: "account", description: "The user's own account (user's Bearer access token)" },
        { name: "well-known", description: "Public documents: keys, metadata, this description" },
        { name: "status-lists", description: "Token status lists (draft-ietf-oauth-status-list)" },
        { name: "health", description: "Liveness, readiness, metrics" },
        ...["clients", "users", "sessions", "keys", "audit"].map((name) => ({
          name: `admin: ${name}`,
          description: `The admin API (/admin/v1): ${name}. A client_credentials access token for ${config.adminApiAudience} with admin:read or admin:write.`,
        })),
      ],
      components: {
        securitySchemes: {
          bearerAuth: { type: "http", scheme: "bearer", bearerFormat: "JWT" },
          clientBasic: { type: "http", scheme: "basic", description: "client_secret_basic" },
          adminToken: {
            type: "oauth2",
            description: `A client_credentials access token whose aud is ${config.adminApiAudience} (ADMIN_API_AUDIENCE; ask with resource=${config.adminApiAudience}), from a client an operator allowed admin:read and/or admin:write.`,
            flows: {
              clientCredentials: {
                tokenUrl: `${config.issuer.replace(/\/+$/, "")}/oauth/token`,
                scopes: { "admin:read": "Read clients, users, sessions, keys and audit events.", "admin:write": "Everything admin:read allows, and change them." },
              },
            },
          },
        },
      },
    },
  });
  await app.register(swaggerUi, { routePrefix: DOCS_PREFIX, staticCSP: DOCS_CSP });

  let document: Buffer | undefined;
  app.get(
    "/openapi.json",
    {
      schema: {
        tags: ["well-known"],
        summary: "This API description (OpenAPI 3.1)",
        response: { 200: { type: "object", description: "An OpenAPI 3.1 document.", additionalProperties: true }, ...errorReplies },
      },
    },
    async (_request, reply) => {
      // Built once, on the first request (every route is registered by then).
      document ??= Buffer.from(JSON.stringify(app.swagger()));
      return reply.header("content-type", "application/json; charset=utf-8").header("cache-control", "public, max-age=300").send(document);
    },
  );
}
