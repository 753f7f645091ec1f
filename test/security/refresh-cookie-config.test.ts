// The refresh cookie's name and path are configurable, so a deployment on a shared parent domain
// can use a __Host- cookie (RFC 6265bis §4.1.3.2: Secure, Path=/, no Domain), which a sibling
// subdomain cannot overwrite or shadow (cookie tossing). What a browser sees: the Set-Cookie
// lines on login, refresh and logout under the configured name and path; a real Chromium keeps
// the cookie and sends it back. Combinations a browser would reject are refused at start.
import { existsSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { FastifyInstance, LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.ts";
import { freePort } from "../helpers/ports.ts";
import { describeEachDb, register, startIssuer, uniqueEmail, verifyAccessToken, type TestIssuer } from "../helpers/issuer.ts";

const NAME = "__Host-refresh";

interface SetCookie {
  name: string;
  value: string;
  attrs: Map<string, string | true>;
  raw: string;
}

function setCookies(res: LightMyRequestResponse): SetCookie[] {
  const raw = res.headers["set-cookie"];
  const lines = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
  return lines.map((line) => {
    const [pair, ...rest] = line.split(";");
    const eq = pair!.indexOf("=");
    const attrs = new Map<string, string | true>();
    for (const part of rest) {
      const p = part.trim();
      const i = p.indexOf("=");
      if (p) attrs.set((i < 0 ? p : p.slice(0, i)).trim().toLowerCase(), i < 0 ? true : p.slice(i + 1).trim());
    }
    return { name: pair!.slice(0, eq).trim(), value: decodeURIComponent(pair!.slice(eq + 1)), attrs, raw: line };
  });
}

const json = (url: string, body: unknown, cookie?: string) => ({
  method: "POST" as const,
  url,
  headers: { "content-type": "application/json", ...(cookie !== undefined ? { cookie } : {}) },
  payload: body === undefined ? "" : JSON.stringify(body),
});

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
    return [];
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
}

describe("security: refresh cookie configuration is validated", () => {
  it("defaults: refresh_token at /auth", () => {
    expect(loadConfig({})).toMatchObject({ refreshCookieName: "refresh_token", refreshCookiePath: "/auth" });
    expect(loadConfig({ REFRESH_COOKIE_NAME: NAME, REFRESH_COOKIE_PATH: "/" })).toMatchObject({ refreshCookieName: NAME, refreshCookiePath: "/" });
  });

  it.each([
    ["__Host- at the default path /auth", { REFRESH_COOKIE_NAME: NAME }, /REFRESH_COOKIE_PATH=\//],
    ["__Host- at /auth explicitly", { REFRESH_COOKIE_NAME: NAME, REFRESH_COOKIE_PATH: "/auth" }, /REFRESH_COOKIE_PATH=\//],
    ["__Host- without Secure", { REFRESH_COOKIE_NAME: NAME, REFRESH_COOKIE_PATH: "/", COOKIE_SECURE: "false" }, /COOKIE_SECURE=true/],
    ["__host- (browsers match prefixes case-insensitively) at /auth", { REFRESH_COOKIE_NAME: "__host-refresh" }, /REFRESH_COOKIE_PATH=\//],
    ["__Secure- without Secure", { REFRESH_COOKIE_NAME: "__Secure-refresh", COOKIE_SECURE: "false" }, /COOKIE_SECURE=true/],
  ])("refused: %s", (_name, env, fix) => {
    const problems = problemsOf(env);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^REFRESH_COOKIE_NAME=/);
    expect(problems[0]).toMatch(fix);
  });

  it.each([
    ["a space", "refresh token"],
    ["a semicolon", "refresh;x"],
    ["an equals sign", "refresh=x"],
    ["a comma", "a,b"],
    ["a quote", '"refresh"'],
    ["non-ASCII", "réfresh"],
  ])("refused: a cookie name with %s", (_name, value) => {
    const problems = problemsOf({ REFRESH_COOKIE_NAME: value });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^REFRESH_COOKIE_NAME=/);
  });

  it.each(["/oauth", "/auth/refresh", "/auth/", "auth", "/Auth"])("refused: REFRESH_COOKIE_PATH=%s (the browser must send it to /auth/refresh and /auth/logout)", (p) => {
    const problems = problemsOf({ REFRESH_COOKIE_PATH: p });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^REFRESH_COOKIE_PATH=/);
  });

  it("accepted: __Secure- at /auth with Secure, a plain name at /, and __Host- at / with Secure", () => {
    expect(problemsOf({ REFRESH_COOKIE_NAME: "__Secure-refresh" })).toEqual([]);
    expect(problemsOf({ REFRESH_COOKIE_NAME: "sid", REFRESH_COOKIE_PATH: "/" })).toEqual([]);
    expect(problemsOf({ REFRESH_COOKIE_NAME: NAME, REFRESH_COOKIE_PATH: "/", COOKIE_SECURE: "true" })).toEqual([]);
  });
});

describeEachDb("security: a __Host- refresh cookie", (flavor) => {
  let issuer: TestIssuer;
  let app: FastifyInstance;
  beforeAll(async () => {
    issuer = await startIssuer(flavor, { env: { REFRESH_COOKIE_NAME: NAME, REFRESH_COOKIE_PATH: "/", REFRESH_REUSE_GRACE: "5" } });
    app = issuer.app;
  });
  afterAll(async () => issuer?.close());

  const only = (res: LightMyRequestResponse): SetCookie => {
    const cookies = setCookies(res);
    expect(cookies.map((c) => c.name), cookies.map((c) => c.raw).join("\n")).toEqual([NAME]);
    return cookies[0]!;
  };

  const expectHostCookie = (c: SetCookie) => {
    expect(c.attrs.get("path"), c.raw).toBe("/");
    expect(c.attrs.get("secure"), c.raw).toBe(true);
    expect(c.attrs.get("httponly"), c.raw).toBe(true);
    expect(String(c.attrs.get("samesite")).toLowerCase(), c.raw).toBe("strict");
    expect(c.attrs.has("domain"), c.raw).toBe(false);
  };

  it("login sets __Host-refresh=...; Path=/; HttpOnly; Secure; SameSite=Strict and no refresh_token cookie", async () => {
    const user = await register(app);
    const res = await app.inject(json("/auth/login", { email: user.email, password: user.password }));
    expect(res.statusCode, res.body).toBe(200);
    const c = only(res);
    expect(c.value).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expectHostCookie(c);
    expect(Number(c.attrs.get("max-age"))).toBeGreaterThan(0);
    expect(res.body).not.toContain(c.value);
  });

  it("refresh reads __Host-refresh and rotates it; logout reads it, revokes the session and clears it at Path=/", async () => {
    const user = await register(app);
    const login = await app.inject(json("/auth/login", { email: user.email, password: user.password }));
    const first = only(login).value;
    const sid = (await verifyAccessToken(issuer, (login.json() as { access_token: string }).access_token)).sid as string;

    const refreshed = await app.inject(json("/auth/refresh", undefined, `theme=dark; ${NAME}=${first}`));
    expect(refreshed.statusCode, refreshed.body).toBe(200);
    const second = only(refreshed);
    expect(second.value).not.toBe(first);
    expectHostCookie(second);

    const logout = await app.inject(json("/auth/logout", undefined, `${NAME}=${second.value}`));
    expect(logout.statusCode).toBe(204);
    const cleared = only(logout);
    expectHostCookie(cleared); // a deletion must carry the same prefix requirements, or the browser ignores it
    expect(cleared.value).toBe("");
    const expires = cleared.attrs.get("expires");
    expect(Number(cleared.attrs.get("max-age") ?? 1) <= 0 || (typeof expires === "string" && new Date(expires).getTime() < Date.now())).toBe(true);
    const session = await issuer.storage.db.session.findUniqueOrThrow({ where: { id: sid } });
    expect(session.revokedAt).not.toBeNull();
  });

  it("a cookie under the old name refresh_token is not read (it could have been tossed by a sibling subdomain)", async () => {
    const user = await register(app);
    const login = await app.inject(json("/auth/login", { email: user.email, password: user.password }));
    const token = only(login).value;
    const res = await app.inject(json("/auth/refresh", undefined, `refresh_token=${token}`));
    expect(res.statusCode).toBe(401);
    expect((res.json() as { error: string }).error).toBe("invalid_grant");
    // The real cookie still works: nothing was rotated.
    expect((await app.inject(json("/auth/refresh", undefined, `${NAME}=${token}`))).statusCode).toBe(200);
  });
});

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

(existsSync(CHROMIUM) ? describeEachDb : () => undefined)("security: a __Host- refresh cookie in Chromium", (flavor) => {
  let issuer: TestIssuer;
  let page: { port: number; close: () => Promise<void> };
  let issuerUrl: string;
  beforeAll(async () => {
    const server = http.createServer((_req, res) => {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end("<!doctype html><title>app</title>");
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    page = { port: (server.address() as AddressInfo).port, close: () => new Promise((r) => server.close(() => r())) };
    const port = await freePort();
    issuerUrl = `http://localhost:${port}`;
    // COOKIE_SECURE stays true: Chromium keeps Secure cookies from http://localhost (a secure context).
    issuer = await startIssuer(flavor, {
      env: { ISSUER: issuerUrl, REFRESH_COOKIE_NAME: NAME, REFRESH_COOKIE_PATH: "/", ALLOWED_ORIGINS: `http://localhost:${page.port}` },
    });
    await issuer.app.listen({ port, host: "127.0.0.1" });
  }, 60_000);
  afterAll(async () => {
    await issuer?.close();
    await page?.close();
  });

  it("the browser stores __Host-refresh (Path=/, Secure, HttpOnly, host-only) and sends it back on refresh and logout", async () => {
    const { chromium } = await import("playwright-core");
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
    try {
      const context = await browser.newContext();
      const tab = await context.newPage();
      await tab.goto(`http://localhost:${page.port}/`);
      const call = (p: string, body?: unknown) =>
        tab.evaluate(
          async ([url, payload]) => {
            const res = await fetch(url, {
              method: "POST",
              credentials: "include",
              headers: { "content-type": "application/json" },
              body: payload === undefined ? "" : JSON.stringify(payload),
            });
            return res.status;
          },
          [`${issuerUrl}${p}`, body] as const,
        );
      const email = uniqueEmail("hostcookie");
      const password = "correct horse battery staple";
      expect(await call("/auth/register", { email, password })).toBe(201);
      expect(await call("/auth/login", { email, password })).toBe(200);
      const stored = async () => (await context.cookies(`${issuerUrl}/auth/refresh`)).filter((c) => c.name === NAME || c.name === "refresh_token");
      const [first, ...others] = await stored();
      expect(others).toEqual([]);
      expect(first).toMatchObject({ name: NAME, path: "/", secure: true, httpOnly: true, sameSite: "Strict", domain: "localhost" });
      expect(await call("/auth/refresh")).toBe(200);
      const [second] = await stored();
      expect(second!.value).not.toBe(first!.value);
      expect(await call("/auth/logout")).toBe(204);
      expect(await stored()).toEqual([]);
      expect(await call("/auth/refresh")).toBe(401);
      await context.close();
    } finally {
      await browser.close();
    }
  }, 60_000);
});
