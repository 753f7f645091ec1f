// The browser mode in a real browser (Chromium through playwright-core): the refresh token
// lives only in an HttpOnly SameSite=Strict cookie scoped to /auth, a same-site frontend on an
// allowed origin can log in, refresh and log out with it, and a cross-site page cannot use it.
// Needs /usr/bin/chromium (Debian's package; .ci/run installs it). Without it the suite is
// skipped locally, and fails when TESSERA_REQUIRE_BROWSER=1 (CI).
import { existsSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { describeEachDb, startIssuer, uniqueEmail, type TestIssuer } from "../helpers/issuer.ts";
import { freePort } from "../helpers/ports.ts";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const available = existsSync(CHROMIUM);
if (!available && process.env.TESSERA_REQUIRE_BROWSER === "1") {
  throw new Error(`TESSERA_REQUIRE_BROWSER=1 but ${CHROMIUM} does not exist (apt-get install chromium)`);
}

/** A tiny static server: one HTML page at "/", an empty page at any other path. */
async function servePage(html: string): Promise<{ port: number; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(req.url === "/" ? html : "<!doctype html><title>blank</title>");
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { port: (server.address() as AddressInfo).port, close: () => new Promise((r) => server.close(() => r())) };
}

if (!available) {
  describe(`browser cookie flow (skipped: no ${CHROMIUM})`, () => {
    it.skip("needs Chromium", () => undefined);
  });
}

(available ? describeEachDb : () => undefined)("browser cookie flow", (flavor) => {
  let issuer: TestIssuer;
  let browser: Browser;
  let appPage: { port: number; close: () => Promise<void> };
  let attackerPage: { port: number; close: () => Promise<void> };
  let issuerUrl: string;

  beforeAll(async () => {
    appPage = await servePage("<!doctype html><title>app</title><p>frontend</p>");
    // The attacker's page: another site (127.0.0.1 is not localhost's site) posting a plain
    // HTML form, the classic CSRF, to the logout endpoint.
    const port = await freePort();
    issuerUrl = `http://localhost:${port}`;
    attackerPage = await servePage(
      `<!doctype html><title>evil</title><form id="f" method="POST" action="${issuerUrl}/auth/logout" enctype="text/plain">` +
        `<input name='{"a":"' value='"}'></form><script>document.getElementById("f").submit()</script>`,
    );
    issuer = await startIssuer(flavor, {
      env: { ISSUER: issuerUrl, COOKIE_SECURE: "false", ALLOWED_ORIGINS: `http://localhost:${appPage.port}` },
    });
    await issuer.app.listen({ port, host: "127.0.0.1" });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await issuer?.close();
    await appPage?.close();
    await attackerPage?.close();
  });

  it("login, refresh, CSRF attempt from another site, logout — as a browser sees it", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`http://localhost:${appPage.port}/`);
    const email = uniqueEmail("browser");
    const password = "correct horse battery staple";

    // The frontend (same site, allowed origin) registers and logs in with fetch + credentials.
    const call = (path: string, body?: unknown) =>
      page.evaluate(
        async ([url, payload]) => {
          const res = await fetch(url, {
            method: "POST",
            credentials: "include",
            headers: { "content-type": "application/json" },
            body: payload === undefined ? "" : JSON.stringify(payload),
          });
          const text = await res.text();
          return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : null };
        },
        [`${issuerUrl}${path}`, body] as const,
      );
    expect((await call("/auth/register", { email, password })).status).toBe(201);
    const login = await call("/auth/login", { email, password });
    expect(login.status).toBe(200);
    expect(login.body).toHaveProperty("access_token");
    expect(login.body).not.toHaveProperty("refresh_token");

    // The cookie as the browser stored it: HttpOnly, SameSite=Strict, only for /auth.
    const cookieOf = async () => (await context.cookies(issuerUrl + "/auth/refresh")).find((c) => c.name === "refresh_token");
    const first = await cookieOf();
    expect(first).toMatchObject({ httpOnly: true, sameSite: "Strict", path: "/auth", domain: "localhost" });
    expect(first!.value).toMatch(/^[A-Za-z0-9_-]{43}$/);
    // Not sent to other paths of the issuer, and invisible to scripts.
    expect((await context.cookies(issuerUrl + "/oauth/token")).some((c) => c.name === "refresh_token")).toBe(false);
    expect(await page.evaluate("document.cookie")).not.toContain("refresh_token");

    // Refresh rotates the cookie.
    const refreshed = await call("/auth/refresh");
    expect(refreshed.status).toBe(200);
    expect(refreshed.body).toHaveProperty("access_token");
    const second = await cookieOf();
    expect(second!.value).not.toBe(first!.value);

    // A page on another site auto-submits a form to /auth/logout in the same browser: the
    // browser does not attach the SameSite=Strict cookie and the endpoint refuses a form anyway.
    const evil = await context.newPage();
    await evil.goto(`http://127.0.0.1:${attackerPage.port}/`);
    await evil.waitForURL(`${issuerUrl}/auth/logout`, { timeout: 10_000 });
    expect(await evil.content()).toContain("application/json");
    await evil.close();
    // The session survived: the cookie is still there and still refreshes.
    expect((await cookieOf())!.value).toBe(second!.value);
    expect((await call("/auth/refresh")).status).toBe(200);

    // A cross-site script cannot even send the JSON request (CORS preflight refused).
    const evil2 = await context.newPage();
    await evil2.goto(`http://127.0.0.1:${attackerPage.port}/blank`);
    const crossSite = await evil2.evaluate(async (url) => {
      try {
        const res = await fetch(url, { method: "POST", credentials: "include", headers: { "content-type": "application/json" }, body: "{}" });
        return `status ${res.status}`;
      } catch (err) {
        return `blocked: ${(err as Error).name}`;
      }
    }, `${issuerUrl}/auth/logout`);
    expect(crossSite).toBe("blocked: TypeError");
    await evil2.close();
    expect((await call("/auth/refresh")).status).toBe(200);

    // Logout from the frontend: 204, cookie gone, refresh refused.
    expect((await call("/auth/logout")).status).toBe(204);
    expect(await cookieOf()).toBeUndefined();
    expect((await call("/auth/refresh")).status).toBe(401);
    await context.close();
  }, 60_000);
});
