// grant_type=client_credentials: RFC 6749 §4.4. A confidential client gets an access token for
// itself (sub = client_id), no refresh token (§4.4.3). The audience comes from the RFC 8707
// `resource` parameter (or `audience`) when the client is allowed it.
import { assertGrantAllowed, grantScope } from "../domain/clients/clients.ts";
import { InvalidRequest, OAuthError, UnauthorizedClient } from "../domain/errors.ts";
import { tokenResponse, type Grant } from "./grant.ts";

/** RFC 8707 §2: the requested resource is not one this client may get tokens for. */
class InvalidTarget extends OAuthError {
  constructor(description: string) {
    super("invalid_target", 400, description);
  }
}

export const clientCredentialsGrant: Grant = {
  grantType: "client_credentials",
  required: [],
  async handle({ params, client }, services) {
    // §4.4: only confidential clients; a public client cannot prove who it is.
    if (client.type !== "confidential") throw new UnauthorizedClient("Public clients may not use the client_credentials grant.");
    assertGrantAllowed(client, "client_credentials");
    if (params.resource !== undefined && params.audience !== undefined && params.resource !== params.audience) {
      throw new InvalidRequest("Send either resource or audience, not both.");
    }
    const requested = params.resource ?? params.audience;
    // A client with no audiences of its own gets the issuer's default audience.
    const allowed = client.audiences.length > 0 ? client.audiences : [services.config.accessTokenAudience];
    if (requested !== undefined && !allowed.includes(requested)) {
      throw new InvalidTarget("This client may not get tokens for the requested resource.");
    }
    const audience = requested ?? allowed[0]!;
    const scope = grantScope(client, params.scope);
    const access = await services.accessTokens.issue({
      subject: client.id,
      clientId: client.id,
      scope,
      audience,
      ttl: client.accessTokenTtl,
      // An index of its own: RFC 7009 revocation sets this token's bit alone.
      statusIdx: await services.statusIndices.allocate(),
    });
    return tokenResponse(access, scope);
  },
};
