// The /docs page in a real browser (Chromium through playwright-core, as cookie-flow.test.ts):
// it renders the endpoints from /openapi.json with the issuer's own assets (the browser has no
// internet) under its own CSP, and the console shows no CSP violation.
// Needs /usr/bin/chromium; skipped without it locally, fails when TESSERA_REQUIRE_BROWSER=1 (CI).
import { existsSync } from "node:fs";
import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { describeEachDb, startIssuer, type TestIssuer } from "../helpers/issuer.ts";
import { freePort } from "../helpers/ports.ts";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const available = existsSync(CHROMIUM);
if (!available && process.env.TESSERA_REQUIRE_BROWSER === "1") {
  throw new Error(`TESSERA_REQUIRE_BROWSER=1 but ${CHROMIUM} does not exist (apt-get install chromium)`);
}

if (!available) {
  describe(`docs page (skipped: no ${CHROMIUM})`, () => {
    it.skip("needs Chromium", () => undefined);
  });
}

(available ? describeEachDb : () => undefined)("docs page", (flavor) => {
  let issuer: TestIssuer;
  let browser: Browser;
  let issuerUrl: string;

  beforeAll(async () => {
    const port = await freePort();
    issuerUrl = `http://localhost:${port}`;
    issuer = await startIssuer(flavor, { env: { ISSUER: issuerUrl, COOKIE_SECURE: "false" } });
    await issuer.app.listen({ port, host: "127.0.0.1" });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await issuer?.close();
  });

  it("renders the endpoints, with no CSP violation and nothing fetched from elsewhere", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const console: string[] = [];
    const elsewhere: string[] = [];
    const failed: string[] = [];
    page.on("console", (msg) => console.push(`${msg.type()}: ${msg.text()}`));
    page.on("pageerror", (err) => console.push(`pageerror: ${err.message}`));
    page.on("request", (req) => {
      if (!req.url().startsWith(issuerUrl) && !req.url().startsWith("data:")) elsewhere.push(req.url());
    });
    page.on("requestfailed", (req) => failed.push(req.url()));
    const res = await page.goto(`${issuerUrl}/docs`);
    expect(res?.status()).toBe(200);
    // Swagger UI renders one block per operation, path text included.
    await page.locator(".opblock-summary-path", { hasText: "/oauth/token" }).first().waitFor({ timeout: 20_000 });
    const text = await page.locator("body").innerText();
    for (const path of ["/oauth/token", "/account/password", "/.well-known/jwks.json", "/statuslists"]) expect(text).toContain(path);
    expect(console.filter((line) => /content security policy|csp|refused to/i.test(line))).toEqual([]);
    expect(elsewhere).toEqual([]);
    expect(failed).toEqual([]);
    await context.close();
  }, 60_000);
});
