// grant_type=password: RFC 6749 §4.3 (resource owner password credentials). RFC 9700 §2.4
// deprecates it for third parties; Tessera offers it to first-party clients that are allowed it.
import { assertGrantAllowed, grantScope, narrowScopeToUser } from "../domain/clients/clients.ts";
import { BAD_CREDENTIALS } from "../domain/credentials/users.ts";
import { InvalidGrant } from "../domain/errors.ts";
import { tokenResponse, type Grant } from "./grant.ts";

export const passwordGrant: Grant = {
  grantType: "password",
  required: ["username", "password"],
  async handle({ params, client, address, metadata }, services) {
    assertGrantAllowed(client, "password");
    const requested = grantScope(client, params.scope);
    const user = await services.users.authenticate(params.username ?? "", params.password ?? "", { clientId: client.id, address });
    // What the client may have, narrowed to what this user may have.
    const scope = narrowScopeToUser(requested, user.roles, services.config.scopeRoles);
    const start = (passwordHash: string) =>
      services.sessions.start({ userId: user.id, clientId: client.id, scope, passwordHash, refreshTokenTtl: client.refreshTokenTtl, metadata });
    let refresh = await start(user.passwordHash);
    if (!refresh) {
      // The account changed while this login was in flight. Another login's re-hash of this same
      // password (raised ARGON2_*) is no change: checked again against the hash stored now.
      const current = await services.users.recheck(user.id, params.password ?? "");
      if (current) refresh = await start(current.passwordHash);
    }
    if (!refresh) {
      // Reset, changed or disabled while this login was in flight: the change, and the revocation
      // of the user's sessions that came with it, win (the same answer as a wrong password).
      await services.audit.record("login.failed", { userId: user.id, clientId: client.id, details: { reason: "account_changed", address } });
      throw new InvalidGrant(BAD_CREDENTIALS);
    }
    const access = await services.accessTokens.issue({
      subject: user.id,
      clientId: client.id,
      scope,
      sessionId: refresh.session.id,
      roles: user.roles,
      ttl: client.accessTokenTtl,
      statusIdx: refresh.session.statusIdx,
    });
    await services.audit.record("login.succeeded", { userId: user.id, clientId: client.id, sessionId: refresh.session.id });
    return tokenResponse(access, scope, refresh);
  },
};
