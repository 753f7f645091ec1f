// Security headers, as a browser receives them: every response of this JSON API says "never
// sniff, never render, never frame, never leak the URL as a referrer", HSTS when the issuer is
// https, and Cross-Origin-Resource-Policy: cross-origin only on the public documents (JWKS,
// RFC 8414 metadata) that services and SPAs on other origins read. Errors carry them too, and so
// does the JWKS fast path that answers before Fastify's hooks.
import type { InjectOptions, LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, expect, it, vi } from "vitest";
import { describeEachDb, form, PASSWORD, register, startIssuer, type TestIssuer } from "../helpers/issuer.ts";

type HeaderBag = Record<string, string | string[] | number | undefined>;

/** The security headers a response carries (lower-case names). */
const SECURITY = [
  "content-security-policy",
  "cross-origin-resource-policy",
  "referrer-policy",
  "strict-transport-security",
  "x-content-type-options",
  "x-frame-options",
] as const;

const pick = (headers: HeaderBag | Headers): Record<string, string | undefined> =>
  Object.fromEntries(
    SECURITY.map((h) => {
      const v = headers instanceof Headers ? headers.get(h) : headers[h];
      return [h, v === undefined || v === null ? undefined : String(v)];
    }),
  );

/** CSP directives by name (the header may separate them with ";" or "; "). */
function csp(value: string | undefined): Record<string, string> {
  return Object.fromEntries(
    (value ?? "")
      .split(";")
      .map((d) => d.trim())
      .filter(Boolean)
      .map((d) => {
        const [name, ...sources] = d.split(/\s+/);
        return [name!.toLowerCase(), sources.join(" ")];
      }),
  );
}

function expectApiHeaders(headers: HeaderBag | Headers, resourcePolicy: "same-origin" | "cross-origin", hsts: boolean, what: string): void {
  const h = pick(headers);
  expect(h["x-content-type-options"], `${what}: X-Content-Type-Options`).toBe("nosniff");
  expect(h["referrer-policy"], `${what}: Referrer-Policy`).toBe("no-referrer");
  // A JSON API: nothing may load, nobody may frame it, and no other directive.
  expect(csp(h["content-security-policy"]), `${what}: Content-Security-Policy ${h["content-security-policy"]}`).toEqual({
    "default-src": "'none'",
    "frame-ancestors": "'none'",
  });
  expect(h["x-frame-options"], `${what}: X-Frame-Options`).toBe("DENY");
  expect(h["cross-origin-resource-policy"], `${what}: Cross-Origin-Resource-Policy`).toBe(resourcePolicy);
  if (hsts) expect(h["strict-transport-security"], `${what}: Strict-Transport-Security`).toBe("max-age=31536000; includeSubDomains");
  else expect(h["strict-transport-security"], `${what}: no Strict-Transport-Security over plain http`).toBeUndefined();
}

describeEachDb("security: response headers", (flavor) => {
  let issuer: TestIssuer;
  let plain: TestIssuer;
  beforeAll(async () => {
    issuer = await startIssuer(flavor); // ISSUER=https://issuer.test
    plain = await startIssuer(flavor, { env: { ISSUER: "http://127.0.0.1:3999", COOKIE_SECURE: "false" } });
  });
  afterAll(async () => {
    await plain?.close();
    await issuer?.close();
  });

  const inject = (i: TestIssuer, opts: InjectOptions): Promise<LightMyRequestResponse> => i.app.inject(opts);

  it("successful responses of the API: same-origin, with HSTS for an https issuer", async () => {
    const user = await register(issuer.app);
    const responses: Array<[string, LightMyRequestResponse]> = [
      ["GET /healthz", await inject(issuer, { method: "GET", url: "/healthz" })],
      ["GET /readyz", await inject(issuer, { method: "GET", url: "/readyz" })],
      [
        "POST /oauth/token (password grant)",
        await inject(issuer, { method: "POST", url: "/oauth/token", ...form({ grant_type: "password", username: user.email, password: PASSWORD, client_id: "web" }) }),
      ],
      [
        "POST /auth/login",
        await inject(issuer, {
          method: "POST",
          url: "/auth/login",
          headers: { "content-type": "application/json" },
          payload: JSON.stringify({ email: user.email, password: PASSWORD }),
        }),
      ],
    ];
    for (const [what, res] of responses) {
      expect(res.statusCode, what).toBeLessThan(300);
      expectApiHeaders(res.headers, "same-origin", true, what);
    }
  });

  it("error responses carry them: 404, 400 (bad JSON, malformed URL), 415, 401, 500", async () => {
    // Any 500: the web client's lookup fails unexpectedly once.
    const spy = vi.spyOn(issuer.services.clients, "authenticate").mockRejectedValueOnce(new Error("boom (test)"));
    const serverError = await inject(issuer, {
      method: "POST",
      url: "/auth/login",
      headers: { "content-type": "application/json" },
      payload: JSON.stringify({ email: "x@example.test", password: PASSWORD }),
    });
    spy.mockRestore();
    const cases: Array<[string, number, LightMyRequestResponse]> = [
      ["unknown path", 404, await inject(issuer, { method: "GET", url: "/no/such/path" })],
      ["POST to a GET-only document", 404, await inject(issuer, { method: "POST", url: "/.well-known/jwks.json" })],
      ["bad JSON", 400, await inject(issuer, { method: "POST", url: "/oauth/token", headers: { "content-type": "application/json" }, payload: "{bad" })],
      ["malformed URL", 400, await inject(issuer, { method: "GET", url: "/%zz" })],
      ["wrong media type", 415, await inject(issuer, { method: "POST", url: "/oauth/token", headers: { "content-type": "text/csv" }, payload: "a,b" })],
      [
        "bad client credentials",
        401,
        await inject(issuer, {
          method: "POST",
          url: "/oauth/token",
          headers: { "content-type": "application/x-www-form-urlencoded", authorization: `Basic ${Buffer.from("nobody:wrong").toString("base64")}` },
          payload: "grant_type=client_credentials",
        }),
      ],
      ["unhandled error", 500, serverError],
    ];
    for (const [what, status, res] of cases) {
      expect(res.statusCode, `${what}: ${res.body}`).toBe(status);
      expectApiHeaders(res.headers, "same-origin", true, what);
    }
  });

  it("the public documents (JWKS, metadata) are readable cross-origin: CORP cross-origin, also on HEAD and 304", async () => {
    const jwks = await inject(issuer, { method: "GET", url: "/.well-known/jwks.json" });
    const head = await inject(issuer, { method: "HEAD", url: "/.well-known/jwks.json" });
    const notModified = await inject(issuer, { method: "GET", url: "/.well-known/jwks.json", headers: { "if-none-match": String(jwks.headers.etag) } });
    const metadata = await inject(issuer, { method: "GET", url: "/.well-known/oauth-authorization-server" });
    expect([jwks.statusCode, head.statusCode, notModified.statusCode, metadata.statusCode]).toEqual([200, 200, 304, 200]);
    expectApiHeaders(jwks.headers, "cross-origin", true, "JWKS");
    expectApiHeaders(head.headers, "cross-origin", true, "JWKS HEAD");
    expectApiHeaders(notModified.headers, "cross-origin", true, "JWKS 304");
    expectApiHeaders(metadata.headers, "cross-origin", true, "metadata");
  });

  it("no Strict-Transport-Security when the issuer is plain http (loopback development)", async () => {
    for (const url of ["/healthz", "/.well-known/jwks.json", "/no/such/path"]) {
      const res = await inject(plain, { method: "GET", url });
      expectApiHeaders(res.headers, url === "/.well-known/jwks.json" ? "cross-origin" : "same-origin", false, `http issuer ${url}`);
    }
  });

  it("over a real socket, the JWKS fast path sends exactly the security headers app.inject() gets (200 and 304), like the pipeline's metadata", async () => {
    const server = await startIssuer(flavor);
    try {
      const base = await server.app.listen({ port: 0, host: "127.0.0.1" });
      const viaRoute = await inject(server, { method: "GET", url: "/.well-known/jwks.json" });
      const fast = await fetch(`${base}/.well-known/jwks.json`);
      expect(fast.status).toBe(200);
      await fast.arrayBuffer();
      expect(pick(fast.headers)).toEqual(pick(viaRoute.headers));
      expectApiHeaders(fast.headers, "cross-origin", true, "fast path");

      const etag = fast.headers.get("etag")!;
      const fast304 = await fetch(`${base}/.well-known/jwks.json`, { headers: { "if-none-match": etag } });
      const route304 = await inject(server, { method: "GET", url: "/.well-known/jwks.json", headers: { "if-none-match": etag } });
      expect([fast304.status, route304.statusCode]).toEqual([304, 304]);
      expect(pick(fast304.headers)).toEqual(pick(route304.headers));

      // The metadata document goes through Fastify's hooks on the same socket: the same values.
      const metadata = await fetch(`${base}/.well-known/oauth-authorization-server`);
      await metadata.arrayBuffer();
      expect(pick(metadata.headers)).toEqual(pick(fast.headers));
      // And an error over the socket has them (same-origin).
      const missing = await fetch(`${base}/no/such/path`);
      await missing.arrayBuffer();
      expect(missing.status).toBe(404);
      expectApiHeaders(missing.headers, "same-origin", true, "404 over the socket");
    } finally {
      await server.close();
    }
  });
});
