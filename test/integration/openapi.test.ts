// The API description is the code: /openapi.json is generated from the route schemas, is a valid
// OpenAPI 3.1 document, and lists every route the app registers; the discovery metadata's
// service_documentation is the /docs page, which answers.
import { Validator } from "@seriousme/openapi-schema-validator";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeEachDb, startIssuer, type TestIssuer } from "../helpers/issuer.ts";

/** Method + path of every route, from fastify's route tree (printRoutes, one line per node). */
function registeredRoutes(tree: string): Array<{ method: string; path: string }> {
  const routes: Array<{ method: string; path: string }> = [];
  const stack: string[] = [];
  for (const line of tree.split("\n")) {
    const match = /^((?:[│ ] {3})*)[├└]── (\S+)(?: \(([^)]*)\))?/.exec(line);
    if (!match) continue;
    const depth = (match[1] ?? "").length / 4;
    stack.length = depth;
    const path = (stack[depth - 1] ?? "") + match[2];
    stack.push(path);
    for (const method of (match[3] ?? "").split(",").map((m) => m.trim())) {
      if (method && method !== "-") routes.push({ method, path });
    }
  }
  return routes;
}

/** Documented exclusions: HEAD twins of GETs, the /docs page and its assets, the CORS preflight. */
const excluded = (r: { method: string; path: string }) => r.method === "HEAD" || r.path === "/docs" || r.path.startsWith("/docs/") || (r.method === "OPTIONS" && r.path === "*");

describeEachDb("OpenAPI description", (flavor) => {
  let issuer: TestIssuer;
  beforeAll(async () => {
    // Metrics on the public listener, so /metrics is registered (and must be described) too.
    issuer = await startIssuer(flavor, { env: { METRICS_TOKEN: "m".repeat(32) } });
  });
  afterAll(async () => issuer?.close());

  it("is a valid OpenAPI 3.1 document with every registered route", async () => {
    const res = await issuer.app.inject({ method: "GET", url: "/openapi.json" });
    expect(res.statusCode).toBe(200);
    expect(res.headers["cache-control"]).toBe("public, max-age=300");
    const doc = res.json();
    expect(doc.openapi).toBe("3.1.0");
    expect(doc.servers).toEqual([{ url: "https://issuer.test" }]);
    const validator = new Validator();
    const result = await validator.validate(doc);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);

    const routes = registeredRoutes(issuer.app.printRoutes({ commonPrefix: false })).filter((r) => !excluded(r));
    expect(routes.length).toBeGreaterThan(15);
    const described = new Set<string>();
    for (const [path, item] of Object.entries(doc.paths as Record<string, Record<string, { tags?: string[]; summary?: string }>>)) {
      for (const [method, op] of Object.entries(item)) {
        described.add(`${method.toUpperCase()} ${path}`);
        expect(op.tags?.length, `${method} ${path} tags`).toBeGreaterThan(0);
        expect(op.summary, `${method} ${path} summary`).toBeTruthy();
      }
    }
    const missing = routes.map((r) => `${r.method} ${r.path.replace(/:([A-Za-z0-9_]+)/g, "{$1}")}`).filter((r) => !described.has(r));
    expect(missing).toEqual([]);
    for (const must of ["POST /oauth/token", "POST /account/password", "GET /statuslists/{n}", "GET /metrics", "GET /openapi.json"]) expect(described).toContain(must);
  });

  it("service_documentation is /docs, and /docs answers", async () => {
    const meta = (await issuer.app.inject({ method: "GET", url: "/.well-known/oauth-authorization-server" })).json();
    expect(meta.service_documentation).toBe("https://issuer.test/docs");
    const page = await issuer.app.inject({ method: "GET", url: "/docs" });
    expect(page.statusCode).toBe(200);
    expect(page.headers["content-type"]).toMatch(/^text\/html/);
    expect(String(page.headers["content-security-policy"])).toContain("script-src 'self'");
    // Everything else keeps the JSON API's CSP.
    const other = await issuer.app.inject({ method: "GET", url: "/openapi.json" });
    expect(other.headers["content-security-policy"]).toBe("default-src 'none';frame-ancestors 'none'");
  });
});
