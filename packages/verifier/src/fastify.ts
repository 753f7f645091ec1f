// Bearer-token authentication for Fastify resource servers (RFC 6750), on top of the verifier.
//
//   import bearerAuth, { authenticate, requireScope } from "@tessera/verifier/fastify";
//   await app.register(bearerAuth, { verifier, realm: "orders" });
//   app.get("/orders", { preHandler: [requireScope("orders:read")] }, async (req) => req.auth!.sub);
//
// The answers (400 / 401 / 403 / 503 and their WWW-Authenticate challenges) are bearer.ts's,
// shared with the Express middleware. The guards check what the plugin verified for the request
// (bearer.ts records it), never request.auth as such: another hook may set that, and it is no
// proof; a guard verifies the request's own token whatever request.auth holds.
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import fp from "fastify-plugin";
import {
  authenticateRequest,
  bearerState,
  forgetAuthentication,
  inactiveRefusal,
  roleCheck,
  scopeCheck,
  type BearerAuthState,
  type BearerOptions,
  type BearerReply,
  type ClaimsCheck,
  type Refusal,
  verifiedClaims,
} from "./bearer.ts";
import { hasRole, hasScope, TokenVerificationError, type AccessTokenClaims } from "./index.ts";

export interface BearerAuthOptions extends BearerOptions {
  /**
   * Authenticate every route registered after the plugin (in the same encapsulation context and
   * below); a route opts out with `config: { bearerAuth: false }`. Default false: routes opt in
   * with `preHandler: authenticate` or a guard.
   */
  protectAll?: boolean;
}

export type { BearerAuthState };

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

const send = (reply: FastifyReply, r: BearerReply): FastifyReply => reply.code(r.status).headers(r.headers).send(r.body);

function refuse(request: FastifyRequest, reply: FastifyReply, r: Refusal): FastifyReply {
  if (r.log) request.log[r.log.level](r.log.fields, r.log.message);
  return send(reply, r.reply);
}

function stateOf(request: FastifyRequest): BearerAuthState {
  const state = request.server.tesseraBearerAuth;
  if (!state) throw new Error("the tessera bearer-auth plugin is not registered in this Fastify context");
  return state;
}

/**
 * Verifies the bearer token and sets request.auth, or answers 400/401/503. A token the plugin
 * already verified for the request is not verified twice; a request.auth set by anything else is
 * ignored (and replaced).
 */
export const authenticate: BearerPreHandler = async function authenticate(request, reply) {
  const result = await authenticateRequest(stateOf(request), request, {
    method: request.method,
    authorization: request.headers.authorization,
    contentType: request.headers["content-type"],
    query: request.query,
    body: request.body,
  });
  if ("reply" in result) return refuse(request, reply, result);
  request.auth = result.claims;
};

/** The claims the plugin verified for the request (authenticating it if need be); undefined once refused. */
async function ensureAuthenticated(this: FastifyInstance, request: FastifyRequest, reply: FastifyReply): Promise<AccessTokenClaims | undefined> {
  await authenticate.call(this, request, reply);
  return reply.sent ? undefined : verifiedClaims(request, stateOf(request).verifier);
}

function claimsGuard(check: ClaimsCheck): BearerPreHandler {
  return async function claimsGuardHook(request, reply) {
    const claims = await ensureAuthenticated.call(this, request, reply);
    if (!claims) return reply;
    const refusal = check(stateOf(request).realm, claims);
    if (refusal) return send(reply, refusal);
  };
}

/** Authenticates, then requires every listed scope (403 insufficient_scope otherwise). */
export const requireScope = (...scopes: string[]): BearerPreHandler => claimsGuard(scopeCheck(scopes));

/** Authenticates, then requires every listed role from the token's `roles` claim (403 otherwise). */
export const requireRole = (...roles: string[]): BearerPreHandler => claimsGuard(roleCheck(roles));

/**
 * Authenticates, then asks the issuer (RFC 7662 introspection) whether the token is still
 * active, so a revocation is seen at once rather than at expiry. Costs one request to the
 * issuer per call: use it on the routes that need it. Needs the plugin's `introspector`.
 */
export function requireActive(): BearerPreHandler {
  return async function requireActiveHook(request, reply) {
    if (!(await ensureAuthenticated.call(this, request, reply))) return reply;
    const refusal = await inactiveRefusal(stateOf(request), request);
    if (!refusal) return;
    if (refusal.reply.status === 401) {
      forgetAuthentication(request);
      request.auth = null;
    }
    return refuse(request, reply, refusal);
  };
}

// ---- the plugin ----

const plugin: FastifyPluginAsync<BearerAuthOptions> = async (app, opts) => {
  app.decorate("tesseraBearerAuth", bearerState("bearer-auth", opts));
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
