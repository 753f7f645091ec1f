// Client rules: who may ask for what. RFC 6749 §2 (client types), §2.3.1 (client password),
// §3.3 (scope).
import { createHash, timingSafeEqual } from "node:crypto";
import type { ClientRecord, ClientStore } from "./client-store.ts";
import { formatScope, isScopeToken, parseScope, scopeTokens } from "../scope.ts";
import type { GrantType } from "./grant-types.ts";
import { InvalidClient, InvalidScope, UnauthorizedClient } from "../errors.ts";

/** Client secrets are 256-bit random values, so a fast hash is the right one. */
export const hashClientSecret = (secret: string): string => createHash("sha256").update(secret, "utf8").digest("base64url");

/** The longest access-token lifetime any of `clients` can issue (a client may override the default). */
export const maxAccessTokenTtl = (defaultTtl: number, clients: readonly Pick<ClientRecord, "accessTokenTtl">[]): number =>
  Math.max(defaultTtl, ...clients.map((c) => c.accessTokenTtl ?? 0));

export interface ClientCredentials {
  clientId: string;
  clientSecret?: string;
  /** how the credentials arrived; Basic failures answer with WWW-Authenticate (§5.2) */
  method: "client_secret_basic" | "client_secret_post" | "none";
}

export class Clients {
  readonly #cache = new Map<string, { until: number; client: ClientRecord }>();

  /**
   * @param cacheTtlSeconds how long a client record is reused without a database read (every
   *   token request needs it); a change (disable, new secret) takes effect within this time.
   */
  constructor(
    private readonly store: ClientStore,
    private readonly cacheTtlSeconds = 5,
  ) {}

  async find(clientId: string): Promise<ClientRecord | null> {
    const hit = this.#cache.get(clientId);
    if (hit && hit.until > Date.now()) return hit.client;
    const client = await this.store.findById(clientId);
    if (client && this.cacheTtlSeconds > 0) {
      if (this.#cache.size > 10_000) this.#cache.clear(); // bounded: client ids come from requests
      this.#cache.set(clientId, { until: Date.now() + this.cacheTtlSeconds * 1000, client });
    } else {
      this.#cache.delete(clientId);
    }
    return client;
  }

  /** Drops the cached copy of a client this instance just changed. */
  forget(clientId: string): void {
    this.#cache.delete(clientId);
  }

  /** Authenticates a confidential client, or identifies a public one. */
  async authenticate(creds: ClientCredentials): Promise<ClientRecord> {
    const challenge: Record<string, string> =
      creds.method === "client_secret_basic" ? { "www-authenticate": 'Basic realm="tessera"' } : {};
    const client = await this.find(creds.clientId);
    if (!client || client.disabledAt !== null) throw new InvalidClient("Client authentication failed.", challenge);
    if (client.type === "public") {
      // A public client has no secret (§2.1); one that sends a secret is misconfigured.
      if (creds.clientSecret !== undefined) throw new InvalidClient("Public clients do not authenticate with a secret.", challenge);
      return client;
    }
    if (creds.clientSecret === undefined || client.secretHash === null) {
      throw new InvalidClient("Client authentication failed.", challenge);
    }
    const presented = Buffer.from(hashClientSecret(creds.clientSecret));
    const stored = Buffer.from(client.secretHash);
    if (presented.length !== stored.length || !timingSafeEqual(presented, stored)) {
      throw new InvalidClient("Client authentication failed.", challenge);
    }
    return client;
  }
}

export function assertGrantAllowed(client: ClientRecord, grantType: GrantType): void {
  if (!client.grantTypes.includes(grantType)) {
    throw new UnauthorizedClient(`This client may not use the ${grantType} grant.`);
  }
}

/**
 * RFC 6749 §3.3: the granted scope. No scope requested -> every scope the client may have;
 * asking for one the client may not have is invalid_scope (not silently dropped).
 */
export function grantScope(client: ClientRecord, requested: string | undefined): string {
  if (requested === undefined || requested.trim() === "") return client.scopes.join(" ");
  const wanted = parseScope(requested);
  if (!wanted.every(isScopeToken)) throw new InvalidScope("The scope parameter is malformed.");
  const denied = wanted.filter((s) => !client.scopes.includes(s));
  if (denied.length > 0) throw new InvalidScope(`Scope not allowed for this client: ${denied.join(" ").slice(0, 200)}.`);
  return formatScope(wanted);
}

/**
 * The user's side of scope narrowing (RFC 6749 §3.3: the server may grant less than asked and
 * says so in `scope`): a scope gated by roles is dropped unless the user has one of them.
 */
export function narrowScopeToUser(scope: string, roles: readonly string[], scopeRoles: ReadonlyMap<string, readonly string[]>): string {
  return formatScope(
    scopeTokens(scope).filter((s) => {
      const gate = scopeRoles.get(s);
      return gate === undefined || gate.some((r) => roles.includes(r));
    }),
  );
}
