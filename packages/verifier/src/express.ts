// Bearer-token authentication for Express resource servers (Express 4 and 5), on top of the
// verifier. The same answers as the Fastify plugin (bearer.ts): 400 invalid_request, 401
// invalid_token, 403 insufficient_scope, 503 when tokens cannot be checked right now.
//
//   import { bearerAuth, requireScope, requireRole, requireActive } from "@tessera/verifier/express";
//   const auth = bearerAuth({ verifier, realm: "orders" });
//   app.get("/orders", auth, requireScope("orders:read"), (req, res) => res.json({ sub: req.auth!.sub }));
//
// bearerAuth() sets req.auth; the guards run after it in the chain. They check what a Tessera
// bearerAuth() verified for the request, never req.auth as such: other middleware (express-jwt,
// express-oauth2-jwt-bearer, a session layer) sets req.auth too, and that is no proof. A guard
// with no Tessera bearerAuth() before it is a programming error, passed to Express (a 500). Two
// bearerAuth() with different verifiers (audiences) in one chain each verify the token. A body
// parser (express.urlencoded()) is needed only with allowBodyToken. Written against node:http's
// request and response, so it needs no Express import and works with Express 4, 5 (and Connect).
import type { IncomingMessage, ServerResponse } from "node:http";
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
  type LogEntry,
  type Refusal,
  verifiedClaims,
} from "./bearer.ts";
import { hasRole, hasScope, TokenVerificationError, type AccessTokenClaims } from "./index.ts";

declare global {
  // Express's own Request type (@types/express), augmented: `req.auth` in every handler.
  namespace Express {
    interface Request {
      /** the verified access token's claims, set by bearerAuth() */
      auth?: AccessTokenClaims;
    }
  }
}

export interface ExpressBearerOptions extends BearerOptions {
  /** receives what the middleware would log (refusals at info, outages at error); default: nothing */
  log?: (entry: LogEntry) => void;
}

/** The parts of an Express request the middleware uses (Express's Request has them all). */
export type BearerRequestLike = IncomingMessage & { query?: unknown; body?: unknown; auth?: AccessTokenClaims };
export type NextLike = (err?: unknown) => void;
export type BearerMiddleware = (req: BearerRequestLike, res: ServerResponse, next: NextLike) => void;

interface Context {
  state: BearerAuthState;
  log: ((entry: LogEntry) => void) | undefined;
}

/**
 * The bearerAuth() that authenticated a request last (its realm, log and introspector serve the
 * guards after it); set only once it has verified the token (bearer.ts records the claims).
 */
const contexts = new WeakMap<object, Context>();

function send(res: ServerResponse, r: BearerReply): void {
  res.statusCode = r.status;
  for (const [name, value] of Object.entries(r.headers)) res.setHeader(name, value);
  res.setHeader("content-type", "application/json; charset=utf-8");
  res.end(JSON.stringify(r.body));
}

function refuse(ctx: Context, res: ServerResponse, r: Refusal): void {
  if (r.log) ctx.log?.(r.log);
  send(res, r.reply);
}

/**
 * Verifies the bearer token and sets req.auth, or answers 400/401/503. A request whose token this
 * verifier already verified is not verified twice; a req.auth set by anything else is ignored
 * (and replaced).
 */
export function bearerAuth(options: ExpressBearerOptions): BearerMiddleware {
  const ctx: Context = { state: bearerState("bearerAuth", options), log: options?.log };
  return function tesseraBearerAuth(req, res, next) {
    contexts.delete(req);
    const input = {
      method: req.method ?? "GET",
      authorization: req.headers.authorization,
      contentType: req.headers["content-type"],
      query: req.query,
      body: req.body,
    };
    authenticateRequest(ctx.state, req, input).then((result) => {
      if ("reply" in result) return refuse(ctx, res, result);
      contexts.set(req, ctx);
      req.auth = result.claims;
      next();
    }, next);
  };
}

/** A guard: after bearerAuth(), `check` refuses or lets the request through. */
function guard(name: string, check: (ctx: Context, req: BearerRequestLike & { auth: AccessTokenClaims }) => Promise<Refusal | undefined>): BearerMiddleware {
  return function tesseraGuard(req, res, next) {
    const ctx = contexts.get(req);
    // What bearerAuth() verified, not whatever req.auth holds now.
    const claims = ctx && verifiedClaims(req, ctx.state.verifier);
    if (!ctx || !claims) return next(new Error(`${name}: bearerAuth() must come before it in the middleware chain`));
    // The handler sees the claims the guard checked, even if a middleware in between replaced them.
    req.auth = claims;
    check(ctx, req as BearerRequestLike & { auth: AccessTokenClaims }).then((refusal) => {
      if (refusal) return refuse(ctx, res, refusal);
      next();
    }, next);
  };
}

const claimsGuard = (name: string, check: ClaimsCheck): BearerMiddleware =>
  guard(name, async (ctx, req) => {
    const reply = check(ctx.state.realm, req.auth);
    return reply && { reply };
  });

/** Requires every listed scope (403 insufficient_scope otherwise). */
export const requireScope = (...scopes: string[]): BearerMiddleware => claimsGuard("requireScope", scopeCheck(scopes));

/** Requires every listed role from the token's `roles` claim (403 otherwise). */
export const requireRole = (...roles: string[]): BearerMiddleware => claimsGuard("requireRole", roleCheck(roles));

/**
 * Asks the issuer (RFC 7662 introspection) whether the token is still active: one request to
 * the issuer per call, for the routes that must see a revocation at once. Needs bearerAuth()'s
 * `introspector`.
 */
export function requireActive(): BearerMiddleware {
  return guard("requireActive", async (ctx, req) => {
    const refusal = await inactiveRefusal(ctx.state, req);
    if (refusal?.reply.status === 401) {
      forgetAuthentication(req);
      delete (req as BearerRequestLike).auth;
    }
    return refusal;
  });
}

export default bearerAuth;
export { hasRole, hasScope, TokenVerificationError, type AccessTokenClaims, type LogEntry };
