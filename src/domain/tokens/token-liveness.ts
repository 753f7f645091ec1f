// Whether an access token this issuer signed (signature, iss, typ, exp already checked) is still
// good now: not revoked by jti (RFC 7009), its client not disabled, and for a user's token its
// session not revoked and its user not disabled. One rule for introspection (RFC 7662 "active")
// and for the issuer's own Bearer-protected routes (/account).
import type { ClientRecord } from "../clients/client-store.ts";
import type { SessionRecord } from "../sessions/session-store.ts";
import type { RevocationStore } from "./revocation-store.ts";

export interface TokenLivenessDeps {
  revocations: Pick<RevocationStore, "has">;
  /** the token's client as of now */
  clients: { find(id: string): Promise<ClientRecord | null> };
  /** the token's session as of now */
  sessions: { findById(id: string): Promise<SessionRecord | null> };
  /** the token's user as of now */
  users: { findById(id: string): Promise<{ disabledAt: Date | null } | null> };
}

export async function isAccessTokenLive(
  deps: TokenLivenessDeps,
  claims: { jti?: unknown; client_id?: unknown; sid?: unknown; sub?: unknown },
): Promise<boolean> {
  if (typeof claims.jti === "string" && (await deps.revocations.has(claims.jti))) return false;
  const issuedTo = typeof claims.client_id === "string" ? await deps.clients.find(claims.client_id) : null;
  if (!issuedTo || issuedTo.disabledAt !== null) return false;
  if (typeof claims.sid === "string") {
    const session = await deps.sessions.findById(claims.sid);
    if (!session || session.revokedAt !== null || session.userId !== claims.sub) return false;
    // A user disabled since (disabling revokes the sessions too; this also covers the race).
    const user = typeof claims.sub === "string" ? await deps.users.findById(claims.sub) : null;
    if (!user || user.disabledAt !== null) return false;
  }
  return true;
}
