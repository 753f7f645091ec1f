// Bearer-token authentication for Fastify resource servers (RFC 6750), on top of the verifier.
//
//   import bearerAuth, { authenticate, requireScope } from "tessera/verifier/fastify";
//   await app.register(bearerAuth, { verifier, realm: "orders" });
//   app.get("/orders", { preHandler: [requireScope("orders:read")] }, async (req) => req.auth!.sub);
//
// Answers, per RFC 6750 §3 and §3.1:
// - no credentials:          401, WWW-Authenticate: Bearer realm="..."           (no error code)
// - a bad or expired token:  401, WWW-Authenticate: Bearer realm="...", error="invalid_token", ...
// - a malformed request:     400, WWW-Authenticate: Bearer realm="...", error="invalid_request":
//                            a broken Authorization header, a token sent in more than one way,
//                            a repeated or empty access_token parameter, or a token in the query
//                            string or form body when that method is not enabled (an unsupported
//                            parameter: §3.1 says 400 for every invalid_request)
// - too little scope / role: 403, error="insufficient_scope", scope="..."
// - the key set or the introspection endpoint unreachable: 503 temporarily_unavailable (the token
//   may be fine: the client should retry, not throw its token away)
// The status follows from the error code (challenge() below), so the two cannot drift apart.
// Bodies are JSON {error, error_description}. A bad token never produces a 500.
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import fp from "fastify-plugin";
import {
  hasRole,
  hasScope,
  IntrospectionError,
  TokenVerificationError,
  type AccessTokenClaims,
  type Introspector,
  type Verifier,
} from "./index.ts";

export interface BearerAuthOptions {
  verifier: Verifier;
  /** needed by requireActive() */
  introspector?: Introspector;
  /** the realm in WWW-Authenticate challenges, default "api" */
  realm?: string;
  /** accept `?access_token=` (RFC 6750 §2.3; leaks into logs and history), default false */
  allowQueryToken?: boolean;
  /** accept `access_token` in a form-encoded body (RFC 6750 §2.2), default false */
  allowBodyToken?: boolean;
  /**
   * Authenticate every route registered after the plugin (in the same encapsulation context and
   * below); a route opts out with `config: { bearerAuth: false }`. Default false: routes opt in
   * with `preHandler: authenticate` or a guard.
   */
  protectAll?: boolean;
}

export interface BearerAuthState {
  verifier: Verifier;
  introspector: Introspector | undefined;
  realm: string;
  allowQueryToken: boolean;
  allowBodyToken: boolean;
}

declare module "fastify" {
  interface FastifyRequest {
    /** the verified access token's claims; null until authenticated (or on public routes) */
    auth: AccessTokenClaims | null;
  }
  interface FastifyInstance {
    tesseraBearerAuth: BearerAuthState;
  }
  interface FastifyContextConfig {
    /** false: this route is public even with protectAll */
    bearerAuth?: boolean;
  }
}

export type BearerPreHandler = (this: FastifyInstance, request: FastifyRequest, reply: FastifyReply) => Promise<unknown>;

/** The raw token of an authenticated request, for introspection; never logged, never exposed. */
const rawTokens = new WeakMap<FastifyRequest, string>();

// ---- WWW-Authenticate (RFC 6750 §3, RFC 9110 §11.6.1) ----

/** auth-param values are quoted-strings: escape `\` and `"`. */
const quote = (s: string) => `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
/** error_description / scope may only use %x20-21 / %x23-5B / %x5D-7E (RFC 6750 §3). */
const printable = (s: string) => s.replace(/[^\x20\x21\x23-\x5b\x5d-\x7e]/g, "");

type BearerError = "invalid_request" | "invalid_token" | "insufficient_scope";

interface Challenge {
  /** none: the request had no credentials at all (RFC 6750 §3.1: no error code, 401) */
  error?: BearerError;
  description: string;
  scope?: string;
}

/** RFC 6750 §3.1: invalid_request SHOULD be 400, invalid_token 401, insufficient_scope 403. */
const STATUS: Record<BearerError, 400 | 401 | 403> = { invalid_request: 400, invalid_token: 401, insufficient_scope: 403 };

function challenge(reply: FastifyReply, state: BearerAuthState, c: Challenge): FastifyReply {
  const params = [`realm=${quote(state.realm)}`];
  if (c.error) {
    params.push(`error=${quote(c.error)}`, `error_description=${quote(printable(c.description))}`);
    if (c.scope !== undefined) params.push(`scope=${quote(printable(c.scope))}`);
  }
  return reply
    .code(c.error ? STATUS[c.error] : 401)
    .header("www-authenticate", `Bearer ${params.join(", ")}`)
    .header("cache-control", "no-store")
    .send({ error: c.error ?? "unauthorized", error_description: c.description, ...(c.scope !== undefined && { scope: c.scope }) });
}

function unavailable(reply: FastifyReply, description: string): FastifyReply {
  return reply
    .code(503)
    .header("retry-after", "5")
    .header("cache-control", "no-store")
    .send({ error: "temporarily_unavailable", error_description: description });
}

function stateOf(request: FastifyRequest): BearerAuthState {
  const state = request.server.tesseraBearerAuth;
  if (!state) throw new Error("the tessera bearer-auth plugin is not registered in this Fastify context");
  return state;
}

// ---- Bearer extraction (RFC 6750 §2) ----

/** RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token */
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;
const SCHEME = /^Bearer(?: |$)/i;

type Extracted = { token: string } | { none: true } | { refuse: Challenge };

function extract(request: FastifyRequest, state: BearerAuthState): Extracted {
  const found: string[] = [];

  const header = request.headers.authorization;
  if (typeof header === "string" && SCHEME.test(header.trimStart())) {
    const m = BEARER.exec(header.trim());
    if (!m) {
      return {
        refuse: { error: "invalid_request", description: "the Authorization header must be: Bearer <one token>" },
      };
    }
    found.push(m[1]!);
  }

  const query = request.query as Record<string, unknown> | undefined;
  if (query && typeof query === "object" && Object.hasOwn(query, "access_token")) {
    if (!state.allowQueryToken) {
      // RFC 6750 §3.1: an unsupported parameter is invalid_request, answered with 400.
      return {
        refuse: {
          error: "invalid_request",
          description: "access tokens in the query string are not accepted; use the Authorization header",
        },
      };
    }
    const v = query.access_token;
    if (typeof v !== "string" || v === "") {
      return { refuse: { error: "invalid_request", description: "exactly one access_token parameter is allowed" } };
    }
    found.push(v);
  }

  const contentType = request.headers["content-type"];
  const body = request.body as Record<string, unknown> | undefined;
  if (
    typeof contentType === "string" &&
    /^application\/x-www-form-urlencoded\b/i.test(contentType) &&
    body &&
    typeof body === "object" &&
    Object.hasOwn(body, "access_token")
  ) {
    if (!state.allowBodyToken || request.method === "GET") {
      // RFC 6750 §2.2 forbids the body method for GET; either way an unsupported parameter (§3.1).
      return {
        refuse: {
          error: "invalid_request",
          description: "access tokens in the request body are not accepted; use the Authorization header",
        },
      };
    }
    const v = body.access_token;
    if (typeof v !== "string" || v === "") {
      return { refuse: { error: "invalid_request", description: "exactly one access_token parameter is allowed" } };
    }
    found.push(v);
  }

  if (found.length === 0) return { none: true };
  if (found.length > 1) {
    // RFC 6750 §2: a client MUST NOT use more than one method in a request.
    return { refuse: { error: "invalid_request", description: "the access token was sent in more than one way" } };
  }
  return { token: found[0]! };
}

// ---- preHandlers ----

/**
 * Verifies the bearer token and sets request.auth, or answers 400/401/503. Idempotent: a request
 * already authenticated is not verified twice.
 */
export const authenticate: BearerPreHandler = async function authenticate(request, reply) {
  if (request.auth) return;
  const state = stateOf(request);
  const got = extract(request, state);
  if ("refuse" in got) return challenge(reply, state, got.refuse);
  if ("none" in got) {
    // RFC 6750 §3.1: no authentication information, no error code.
    return challenge(reply, state, { description: "this resource needs a bearer access token" });
  }
  try {
    request.auth = await state.verifier.verify(got.token);
    rawTokens.set(request, got.token);
  } catch (err) {
    if (err instanceof TokenVerificationError && err.code === "jwks_unavailable") {
      request.log.error({ tokenError: err.code }, "cannot verify access tokens: the issuer's key set is unavailable");
      return unavailable(reply, "access tokens cannot be verified right now; retry later");
    }
    const code = err instanceof TokenVerificationError ? err.code : "malformed";
    if (!(err instanceof TokenVerificationError)) request.log.warn({ err: { message: (err as Error)?.message } }, "unexpected token verification error");
    request.log.info({ tokenError: code }, "bearer token rejected");
    const description = err instanceof TokenVerificationError ? err.message : "the access token is invalid";
    return challenge(reply, state, { error: "invalid_token", description });
  }
};

async function ensureAuthenticated(this: FastifyInstance, request: FastifyRequest, reply: FastifyReply): Promise<boolean> {
  if (request.auth) return true;
  await authenticate.call(this, request, reply);
  return request.auth !== null && !reply.sent;
}

const TOKEN_CHARS = /^[\x21\x23-\x5b\x5d-\x7e]+$/; // RFC 6749 §3.3 scope-token

function checkNames(kind: string, names: string[]): void {
  if (names.length === 0) throw new TypeError(`${kind}: name at least one`);
  for (const n of names) {
    if (typeof n !== "string" || !TOKEN_CHARS.test(n)) throw new TypeError(`${kind}: ${JSON.stringify(n)} is not a valid name`);
  }
}

/** Authenticates, then requires every listed scope (403 insufficient_scope otherwise). */
export function requireScope(...scopes: string[]): BearerPreHandler {
  checkNames("requireScope", scopes);
  return async function requireScopeHook(request, reply) {
    if (!(await ensureAuthenticated.call(this, request, reply))) return reply;
    const missing = scopes.filter((s) => !hasScope(request.auth!, s));
    if (missing.length === 0) return;
    return challenge(reply, stateOf(request), {
      error: "insufficient_scope",
      description: `this resource needs the scope${scopes.length > 1 ? "s" : ""} ${scopes.join(" ")}`,
      scope: scopes.join(" "),
    });
  };
}

/** Authenticates, then requires every listed role from the token's `roles` claim (403 otherwise). */
export function requireRole(...roles: string[]): BearerPreHandler {
  checkNames("requireRole", roles);
  return async function requireRoleHook(request, reply) {
    if (!(await ensureAuthenticated.call(this, request, reply))) return reply;
    const missing = roles.filter((r) => !hasRole(request.auth!, r));
    if (missing.length === 0) return;
    // RFC 6750 has no "insufficient role": insufficient_scope is the closest standard code.
    return challenge(reply, stateOf(request), {
      error: "insufficient_scope",
      description: `this resource needs the role${roles.length > 1 ? "s" : ""} ${roles.join(" ")}`,
    });
  };
}

/**
 * Authenticates, then asks the issuer (RFC 7662 introspection) whether the token is still
 * active, so a revocation is seen at once rather than at expiry. Costs one request to the
 * issuer per call: use it on the routes that need it. Needs the plugin's `introspector`.
 */
export function requireActive(): BearerPreHandler {
  return async function requireActiveHook(request, reply) {
    if (!(await ensureAuthenticated.call(this, request, reply))) return reply;
    const state = stateOf(request);
    if (!state.introspector) throw new Error("requireActive() needs the bearer-auth plugin's `introspector` option");
    const token = rawTokens.get(request);
    if (!token) throw new Error("requireActive(): the request was not authenticated by the bearer-auth plugin");
    let active: boolean;
    try {
      active = (await state.introspector.introspect(token, "access_token")).active === true;
    } catch (err) {
      request.log.error(
        { introspectionError: err instanceof IntrospectionError ? err.message : "unexpected error" },
        "token introspection failed",
      );
      return unavailable(reply, "the access token cannot be checked right now; retry later");
    }
    if (active) return;
    request.log.info({ tokenError: "inactive" }, "bearer token rejected");
    request.auth = null;
    return challenge(reply, state, { error: "invalid_token", description: "the access token is no longer active" });
  };
}

// ---- the plugin ----

const plugin: FastifyPluginAsync<BearerAuthOptions> = async (app, opts) => {
  if (!opts || typeof opts.verifier?.verify !== "function") throw new TypeError("bearer-auth: the `verifier` option is required");
  const realm = opts.realm ?? "api";
  const state: BearerAuthState = {
    verifier: opts.verifier,
    introspector: opts.introspector,
    realm,
    allowQueryToken: opts.allowQueryToken === true,
    allowBodyToken: opts.allowBodyToken === true,
  };
  app.decorate("tesseraBearerAuth", state);
  app.decorateRequest("auth", null);
  if (opts.protectAll) {
    app.addHook("preHandler", async function protectAllHook(request, reply) {
      if (request.routeOptions.config?.bearerAuth === false) return;
      return authenticate.call(this, request, reply);
    });
  }
};

export const bearerAuth = fp(plugin, { name: "tessera-bearer-auth", fastify: "5.x" });
export default bearerAuth;
export { hasRole, hasScope, TokenVerificationError, type AccessTokenClaims };
