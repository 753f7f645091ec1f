// Bearer-token authentication (RFC 6750) for any framework: the Fastify plugin (fastify.ts) and
// the Express middleware (express.ts) are thin adapters over this module, so both answer alike.
//
// Answers, per RFC 6750 §3 and §3.1:
// - no credentials:          401, WWW-Authenticate: Bearer realm="..."           (no error code)
// - a bad or expired token:  401, WWW-Authenticate: Bearer realm="...", error="invalid_token", ...
//                            (also a revoked one, and one whose status claim cannot be checked)
// - a malformed request:     400, WWW-Authenticate: Bearer realm="...", error="invalid_request":
//                            a broken Authorization header, a token sent in more than one way,
//                            a repeated or empty access_token parameter, or a token in the query
//                            string or form body when that method is not enabled (an unsupported
//                            parameter: §3.1 says 400 for every invalid_request)
// - too little scope / role: 403, error="insufficient_scope", scope="..."
// - the key set, the status list or the introspection endpoint unavailable: 503
//   temporarily_unavailable with Retry-After (the token may be fine: the client should retry,
//   not throw its token away)
// The status follows from the error code (STATUS below), so the two cannot drift apart.
// Bodies are JSON {error, error_description}. A bad token never produces a 500.
import { hasRole, hasScope, IntrospectionError, type AccessTokenClaims, type Introspector, type Verifier } from "./index.ts";
import { TokenVerificationError, UNAVAILABLE_CODES } from "./errors.ts";

/** Options common to the Fastify plugin and the Express middleware. */
export interface BearerOptions {
  verifier: Verifier;
  /** needed by requireActive() */
  introspector?: Introspector;
  /** the realm in WWW-Authenticate challenges, default "api" */
  realm?: string;
  /** accept `?access_token=` (RFC 6750 §2.3; leaks into logs and history), default false */
  allowQueryToken?: boolean;
  /** accept `access_token` in a form-encoded body (RFC 6750 §2.2), default false */
  allowBodyToken?: boolean;
}

export interface BearerAuthState {
  verifier: Verifier;
  introspector: Introspector | undefined;
  realm: string;
  allowQueryToken: boolean;
  allowBodyToken: boolean;
}

export function bearerState(who: string, opts: BearerOptions | undefined): BearerAuthState {
  if (!opts || typeof opts.verifier?.verify !== "function") throw new TypeError(`${who}: the \`verifier\` option is required`);
  return {
    verifier: opts.verifier,
    introspector: opts.introspector,
    realm: opts.realm ?? "api",
    allowQueryToken: opts.allowQueryToken === true,
    allowBodyToken: opts.allowBodyToken === true,
  };
}

/** What the adapters send: status, headers, JSON body. */
export interface BearerReply {
  status: 400 | 401 | 403 | 503;
  headers: Record<string, string>;
  body: { error: string; error_description: string; scope?: string };
}

/** A line for the framework's logger (pino-style: fields, then message). */
export interface LogEntry {
  level: "info" | "warn" | "error";
  fields: Record<string, unknown>;
  message: string;
}

export type Refusal = { reply: BearerReply; log?: LogEntry };

// ---- WWW-Authenticate (RFC 6750 §3, RFC 9110 §11.6.1) ----

/** auth-param values are quoted-strings: escape `\` and `"`. */
const quote = (s: string) => `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
/** error_description / scope may only use %x20-21 / %x23-5B / %x5D-7E (RFC 6750 §3). */
const printable = (s: string) => s.replace(/[^\x20\x21\x23-\x5b\x5d-\x7e]/g, "");

type BearerError = "invalid_request" | "invalid_token" | "insufficient_scope";

export interface Challenge {
  /** none: the request had no credentials at all (RFC 6750 §3.1: no error code, 401) */
  error?: BearerError;
  description: string;
  scope?: string;
}

/** RFC 6750 §3.1: invalid_request SHOULD be 400, invalid_token 401, insufficient_scope 403. */
const STATUS: Record<BearerError, 400 | 401 | 403> = { invalid_request: 400, invalid_token: 401, insufficient_scope: 403 };

export function challenge(realm: string, c: Challenge): BearerReply {
  const params = [`realm=${quote(realm)}`];
  if (c.error) {
    params.push(`error=${quote(c.error)}`, `error_description=${quote(printable(c.description))}`);
    if (c.scope !== undefined) params.push(`scope=${quote(printable(c.scope))}`);
  }
  return {
    status: c.error ? STATUS[c.error] : 401,
    headers: { "www-authenticate": `Bearer ${params.join(", ")}`, "cache-control": "no-store" },
    body: { error: c.error ?? "unauthorized", error_description: c.description, ...(c.scope !== undefined && { scope: c.scope }) },
  };
}

function unavailable(description: string): BearerReply {
  return {
    status: 503,
    headers: { "retry-after": "5", "cache-control": "no-store" },
    body: { error: "temporarily_unavailable", error_description: description },
  };
}

// ---- Bearer extraction (RFC 6750 §2) ----

/** What the extraction reads from a request, whatever the framework. */
export interface BearerRequest {
  method: string;
  authorization: unknown;
  contentType: unknown;
  /** the parsed query string (an object), if any */
  query: unknown;
  /** the parsed body, if any */
  body: unknown;
}

/** RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token */
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;
const SCHEME = /^Bearer(?: |$)/i;

type Extracted = { token: string } | { none: true } | { refuse: Challenge };

/** A token parameter (query or form body): exactly one non-empty string. */
function tokenParameter(container: unknown, allowed: boolean, where: string, found: string[]): Challenge | undefined {
  if (!container || typeof container !== "object" || !Object.hasOwn(container, "access_token")) return undefined;
  // RFC 6750 §3.1: an unsupported parameter is invalid_request, answered with 400.
  if (!allowed) return { error: "invalid_request", description: `access tokens in ${where} are not accepted; use the Authorization header` };
  const v = (container as Record<string, unknown>).access_token;
  if (typeof v !== "string" || v === "") return { error: "invalid_request", description: "exactly one access_token parameter is allowed" };
  found.push(v);
  return undefined;
}

export function extract(request: BearerRequest, state: BearerAuthState): Extracted {
  const found: string[] = [];

  const header = request.authorization;
  if (typeof header === "string" && SCHEME.test(header.trimStart())) {
    const m = BEARER.exec(header.trim());
    if (!m) return { refuse: { error: "invalid_request", description: "the Authorization header must be: Bearer <one token>" } };
    found.push(m[1]!);
  }

  const inQuery = tokenParameter(request.query, state.allowQueryToken, "the query string", found);
  if (inQuery) return { refuse: inQuery };

  if (typeof request.contentType === "string" && /^application\/x-www-form-urlencoded\b/i.test(request.contentType)) {
    // RFC 6750 §2.2 forbids the body method for GET; either way an unsupported parameter (§3.1).
    const allowed = state.allowBodyToken && request.method !== "GET";
    const inBody = tokenParameter(request.body, allowed, "the request body", found);
    if (inBody) return { refuse: inBody };
  }

  if (found.length === 0) return { none: true };
  // RFC 6750 §2: a client MUST NOT use more than one method in a request.
  if (found.length > 1) return { refuse: { error: "invalid_request", description: "the access token was sent in more than one way" } };
  return { token: found[0]! };
}

// ---- authentication and guards ----

/**
 * What this module verified for a request: by which verifier, the claims, and the raw token (for
 * introspection; never logged, never exposed). The adapters' guards read only this, never the
 * framework's `req.auth`, which any other middleware (express-jwt, a session hook...) may set.
 */
interface Authentication {
  verifier: Verifier;
  claims: AccessTokenClaims;
  token: string;
}

const authentications = new WeakMap<object, Authentication>();

/** The claims that `verifier` verified for `request`, if it did. */
export function verifiedClaims(request: object, verifier: Verifier): AccessTokenClaims | undefined {
  const a = authentications.get(request);
  return a?.verifier === verifier ? a.claims : undefined;
}

/** Drops the request's authentication (requireActive, when the issuer says the token is inactive). */
export const forgetAuthentication = (request: object): void => void authentications.delete(request);

export const rawTokenOf = (request: object): string | undefined => authentications.get(request)?.token;

export type Authenticated = { claims: AccessTokenClaims } | Refusal;

/**
 * Extracts and verifies the request's bearer token, and records the result under `request`. The
 * token is extracted every time (each middleware's own RFC 6750 methods apply); a token this
 * state's verifier already verified for the request is not verified again, but one verified by
 * another verifier (another audience, say) is: each bearer-auth middleware decides for itself.
 */
export async function authenticateRequest(state: BearerAuthState, request: object, input: BearerRequest): Promise<Authenticated> {
  const done = authentications.get(request);
  authentications.delete(request);
  const got = extract(input, state);
  if ("refuse" in got) return { reply: challenge(state.realm, got.refuse) };
  // RFC 6750 §3.1: no authentication information, no error code.
  if ("none" in got) return { reply: challenge(state.realm, { description: "this resource needs a bearer access token" }) };
  if (done && done.verifier === state.verifier && done.token === got.token) {
    authentications.set(request, done);
    return { claims: done.claims };
  }
  try {
    const claims = await state.verifier.verify(got.token);
    authentications.set(request, { verifier: state.verifier, claims, token: got.token });
    return { claims };
  } catch (err) {
    return refusalFor(state.realm, err);
  }
}

/** A verification error -> the answer: 503 when the service cannot check tokens, 401 otherwise. */
function refusalFor(realm: string, err: unknown): Refusal {
  if (err instanceof TokenVerificationError && UNAVAILABLE_CODES.has(err.code)) {
    const what = err.code === "jwks_unavailable" ? "the issuer's key set" : "the token's status list";
    return {
      reply: unavailable("access tokens cannot be verified right now; retry later"),
      log: { level: "error", fields: { tokenError: err.code }, message: `cannot verify access tokens: ${what} is unavailable` },
    };
  }
  if (!(err instanceof TokenVerificationError)) {
    return {
      reply: challenge(realm, { error: "invalid_token", description: "the access token is invalid" }),
      log: { level: "warn", fields: { err: { message: (err as Error)?.message } }, message: "unexpected token verification error" },
    };
  }
  return {
    reply: challenge(realm, { error: "invalid_token", description: err.message }),
    log: { level: "info", fields: { tokenError: err.code }, message: "bearer token rejected" },
  };
}

const TOKEN_CHARS = /^[\x21\x23-\x5b\x5d-\x7e]+$/; // RFC 6749 §3.3 scope-token

function checkNames(kind: string, names: string[]): void {
  if (names.length === 0) throw new TypeError(`${kind}: name at least one`);
  for (const n of names) {
    if (typeof n !== "string" || !TOKEN_CHARS.test(n)) throw new TypeError(`${kind}: ${JSON.stringify(n)} is not a valid name`);
  }
}

/** A guard on the verified claims: undefined lets the request through, a reply refuses it. */
export type ClaimsCheck = (realm: string, claims: AccessTokenClaims) => BearerReply | undefined;

/** requireScope: every listed scope, or 403 insufficient_scope with the scopes in the challenge. */
export function scopeCheck(scopes: string[]): ClaimsCheck {
  checkNames("requireScope", scopes);
  return (realm, claims) =>
    scopes.every((s) => hasScope(claims, s))
      ? undefined
      : challenge(realm, {
          error: "insufficient_scope",
          description: `this resource needs the scope${scopes.length > 1 ? "s" : ""} ${scopes.join(" ")}`,
          scope: scopes.join(" "),
        });
}

/** requireRole: every listed role from the token's `roles` claim, or 403. */
export function roleCheck(roles: string[]): ClaimsCheck {
  checkNames("requireRole", roles);
  // RFC 6750 has no "insufficient role": insufficient_scope is the closest standard code.
  return (realm, claims) =>
    roles.every((r) => hasRole(claims, r))
      ? undefined
      : challenge(realm, { error: "insufficient_scope", description: `this resource needs the role${roles.length > 1 ? "s" : ""} ${roles.join(" ")}` });
}

/**
 * requireActive: asks the issuer (RFC 7662) whether the authenticated request's token is still
 * active. Undefined if it is; a 401 if not; a 503 if the endpoint cannot answer.
 */
export async function inactiveRefusal(state: BearerAuthState, request: object): Promise<Refusal | undefined> {
  if (!state.introspector) throw new Error("requireActive() needs the bearer-auth `introspector` option");
  const token = rawTokenOf(request);
  if (!token) throw new Error("requireActive(): the request was not authenticated by the bearer-auth middleware");
  let active: boolean;
  try {
    active = (await state.introspector.introspect(token, "access_token")).active === true;
  } catch (err) {
    return {
      reply: unavailable("the access token cannot be checked right now; retry later"),
      log: {
        level: "error",
        fields: { introspectionError: err instanceof IntrospectionError ? err.message : "unexpected error" },
        message: "token introspection failed",
      },
    };
  }
  if (active) return undefined;
  return {
    reply: challenge(state.realm, { error: "invalid_token", description: "the access token is no longer active" }),
    log: { level: "info", fields: { tokenError: "inactive" }, message: "bearer token rejected" },
  };
}
