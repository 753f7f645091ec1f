// grant_type -> grant module. Unknown types are unsupported_grant_type (RFC 6749 §5.2).
import { InvalidRequest, UnsupportedGrantType } from "../domain/errors.ts";
import { clientCredentialsGrant } from "./client-credentials.ts";
import type { Services } from "../services.ts";
import type { Grant, GrantRequest, GrantResult } from "./grant.ts";
import { passwordGrant } from "./password.ts";
import { refreshTokenGrant } from "./refresh-token.ts";

export const grants: ReadonlyMap<string, Grant> = new Map([passwordGrant, refreshTokenGrant, clientCredentialsGrant].map((g) => [g.grantType, g]));

export function grantFor(grantType: string | undefined): Grant {
  if (grantType === undefined || grantType === "") throw new InvalidRequest("The grant_type parameter is missing.");
  const grant = grants.get(grantType);
  if (!grant) throw new UnsupportedGrantType(`The grant type ${JSON.stringify(grantType.slice(0, 64))} is not supported.`);
  return grant;
}

export function assertRequired(grant: Grant, params: Readonly<Record<string, string>>): void {
  const missing = grant.required.filter((p) => !params[p]);
  if (missing.length > 0) throw new InvalidRequest(`Missing required parameter: ${missing.join(", ")}.`);
}

/** Runs `grant` and counts what it issued: every endpoint that issues tokens comes through here. */
export async function issueTokens(grant: Grant, request: GrantRequest, services: Services): Promise<GrantResult> {
  const result = await grant.handle(request, services);
  services.issuedTokens.issued(grant.grantType);
  return result;
}

export type { Grant, GrantRequest, GrantResult, TokenResponse } from "./grant.ts";
