// The grant types this issuer implements (RFC 6749 §4.3 password, §4.4 client_credentials, §6
// refresh_token), named once: the grant modules, client registration and the CLI use them.

export const GRANT_TYPES = ["password", "refresh_token", "client_credentials"] as const;
export type GrantType = (typeof GRANT_TYPES)[number];

export function isGrantType(value: string): value is GrantType {
  return (GRANT_TYPES as readonly string[]).includes(value);
}
