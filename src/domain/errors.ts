// Protocol errors. Each carries the RFC 6749 §5.2 `error` code and the HTTP status; the HTTP
// layer maps them in one error handler. Descriptions are written for clients: never internals.

export type OAuthErrorCode =
  | "invalid_request"
  | "invalid_client"
  | "invalid_grant"
  | "unauthorized_client"
  | "unsupported_grant_type"
  | "invalid_scope"
  | "access_denied"
  | "server_error"
  | "temporarily_unavailable";

export class OAuthError extends Error {
  /** extra response headers, e.g. WWW-Authenticate or Retry-After */
  readonly headers: Record<string, string>;
  constructor(
    readonly error: OAuthErrorCode | string,
    readonly status: number,
    readonly description: string,
    headers: Record<string, string> = {},
  ) {
    super(description);
    this.name = "OAuthError";
    this.headers = headers;
  }
}

/** RFC 6749 §5.2: missing/invalid/duplicated parameter, malformed request -> 400 */
export class InvalidRequest extends OAuthError {
  constructor(description: string) {
    super("invalid_request", 400, description);
  }
}

/**
 * A request member with a bad value (the admin API, and the operator CLI's flags): 400
 * invalid_request naming the field at fault (`field`, e.g. "grant_types", "cursor").
 */
export class InvalidField extends InvalidRequest {
  constructor(
    readonly field: string,
    description: string,
  ) {
    super(description);
  }
}

/** RFC 6749 §5.2: client authentication failed -> 401 (WWW-Authenticate when Basic was used) */
export class InvalidClient extends OAuthError {
  constructor(description = "Client authentication failed.", headers: Record<string, string> = {}) {
    super("invalid_client", 401, description, headers);
  }
}

/** RFC 6749 §5.2: grant (credentials, refresh token) invalid, expired or revoked -> 400 */
export class InvalidGrant extends OAuthError {
  constructor(description: string) {
    super("invalid_grant", 400, description);
  }
}

export class UnauthorizedClient extends OAuthError {
  constructor(description: string) {
    super("unauthorized_client", 400, description);
  }
}

export class UnsupportedGrantType extends OAuthError {
  constructor(description: string) {
    super("unsupported_grant_type", 400, description);
  }
}

export class InvalidScope extends OAuthError {
  constructor(description: string) {
    super("invalid_scope", 400, description);
  }
}

/** The server is overloaded or a dependency (the database) is down: retry later. */
export class TemporarilyUnavailable extends OAuthError {
  constructor(description = "The service is temporarily unavailable; retry later.", retryAfterSeconds = 5) {
    super("temporarily_unavailable", 503, description, { "retry-after": String(retryAfterSeconds) });
  }
}

/** Non-OAuth endpoints (registration, cookie endpoints) reuse the same JSON error shape. */
export class Conflict extends OAuthError {
  constructor(description: string) {
    super("conflict", 409, description);
  }
}

export class NotFound extends OAuthError {
  constructor(description: string) {
    super("not_found", 404, description);
  }
}

export class Forbidden extends OAuthError {
  constructor(error: string, description: string) {
    super(error, 403, description);
  }
}

export class Unauthorized extends OAuthError {
  constructor(error: string, description: string) {
    super(error, 401, description);
  }
}

/**
 * Too many requests from one address (rate limits): 429 with Retry-After (RFC 6585 §4). The
 * error code is `slow_down`, registered for token endpoint responses (RFC 8628 §3.5, OAuth
 * Extensions Error registry), and used in the same shape on every endpoint.
 */
export class TooManyRequests extends OAuthError {
  constructor(retryAfterSeconds: number) {
    const seconds = Math.max(1, Math.ceil(retryAfterSeconds));
    super("slow_down", 429, `Too many requests from this address; retry in ${seconds} second${seconds === 1 ? "" : "s"}.`, {
      "retry-after": String(seconds),
    });
  }
}
