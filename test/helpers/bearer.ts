// What a resource server's client sees (RFC 6750): shared by the Fastify and Express guard tests.

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/** WWW-Authenticate auth-params as a map (values unquoted); scheme "" when there is no header. */
export function challengeParams(header: unknown): { scheme: string; params: Record<string, string> } {
  const h = typeof header === "string" ? header : "";
  const scheme = h.split(" ", 1)[0]!;
  const params: Record<string, string> = {};
  for (const m of h.slice(scheme.length).matchAll(/\s*([a-z_]+)="((?:[^"\\]|\\.)*)"\s*,?/g)) {
    params[m[1]!] = m[2]!.replace(/\\(.)/g, "$1");
  }
  return { scheme, params };
}

/** The claims the kit gives for a token from the password grant of the "web" client. */
export const passwordGrantClaims = (iss: string, user: { userId: string; scope: string }) => ({
  iss,
  sub: user.userId,
  client_id: "web",
  scope: user.scope,
  scopes: user.scope.split(" "),
  roles: [],
});
