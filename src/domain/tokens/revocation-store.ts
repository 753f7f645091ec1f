// Access tokens revoked before they expire (RFC 7009 §2), by jti: what introspection checks.
// Implemented in storage/prisma.

export interface RevokedAccessToken {
  jti: string;
  clientId: string;
  expiresAt: Date;
  revokedAt: Date;
  /**
   * the token's status list index when no session row sets its bit: a client_credentials token's
   * own, or a user token's whose session has been pruned; its bit is set while the entry exists.
   * Null for user tokens of a session that exists (the session's revocation sets it).
   */
  statusIdx: number | null;
}

export interface RevocationStore {
  /** true when this call stored the entry; false when the token was revoked already (by anyone, even concurrently) */
  add(entry: RevokedAccessToken): Promise<boolean>;
  has(jti: string): Promise<boolean>;
  /** deletes entries whose token has expired anyway */
  prune(now: Date): Promise<number>;
}
