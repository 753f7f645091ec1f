// Access tokens revoked before they expire (RFC 7009 §2), by jti: what introspection checks.
// Implemented in storage/prisma.

export interface RevokedAccessToken {
  jti: string;
  clientId: string;
  expiresAt: Date;
  revokedAt: Date;
  /**
   * the token's own status list index (client_credentials tokens): its bit is set while the entry
   * exists; null for user tokens, whose index is their session's
   */
  statusIdx: number | null;
}

export interface RevocationStore {
  add(entry: RevokedAccessToken): Promise<void>;
  has(jti: string): Promise<boolean>;
  /** deletes entries whose token has expired anyway */
  prune(now: Date): Promise<number>;
}
