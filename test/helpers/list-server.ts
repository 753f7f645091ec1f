// A stand-in issuer for the kit's Token Status List tests: a node:http server that publishes a
// JWKS of keys the test holds and serves status list tokens (draft-ietf-oauth-status-list §5.1,
// §8.1-8.2) exactly as the test sets them up, well-formed or forged, and records every request.
// The lists are encoded with @sd-jwt/jwt-status-list, an implementation independent of the kit.
import { createHash } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { StatusList, type BitsPerStatus } from "@sd-jwt/jwt-status-list";
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from "jose";

export interface TestKey {
  kid: string;
  alg: "ES256";
  privateKey: CryptoKey;
  jwk: JWK;
}

export async function testKey(kid: string): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair("ES256", { extractable: true });
  return { kid, alg: "ES256", privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: "ES256", use: "sig" } };
}

export const epochSeconds = (ms = Date.now()) => Math.floor(ms / 1000);

/** A JWS over `payload`, header {alg, kid, typ} unless `header` overrides (undefined removes). */
export function signJwt(key: TestKey, typ: string, payload: JWTPayload, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg: key.alg, kid: key.kid, typ, ...header } as { alg: string }).sign(key.privateKey);
}

/** §4.1 via @sd-jwt/jwt-status-list: `values[i]` is entry i. */
export const encodeList = (values: number[], bits: BitsPerStatus = 1): string => new StatusList(values, bits).compressStatusList();

/** A list of `size` entries, all VALID but those in `set` (value 1, or the given value). */
export function listWith(size: number, set: Record<number, number> | number[] = [], bits: BitsPerStatus = 1): string {
  const values = new Array<number>(size).fill(0);
  if (Array.isArray(set)) for (const i of set) values[i] = 1;
  else for (const [i, v] of Object.entries(set)) values[Number(i)] = v;
  return encodeList(values, bits);
}

export interface ListClaims {
  iss: string;
  sub: string;
  iat?: number;
  exp?: number;
  ttl?: number;
  status_list: { bits: number; lst: string };
  [claim: string]: unknown;
}

/** The claims of a well-formed status list token; `extra` overrides (undefined removes). */
export function listClaims(issuer: string, uri: string, lst: string, extra: Record<string, unknown> = {}, bits = 1): ListClaims {
  const now = epochSeconds();
  const claims: Record<string, unknown> = { iss: issuer, sub: uri, iat: now, exp: now + 300, ttl: 10, status_list: { bits, lst }, ...extra };
  for (const k of Object.keys(claims)) if (claims[k] === undefined) delete claims[k];
  return claims as ListClaims;
}

export interface Served {
  status?: number;
  body?: string;
  headers?: Record<string, string>;
  /** milliseconds before the answer is sent */
  delay?: number;
}

export interface RecordedRequest {
  path: string;
  ifNoneMatch: string | null;
  accept: string | null;
}

export interface ListServer {
  /** http://127.0.0.1:port: the issuer identifier of this stand-in */
  base: string;
  /** the published key set (edit it to rotate) */
  keys: JWK[];
  requests: RecordedRequest[];
  /** how many requests went to `path` */
  count(path: string): number;
  /** what GET `path` answers (a JWS body gets an ETag, and a 304 when If-None-Match matches) */
  serve(path: string, served: Served | (() => Served)): void;
  /**
   * a signed list at `path`, with Cache-Control `max-age=<cacheControl>` for a number, the string
   * as it is, none for null; default max-age = the list's ttl
   */
  serveList(path: string, jws: string, cacheControl?: number | string | null): void;
  /** "reset": connections are destroyed; a number: that status for every list; undefined: normal */
  outage: undefined | "reset" | number;
  close(): Promise<void>;
}

const etagOf = (body: string) => `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"`;

export async function startListServer(keys: JWK[] = []): Promise<ListServer> {
  const routes = new Map<string, Served | (() => Served)>();
  const requests: RecordedRequest[] = [];
  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    const header = (name: string) => (typeof req.headers[name] === "string" ? (req.headers[name] as string) : null);
    requests.push({ path, ifNoneMatch: header("if-none-match"), accept: header("accept") });
    if (path === "/.well-known/jwks.json") {
      res.writeHead(200, { "content-type": "application/jwk-set+json", "cache-control": "max-age=300" });
      return res.end(JSON.stringify({ keys: self.keys }));
    }
    if (self.outage === "reset") return req.socket.destroy();
    if (typeof self.outage === "number") return res.writeHead(self.outage).end("unavailable");
    const route = routes.get(path);
    if (!route) return res.writeHead(404).end("not found");
    const served = typeof route === "function" ? route() : route;
    const status = served.status ?? 200;
    const headers: Record<string, string> = { ...served.headers };
    if (status === 200 && served.body !== undefined && !("etag" in headers)) headers.etag = etagOf(served.body);
    const answer = () => {
      if (status === 200 && headers.etag && header("if-none-match") === headers.etag) {
        return res.writeHead(304, { etag: headers.etag, ...(headers["cache-control"] && { "cache-control": headers["cache-control"] }) }).end();
      }
      res.writeHead(status, headers).end(served.body ?? "");
    };
    if (served.delay) setTimeout(answer, served.delay);
    else answer();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const self: ListServer = {
    base: `http://127.0.0.1:${port}`,
    keys,
    requests,
    count: (path) => requests.filter((r) => r.path === path).length,
    serve: (path, served) => void routes.set(path, served),
    serveList(path, jws, cacheControl) {
      const ttl = (JSON.parse(Buffer.from(jws.split(".")[1]!, "base64url").toString("utf8")) as { ttl?: number }).ttl;
      const cc = cacheControl === undefined ? ttl : cacheControl;
      const header = typeof cc === "number" ? `max-age=${cc}` : cc;
      routes.set(path, {
        body: jws,
        headers: { "content-type": "application/statuslist+jwt", ...(typeof header === "string" && { "cache-control": header }) },
      });
    },
    outage: undefined,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return self;
}
