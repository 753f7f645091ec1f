// grant_type=refresh_token: RFC 6749 §6, with rotation and reuse detection (RFC 9700 §4.14.2).
import { assertGrantAllowed, narrowScopeToUser } from "../domain/clients/clients.ts";
import { InvalidScope } from "../domain/errors.ts";
import { formatScope, parseScope, scopeTokens } from "../domain/scope.ts";
import { tokenResponse, type Grant } from "./grant.ts";

/** RFC 6749 §6: a refresh may narrow the scope, never widen it. */
function narrowScope(sessionScope: string, requested: string | undefined): string {
  if (requested === undefined || requested.trim() === "") return sessionScope;
  const granted = parseScope(sessionScope);
  const wanted = parseScope(requested);
  const extra = wanted.filter((s) => !granted.includes(s));
  if (extra.length > 0) throw new InvalidScope(`Scope exceeds what the session was granted: ${formatScope(extra).slice(0, 200)}.`);
  return formatScope(wanted);
}

export const refreshTokenGrant: Grant = {
  grantType: "refresh_token",
  required: ["refresh_token"],
  async handle({ params, client }, services) {
    let scope = "";
    const refresh = await services.sessions.rotate(params.refresh_token ?? "", client.id, (session, user) => {
      // After the reuse verdict (a consumed token revokes its session whatever the client may do).
      assertGrantAllowed(client, "refresh_token");
      // RFC 6749 §3.3: every refresh grants what the session was granted, narrowed to what the
      // client and the user may have *now*: a scope taken from the client, or a role taken from
      // the user, is gone from the next access token, and `scope` in the response says so.
      const requested = narrowScope(session.scope, params.scope);
      const clientMay = formatScope(scopeTokens(requested).filter((sc) => client.scopes.includes(sc)));
      scope = narrowScopeToUser(clientMay, user.roles, services.config.scopeRoles);
    });
    const access = await services.accessTokens.issue({
      subject: refresh.session.userId,
      clientId: client.id,
      scope,
      sessionId: refresh.session.id,
      roles: refresh.roles,
      ttl: client.accessTokenTtl,
      // The session's index: every access token of the session shares its status list bit.
      statusIdx: refresh.session.statusIdx,
    });
    return tokenResponse(access, scope, refresh);
  },
  // Client authentication failed: a consumed refresh token in the request is still reuse.
  async onClientRejected(params, services, claimedClientId) {
    if (params.refresh_token) await services.sessions.rejectIfReused(params.refresh_token, claimedClientId);
  },
};
