// The token_type_hint of RFC 7009 §2.1 and RFC 7662 §2.1: it only orders the lookups; the
// server tries both kinds of token whatever it says, and ignores a hint it does not know.

export type TokenTypeHint = "access_token" | "refresh_token" | undefined;
export type TokenKind = "access" | "refresh";

/** The lookup order for `hint`, `preferred` first when there is no hint. */
export function lookupOrder(hint: TokenTypeHint, preferred: TokenKind): TokenKind[] {
  const first: TokenKind = hint === "access_token" ? "access" : hint === "refresh_token" ? "refresh" : preferred;
  return first === "access" ? ["access", "refresh"] : ["refresh", "access"];
}

export function parseTokenTypeHint(value: string | undefined): TokenTypeHint {
  return value === "access_token" || value === "refresh_token" ? value : undefined;
}
