// Client credentials from the request: HTTP Basic (client_secret_basic) or body parameters
// (client_secret_post), RFC 6749 §2.3.1. A client must not use more than one method at once.
import type { FastifyRequest } from "fastify";
import type { ClientCredentials } from "../domain/clients/clients.ts";
import { InvalidClient, InvalidRequest } from "../domain/errors.ts";
import type { ClientRecord } from "../domain/clients/client-store.ts";
import type { Services } from "../services.ts";
import type { Limiter } from "./plugins/rate-limits.ts";

const BASIC_CHALLENGE = { "www-authenticate": 'Basic realm="tessera"' };

function decodeBasic(header: string): { id: string; secret: string } {
  const m = /^Basic\s+([A-Za-z0-9+/=_-]+)\s*$/i.exec(header);
  if (!m?.[1]) throw new InvalidClient("The Authorization header is malformed.", BASIC_CHALLENGE);
  const decoded = Buffer.from(m[1], "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon < 0) throw new InvalidClient("The Authorization header is malformed.", BASIC_CHALLENGE);
  try {
    // §2.3.1: id and secret are form-urlencoded before base64.
    const formDecode = (s: string) => decodeURIComponent(s.replace(/\+/g, " "));
    const id = formDecode(decoded.slice(0, colon));
    if (/\0|\p{Cs}/u.test(id)) throw new Error("invalid client id");
    return { id, secret: formDecode(decoded.slice(colon + 1)) };
  } catch {
    throw new InvalidClient("The Authorization header is malformed.", BASIC_CHALLENGE);
  }
}

export function clientCredentials(request: FastifyRequest, params: Readonly<Record<string, string>>): ClientCredentials {
  const header = request.headers.authorization;
  if (header !== undefined && /^Basic\s/i.test(header)) {
    if (params.client_secret !== undefined) {
      throw new InvalidRequest("Use one client authentication method, not both Basic and client_secret.");
    }
    const { id, secret } = decodeBasic(header);
    if (params.client_id !== undefined && params.client_id !== id) {
      throw new InvalidRequest("client_id does not match the authenticated client.");
    }
    return { clientId: id, clientSecret: secret, method: "client_secret_basic" };
  }
  if (!params.client_id) throw new InvalidClient("Client identification is missing (client_id or HTTP Basic).");
  if (params.client_secret !== undefined) {
    return { clientId: params.client_id, clientSecret: params.client_secret, method: "client_secret_post" };
  }
  return { clientId: params.client_id, method: "none" };
}

/**
 * Authenticates the client of an OAuth request, with the per-address limit on failed client
 * authentications: an address that failed too often gets 429 before its credentials are even
 * looked at, and every invalid_client counts against it.
 */
export async function authenticateClient(
  request: FastifyRequest,
  params: Readonly<Record<string, string>>,
  services: Services,
  failures: Limiter,
): Promise<ClientRecord> {
  await failures.check(request);
  try {
    return await services.clients.authenticate(clientCredentials(request, params));
  } catch (err) {
    if (err instanceof InvalidClient) await failures.count(request);
    throw err;
  }
}

/** The client_id a request names (Basic or body), authenticated or not; undefined if unreadable. */
export function claimedClientId(request: FastifyRequest, params: Readonly<Record<string, string>>): string | undefined {
  try {
    return clientCredentials(request, params).clientId;
  } catch {
    return undefined;
  }
}
