// Access tokens revoked before they expire (RFC 7009 §2), by jti: what introspection checks.
// Implemented in storage/prisma.

export interface RevokedAccessToken {
  jti: string;
  clientId: string;
  expiresAt: Date;
  revokedAt: Date;
}

export interface RevocationStore {
  add(entry: RevokedAccessToken): Promise<void>;
  has(jti: string): Promise<boolean>;
  /** deletes entries whose token has expired anyway */
  prune(now: Date): Promise<number>;
}
