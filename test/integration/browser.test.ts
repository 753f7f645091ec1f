// The browser endpoints (/auth/register, /auth/login, /auth/refresh, /auth/logout) end to end:
// what a browser sees (status, JSON, headers, cookies), the refresh-token cookie lifecycle and
// the CSRF defences (JSON-only content type, Origin allow-list, Fetch Metadata).
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  PASSWORD,
  describeEachDb,
  errorOf,
  passwordGrant,
  refreshGrant,
  register,
  startIssuer,
  uniqueEmail,
  verifyAccessToken,
  type TestIssuer,
} from "../helpers/issuer.ts";

const ALLOWED_ORIGIN = "https://app.test";
const REFRESH_TTL_SECONDS = 2 * 3600; // REFRESH_TOKEN_TTL=2h below
const GRACE_SECONDS = 5; // REFRESH_REUSE_GRACE=5 below
const ACCESS_TTL_SECONDS = 600; // ACCESS_TOKEN_TTL=600 below

// ---- what the browser does ----

type Headers = Record<string, string>;

function json(url: string, body: unknown, headers: Headers = {}, cookie?: string): InjectOptions {
  return {
    method: "POST",
    url,
    headers: { "content-type": "application/json", ...headers },
    payload: body === undefined ? "" : JSON.stringify(body),
    ...(cookie !== undefined ? { cookies: { refresh_token: cookie } } : {}),
  };
}

const registerRaw = (app: FastifyInstance, body: unknown, headers: Headers = {}) => app.inject(json("/auth/register", body, headers));
const loginReq = (app: FastifyInstance, email: string, password: string, headers: Headers = {}) =>
  app.inject(json("/auth/login", { email, password }, headers));
const refreshReq = (app: FastifyInstance, cookie?: string, headers: Headers = {}) =>
  app.inject(json("/auth/refresh", undefined, headers, cookie));
const logoutReq = (app: FastifyInstance, cookie?: string, headers: Headers = {}) =>
  app.inject(json("/auth/logout", undefined, headers, cookie));

function setCookieHeaders(res: LightMyRequestResponse): string[] {
  const raw = res.headers["set-cookie"];
  if (raw === undefined) return [];
  return Array.isArray(raw) ? raw : [raw];
}

/** The raw Set-Cookie line for refresh_token, or undefined. */
function refreshSetCookie(res: LightMyRequestResponse): string | undefined {
  const lines = setCookieHeaders(res).filter((l) => l.startsWith("refresh_token="));
  expect(lines.length).toBeLessThanOrEqual(1);
  return lines[0];
}

interface ParsedCookie {
  value: string;
  attrs: Map<string, string | true>;
}

function parseSetCookie(line: string): ParsedCookie {
  const [pair, ...rest] = line.split(";");
  const eq = pair!.indexOf("=");
  const attrs = new Map<string, string | true>();
  for (const part of rest) {
    const p = part.trim();
    if (!p) continue;
    const i = p.indexOf("=");
    if (i < 0) attrs.set(p.toLowerCase(), true);
    else attrs.set(p.slice(0, i).trim().toLowerCase(), p.slice(i + 1).trim());
  }
  return { value: decodeURIComponent(pair!.slice(eq + 1)), attrs };
}

/** The refresh_token cookie the response sets (and asserts it sets one with a value). */
function issuedCookie(res: LightMyRequestResponse): ParsedCookie {
  const line = refreshSetCookie(res);
  expect(line, "a refresh_token Set-Cookie header").toBeDefined();
  const parsed = parseSetCookie(line!);
  expect(parsed.value).toMatch(/^[A-Za-z0-9_-]{43}$/);
  return parsed;
}

/** Asserts the response tells the browser to delete the refresh_token cookie at Path=/auth. */
function expectCookieCleared(res: LightMyRequestResponse): void {
  const line = refreshSetCookie(res);
  expect(line, "a Set-Cookie header clearing refresh_token").toBeDefined();
  const c = parseSetCookie(line!);
  expect(c.value).toBe("");
  // A deletion only works if it names the same path the cookie was set with.
  expect(c.attrs.get("path")).toBe("/auth");
  const maxAge = c.attrs.get("max-age");
  const expires = c.attrs.get("expires");
  const gone =
    (typeof maxAge === "string" && Number(maxAge) <= 0) || (typeof expires === "string" && new Date(expires).getTime() < Date.now());
  expect(gone, `cookie is expired: ${line}`).toBe(true);
}

/** Register a user through /auth/register and log in through /auth/login; returns the cookie. */
async function browserLogin(app: FastifyInstance, headers: Headers = {}) {
  const user = await register(app);
  const res = await loginReq(app, user.email, user.password, headers);
  expect(res.statusCode, res.body).toBe(200);
  const body = res.json() as { access_token: string };
  return { ...user, res, accessToken: body.access_token, cookie: issuedCookie(res).value };
}

const multipart = (fields: Record<string, string>) => {
  const boundary = "----tesseraBoundary7MA4YWxkTrZu0gW";
  const parts = Object.entries(fields).map(([k, v]) => `--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`);
  return { contentType: `multipart/form-data; boundary=${boundary}`, payload: `${parts.join("")}--${boundary}--\r\n` };
};

function expectErrorShape(res: LightMyRequestResponse): void {
  expect(res.statusCode).toBeLessThan(500);
  expect(res.headers["content-type"]).toMatch(/^application\/json/);
  const body = res.json() as Record<string, unknown>;
  expect(typeof body.error).toBe("string");
  expect(typeof body.error_description).toBe("string");
}

describeEachDb("browser endpoints", (flavor) => {
  let issuer: TestIssuer;
  let app: FastifyInstance;
  beforeAll(async () => {
    issuer = await startIssuer(flavor, {
      env: {
        REFRESH_TOKEN_TTL: "2h",
        REFRESH_REUSE_GRACE: String(GRACE_SECONDS),
        ACCESS_TOKEN_TTL: String(ACCESS_TTL_SECONDS),
      },
    });
    app = issuer.app;
  });
  afterAll(async () => issuer?.close());

  /** The session behind a refresh cookie is alive iff the cookie still refreshes (checked without rotating it twice). */
  const sessionIdOf = async (accessToken: string) => (await verifyAccessToken(issuer, accessToken)).sid as string;
  const sessionRevoked = async (sid: string) =>
    (await issuer.storage.db.session.findUniqueOrThrow({ where: { id: sid } })).revokedAt !== null;

  describe("POST /auth/register", () => {
    it("201 with {id, email}; the user can then log in", async () => {
      const email = uniqueEmail("reg");
      const res = await registerRaw(app, { email, password: PASSWORD });
      expect(res.statusCode).toBe(201);
      expect(res.headers["content-type"]).toMatch(/^application\/json/);
      const body = res.json() as Record<string, unknown>;
      expect(Object.keys(body).sort()).toEqual(["email", "id"]);
      expect(body.email).toBe(email);
      expect(body.id).toEqual(expect.any(String));
      expect(JSON.stringify(body)).not.toContain(PASSWORD);
      const login = await loginReq(app, email, PASSWORD);
      expect(login.statusCode).toBe(200);
      expect((await verifyAccessToken(issuer, (login.json() as { access_token: string }).access_token)).sub).toBe(body.id);
    });

    it("normalises the email: upper case and surrounding whitespace are stored lower-cased and trimmed", async () => {
      const email = uniqueEmail("Norm");
      const res = await registerRaw(app, { email: `  ${email.toUpperCase()}\t `, password: PASSWORD });
      expect(res.statusCode).toBe(201);
      expect((res.json() as { email: string }).email).toBe(email.toLowerCase());
      // Logging in with any casing finds the same account.
      const login = await loginReq(app, email.toUpperCase(), PASSWORD);
      expect(login.statusCode).toBe(200);
    });

    it("registering the same address in another casing is 409", async () => {
      const email = uniqueEmail("dup");
      const first = await registerRaw(app, { email: email.toUpperCase(), password: PASSWORD });
      expect(first.statusCode).toBe(201);
      const second = await registerRaw(app, { email: email.toLowerCase(), password: PASSWORD });
      expect(second.statusCode).toBe(409);
      expectErrorShape(second);
      const third = await registerRaw(app, { email: ` ${email} `, password: "another password entirely" });
      expect(third.statusCode).toBe(409);
    });

    it("password policy: 7 characters is 400 invalid_request, 8 is accepted", async () => {
      const short = await registerRaw(app, { email: uniqueEmail(), password: "a".repeat(7) });
      expect(errorOf(short)).toMatchObject({ status: 400, error: "invalid_request" });
      expect(errorOf(short).description).toMatch(/at least 8/);
      const ok = await registerRaw(app, { email: uniqueEmail(), password: "a".repeat(8) });
      expect(ok.statusCode).toBe(201);
    });

    it("password policy: 1024 characters is accepted, 1025 is 400 invalid_request", async () => {
      const max = await registerRaw(app, { email: uniqueEmail(), password: "b".repeat(1024) });
      expect(max.statusCode).toBe(201);
      const over = await registerRaw(app, { email: uniqueEmail(), password: "b".repeat(1025) });
      expect(errorOf(over)).toMatchObject({ status: 400, error: "invalid_request" });
      expect(errorOf(over).description).toMatch(/at most 1024/);
    });

    it("password policy counts characters, not bytes or UTF-16 units", async () => {
      // 7 emoji: 28 UTF-8 bytes, 14 UTF-16 units, but only 7 characters.
      const sevenEmoji = await registerRaw(app, { email: uniqueEmail(), password: "🔑".repeat(7) });
      expect(errorOf(sevenEmoji)).toMatchObject({ status: 400, error: "invalid_request" });
      // 8 emoji is 8 characters.
      const eightEmoji = await registerRaw(app, { email: uniqueEmail(), password: "🔑".repeat(8) });
      expect(eightEmoji.statusCode).toBe(201);
      // 1024 two-byte characters (2048 bytes) is within the limit; 1024 emoji (4096 bytes) too.
      const accented = await registerRaw(app, { email: uniqueEmail(), password: "é".repeat(1024) });
      expect(accented.statusCode).toBe(201);
      const emojiMax = await registerRaw(app, { email: uniqueEmail(), password: "🔑".repeat(1024) });
      expect(emojiMax.statusCode).toBe(201);
      const emojiOver = await registerRaw(app, { email: uniqueEmail(), password: "🔑".repeat(1025) });
      expect(errorOf(emojiOver)).toMatchObject({ status: 400, error: "invalid_request" });
    });

    it("password policy: NUL or an unpaired surrogate is 400 invalid_request (the token endpoint could never take that password)", async () => {
      for (const password of ["correct horse\u0000battery", "correct horse \uD800 battery", "correct horse \uDC00"]) {
        const res = await registerRaw(app, { email: uniqueEmail(), password });
        expect(errorOf(res)).toMatchObject({ status: 400, error: "invalid_request" });
        expect(errorOf(res).description).toMatch(/cannot be used/);
      }
      // Other control characters are characters like any other (NIST 800-63B): accepted, and
      // the password grant takes them.
      const email = uniqueEmail();
      const tabbed = "correct\thorse\u0001battery";
      expect((await registerRaw(app, { email, password: tabbed })).statusCode).toBe(201);
      expect((await passwordGrant(app, email, tabbed)).statusCode).toBe(200);
    });

    it("a multi-byte password round-trips: register and log in with it", async () => {
      const email = uniqueEmail();
      const password = "пароль-密码-🔑🔑";
      expect((await registerRaw(app, { email, password })).statusCode).toBe(201);
      expect((await loginReq(app, email, password)).statusCode).toBe(200);
      expect((await loginReq(app, email, "пароль-密码-🔑")).statusCode).toBe(400);
    });

    it("missing or malformed fields are 400 invalid_request with a JSON error, never 500", async () => {
      const email = uniqueEmail("bad");
      const bodies: unknown[] = [
        {},
        { email },
        { password: PASSWORD },
        { email: "", password: PASSWORD },
        { email, password: "" },
        { email: "not-an-email", password: PASSWORD },
        { email: "two@at@signs", password: PASSWORD },
        { email: "has space@x.test", password: PASSWORD },
        { email: `${"a".repeat(300)}@x.test`, password: PASSWORD },
        { email: null, password: PASSWORD },
        { email, password: null },
        { email: { $ne: null }, password: PASSWORD },
        { email, password: { length: 12 } },
        { email: [email], password: [PASSWORD, PASSWORD] },
        [],
        [email, PASSWORD],
        "just a string",
        42,
        null,
      ];
      for (const body of bodies) {
        const res = await registerRaw(app, body);
        expect({ body, status: res.statusCode }).toEqual({ body, status: 400 });
        expectErrorShape(res);
        expect(errorOf(res).error).toBe("invalid_request");
      }
    });

    // A number or a one-element array is not a password (or an email); accepting it by coercion
    // stores a password the client never sent as text, and makes `password: 12345678` log in.
    it.each([
      ["a number password", { password: 123456789 }],
      ["a large number password", { password: 1e21 }],
      ["a one-element array password", { password: ["a long enough password"] }],
      ["a boolean password", { password: true }],
    ])("non-string JSON values are rejected, not coerced to strings: %s", async (_name, fields) => {
      const body = { email: uniqueEmail("coerce"), ...fields };
      const res = await registerRaw(app, body);
      expect({ body, status: res.statusCode }).toEqual({ body, status: 400 });
      expect(errorOf(res).error).toBe("invalid_request");
    });

    it("a number sent as the login password does not authenticate the account whose password is its digits", async () => {
      const user = await register(app, uniqueEmail("coerce"), "1234567890");
      const res = await app.inject(json("/auth/login", { email: user.email, password: 1234567890 }));
      expect(errorOf(res)).toMatchObject({ status: 400, error: "invalid_request" });
      expect(refreshSetCookie(res)).toBeUndefined();
    });

    it.each([
      ["a NUL byte", "nul\u0000.{tag}@example.test"],
      ["a lone surrogate", "sur\ud800.{tag}@example.test"],
      ["a control character", "ctl\u0007.{tag}@example.test"],
    ])("an email with %s is 400 invalid_request on register and a 4xx on login, never 500", async (_name, template) => {
      const email = template.replace("{tag}", uniqueEmail("x").split("@")[0]!);
      expect(email.split("@")).toHaveLength(2);
      const reg = await registerRaw(app, { email, password: PASSWORD });
      expect({ status: reg.statusCode, body: reg.body }).toMatchObject({ status: 400 });
      expect(errorOf(reg).error).toBe("invalid_request");
      const login = await loginReq(app, email, PASSWORD);
      expect({ status: login.statusCode, body: login.body }).toMatchObject({ status: 400 });
      expectErrorShape(login);
      expect(refreshSetCookie(login)).toBeUndefined();
    });

    it("invalid JSON, an empty body and a text/plain body are 4xx invalid_request, never 500", async () => {
      const badJson = await app.inject({
        method: "POST",
        url: "/auth/register",
        headers: { "content-type": "application/json" },
        payload: '{"email": "x@y.test", "password": ',
      });
      expect(errorOf(badJson)).toMatchObject({ status: 400, error: "invalid_request" });
      const empty = await app.inject({ method: "POST", url: "/auth/register", headers: { "content-type": "application/json" }, payload: "" });
      expect(errorOf(empty)).toMatchObject({ status: 400, error: "invalid_request" });
      // No body and no content type: refused by the JSON-only CSRF guard.
      const none = await app.inject({ method: "POST", url: "/auth/register" });
      expect(errorOf(none)).toMatchObject({ status: 415, error: "invalid_request" });
      const text = await app.inject({
        method: "POST",
        url: "/auth/register",
        headers: { "content-type": "text/plain" },
        payload: JSON.stringify({ email: uniqueEmail(), password: PASSWORD }),
      });
      // Not JSON: either the media type (415) or the body shape (400) is refused.
      expect([400, 415]).toContain(text.statusCode);
      expect(errorOf(text).error).toBe("invalid_request");
      for (const res of [badJson, empty, none, text]) expectErrorShape(res);
    });
  });

  describe("POST /auth/login", () => {
    it("200 with an access token and no refresh token in the body; Cache-Control: no-store", async () => {
      const { res } = await browserLogin(app);
      expect(res.headers["cache-control"]).toBe("no-store");
      const body = res.json() as Record<string, unknown>;
      expect(body).toMatchObject({ token_type: "Bearer", expires_in: ACCESS_TTL_SECONDS });
      expect(body.access_token).toEqual(expect.any(String));
      expect(body).not.toHaveProperty("refresh_token");
      // The cookie's value appears nowhere in the body JavaScript can read.
      expect(res.body).not.toContain(issuedCookie(res).value);
    });

    it("sets the refresh cookie HttpOnly; Secure; SameSite=Strict; Path=/auth; Max-Age = REFRESH_TOKEN_TTL", async () => {
      const { res } = await browserLogin(app);
      const c = issuedCookie(res);
      expect(c.attrs.get("httponly")).toBe(true);
      expect(c.attrs.get("secure")).toBe(true);
      expect(String(c.attrs.get("samesite")).toLowerCase()).toBe("strict");
      expect(c.attrs.get("path")).toBe("/auth");
      expect(c.attrs.has("domain")).toBe(false);
      const maxAge = Number(c.attrs.get("max-age"));
      expect(Math.abs(maxAge - REFRESH_TTL_SECONDS)).toBeLessThanOrEqual(1);
    });

    it("the access token verifies and carries typ at+jwt, iss, sub, aud, exp, iat, jti, client_id web, scope, sid", async () => {
      const { accessToken, id } = await browserLogin(app);
      const [headerB64] = accessToken.split(".");
      const header = JSON.parse(Buffer.from(headerB64!, "base64url").toString("utf8")) as Record<string, unknown>;
      expect(header.typ).toBe("at+jwt");
      expect(header.alg).toBe(issuer.config.signingAlg);
      const claims = await verifyAccessToken(issuer, accessToken);
      expect(claims).toMatchObject({
        iss: "https://issuer.test",
        sub: id,
        aud: issuer.config.accessTokenAudience,
        client_id: "web",
        scope: "profile",
      });
      expect(claims.jti).toEqual(expect.any(String));
      expect(claims.sid).toEqual(expect.any(String));
      expect(claims.iat).toBe(Math.floor(issuer.clock.now().getTime() / 1000));
      expect(claims.exp).toBe(claims.iat! + ACCESS_TTL_SECONDS);
    });

    it("wrong password and unknown user give the same status and byte-identical bodies", async () => {
      const user = await register(app);
      const wrong = await loginReq(app, user.email, "not the password at all");
      const unknown = await loginReq(app, uniqueEmail("ghost"), "not the password at all");
      const malformed = await loginReq(app, "not-an-email", "not the password at all");
      expect(wrong.statusCode).toBe(400);
      expect(errorOf(wrong).error).toBe("invalid_grant");
      expect(unknown.statusCode).toBe(wrong.statusCode);
      expect(unknown.body).toBe(wrong.body);
      expect(malformed.statusCode).toBe(wrong.statusCode);
      expect(malformed.body).toBe(wrong.body);
      for (const r of [wrong, unknown]) {
        expect(refreshSetCookie(r)).toBeUndefined();
        expect(r.headers["cache-control"]).toBe("no-store");
      }
    });

    it("missing fields are 400 invalid_request", async () => {
      for (const body of [{}, { email: uniqueEmail() }, { password: PASSWORD }, []]) {
        const res = await app.inject(json("/auth/login", body));
        expect(errorOf(res)).toMatchObject({ status: 400, error: "invalid_request" });
        expect(refreshSetCookie(res)).toBeUndefined();
      }
    });
  });

  describe("POST /auth/refresh", () => {
    it("200 with a new access token and a rotated refresh cookie", async () => {
      const login = await browserLogin(app);
      issuer.clock.advance(30);
      const res = await refreshReq(app, login.cookie);
      expect(res.statusCode, res.body).toBe(200);
      expect(res.headers["cache-control"]).toBe("no-store");
      const body = res.json() as Record<string, unknown>;
      expect(body).toMatchObject({ token_type: "Bearer", expires_in: ACCESS_TTL_SECONDS });
      expect(body).not.toHaveProperty("refresh_token");
      expect(body.access_token).not.toBe(login.accessToken);
      const claims = await verifyAccessToken(issuer, body.access_token as string);
      expect(claims.sub).toBe(login.id);
      expect(claims.sid).toBe(await sessionIdOf(login.accessToken));
      const c = issuedCookie(res);
      expect(c.value).not.toBe(login.cookie);
      expect(c.attrs.get("httponly")).toBe(true);
      expect(c.attrs.get("secure")).toBe(true);
      expect(String(c.attrs.get("samesite")).toLowerCase()).toBe("strict");
      expect(c.attrs.get("path")).toBe("/auth");
      // The cookie never outlives the session: its Max-Age counts down from login.
      expect(Math.abs(Number(c.attrs.get("max-age")) - (REFRESH_TTL_SECONDS - 30))).toBeLessThanOrEqual(1);
      // The new cookie works.
      expect((await refreshReq(app, c.value)).statusCode).toBe(200);
    });

    it("the old cookie after the grace window is 401 invalid_grant and the response clears the cookie", async () => {
      const login = await browserLogin(app);
      const first = await refreshReq(app, login.cookie);
      expect(first.statusCode).toBe(200);
      issuer.clock.advance(GRACE_SECONDS + 1);
      const replay = await refreshReq(app, login.cookie);
      expect(errorOf(replay)).toMatchObject({ status: 401, error: "invalid_grant" });
      expect(replay.headers["cache-control"]).toBe("no-store");
      expectCookieCleared(replay);
    });

    it("no cookie is 401 invalid_grant", async () => {
      const res = await refreshReq(app);
      expect(errorOf(res)).toMatchObject({ status: 401, error: "invalid_grant" });
      expectErrorShape(res);
      const garbage = await refreshReq(app, "garbage");
      expect(errorOf(garbage)).toMatchObject({ status: 401, error: "invalid_grant" });
      expectCookieCleared(garbage);
    });

    it("the cookie also works as a Cookie header", async () => {
      const login = await browserLogin(app);
      const res = await app.inject({
        method: "POST",
        url: "/auth/refresh",
        headers: { "content-type": "application/json", cookie: `theme=dark; refresh_token=${login.cookie}` },
        payload: "{}",
      });
      expect(res.statusCode).toBe(200);
      expect(issuedCookie(res).value).not.toBe(login.cookie);
    });
  });

  describe("POST /auth/logout", () => {
    it("204, clears the cookie, and revokes the session for the cookie and for /oauth/token", async () => {
      const login = await browserLogin(app);
      const sid = await sessionIdOf(login.accessToken);
      const res = await logoutReq(app, login.cookie);
      expect(res.statusCode).toBe(204);
      expect(res.body).toBe("");
      expect(res.headers["cache-control"]).toBe("no-store");
      expectCookieCleared(res);
      expect(await sessionRevoked(sid)).toBe(true);

      const viaCookie = await refreshReq(app, login.cookie);
      expect(errorOf(viaCookie)).toMatchObject({ status: 401, error: "invalid_grant" });
      const viaTokenEndpoint = await refreshGrant(app, login.cookie);
      expect(errorOf(viaTokenEndpoint)).toMatchObject({ status: 400, error: "invalid_grant" });
    });

    it("logout revokes a session that was already rotated (the current cookie)", async () => {
      const login = await browserLogin(app);
      const rotated = issuedCookie(await refreshReq(app, login.cookie)).value;
      expect((await logoutReq(app, rotated)).statusCode).toBe(204);
      expect((await refreshReq(app, rotated)).statusCode).toBe(401);
      expect((await refreshGrant(app, rotated)).statusCode).toBe(400);
    });

    it("logout without a cookie (or with a garbage one) is 204 and clears the cookie", async () => {
      const none = await logoutReq(app);
      expect(none.statusCode).toBe(204);
      expectCookieCleared(none);
      const garbage = await logoutReq(app, "x".repeat(43));
      expect(garbage.statusCode).toBe(204);
      expectCookieCleared(garbage);
    });
  });

  describe("CSRF", () => {
    const nonJson = () => {
      const mp = multipart({ email: "victim@example.test", password: PASSWORD });
      return [
        { name: "form", contentType: "application/x-www-form-urlencoded", payload: "" },
        { name: "multipart", contentType: mp.contentType, payload: mp.payload },
        { name: "text/plain", contentType: "text/plain", payload: "" },
        { name: "text/plain;charset=UTF-8", contentType: "text/plain;charset=UTF-8", payload: "{}" },
      ];
    };

    it("/auth/login rejects form, multipart and text/plain bodies with 415 invalid_request and sets no cookie", async () => {
      const user = await register(app);
      const creds = { email: user.email, password: user.password };
      const bodies: Record<string, string> = {
        "application/x-www-form-urlencoded": new URLSearchParams(creds).toString(),
        "text/plain": JSON.stringify(creds),
        "text/plain;charset=UTF-8": JSON.stringify(creds),
      };
      const mp = multipart(creds);
      bodies[mp.contentType] = mp.payload;
      const outcomes: Record<string, { status: number; error: string }> = {};
      for (const [contentType, payload] of Object.entries(bodies)) {
        const res = await app.inject({ method: "POST", url: "/auth/login", headers: { "content-type": contentType }, payload });
        // No effect, whatever the status: no cookie, no token.
        expect(refreshSetCookie(res)).toBeUndefined();
        expect(res.body).not.toContain("access_token");
        expectErrorShape(res);
        outcomes[contentType] = { status: res.statusCode, error: errorOf(res).error };
      }
      // No session was started for the user.
      expect(await issuer.storage.db.session.count({ where: { userId: user.id } })).toBe(0);
      // And each is refused as the wrong media type.
      expect(outcomes).toEqual(Object.fromEntries(Object.keys(bodies).map((ct) => [ct, { status: 415, error: "invalid_request" }])));
    });

    it("/auth/refresh rejects non-JSON content types with 415 and does not rotate", async () => {
      const login = await browserLogin(app);
      for (const b of nonJson()) {
        const res = await app.inject({
          method: "POST",
          url: "/auth/refresh",
          headers: { "content-type": b.contentType },
          payload: b.payload,
          cookies: { refresh_token: login.cookie },
        });
        expect({ name: b.name, ...errorOf(res) }).toMatchObject({ name: b.name, status: 415, error: "invalid_request" });
        expect(refreshSetCookie(res)).toBeUndefined();
      }
      // Had any of them rotated the token, the original would now be a replay outside the grace window.
      issuer.clock.advance(GRACE_SECONDS + 1);
      const ok = await refreshReq(app, login.cookie);
      expect(ok.statusCode, ok.body).toBe(200);
    });

    it("/auth/logout rejects non-JSON content types with 415 and does not revoke", async () => {
      const login = await browserLogin(app);
      const sid = await sessionIdOf(login.accessToken);
      for (const b of nonJson()) {
        const res = await app.inject({
          method: "POST",
          url: "/auth/logout",
          headers: { "content-type": b.contentType },
          payload: b.payload,
          cookies: { refresh_token: login.cookie },
        });
        expect({ name: b.name, ...errorOf(res) }).toMatchObject({ name: b.name, status: 415, error: "invalid_request" });
        expect(refreshSetCookie(res)).toBeUndefined();
      }
      // No content type at all is not JSON either.
      const bare = await app.inject({ method: "POST", url: "/auth/logout", cookies: { refresh_token: login.cookie } });
      expect(errorOf(bare)).toMatchObject({ status: 415, error: "invalid_request" });
      expect(await sessionRevoked(sid)).toBe(false);
      expect((await refreshReq(app, login.cookie)).statusCode).toBe(200);
    });

    it("an Origin not in ALLOWED_ORIGINS is 403 invalid_origin on login, refresh and logout, with no effect", async () => {
      const login = await browserLogin(app);
      const sid = await sessionIdOf(login.accessToken);
      const user = await register(app);
      for (const origin of ["https://evil.test", "null", "https://app.test.evil.test", "http://app.test", "https://app.test:8443"]) {
        const l = await loginReq(app, user.email, user.password, { origin });
        expect({ origin, ...errorOf(l) }).toMatchObject({ origin, status: 403, error: "invalid_origin" });
        expect(refreshSetCookie(l)).toBeUndefined();
        expect(l.headers["access-control-allow-origin"]).toBeUndefined();

        const r = await refreshReq(app, login.cookie, { origin });
        expect({ origin, ...errorOf(r) }).toMatchObject({ origin, status: 403, error: "invalid_origin" });
        expect(refreshSetCookie(r)).toBeUndefined();

        const o = await logoutReq(app, login.cookie, { origin });
        expect({ origin, ...errorOf(o) }).toMatchObject({ origin, status: 403, error: "invalid_origin" });
        expect(refreshSetCookie(o)).toBeUndefined();
      }
      expect(await issuer.storage.db.session.count({ where: { userId: user.id } })).toBe(0);
      expect(await sessionRevoked(sid)).toBe(false);
      issuer.clock.advance(GRACE_SECONDS + 1);
      expect((await refreshReq(app, login.cookie)).statusCode).toBe(200);
    });

    it("the allowed origin https://app.test works on login, refresh and logout (with CORS credentials)", async () => {
      const login = await browserLogin(app, { origin: ALLOWED_ORIGIN });
      expect(login.res.headers["access-control-allow-origin"]).toBe(ALLOWED_ORIGIN);
      expect(login.res.headers["access-control-allow-credentials"]).toBe("true");
      const r = await refreshReq(app, login.cookie, { origin: ALLOWED_ORIGIN, "sec-fetch-site": "same-site" });
      expect(r.statusCode).toBe(200);
      const next = issuedCookie(r).value;
      const o = await logoutReq(app, next, { origin: ALLOWED_ORIGIN });
      expect(o.statusCode).toBe(204);
      expect((await refreshReq(app, next)).statusCode).toBe(401);
    });

    it("no Origin but Sec-Fetch-Site: cross-site is 403 invalid_origin on login, refresh and logout", async () => {
      const login = await browserLogin(app);
      const user = await register(app);
      const xs = { "sec-fetch-site": "cross-site" };
      const l = await loginReq(app, user.email, user.password, xs);
      expect(errorOf(l)).toMatchObject({ status: 403, error: "invalid_origin" });
      expect(refreshSetCookie(l)).toBeUndefined();
      const r = await refreshReq(app, login.cookie, xs);
      expect(errorOf(r)).toMatchObject({ status: 403, error: "invalid_origin" });
      const o = await logoutReq(app, login.cookie, xs);
      expect(errorOf(o)).toMatchObject({ status: 403, error: "invalid_origin" });
      issuer.clock.advance(GRACE_SECONDS + 1);
      expect((await refreshReq(app, login.cookie)).statusCode).toBe(200);
      // Same-origin fetch metadata without Origin is fine.
      expect((await loginReq(app, user.email, user.password, { "sec-fetch-site": "same-origin" })).statusCode).toBe(200);
    });

    it("an empty body with Content-Type application/json is accepted on /auth/refresh and /auth/logout", async () => {
      const login = await browserLogin(app);
      for (const contentType of ["application/json", "application/json; charset=utf-8"]) {
        const r = await app.inject({
          method: "POST",
          url: "/auth/refresh",
          headers: { "content-type": contentType },
          payload: "",
          cookies: { refresh_token: login.cookie },
        });
        expect(r.statusCode, r.body).toBe(200);
      }
      const current = issuedCookie(await refreshReq(app, login.cookie)).value;
      const o = await app.inject({
        method: "POST",
        url: "/auth/logout",
        headers: { "content-type": "application/json" },
        payload: "",
        cookies: { refresh_token: current },
      });
      expect(o.statusCode).toBe(204);
      expectCookieCleared(o);
      expect((await refreshReq(app, current)).statusCode).toBe(401);
    });
  });
});

describeEachDb("browser endpoints with COOKIE_SECURE=false", (flavor) => {
  let issuer: TestIssuer;
  beforeAll(async () => {
    issuer = await startIssuer(flavor, { env: { COOKIE_SECURE: "false", REFRESH_TOKEN_TTL: "1d" } });
  });
  afterAll(async () => issuer?.close());

  it("the refresh cookie has no Secure attribute but keeps HttpOnly, SameSite=Strict, Path=/auth", async () => {
    const { res, cookie } = await browserLogin(issuer.app);
    const c = issuedCookie(res);
    expect(c.attrs.has("secure")).toBe(false);
    expect(c.attrs.get("httponly")).toBe(true);
    expect(String(c.attrs.get("samesite")).toLowerCase()).toBe("strict");
    expect(c.attrs.get("path")).toBe("/auth");
    expect(Math.abs(Number(c.attrs.get("max-age")) - 86400)).toBeLessThanOrEqual(1);
    const r = await refreshReq(issuer.app, cookie);
    expect(r.statusCode).toBe(200);
    expect(issuedCookie(r).attrs.has("secure")).toBe(false);
  });
});

describeEachDb("browser endpoints with ALLOW_REGISTRATION=false", (flavor) => {
  let issuer: TestIssuer;
  beforeAll(async () => {
    issuer = await startIssuer(flavor, { env: { ALLOW_REGISTRATION: "false" } });
  });
  afterAll(async () => issuer?.close());

  it("POST /auth/register is 403 registration_disabled and creates no user", async () => {
    const email = uniqueEmail("closed");
    const res = await registerRaw(issuer.app, { email, password: PASSWORD });
    expect(errorOf(res)).toMatchObject({ status: 403, error: "registration_disabled" });
    expectErrorShape(res);
    expect(await issuer.storage.db.user.count({ where: { email } })).toBe(0);
    // Login for that address fails like any unknown user.
    expect(errorOf(await loginReq(issuer.app, email, PASSWORD))).toMatchObject({ status: 400, error: "invalid_grant" });
  });
});
