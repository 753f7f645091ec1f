// The scope grammar of RFC 6749 §3.3, written once:
//   scope       = scope-token *( SP scope-token )
//   scope-token = 1*( %x21 / %x23-5B / %x5D-7E )

const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;

export function isScopeToken(s: string): boolean {
  return SCOPE_TOKEN.test(s);
}

/** The scope tokens of a scope string, in order (empty members are ignored). */
export function scopeTokens(scope: string | undefined): string[] {
  return (scope ?? "").split(" ").filter(Boolean);
}

/** The scope tokens of a requested scope, each once, in order. */
export function parseScope(scope: string | undefined): string[] {
  return [...new Set(scopeTokens(scope))];
}

export function formatScope(tokens: readonly string[]): string {
  return tokens.join(" ");
}
