// The client's address, one rule for every place that needs it (Fastify's request.ip, the JWKS
// fast path's log line, rate limits, the login throttle): behind trusted proxies, walk
// X-Forwarded-For from the right (the hop nearest to us) and take the first address that is not
// a trusted proxy. The left-most entry is whatever the client wrote and is never believed.
import type http from "node:http";
import proxyaddr from "proxy-addr";
import type { Config } from "../config.ts";

export type TrustFn = (addr: string, hop: number) => boolean;

/** TRUST_PROXY as proxy-addr's trust function (also handed to Fastify, so both agree). */
export function trustFunction(trust: Config["trustProxy"]): TrustFn {
  if (trust === false) return () => false;
  // A hop count: the socket's peer is hop 0; trust the first `trust` of them.
  if (typeof trust === "number") return (_addr, hop) => hop < trust;
  return proxyaddr.compile(trust);
}

export function clientAddressOf(trust: TrustFn): (req: http.IncomingMessage) => string {
  return (req) => proxyaddr(req, trust);
}
