// Security headers for a JSON API (OWASP REST Security Cheat Sheet, "Security Headers") on every
// response of the Fastify pipeline, errors and 404s included, and on the JWKS fast path (app.ts),
// which answers before that pipeline. The header values are computed once per configuration by
// helmet itself (the code @fastify/helmet runs, with the options below) and then set by one
// synchronous hook: @fastify/helmet rebuilds its middleware from the options on every request
// (two hooks, one async), which cost the token endpoint about a tenth of its throughput here
// for headers that never change. One source, so the pipeline and the fast path cannot drift.
import type { IncomingMessage, ServerResponse } from "node:http";
import { createRequire } from "node:module";
import type { FastifyHelmetOptions } from "@fastify/helmet";
import type { FastifyInstance } from "fastify";
import fp from "fastify-plugin";
import type { Config } from "../../config.ts";

// Omit<> would flatten helmet's either-or option types; the two plugin-only keys stay unset.
type HelmetOptions = FastifyHelmetOptions;
type Middleware = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void;

/**
 * Who may read a response (Fetch, Cross-Origin-Resource-Policy): "cross-origin" for the public
 * documents (JWKS, RFC 8414 metadata) that services and SPAs on other origins fetch; "same-origin"
 * for everything else.
 */
export type ResourcePolicy = "same-origin" | "cross-origin";

/** Route option for the public documents: readable from other origins. */
export const PUBLIC_DOCUMENT = { config: { resourcePolicy: "cross-origin" as ResourcePolicy } };

/** What the public documents change against the global options. */
const CROSS_ORIGIN: HelmetOptions = { crossOriginResourcePolicy: { policy: "cross-origin" } };

declare module "fastify" {
  interface FastifyContextConfig {
    /** Cross-Origin-Resource-Policy of the route's responses (default same-origin) */
    resourcePolicy?: ResourcePolicy;
  }
}

/** The options every response gets. */
export function helmetOptions(config: Pick<Config, "issuer">): HelmetOptions {
  return {
    // CSP Level 3: a JSON response loads nothing and may be framed by nobody. No other
    // directive: there is no HTML to protect, only a document that must never be rendered.
    contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
    // RFC 7034, for browsers that predate frame-ancestors.
    xFrameOptions: { action: "deny" },
    // Fetch §X-Content-Type-Options: a JSON body is never sniffed into script or CSS.
    xContentTypeOptions: true,
    // Referrer Policy §3: URLs of this API never leak to where a response links.
    referrerPolicy: { policy: "no-referrer" },
    // RFC 6797 §7.2: promised only when the issuer is served over TLS (a browser ignores it over
    // plain http anyway); one year, the issuer host's subdomains included; no preload.
    strictTransportSecurity: URL.canParse(config.issuer) && new URL(config.issuer).protocol === "https:" ? { maxAge: 31536000, includeSubDomains: true, preload: false } : false,
    crossOriginResourcePolicy: { policy: "same-origin" },
    // Headers for HTML documents or retired browsers only: not sent by an API.
    crossOriginOpenerPolicy: false,
    crossOriginEmbedderPolicy: false,
    originAgentCluster: false,
    xDnsPrefetchControl: false,
    xDownloadOptions: false,
    xPermittedCrossDomainPolicies: false,
    xPoweredBy: false,
    xXssProtection: false,
  };
}

// The helmet that @fastify/helmet itself runs (its own dependency, resolved from its location),
// so the prepared headers come from the same code as the pipeline's.
const requireFromPlugin = createRequire(createRequire(import.meta.url).resolve("@fastify/helmet"));
const helmet = requireFromPlugin("helmet") as (options: HelmetOptions) => Middleware;

const cache = new WeakMap<object, Map<ResourcePolicy, Readonly<Record<string, string>>>>();

/** The headers helmet sets with these options, lower-cased names; computed once per config. */
export function securityHeadersFor(config: Pick<Config, "issuer">, resources: ResourcePolicy): Readonly<Record<string, string>> {
  let byPolicy = cache.get(config);
  if (!byPolicy) cache.set(config, (byPolicy = new Map()));
  const known = byPolicy.get(resources);
  if (known) return known;
  // Route options over the global ones, the way @fastify/helmet merges them.
  const options: HelmetOptions = helmetOptions(config);
  if (resources === "cross-origin") Object.assign(options, CROSS_ORIGIN);
  const headers: Record<string, string> = {};
  const res = {
    setHeader(name: string, value: string | number | readonly string[]) {
      headers[name.toLowerCase()] = String(value);
    },
    removeHeader(name: string) {
      delete headers[name.toLowerCase()];
    },
  };
  helmet(options)({} as IncomingMessage, res as unknown as ServerResponse, (err) => {
    if (err) throw err;
  });
  const frozen = Object.freeze(headers);
  byPolicy.set(resources, frozen);
  return frozen;
}

async function securityHeadersPlugin(app: FastifyInstance, opts: { config: Pick<Config, "issuer"> }): Promise<void> {
  const sameOrigin = securityHeadersFor(opts.config, "same-origin");
  const crossOrigin = securityHeadersFor(opts.config, "cross-origin");
  app.addHook("onRequest", (request, reply, done) => {
    reply.headers(request.routeOptions.config?.resourcePolicy === "cross-origin" ? crossOrigin : sameOrigin);
    done();
  });
}

/** Register first, before any hook that may answer (so its replies carry the headers too). */
export const securityHeaders = fp(securityHeadersPlugin, { name: "tessera-security-headers", fastify: "5.x" });
