// Why a token was refused: one error class, stable codes.

export type TokenErrorCode =
  | "malformed"
  | "expired"
  | "not_yet_valid"
  | "bad_signature"
  | "wrong_issuer"
  | "wrong_audience"
  | "wrong_type"
  | "alg_not_allowed"
  | "unknown_key"
  | "embedded_key"
  | "missing_claim"
  | "jwks_unavailable"
  /** the token's status list entry is not 0 (VALID): revoked, suspended, ... */
  | "revoked"
  /** the token's `status` claim cannot be checked: malformed, a list on another origin, an index out of range */
  | "status_invalid"
  /** the token's status list could not be fetched or was not trustworthy, and no recent valid copy is held */
  | "status_unavailable";

/** Codes that say nothing about the token: the service cannot check it right now (503, retry). */
export const UNAVAILABLE_CODES: ReadonlySet<TokenErrorCode> = new Set(["jwks_unavailable", "status_unavailable"]);

/**
 * Why a token was refused. `code` is stable (switch on it); `message` is a short, fixed,
 * human-readable sentence that never contains the token, a stack trace, a double quote or a
 * backslash, so it is safe to send back as an `error_description` (RFC 6750 §3 charset). `cause` may hold the underlying error for server logs.
 */
export class TokenVerificationError extends Error {
  override readonly name = "TokenVerificationError";
  constructor(
    readonly code: TokenErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export const fail = (code: TokenErrorCode, message: string, cause?: unknown): TokenVerificationError =>
  new TokenVerificationError(code, message, cause === undefined ? undefined : { cause });
