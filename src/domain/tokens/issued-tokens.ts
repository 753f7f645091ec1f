// Tokens issued, by grant type: the grant dispatch (grants/index.ts issueTokens) reports each
// successful grant here, and observers (the Prometheus counter) subscribe. One place counts,
// whichever endpoint ran the grant (/oauth/token, /auth/login, /auth/refresh).
import type { GrantType } from "../clients/grant-types.ts";

export class IssuedTokens {
  readonly #listeners: Array<(grantType: GrantType) => void> = [];

  onIssued(listener: (grantType: GrantType) => void): void {
    this.#listeners.push(listener);
  }

  issued(grantType: GrantType): void {
    for (const listener of this.#listeners) listener(grantType);
  }
}
