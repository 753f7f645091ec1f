// The contract every grant module implements (one file per grant_type, dispatched by a Map).
import type { GrantType } from "../domain/clients/grant-types.ts";
import type { ClientRecord } from "../domain/clients/client-store.ts";
import type { SessionRecord } from "../domain/sessions/session-store.ts";
import type { IssuedRefreshToken, LoginMetadata } from "../domain/sessions/sessions.ts";
import type { IssuedAccessToken } from "../domain/tokens/access-token.ts";
import type { Services } from "../services.ts";

/** RFC 6749 §5.1 successful response. */
export interface TokenResponse {
  access_token: string;
  token_type: "Bearer";
  expires_in: number;
  refresh_token?: string;
  scope: string;
}

/** The §5.1 response for an access token, and the session's refresh token when there is one. */
export function tokenResponse(
  access: Pick<IssuedAccessToken, "token" | "expiresIn">,
  scope: string,
  refresh?: Pick<IssuedRefreshToken, "session" | "refreshToken">,
): GrantResult {
  const head = { access_token: access.token, token_type: "Bearer", expires_in: access.expiresIn } as const;
  if (!refresh) return { response: { ...head, scope } };
  return { session: refresh.session, response: { ...head, refresh_token: refresh.refreshToken, scope } };
}

export interface GrantResult {
  response: TokenResponse;
  /** the session behind a refresh token, for cookie lifetimes */
  session?: SessionRecord;
}

export interface GrantRequest {
  /** request parameters, each at most once (RFC 6749 §3.2) */
  params: Readonly<Record<string, string>>;
  client: ClientRecord;
  /**
   * the client's address as limits count it (http/client-address.ts addressKey: IPv4, or the
   * IPv6 /64; behind TRUST_PROXY, of the right-most untrusted hop)
   */
  address: string;
  /** what the login came from (kept on a new session with SESSION_METADATA) */
  metadata?: LoginMetadata;
}

export interface Grant {
  grantType: GrantType;
  /** parameters the grant reads; required ones must be present and non-empty */
  required: readonly string[];
  handle(req: GrantRequest, services: Services): Promise<GrantResult>;
  /**
   * Runs when client authentication failed, before that error is answered; may throw a more
   * decisive error (the refresh grant's reuse verdict: RFC 9700 §4.14.2).
   */
  onClientRejected?(params: Readonly<Record<string, string>>, services: Services, claimedClientId: string | undefined): Promise<void>;
}
