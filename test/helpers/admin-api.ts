// The admin API as its callers use it: a client an operator allowed admin scopes (created with
// the same admin function the CLI runs), its client_credentials tokens from /oauth/token, and
// requests with them.
import type { InjectOptions, LightMyRequestResponse } from "fastify";
import { createClient } from "../../src/admin/clients.ts";
import { adminOf, form, type TestIssuer } from "./issuer.ts";

export interface AdminClient {
  id: string;
  secret: string;
}

/** A confidential client allowed `scopes` and the admin API's audience (and "api" for a non-admin token). */
export async function adminClient(issuer: TestIssuer, scopes: string[], name = "ops"): Promise<AdminClient> {
  const r = await createClient(adminOf(issuer), {
    name,
    type: "confidential",
    grantTypes: ["client_credentials"],
    scopes,
    audiences: [issuer.config.adminApiAudience, issuer.config.accessTokenAudience],
  });
  const json = r.json as { client_id: string; client_secret: string };
  return { id: json.client_id, secret: json.client_secret };
}

/** A client_credentials access token of `client` (by default for the admin API, every scope it has). */
export async function clientToken(issuer: TestIssuer, client: AdminClient, params: { scope?: string; resource?: string } = {}): Promise<string> {
  const body = form({ grant_type: "client_credentials", resource: params.resource ?? issuer.config.adminApiAudience, ...(params.scope ? { scope: params.scope } : {}) });
  const res = await issuer.app.inject({
    method: "POST",
    url: "/oauth/token",
    headers: { ...body.headers, authorization: `Basic ${Buffer.from(`${client.id}:${client.secret}`).toString("base64")}` },
    payload: body.payload,
  });
  if (res.statusCode !== 200) throw new Error(`token request failed: ${res.statusCode} ${res.body}`);
  return (res.json() as { access_token: string }).access_token;
}

/** A request to /admin/v1 with `token` (none when null). */
export function adminCall(
  issuer: TestIssuer,
  token: string | null,
  method: InjectOptions["method"],
  path: string,
  body?: unknown,
): Promise<LightMyRequestResponse> {
  return issuer.app.inject({
    method,
    url: `/admin/v1${path}`,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { "content-type": "application/json" } : {}) },
    ...(body !== undefined ? { payload: typeof body === "string" ? body : JSON.stringify(body) } : {}),
  });
}

/** Everything the admin API serves, with a body that passes its schema (ids filled in by the caller). */
export const ADMIN_ROUTES: ReadonlyArray<{ method: "GET" | "POST" | "PATCH" | "PUT" | "DELETE"; path: string; access: "read" | "write"; body?: unknown }> = [
  { method: "GET", path: "/clients", access: "read" },
  { method: "POST", path: "/clients", access: "write", body: { name: "x", type: "confidential", grant_types: ["client_credentials"] } },
  { method: "GET", path: "/clients/{client}", access: "read" },
  { method: "PATCH", path: "/clients/{client}", access: "write", body: { name: "renamed" } },
  { method: "POST", path: "/clients/{client}/disable", access: "write" },
  { method: "POST", path: "/clients/{client}/enable", access: "write" },
  { method: "POST", path: "/clients/{client}/secret", access: "write" },
  { method: "GET", path: "/users", access: "read" },
  { method: "POST", path: "/users", access: "write", body: { email: "new@example.test", password: "correct horse battery staple" } },
  { method: "GET", path: "/users/{user}", access: "read" },
  { method: "PUT", path: "/users/{user}/roles", access: "write", body: { roles: ["a"] } },
  { method: "POST", path: "/users/{user}/disable", access: "write" },
  { method: "POST", path: "/users/{user}/enable", access: "write" },
  { method: "PUT", path: "/users/{user}/password", access: "write", body: { password: "another passphrase here" } },
  { method: "GET", path: "/users/{user}/sessions", access: "read" },
  { method: "DELETE", path: "/users/{user}/sessions", access: "write" },
  { method: "DELETE", path: "/sessions/{session}", access: "write" },
  { method: "GET", path: "/keys", access: "read" },
  { method: "POST", path: "/keys/rotate", access: "write" },
  { method: "POST", path: "/keys/rotate-now", access: "write" },
  { method: "POST", path: "/keys/{kid}/revoke", access: "write" },
  { method: "GET", path: "/audit-events", access: "read" },
];
