// What reaches the log: one line per request, correlated by request id, and never a secret
// (password, token, cookie, client credentials), whatever the request looked like.
import type { InjectOptions, LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, expect, it } from "vitest";
import { hashClientSecret } from "../../src/domain/clients/clients.ts";
import { createLogger } from "../../src/logger.ts";
import {
  PASSWORD,
  describeEachDb,
  form,
  LogCapture,
  passwordGrant,
  refreshGrant,
  register,
  startIssuer,
  uniqueEmail,
  type TestIssuer,
  type TokenPair,
} from "../helpers/issuer.ts";

const ORIGIN = "https://app.test";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

type LogLine = Record<string, unknown>;

/** The log lines written since `from` (an index into issuer.logs.lines). */
const linesSince = (issuer: TestIssuer, from: number): string[] => issuer.logs.lines.slice(from);
const parsedSince = (issuer: TestIssuer, from: number): LogLine[] => linesSince(issuer, from).map((l) => JSON.parse(l) as LogLine);

function cookieValue(res: LightMyRequestResponse, name: string): string {
  const c = res.cookies.find((k) => k.name === name);
  if (!c?.value) throw new Error(`no ${name} cookie in ${JSON.stringify(res.headers["set-cookie"])}`);
  return c.value;
}

interface Sent {
  res: LightMyRequestResponse;
  method: string;
  path: string;
}

describeEachDb("logging", (flavor) => {
  let issuer: TestIssuer;
  beforeAll(async () => {
    issuer = await startIssuer(flavor, { env: { COOKIE_SECURE: "false" } });
  });
  afterAll(async () => issuer?.close());

  it("a full session never puts a password, token, cookie or client credential in the log, and logs one line per request", async () => {
    const from = issuer.logs.lines.length;
    const sent: Sent[] = [];
    const secrets: Record<string, string> = {};
    const send = async (opts: InjectOptions & { method: "GET" | "POST"; url: string }) => {
      const res = await issuer.app.inject(opts);
      sent.push({ res, method: opts.method, path: opts.url.split("?")[0]! });
      return res;
    };
    const json = (payload: unknown, extra: Record<string, string> = {}) => ({
      headers: { "content-type": "application/json", origin: ORIGIN, ...extra },
      payload: JSON.stringify(payload),
    });

    // Register (JSON) and log in with the password grant (form).
    const email = uniqueEmail("log");
    const password = `${PASSWORD} l0g-secret-pw`;
    secrets.password = password;
    const reg = await send({ method: "POST", url: "/auth/register", ...json({ email, password }) });
    expect(reg.statusCode).toBe(201);
    const grant = await send({
      method: "POST",
      url: "/oauth/token",
      ...form({ grant_type: "password", username: email, password, client_id: "web" }),
    });
    expect(grant.statusCode).toBe(200);
    const pair1 = grant.json() as TokenPair;
    secrets.access1 = pair1.access_token;
    secrets.refresh1 = pair1.refresh_token;

    // Browser login (JSON): access token in the body, refresh token in a cookie.
    const browser = await send({ method: "POST", url: "/auth/login", ...json({ email, password }) });
    expect(browser.statusCode).toBe(200);
    secrets.access2 = (browser.json() as TokenPair).access_token;
    secrets.cookie1 = cookieValue(browser, "refresh_token");

    // Refresh through the token endpoint...
    const rotated = await send({
      method: "POST",
      url: "/oauth/token",
      ...form({ grant_type: "refresh_token", refresh_token: pair1.refresh_token, client_id: "web" }),
    });
    expect(rotated.statusCode).toBe(200);
    const pair2 = rotated.json() as TokenPair;
    secrets.access3 = pair2.access_token;
    secrets.refresh2 = pair2.refresh_token;

    // ...and through the cookie endpoint.
    const cookieRefresh = await send({
      method: "POST",
      url: "/auth/refresh",
      headers: { "content-type": "application/json", origin: ORIGIN, cookie: `refresh_token=${secrets.cookie1}` },
      payload: "",
    });
    expect(cookieRefresh.statusCode).toBe(200);
    secrets.access4 = (cookieRefresh.json() as TokenPair).access_token;
    secrets.cookie2 = cookieValue(cookieRefresh, "refresh_token");

    const logout = await send({
      method: "POST",
      url: "/auth/logout",
      headers: { "content-type": "application/json", origin: ORIGIN, cookie: `refresh_token=${secrets.cookie2}` },
      payload: "",
    });
    expect(logout.statusCode).toBe(204);

    // Failed logins: wrong password (form and JSON), unknown user.
    secrets.wrong1 = "wrong-password-one-7731";
    secrets.wrong2 = "wrong-password-two-9142";
    secrets.wrong3 = "unknown-user-password-5580";
    const unknownEmail = uniqueEmail("nobody");
    expect(
      (
        await send({
          method: "POST",
          url: "/oauth/token",
          ...form({ grant_type: "password", username: email, password: secrets.wrong1, client_id: "web" }),
        })
      ).statusCode,
    ).toBe(400);
    expect((await send({ method: "POST", url: "/auth/login", ...json({ email, password: secrets.wrong2 }) })).statusCode).toBe(400);
    expect(
      (
        await send({
          method: "POST",
          url: "/oauth/token",
          ...form({ grant_type: "password", username: unknownEmail, password: secrets.wrong3, client_id: "web" }),
        })
      ).statusCode,
    ).toBe(400);

    // HTTP Basic client authentication: a confidential client with the right secret, then a wrong one.
    const clientSecret = "basic-client-secret-Zq8wX2";
    await issuer.services.storage.clients.upsert({
      id: "log-svc",
      name: "Logging test client",
      type: "confidential",
      secretHash: hashClientSecret(clientSecret),
      grantTypes: ["password", "refresh_token"],
      scopes: ["profile"],
      audiences: [],
      resources: [],
      accessTokenTtl: null,
      refreshTokenTtl: null,
      createdAt: issuer.clock.now(),
      disabledAt: null,
    });
    const basicRaw = `log-svc:${clientSecret}`;
    const basicB64 = Buffer.from(basicRaw).toString("base64");
    secrets.basicSecret = clientSecret;
    secrets.basicRaw = basicRaw;
    secrets.basicB64 = basicB64;
    const basic = await send({
      method: "POST",
      url: "/oauth/token",
      headers: { ...form({}).headers, authorization: `Basic ${basicB64}` },
      payload: new URLSearchParams({ grant_type: "password", username: email, password }).toString(),
    });
    expect(basic.statusCode).toBe(200);
    const basicPair = basic.json() as TokenPair;
    secrets.access5 = basicPair.access_token;
    secrets.refresh3 = basicPair.refresh_token;
    const wrongBasicRaw = "log-svc:not-the-basic-secret-Kd93";
    secrets.wrongBasicRaw = wrongBasicRaw;
    secrets.wrongBasicB64 = Buffer.from(wrongBasicRaw).toString("base64");
    const badBasic = await send({
      method: "POST",
      url: "/oauth/token",
      headers: { ...form({}).headers, authorization: `Basic ${secrets.wrongBasicB64}` },
      payload: new URLSearchParams({ grant_type: "password", username: email, password }).toString(),
    });
    expect(badBasic.statusCode).toBe(401);

    // A Bearer token sent to the issuer (it is not a resource server, but clients do this).
    const bearer = await send({ method: "GET", url: "/.well-known/jwks.json", headers: { authorization: `Bearer ${secrets.access4}` } });
    expect(bearer.statusCode).toBe(200);
    const bearerPost = await send({
      method: "POST",
      url: "/oauth/token",
      headers: { ...form({}).headers, authorization: `Bearer ${secrets.access3}` },
      payload: new URLSearchParams({ grant_type: "refresh_token", refresh_token: secrets.refresh3, client_id: "log-svc" }).toString(),
    });
    expect(bearerPost.statusCode).toBe(401); // a confidential client without its secret

    // Tokens in the query string (RFC 6750 §2.3 lets clients do it): on a route, on a token
    // endpoint request and on an unknown path.
    const query = `access_token=${encodeURIComponent(secrets.access2)}&refresh_token=${encodeURIComponent(secrets.refresh2)}`;
    expect((await send({ method: "GET", url: `/healthz?${query}` })).statusCode).toBe(200);
    const queryPost = await send({
      method: "POST",
      url: `/oauth/token?${query}`,
      ...form({ grant_type: "password", username: email, password: secrets.wrong1, client_id: "web" }),
    });
    expect(queryPost.statusCode).toBe(400);
    const notFound = await send({ method: "GET", url: `/no/such/route?${query}` });
    expect(notFound.statusCode).toBe(404);
    expect(notFound.body).not.toContain(secrets.access2);

    // Malformed JSON that contains a password.
    secrets.malformedPw = "malformed-json-password-4471";
    const malformed = await send({
      method: "POST",
      url: "/auth/login",
      headers: { "content-type": "application/json", origin: ORIGIN },
      payload: `{"email":"${email}","password":"${secrets.malformedPw}"`,
    });
    expect(malformed.statusCode).toBe(400);
    const malformedToken = await send({
      method: "POST",
      url: "/oauth/token",
      headers: { "content-type": "application/json" },
      payload: `{"grant_type":"password","username":"${email}","password":"${secrets.malformedPw}",`,
    });
    expect(malformedToken.statusCode).toBe(400);

    // ---- the log ----
    const text = linesSince(issuer, from).join("\n");
    expect(text.length).toBeGreaterThan(0);
    for (const [name, secret] of Object.entries(secrets)) {
      expect(secret.length, name).toBeGreaterThanOrEqual(8);
      expect(text.includes(secret), `log contains ${name}`).toBe(false);
      // Also no URL-encoded copy (a token in a logged query string, a form body).
      expect(text.includes(encodeURIComponent(secret)), `log contains url-encoded ${name}`).toBe(false);
    }
    for (const name of ["access1", "access2", "access3", "access4", "access5"]) {
      const signature = secrets[name]!.split(".")[2]!;
      expect(text.includes(signature), `log contains the signature of ${name}`).toBe(false);
    }
    expect(text).not.toContain("Basic ");
    expect(text).not.toContain("Bearer ");

    // Exactly one "request" line per request, each with its id, method, path and status.
    const lines = parsedSince(issuer, from);
    const requestLines = lines.filter((l) => l.msg === "request");
    expect(requestLines).toHaveLength(sent.length);
    const ids = sent.map((s) => s.res.headers["x-request-id"]);
    expect(new Set(ids).size).toBe(sent.length);
    for (const { res, method, path } of sent) {
      const id = res.headers["x-request-id"];
      expect(id).toMatch(UUID);
      const mine = requestLines.filter((l) => l.reqId === id);
      expect(mine, `${method} ${path}`).toHaveLength(1);
      expect(mine[0]).toMatchObject({ method, path, status: res.statusCode, level: 30 });
      expect(String(mine[0]!.path)).not.toContain("?");
    }
    // Fastify's own "incoming request" / "request completed" lines are off.
    expect(lines.filter((l) => l.msg === "incoming request" || l.msg === "request completed")).toHaveLength(0);
    // The audit lines of the failed logins are there, and carry no password either.
    const failed = lines.filter((l) => l.audit === "login.failed");
    expect(failed.length).toBeGreaterThanOrEqual(4);
    for (const l of failed) expect(l).not.toHaveProperty("password");
  });

  it("a well-formed X-Request-Id is echoed and used as reqId", async () => {
    for (const incoming of ["trace-0af7651916cd43dd8448eb211c80319c", "a.b:c_d-E", "x".repeat(64)]) {
      const from = issuer.logs.lines.length;
      const res = await issuer.app.inject({ method: "GET", url: "/healthz", headers: { "x-request-id": incoming } });
      expect(res.statusCode).toBe(200);
      expect(res.headers["x-request-id"]).toBe(incoming);
      const lines = parsedSince(issuer, from).filter((l) => l.msg === "request");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatchObject({ reqId: incoming, method: "GET", path: "/healthz", status: 200 });
    }
  });

  it("a malformed X-Request-Id is replaced by a generated one", async () => {
    const bad = ["has spaces in it", "a".repeat(200), "x".repeat(65), "semi;colon", "ünïcode", ""];
    for (const incoming of bad) {
      const from = issuer.logs.lines.length;
      const res = await issuer.app.inject({ method: "GET", url: "/healthz", headers: { "x-request-id": incoming } });
      expect(res.statusCode).toBe(200);
      const echoed = res.headers["x-request-id"];
      expect(echoed).not.toBe(incoming);
      expect(echoed).toMatch(UUID);
      const lines = parsedSince(issuer, from);
      const requestLines = lines.filter((l) => l.msg === "request");
      expect(requestLines).toHaveLength(1);
      expect(requestLines[0]!.reqId).toBe(echoed);
      if (incoming !== "") expect(linesSince(issuer, from).join("\n")).not.toContain(incoming);
    }
  });

  it("refresh and cookie endpoints never echo tokens into the log on failure either", async () => {
    const from = issuer.logs.lines.length;
    const user = await register(issuer.app);
    const pair = (await passwordGrant(issuer.app, user.email, user.password)).json() as TokenPair;
    // Consume it, then replay long after the grace window: reuse detection logs a warning.
    expect((await refreshGrant(issuer.app, pair.refresh_token)).statusCode).toBe(200);
    issuer.clock.advance(3600);
    expect((await refreshGrant(issuer.app, pair.refresh_token)).statusCode).toBe(400);
    const deadCookie = await issuer.app.inject({
      method: "POST",
      url: "/auth/refresh",
      headers: { "content-type": "application/json", origin: ORIGIN, cookie: `refresh_token=${pair.refresh_token}` },
      payload: "",
    });
    expect(deadCookie.statusCode).toBe(401);
    const text = linesSince(issuer, from).join("\n");
    expect(text).toContain("refresh.reuse_detected");
    expect(text).not.toContain(pair.refresh_token);
    expect(text).not.toContain(pair.access_token);
    expect(text).not.toContain(user.password);
  });
});

// The second line of defence: whatever object is logged, the secret fields are censored.
it("createLogger redacts passwords, tokens, cookies and authorization headers", () => {
  const capture = new LogCapture();
  const logger = createLogger("info", capture);
  const s = {
    password: "redact-me-password-1",
    refresh: "redact-me-refresh-2",
    access: "redact-me-access-3",
    authz: "Bearer redact-me-authz-4",
    cookie: "refresh_token=redact-me-cookie-5",
    reqAuthz: "Basic cmVkYWN0LW1lLXJlcS1hdXRoei02",
    reqCookie: "refresh_token=redact-me-req-cookie-7",
    clientSecret: "redact-me-client-secret-8",
    nested: "redact-me-nested-password-9",
    body: "redact-me-body-10",
    setCookie: "refresh_token=redact-me-set-cookie-11",
    token: "redact-me-token-12",
  };
  logger.info(
    {
      password: s.password,
      refresh_token: s.refresh,
      access_token: s.access,
      client_secret: s.clientSecret,
      token: s.token,
      headers: { authorization: s.authz, cookie: s.cookie, accept: "application/json" },
      req: { method: "POST", headers: { authorization: s.reqAuthz, cookie: s.reqCookie }, body: { password: s.body } },
      res: { headers: { "set-cookie": s.setCookie } },
      params: { password: s.nested, username: "alice" },
      keep: "visible-value",
    },
    "redaction check",
  );
  logger.warn({ body: { refresh_token: s.refresh } }, "body check");
  expect(capture.lines).toHaveLength(2);
  for (const [name, secret] of Object.entries(s)) {
    expect(capture.text.includes(secret), `log contains ${name}`).toBe(false);
  }
  const [line, bodyLine] = capture.parsed() as [LogLine, LogLine];
  expect(line).toMatchObject({
    msg: "redaction check",
    password: "[redacted]",
    refresh_token: "[redacted]",
    access_token: "[redacted]",
    client_secret: "[redacted]",
    token: "[redacted]",
    headers: { authorization: "[redacted]", cookie: "[redacted]", accept: "application/json" },
    req: { method: "POST", headers: { authorization: "[redacted]", cookie: "[redacted]" }, body: "[redacted]" },
    res: { headers: { "set-cookie": "[redacted]" } },
    params: { password: "[redacted]", username: "alice" },
    keep: "visible-value",
  });
  expect(bodyLine).toMatchObject({ msg: "body check", body: "[redacted]" });
});
