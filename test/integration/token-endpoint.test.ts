// POST /oauth/token as RFC 6749 describes it: the successful response (§5.1), the error
// response (§5.2) with the right code and status for each failure, client authentication
// (§2.3.1), and hostile or malformed bodies, which must never produce a 500.
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from "fastify";
import { jwtVerify, createLocalJWKSet } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashClientSecret } from "../../src/domain/clients/clients.ts";
import {
  PASSWORD,
  describeEachDb,
  errorOf,
  form,
  passwordGrant,
  register,
  startIssuer,
  uniqueEmail,
  verifyAccessToken,
  type TestIssuer,
  type TokenPair,
} from "../helpers/issuer.ts";

const ACCESS_TTL_SECONDS = 300; // ACCESS_TOKEN_TTL=300 below
const CONFIDENTIAL_ID = "backend";
const CONFIDENTIAL_SECRET = "s3cret-value-for-tests";
const REFRESH_ONLY_ID = "refresh-only";

const basic = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString("base64")}`;

function post(payload: string | Buffer, contentType: string | undefined, headers: Record<string, string> = {}): InjectOptions {
  return {
    method: "POST",
    url: "/oauth/token",
    headers: { ...(contentType ? { "content-type": contentType } : {}), ...headers },
    payload,
  };
}

const formBody = (params: Record<string, string>) => new URLSearchParams(params).toString();
const FORM = "application/x-www-form-urlencoded";
const JSON_CT = "application/json";

/** A §5.2 error response: JSON {error, error_description}, no-store, no internals. */
function expectOAuthError(res: LightMyRequestResponse, status: number, error: string): { error: string; error_description: string } {
  expect({ status: res.statusCode, body: res.body }).toMatchObject({ status });
  expect(res.headers["content-type"]).toMatch(/^application\/json/);
  expect(res.headers["cache-control"]).toBe("no-store");
  const body = res.json() as { error: string; error_description: string };
  expect(body.error).toBe(error);
  expectSafeDescription(body);
  return body;
}

/** Whatever went wrong, the body is {error, error_description} and shows no stack or paths. */
function expectSafeDescription(body: Record<string, unknown>): void {
  expect(typeof body.error).toBe("string");
  expect(body.error).toMatch(/^[\x20-\x21\x23-\x5B\x5D-\x7E]+$/); // §5.2 error charset
  expect(typeof body.error_description).toBe("string");
  const d = body.error_description as string;
  expect(d).toMatch(/^[\x20-\x21\x23-\x5B\x5D-\x7E]*$/); // §5.2 error_description charset
  expect(d).not.toMatch(/\bat \S*[/\\]/); // stack frame: "at fn (/path/file.js:1:2)" or "at /path"
  expect(d).not.toMatch(/\bat (async )?\S+ \(/);
  expect(d).not.toContain("node_modules");
  expect(d).not.toMatch(/\.(ts|js|mjs|cjs):\d+/);
}

/** Any 4xx with a well-formed JSON error body and no-store. Never 500. */
function expectClientError(res: LightMyRequestResponse, label: string): { error: string; error_description: string } {
  expect(res.statusCode, `${label}: ${res.body.slice(0, 300)}`).toBeGreaterThanOrEqual(400);
  expect(res.statusCode, `${label}: ${res.body.slice(0, 300)}`).toBeLessThan(500);
  expect(res.headers["content-type"], label).toMatch(/^application\/json/);
  const body = res.json() as { error: string; error_description: string };
  expectSafeDescription(body);
  return body;
}

describeEachDb("POST /oauth/token", (flavor) => {
  let issuer: TestIssuer;
  let app: FastifyInstance;
  let user: { email: string; password: string; id: string };

  beforeAll(async () => {
    issuer = await startIssuer(flavor, { env: { ACCESS_TOKEN_TTL: String(ACCESS_TTL_SECONDS) } });
    app = issuer.app;
    user = await register(app);
    const base = {
      audiences: [],
      resources: [],
      accessTokenTtl: null,
      refreshTokenTtl: null,
      createdAt: issuer.clock.now(),
      disabledAt: null,
    };
    await issuer.services.storage.clients.upsert({
      ...base,
      id: REFRESH_ONLY_ID,
      name: "Refresh only",
      type: "public",
      secretHash: null,
      grantTypes: ["refresh_token"],
      scopes: ["profile"],
    });
    await issuer.services.storage.clients.upsert({
      ...base,
      id: CONFIDENTIAL_ID,
      name: "Backend",
      type: "confidential",
      secretHash: hashClientSecret(CONFIDENTIAL_SECRET),
      grantTypes: ["password", "refresh_token"],
      scopes: ["profile"],
    });
  });
  afterAll(async () => issuer?.close());

  const creds = (extra: Record<string, string> = {}) => ({
    grant_type: "password",
    username: user.email,
    password: user.password,
    client_id: "web",
    ...extra,
  });

  function expectTokenResponse(res: LightMyRequestResponse): TokenPair {
    expect(res.statusCode, res.body).toBe(200);
    expect(res.headers["content-type"]).toMatch(/^application\/json/);
    expect(res.headers["cache-control"]).toBe("no-store");
    expect(res.headers["pragma"]).toBe("no-cache");
    const body = res.json() as TokenPair;
    expect(Object.keys(body).sort()).toEqual(["access_token", "expires_in", "refresh_token", "scope", "token_type"]);
    expect(body.token_type).toBe("Bearer");
    expect(body.expires_in).toBe(ACCESS_TTL_SECONDS);
    expect(body.scope).toBe("profile");
    expect(body.access_token).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    expect(body.refresh_token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    return body;
  }

  describe("successful response (§5.1)", () => {
    it("password grant with a form body", async () => {
      const body = expectTokenResponse(await passwordGrant(app, user.email, user.password));
      const claims = await verifyAccessToken(issuer, body.access_token);
      expect(claims.sub).toBe(user.id);
    });

    it("password grant with a form body declaring charset=UTF-8", async () => {
      expectTokenResponse(await app.inject(post(formBody(creds()), `${FORM}; charset=UTF-8`)));
    });

    it("password grant with a JSON body", async () => {
      const body = expectTokenResponse(await app.inject(post(JSON.stringify(creds()), JSON_CT)));
      expect((await verifyAccessToken(issuer, body.access_token)).sub).toBe(user.id);
    });

    it("an explicit scope the client may have is granted", async () => {
      const body = expectTokenResponse(await passwordGrant(app, user.email, user.password, { scope: "profile" }));
      expect((await verifyAccessToken(issuer, body.access_token)).scope).toBe("profile");
    });

    it("a confidential client authenticates with HTTP Basic or client_secret_post", async () => {
      const viaBasic = await app.inject(
        post(formBody({ grant_type: "password", username: user.email, password: user.password }), FORM, {
          authorization: basic(CONFIDENTIAL_ID, CONFIDENTIAL_SECRET),
        }),
      );
      const b = expectTokenResponse(viaBasic);
      expect((await verifyAccessToken(issuer, b.access_token)).client_id).toBe(CONFIDENTIAL_ID);
      const viaPost = await passwordGrant(app, user.email, user.password, { client_id: CONFIDENTIAL_ID, client_secret: CONFIDENTIAL_SECRET });
      expectTokenResponse(viaPost);
    });

    it("access tokens verify with the pinned algorithm, issuer, audience and typ, and only then", async () => {
      const body = expectTokenResponse(await passwordGrant(app, user.email, user.password));
      const claims = await verifyAccessToken(issuer, body.access_token);
      expect(claims).toMatchObject({
        iss: "https://issuer.test",
        aud: issuer.config.accessTokenAudience,
        sub: user.id,
        client_id: "web",
        scope: "profile",
      });
      expect(claims.exp! - claims.iat!).toBe(ACCESS_TTL_SECONDS);
      expect(claims.jti).toEqual(expect.any(String));
      expect(claims.sid).toEqual(expect.any(String));

      // The pins bite: another algorithm, issuer, audience or typ is refused.
      const other = issuer.config.signingAlg === "RS256" ? "ES256" : "RS256";
      await expect(verifyAccessToken(issuer, body.access_token, { algorithms: [other] })).rejects.toThrow();
      const jwks = createLocalJWKSet((await app.inject({ method: "GET", url: "/.well-known/jwks.json" })).json());
      const opts = {
        algorithms: [issuer.config.signingAlg],
        issuer: issuer.config.issuer,
        audience: issuer.config.accessTokenAudience,
        typ: "at+jwt",
        currentDate: issuer.clock.now(),
      };
      await expect(jwtVerify(body.access_token, jwks, { ...opts, issuer: "https://evil.test" })).rejects.toThrow();
      await expect(verifyAccessToken(issuer, body.access_token, { audience: "other-api" })).rejects.toThrow();
      await expect(jwtVerify(body.access_token, jwks, { ...opts, typ: "JWT" })).rejects.toThrow();
      // A tampered payload fails the signature.
      const [h, p, s] = body.access_token.split(".");
      const forged = JSON.parse(Buffer.from(p!, "base64url").toString("utf8")) as Record<string, unknown>;
      forged.scope = "profile admin";
      const tampered = `${h}.${Buffer.from(JSON.stringify(forged)).toString("base64url")}.${s}`;
      await expect(verifyAccessToken(issuer, tampered)).rejects.toThrow();
      // Expired after ACCESS_TOKEN_TTL.
      await expect(jwtVerify(body.access_token, jwks, { ...opts, currentDate: new Date((claims.exp! + 1) * 1000) })).rejects.toThrow();
    });
  });

  describe("error responses (§5.2)", () => {
    it("missing grant_type is 400 invalid_request", async () => {
      const { grant_type: _omit, ...rest } = creds();
      expectOAuthError(await app.inject(post(formBody(rest), FORM)), 400, "invalid_request");
      expectOAuthError(await app.inject(post(formBody({ ...rest, grant_type: "" }), FORM)), 400, "invalid_request");
    });

    it("an unknown grant_type is 400 unsupported_grant_type", async () => {
      for (const gt of ["authorization_code_x", "implicit", "PASSWORD", "urn:ietf:params:oauth:grant-type:jwt-bearer", "__proto__", "constructor"]) {
        const res = await app.inject(post(formBody(creds({ grant_type: gt })), FORM));
        expectOAuthError(res, 400, "unsupported_grant_type");
      }
    });

    it("missing or empty username or password is 400 invalid_request", async () => {
      for (const omit of ["username", "password"] as const) {
        const params: Record<string, string> = creds();
        delete params[omit];
        const missing = expectOAuthError(await app.inject(post(formBody(params), FORM)), 400, "invalid_request");
        expect(missing.error_description).toContain(omit);
        const empty = await app.inject(post(formBody({ ...creds(), [omit]: "" }), FORM));
        expectOAuthError(empty, 400, "invalid_request");
      }
    });

    it("a repeated parameter in the form is 400 invalid_request", async () => {
      const base = formBody(creds());
      for (const dup of ["grant_type=password", "client_id=web", `username=${encodeURIComponent(user.email)}`, "password=x", "scope=profile&scope=profile"]) {
        const res = await app.inject(post(`${base}&${dup}`, FORM));
        const body = expectOAuthError(res, 400, "invalid_request");
        expect(body.error_description).toMatch(/repeated/);
      }
      expectOAuthError(await app.inject(post("grant_type=password&grant_type=password", FORM)), 400, "invalid_request");
      // The description names the parameter in §5.2's charset only, whatever its name was.
      const odd = expectOAuthError(await app.inject(post(`${base}&p%C3%A9%22%5Cx%0A=1&p%C3%A9%22%5Cx%0A=2`, FORM)), 400, "invalid_request");
      expect(odd.error_description).toBe("The p?'?x? parameter must not be repeated.");
    });

    it("a repeated member in a JSON body is 400 invalid_request too, also spelt with escapes (JSON.parse would keep the last)", async () => {
      const json = JSON.stringify(creds()).slice(0, -1);
      for (const dup of ['"password":"x"', '"pass\\u0077ord":"x"', '"client_id":"web"']) {
        // The right password last: a parser that kept the last one would log in.
        const res = await app.inject(post(`{${dup},${json.slice(1)}}`, JSON_CT));
        const body = expectOAuthError(res, 400, "invalid_request");
        expect(body.error_description).toMatch(/repeated/);
      }
      // A byte order mark before the object (the JSON parser skips it) changes nothing.
      expectOAuthError(await app.inject(post(Buffer.from(`\uFEFF{"password":"x",${json.slice(1)}}`, "utf8"), JSON_CT)), 400, "invalid_request");
      // A repetition inside a value is not a repeated parameter (and a value must be a string).
      expectTokenResponse(await app.inject(post(`${json},"note":"{\\"password\\":1,\\"password\\":2}"}`, JSON_CT)));
    });

    it("an unknown client_id is 401 invalid_client", async () => {
      const res = await passwordGrant(app, user.email, user.password, { client_id: "no-such-client" });
      expectOAuthError(res, 401, "invalid_client");
    });

    it("no client_id (and no Basic) is 401 invalid_client", async () => {
      const { client_id: _omit, ...rest } = creds();
      expectOAuthError(await app.inject(post(formBody(rest), FORM)), 401, "invalid_client");
      expectOAuthError(await app.inject(post(formBody({ ...rest, client_id: "" }), FORM)), 401, "invalid_client");
    });

    it("a public client that sends client_secret is 401 invalid_client", async () => {
      const res = await passwordGrant(app, user.email, user.password, { client_secret: "anything" });
      expectOAuthError(res, 401, "invalid_client");
      // Not Basic, so no Basic challenge is required; but it must not be a 200.
      expect(res.body).not.toContain("access_token");
    });

    it("HTTP Basic for an unknown client is 401 invalid_client with WWW-Authenticate: Basic", async () => {
      const res = await app.inject(
        post(formBody({ grant_type: "password", username: user.email, password: user.password }), FORM, {
          authorization: basic("no-such-client", "secret"),
        }),
      );
      expectOAuthError(res, 401, "invalid_client");
      expect(res.headers["www-authenticate"]).toMatch(/^Basic\b/);
    });

    it("HTTP Basic with a wrong secret or a malformed header is 401 invalid_client with WWW-Authenticate: Basic", async () => {
      const params = formBody({ grant_type: "password", username: user.email, password: user.password });
      for (const authorization of [basic(CONFIDENTIAL_ID, "wrong"), "Basic !!!notbase64!!!", `Basic ${Buffer.from("nocolon").toString("base64")}`, "Basic "]) {
        const res = await app.inject(post(params, FORM, { authorization }));
        expectOAuthError(res, 401, "invalid_client");
        expect(res.headers["www-authenticate"]).toMatch(/^Basic\b/);
      }
    });

    it("HTTP Basic plus client_secret in the body is 400 invalid_request", async () => {
      const res = await app.inject(
        post(formBody({ grant_type: "password", username: user.email, password: user.password, client_secret: CONFIDENTIAL_SECRET }), FORM, {
          authorization: basic(CONFIDENTIAL_ID, CONFIDENTIAL_SECRET),
        }),
      );
      expectOAuthError(res, 400, "invalid_request");
      expect(res.body).not.toContain("access_token");
    });

    it("a wrong password is 400 invalid_grant with the same body as an unknown user", async () => {
      const wrong = await passwordGrant(app, user.email, "definitely not the password");
      const unknown = await passwordGrant(app, uniqueEmail("ghost"), "definitely not the password");
      const malformed = await passwordGrant(app, "not-an-email", "definitely not the password");
      expectOAuthError(wrong, 400, "invalid_grant");
      expect(unknown.statusCode).toBe(400);
      expect(unknown.body).toBe(wrong.body);
      expect(malformed.statusCode).toBe(400);
      expect(malformed.body).toBe(wrong.body);
      expect(unknown.headers["www-authenticate"]).toBe(wrong.headers["www-authenticate"]);
    });

    it("a scope the client may not have is 400 invalid_scope", async () => {
      for (const scope of ["admin", "profile admin", "openid"]) {
        expectOAuthError(await passwordGrant(app, user.email, user.password, { scope }), 400, "invalid_scope");
      }
    });

    it("a malformed scope is 400 invalid_scope", async () => {
      for (const scope of ['pro"file', "pro\\file", "profilé", "profile\tadmin", "profile\u007f", "\u{1F511}"]) {
        const res = await passwordGrant(app, user.email, user.password, { scope });
        expectOAuthError(res, 400, "invalid_scope");
      }
    });

    it("a grant the client is not allowed is 400 unauthorized_client", async () => {
      const res = await passwordGrant(app, user.email, user.password, { client_id: REFRESH_ONLY_ID });
      expectOAuthError(res, 400, "unauthorized_client");
      expect(res.body).not.toContain("access_token");
    });
  });

  describe("hostile and malformed bodies: never 500, always a JSON error", () => {
    it("invalid JSON is 400 invalid_request", async () => {
      for (const payload of ["{", '{"grant_type": "password",}', "{'grant_type': 'password'}", "nul", '{"a":1}{"b":2}', "\u0000"]) {
        expectOAuthError(await app.inject(post(payload, JSON_CT)), 400, "invalid_request");
      }
    });

    it("a JSON array, string, number or boolean body is 400 invalid_request", async () => {
      for (const payload of ["[]", JSON.stringify([creds()]), '"grant_type=password"', "42", "true"]) {
        const res = await app.inject(post(payload, JSON_CT));
        expectOAuthError(res, 400, "invalid_request");
      }
    });

    it("JSON null body and an empty JSON object are 400 invalid_request (no grant_type)", async () => {
      expectOAuthError(await app.inject(post("null", JSON_CT)), 400, "invalid_request");
      expectOAuthError(await app.inject(post("{}", JSON_CT)), 400, "invalid_request");
    });

    it("JSON values that are numbers, objects, arrays, booleans or null are 400 invalid_request", async () => {
      const values: unknown[] = [123, 1.5, { $ne: null }, { toString: "x" }, ["password"], true, null];
      for (const field of ["grant_type", "username", "password", "client_id", "scope"]) {
        for (const value of values) {
          const res = await app.inject(post(JSON.stringify({ ...creds(), [field]: value }), JSON_CT));
          const body = expectClientError(res, `${field}=${JSON.stringify(value)}`);
          expect({ field, value, status: res.statusCode, error: body.error }).toEqual({ field, value, status: 400, error: "invalid_request" });
        }
      }
    });

    it("a text/plain body is 415 invalid_request", async () => {
      for (const payload of [formBody(creds()), JSON.stringify(creds())]) {
        const res = await app.inject(post(payload, "text/plain"));
        expect(res.body).not.toContain("access_token");
        expectOAuthError(res, 415, "invalid_request");
      }
    });

    it("other unsupported content types are 415 invalid_request", async () => {
      for (const ct of ["application/xml", "multipart/form-data; boundary=x", "application/octet-stream"]) {
        expectOAuthError(await app.inject(post(formBody(creds()), ct)), 415, "invalid_request");
      }
    });

    it("a body over 64 KiB is 413 invalid_request", async () => {
      const big = formBody({ ...creds(), padding: "a".repeat(65 * 1024) });
      expectOAuthError(await app.inject(post(big, FORM)), 413, "invalid_request");
      const bigJson = JSON.stringify({ ...creds(), padding: "a".repeat(65 * 1024) });
      expectOAuthError(await app.inject(post(bigJson, JSON_CT)), 413, "invalid_request");
    });

    it("an empty body is 400 invalid_request, with or without a content type", async () => {
      expectOAuthError(await app.inject({ method: "POST", url: "/oauth/token" }), 400, "invalid_request");
      expectOAuthError(await app.inject(post("", FORM)), 400, "invalid_request");
      expectOAuthError(await app.inject(post("", JSON_CT)), 400, "invalid_request");
      expectOAuthError(await app.inject(post("   \n", JSON_CT)), 400, "invalid_request");
    });

    it("GET /oauth/token is 404 or 405 with a JSON error and issues nothing", async () => {
      const qs = new URLSearchParams(creds()).toString();
      for (const url of ["/oauth/token", `/oauth/token?${qs}`]) {
        const res = await app.inject({ method: "GET", url });
        expect([404, 405]).toContain(res.statusCode);
        expect(res.headers["content-type"]).toMatch(/^application\/json/);
        expectSafeDescription(res.json() as Record<string, unknown>);
        expect(res.body).not.toContain("access_token");
        // The password from the query string is not echoed back.
        expect(res.body).not.toContain(encodeURIComponent(user.password));
        expect(res.body).not.toContain(user.password);
      }
    });

    it("non-UTF-8 bytes in form and JSON bodies are a 4xx JSON error", async () => {
      const bad = Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0x80]);
      const cases: Array<[string, Buffer, string]> = [
        ["raw bytes in form username", Buffer.concat([Buffer.from("grant_type=password&client_id=web&password=x&username="), bad]), FORM],
        ["raw bytes in form grant_type", Buffer.concat([Buffer.from("client_id=web&username=a&password=b&grant_type="), bad]), FORM],
        ["raw bytes in form client_id", Buffer.concat([Buffer.from("grant_type=password&username=a&password=b&client_id="), bad]), FORM],
        ["only garbage, form", bad, FORM],
        ["only garbage, JSON", bad, JSON_CT],
        [
          "raw bytes inside a JSON string",
          Buffer.concat([Buffer.from('{"grant_type":"password","client_id":"web","password":"x","username":"'), bad, Buffer.from('"}')]),
          JSON_CT,
        ],
        ["percent-encoded invalid UTF-8 in form", Buffer.from("grant_type=password&client_id=web&username=%FF%FE%C3%28&password=%80"), FORM],
      ];
      for (const [label, payload, ct] of cases) {
        const res = await app.inject(post(payload, ct));
        expectClientError(res, label);
      }
    });

    it("NUL and control characters in parameters are a 4xx JSON error on both databases", async () => {
      const cases: Record<string, string>[] = [
        creds({ username: "nul\u0000@example.test" }),
        creds({ username: `${user.email}\u0000` }),
        creds({ client_id: "we\u0000b" }),
        creds({ client_id: "web\u0000" }),
        creds({ password: `${user.password}\u0000` }),
        creds({ grant_type: "password\u0000" }),
        creds({ username: "ctl\u0001\u001f\u007f@example.test" }),
      ];
      for (const params of cases) {
        const label = JSON.stringify(params);
        expectClientError(await app.inject(post(formBody(params), FORM)), `form ${label}`);
        expectClientError(await app.inject(post(JSON.stringify(params), JSON_CT)), `json ${label}`);
      }
      // A NUL in the client id of an HTTP Basic header (form-urlencoded before base64, §2.3.1).
      const viaBasic = await app.inject(
        post(formBody({ grant_type: "password", username: user.email, password: user.password }), FORM, {
          authorization: `Basic ${Buffer.from("back%00end:secret").toString("base64")}`,
        }),
      );
      expectOAuthError(viaBasic, 401, "invalid_client");
      expect(viaBasic.headers["www-authenticate"]).toMatch(/^Basic\b/);
    });

    it("lone UTF-16 surrogates (valid JSON \\uD800 escapes) in parameters are a 4xx JSON error", async () => {
      const payloads: Array<[string, string]> = [
        ["username", `{"grant_type":"password","client_id":"web","username":"\\ud800@x.test","password":"x"}`],
        ["username (low)", `{"grant_type":"password","client_id":"web","username":"a\\udfff@x.test","password":"x"}`],
        ["client_id", `{"grant_type":"password","client_id":"web\\ud800","username":"a@x.test","password":"x"}`],
        ["password", `{"grant_type":"password","client_id":"web","username":"a@x.test","password":"\\udfff"}`],
        ["scope", `{"grant_type":"password","client_id":"web","username":"a@x.test","password":"x","scope":"\\ud800"}`],
        ["grant_type", `{"grant_type":"\\ud800","client_id":"web"}`],
        ["refresh_token", `{"grant_type":"refresh_token","client_id":"web","refresh_token":"\\ud800"}`],
      ];
      for (const [label, payload] of payloads) {
        expectClientError(await app.inject(post(payload, JSON_CT)), label);
      }
    });

    it("prototype-pollution attempts are rejected or ignored and pollute nothing", async () => {
      const jsonAttempts = [
        '{"__proto__":{"x":1},"grant_type":"password"}',
        '{"grant_type":"password","constructor":{"prototype":{"x":1}}}',
        `{"grant_type":"password","username":${JSON.stringify(user.email)},"password":"x","client_id":"web","__proto__":{"polluted":true}}`,
      ];
      for (const payload of jsonAttempts) {
        const res = await app.inject(post(payload, JSON_CT));
        const body = expectClientError(res, payload);
        expect(body.error).toBe("invalid_request");
      }
      const formAttempts = [
        "__proto__[x]=1&grant_type=password",
        "__proto__=x&grant_type=password&client_id=web",
        "constructor[prototype][x]=1&grant_type=password&client_id=web",
        "grant_type=password&client_id=__proto__&username=a&password=b",
        "grant_type=password&client_id=constructor&username=a&password=b",
        "grant_type=password&client_id=toString&username=a&password=b",
        "grant_type=hasOwnProperty&client_id=web",
        "grant_type=toString&client_id=web",
      ];
      for (const payload of formAttempts) {
        expectClientError(await app.inject(post(payload, FORM)), payload);
      }
      // Unrecognised parameters named like Object.prototype members are ignored (§3.2).
      const ok = await app.inject(post(`${formBody(creds())}&__proto__=x&hasOwnProperty=y&toString=z&valueOf=w`, FORM));
      expectTokenResponse(ok);
      const probe: Record<string, unknown> = {};
      expect(probe.x).toBeUndefined();
      expect(probe.polluted).toBeUndefined();
      expect(Object.prototype).not.toHaveProperty("x");
      expect(Object.prototype).not.toHaveProperty("polluted");
      // The issuer still works normally afterwards.
      expectTokenResponse(await passwordGrant(app, user.email, user.password));
    });

    it("very long parameter values are a 4xx JSON error, never 500", async () => {
      const long = "a".repeat(60 * 1024);
      const cases: Array<[string, Record<string, string>, number, string]> = [
        ["grant_type", creds({ grant_type: long }), 400, "unsupported_grant_type"],
        ["client_id", creds({ client_id: long }), 401, "invalid_client"],
        ["username", creds({ username: long }), 400, "invalid_grant"],
        ["username@", creds({ username: `${long}@example.test` }), 400, "invalid_grant"],
        ["password", creds({ password: long }), 400, "invalid_grant"],
        ["scope", creds({ scope: long }), 400, "invalid_scope"],
        ["client_secret", creds({ client_secret: long }), 401, "invalid_client"],
      ];
      for (const [label, params, status, error] of cases) {
        for (const [kind, payload, ct] of [
          ["form", formBody(params), FORM],
          ["json", JSON.stringify(params), JSON_CT],
        ] as const) {
          const res = await app.inject(post(payload, ct));
          const body = expectClientError(res, `${kind} ${label}`);
          expect({ label, kind, status: res.statusCode, error: body.error }).toEqual({ label, kind, status, error });
        }
      }
      // A very long parameter name, and very many parameters.
      const manyParams = Array.from({ length: 2000 }, (_, i) => `p${i}=v`).join("&");
      expectTokenResponse(await app.inject(post(`${formBody(creds())}&${manyParams}`, FORM)));
      expectClientError(await app.inject(post(`${"k".repeat(60 * 1024)}=v&grant_type=password`, FORM)), "long name");
    });

    it("error descriptions quote a long parameter value only in bounded form", async () => {
      // grant_type is quoted truncated to 64 characters; the same must hold for every echoed value,
      // or a 60 KiB request produces a 60 KiB error body (and log line).
      const long = "a".repeat(60 * 1024);
      for (const field of ["grant_type", "client_id", "username", "password", "scope", "client_secret"]) {
        const res = await app.inject(post(JSON.stringify(creds({ [field]: long })), JSON_CT));
        const body = expectClientError(res, field);
        expect({ field, length: body.error_description.length }).toEqual({ field, length: expect.any(Number) });
        expect(body.error_description.length, `${field}: ${body.error_description.slice(0, 80)}...`).toBeLessThan(1000);
      }
    });

    it("a wrong password on the token endpoint does not lock out or break the real password", async () => {
      expectOAuthError(await passwordGrant(app, user.email, "nope nope nope"), 400, "invalid_grant");
      expectTokenResponse(await passwordGrant(app, user.email, user.password));
    });
  });

  it("a user registered with a normalised email can use the password grant with any casing", async () => {
    const email = uniqueEmail("Casing");
    const r = await app.inject({ method: "POST", url: "/auth/register", payload: { email: email.toUpperCase(), password: PASSWORD } });
    expect(r.statusCode).toBe(201);
    expectTokenResponse(await passwordGrant(app, ` ${email.toUpperCase()} `, PASSWORD));
    expectTokenResponse(await app.inject({ method: "POST", url: "/oauth/token", ...form(creds({ username: email, password: PASSWORD })) }));
  });
});
