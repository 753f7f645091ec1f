// The client's address, one rule for every place that needs it (Fastify's request.ip, the JWKS
// fast path's log line, rate limits, the login throttle): behind trusted proxies, walk
// X-Forwarded-For from the right (the hop nearest to us) and take the first address that is not
// a trusted proxy. The left-most entry is whatever the client wrote and is never believed.
import type http from "node:http";
import type { FastifyRequest } from "fastify";
import type { LoginMetadata } from "../domain/sessions/sessions.ts";
import net from "node:net";
import { normalizeIP } from "@fastify/rate-limit";
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

// RFC 6052 §2.1: the well-known NAT64 prefix.
const NAT64 = new net.BlockList();
NAT64.addSubnet("64:ff9b::", 96, "ipv6");

/**
 * The address a client is counted against, by the rate limits and the login throttle alike: an
 * IPv4 address as is (IPv4-mapped IPv6 included), an IPv6 address by its /64 (one host usually
 * holds a whole /64 and could otherwise rotate through it for free), normalised by
 * @fastify/rate-limit's own normalizeIP. A NAT64 address counts as the IPv4 client behind the
 * translator, not as the translator's /64 that every such client shares. A port, which some
 * proxies write into X-Forwarded-For ("203.0.113.9:51234", "[2001:db8::9]:443"), is left out: the
 * client picks a new one per connection, so with it every connection would be a new address.
 */
export function addressKey(ip: string): string {
  const bare = withoutPort(ip).replace(/%.*$/, ""); // an IPv6 zone id names our interface, not the client
  if (net.isIPv6(bare) && NAT64.check(bare, "ipv6")) {
    // The URL parser writes the embedded IPv4 as the last two hextets.
    const groups = new URL(`http://[${bare}]`).hostname.slice(1, -1).split(":");
    const [hi, lo] = [parseInt(groups.at(-2) || "0", 16), parseInt(groups.at(-1) || "0", 16)];
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  return net.isIP(bare) === 0 ? bare.slice(0, 64) : normalizeIP(bare);
}

/** "a.b.c.d:port" -> "a.b.c.d", "[v6]:port" and "[v6]" -> "v6"; anything else as it is. */
function withoutPort(ip: string): string {
  const v4 = /^(\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}$/.exec(ip);
  if (v4 && net.isIPv4(v4[1]!)) return v4[1]!;
  const v6 = /^\[([^\]]+)\](?::\d{1,5})?$/.exec(ip);
  if (v6 && net.isIPv6(v6[1]!.replace(/%.*$/, ""))) return v6[1]!;
  return ip;
}

/**
 * What a login came from, for the session (kept only with SESSION_METADATA): the User-Agent and
 * the client's address by the rule above (request.ip: the right-most untrusted hop), in full.
 */
export function loginMetadata(request: FastifyRequest): LoginMetadata {
  const userAgent = request.headers["user-agent"];
  return { userAgent: typeof userAgent === "string" ? userAgent : null, address: request.ip.replace(/%.*$/, "") };
}
