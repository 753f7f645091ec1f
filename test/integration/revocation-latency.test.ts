// How long a revoked access token is still accepted by a service that verifies tokens locally
// with the kit (@tessera/verifier, its default Token Status List check), measured in real time
// on each database: an Express 5 service, a real issuer on a real port with STATUS_LIST_TTL=2,
// a real clock everywhere (the issuer's rebuild timer, the kit's refresh interval, the grace
// window). For each way a session ends (logout, refresh-token reuse, a disabled user, RFC 7009
// revocation of the access token) the token must be refused with 401 invalid_token / `revoked`
// within ttl + 2 s, while another user's live token is accepted on every poll; likewise when
// the revocation goes through one instance and the service reads another instance's lists.
//
// The bound: the instance that revoked rebuilds at once (the CLI's disable, or another instance,
// at its next rebuild: ttl/2), the kit refetches a list once per ttl (its ttl claim and
// Cache-Control max-age), polls are 100 ms apart: ttl + ttl/2 + 0.1 s at worst, under ttl + 2 s.
//
// Each refusal is checked to come from the status list and nothing else: a 200 list response
// reached the kit between the revocation and the refusal, the kit's code is `revoked`, and the
// same token is still accepted by an identical service whose verifier has `statusList: false`.
import http from "node:http";
import type { AddressInfo } from "node:net";
import express from "express";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createVerifier, type FetchLike } from "@tessera/verifier";
import { bearerAuth, type LogEntry } from "@tessera/verifier/express";
import type { AdminContext } from "../../src/admin/context.ts";
import { disableUser } from "../../src/admin/users.ts";
import { bearer, challengeParams } from "../helpers/bearer.ts";
import {
  adminOf,
  describeEachDb,
  errorOf,
  form,
  login,
  PASSWORD,
  passwordGrant,
  refreshGrant,
  register,
  startInstances,
  startIssuer,
  statusOf,
  uniqueEmail,
  type InstanceGroup,
  type TestIssuer,
  type TokenPair,
} from "../helpers/issuer.ts";
import { freePort } from "../helpers/ports.ts";
import { WallClock } from "../helpers/wall-clock.ts";

/** STATUS_LIST_TTL, seconds */
const TTL = 2;
/** The promise: a revoked token is refused within ttl + 2 s. */
const BOUND_MS = (TTL + 2) * 1000;
/** Polling stops here, past the bound, so a slow refusal is measured and reported, not just timed out. */
const GIVE_UP_MS = BOUND_MS + 4000;
const POLL_MS = 100;
/** REFRESH_REUSE_GRACE, seconds: small, waited out in real time before the reuse. */
const GRACE = 1;
const ENV = { STATUS_LIST_TTL: String(TTL), REFRESH_REUSE_GRACE: String(GRACE), CLIENT_CACHE_TTL: "0", LOG_LEVEL: "warn" };
const REVOKED_DESCRIPTION = "the access token has been revoked";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A fetch the kit uses, recording what it asked for and what it got (monotonic time). */
interface Recorded {
  path: string;
  status: number;
  at: number;
}

function recordingFetch(rewriteTo?: string): { fetch: FetchLike; seen: Recorded[] } {
  const seen: Recorded[] = [];
  return {
    seen,
    fetch: async (url, init) => {
      const u = new URL(url);
      const target = rewriteTo ? `${rewriteTo}${u.pathname}${u.search}` : url;
      const res = await fetch(target, init);
      seen.push({ path: u.pathname, status: res.status, at: performance.now() });
      return res;
    },
  };
}

interface Service {
  url: string;
  /** what bearerAuth logged: the kit's error code is in fields.tokenError (it is in neither the body nor a header) */
  logs: LogEntry[];
  close(): Promise<void>;
}

/** An Express 5 service protecting one route with the kit's bearerAuth. */
async function expressService(verifier: ReturnType<typeof createVerifier>): Promise<Service> {
  const logs: LogEntry[] = [];
  const app = express();
  app.get("/orders", bearerAuth({ verifier, realm: "orders", log: (e) => logs.push(e) }), (req, res) => void res.json({ sub: req.auth!.sub }));
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/orders`,
    logs,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

interface Answer {
  status: number;
  challenge: Record<string, string>;
  body: Record<string, unknown>;
}

async function call(url: string, token: string): Promise<Answer> {
  const res = await fetch(url, { headers: bearer(token), signal: AbortSignal.timeout(10_000) });
  return { status: res.status, challenge: challengeParams(res.headers.get("www-authenticate")).params, body: (await res.json()) as Record<string, unknown> };
}

/** The kit and the services under test: one checking the status list (the default), one not. */
interface Rig {
  checked: Service;
  unchecked: Service;
  /** what the checking verifier fetched */
  seen: Recorded[];
  /** another user's session, never revoked */
  live: string;
}

/**
 * Warms the service with `access` (200), runs `cause` at T0 and polls every 100 ms until the
 * service refuses `access`; the live token must be accepted on every poll. Returns the latency
 * (T0 to the refusal's arrival), after checking that the refusal is the status list's.
 */
async function measure(rig: Rig, label: string, access: string, cause: () => Promise<void>): Promise<number> {
  expect((await call(rig.checked.url, access)).status, "the fresh token is accepted before the revocation").toBe(200);
  expect((await call(rig.checked.url, rig.live)).status).toBe(200);
  const logsBefore = rig.checked.logs.length;

  const t0 = performance.now();
  await cause();
  let refused: Answer | undefined;
  let latency = Number.NaN;
  let polls = 0;
  while (performance.now() - t0 < GIVE_UP_MS) {
    const tick = performance.now();
    const res = await call(rig.checked.url, access);
    polls++;
    if (res.status !== 200) {
      latency = performance.now() - t0;
      refused = res;
      break;
    }
    const live = await call(rig.checked.url, rig.live);
    expect(live.status, `the live session's token was refused on poll ${polls}: ${JSON.stringify(live.body)}`).toBe(200);
    await sleep(Math.max(0, POLL_MS - (performance.now() - tick)));
  }
  console.log(`revocation latency ${label}: ${Number.isNaN(latency) ? `not refused within ${GIVE_UP_MS}` : Math.round(latency)} ms`);

  expect(refused, `the revoked token was still accepted ${GIVE_UP_MS} ms after the revocation (${polls} polls)`).toBeDefined();
  // RFC 6750: 401, error="invalid_token"; the kit's code `revoked` (the log line's tokenError) and its message.
  expect(refused!.status).toBe(401);
  expect(refused!.challenge).toMatchObject({ realm: "orders", error: "invalid_token", error_description: REVOKED_DESCRIPTION });
  expect(refused!.body).toEqual({ error: "invalid_token", error_description: REVOKED_DESCRIPTION });
  expect(rig.checked.logs.slice(logsBefore).map((l) => [l.level, l.fields.tokenError])).toEqual([["info", "revoked"]]);
  expect(latency).toBeLessThanOrEqual(BOUND_MS);

  // The list path, and nothing else, refused it: the kit got a new list (200, new bits) between
  // T0 and the refusal; a service whose verifier skips the list still accepts the token.
  const refusedAt = t0 + latency;
  expect(rig.seen.filter((r) => r.path.startsWith("/statuslists/") && r.status === 200 && r.at > t0 && r.at <= refusedAt)).not.toEqual([]);
  expect((await call(rig.unchecked.url, access)).status, "statusList: false accepts the revoked token").toBe(200);
  // The live session is still fine.
  expect((await call(rig.checked.url, rig.live)).status).toBe(200);
  return latency;
}

/** A password-grant session of a new user, through `issuer`. */
async function session(issuer: TestIssuer): Promise<TokenPair & { email: string }> {
  const email = uniqueEmail("latency");
  await register(issuer.app, email);
  const res = await passwordGrant(issuer.app, email, PASSWORD);
  expect(res.statusCode, res.body).toBe(200);
  return { ...(res.json() as TokenPair), email };
}

const browser = (url: "/auth/login" | "/auth/logout", body: string, cookie?: string) =>
  ({
    method: "POST",
    url,
    headers: { "content-type": "application/json", origin: "https://app.test" },
    payload: body,
    ...(cookie ? { cookies: { refresh_token: cookie } } : {}),
  }) as const;

/** The browser flow: /auth/login (refresh token in a cookie); returns the access token and the cookie. */
async function browserLogin(issuer: TestIssuer): Promise<{ access: string; cookie: string }> {
  const email = uniqueEmail("browser");
  await register(issuer.app, email);
  const res = await issuer.app.inject(browser("/auth/login", JSON.stringify({ email, password: PASSWORD })));
  expect(res.statusCode, res.body).toBe(200);
  const cookie = res.cookies.find((c) => c.name === "refresh_token")?.value;
  expect(cookie).toBeTruthy();
  return { access: (res.json() as { access_token: string }).access_token, cookie: cookie! };
}

async function logout(issuer: TestIssuer, cookie: string): Promise<void> {
  const res = await issuer.app.inject(browser("/auth/logout", "", cookie));
  expect(res.statusCode, res.body).toBe(204);
}

/** A token to poll and the revocation to cause, prepared beforehand (not counted in the latency). */
type Cause = (issuer: TestIssuer, admin: AdminContext) => Promise<{ access: string; revoke: () => Promise<void> }>;

const CAUSES: [string, Cause][] = [
  [
    "logout",
    async (issuer) => {
      const { access, cookie } = await browserLogin(issuer);
      return { access, revoke: () => logout(issuer, cookie) };
    },
  ],
  [
    "refresh-token reuse",
    async (issuer) => {
      const pair = await session(issuer);
      const rotated = await refreshGrant(issuer.app, pair.refresh_token);
      expect(rotated.statusCode, rotated.body).toBe(200);
      const rotatedAt = Date.now();
      // Real time: the consumed token comes back only after the grace window (REFRESH_REUSE_GRACE=1 s).
      await sleep(rotatedAt + GRACE * 1000 + 200 - Date.now());
      return {
        access: pair.access_token,
        revoke: async () => {
          const reuse = await refreshGrant(issuer.app, pair.refresh_token);
          expect(errorOf(reuse)).toMatchObject({ status: 400, error: "invalid_grant", description: expect.stringMatching(/already used/) as unknown });
        },
      };
    },
  ],
  [
    "disabled user",
    async (issuer, admin) => {
      const pair = await session(issuer);
      // The operator command, as the CLI runs it: it does not tell the servers, their next rebuild (ttl/2) sees it.
      return { access: pair.access_token, revoke: async () => expect((await disableUser(admin, { email: pair.email })).json).toMatchObject({ user: { disabled_at: expect.any(String) } }) };
    },
  ],
  [
    "RFC 7009 revocation of the access token",
    async (issuer) => {
      const pair = await session(issuer);
      return {
        access: pair.access_token,
        revoke: async () => {
          const res = await issuer.app.inject({ method: "POST", url: "/oauth/revoke", ...form({ token: pair.access_token, client_id: "web" }) });
          expect(res.statusCode, res.body).toBe(200);
        },
      };
    },
  ],
];

describeEachDb("revocation latency through the token status list", (flavor) => {
  describe("one instance", () => {
    let issuer: TestIssuer;
    let admin: AdminContext;
    let rig: Rig;

    beforeAll(async () => {
      const port = await freePort();
      const base = `http://127.0.0.1:${port}`;
      issuer = await startIssuer(flavor, { clock: new WallClock(), env: { ...ENV, ISSUER: base } });
      // What server.ts does: rebuild every ttl/2 (bits set by the CLI or another instance).
      issuer.services.statusLists.start();
      await issuer.app.listen({ port, host: "127.0.0.1" });
      admin = adminOf(issuer);
      const audience = issuer.config.accessTokenAudience;
      const recorded = recordingFetch();
      const checked = await expressService(createVerifier({ issuer: base, audience, fetch: recorded.fetch }));
      const unchecked = await expressService(createVerifier({ issuer: base, audience, statusList: false }));
      rig = { checked, unchecked, seen: recorded.seen, live: (await login(issuer.app)).access_token };
    });
    afterAll(async () => {
      await rig?.checked.close();
      await rig?.unchecked.close();
      await issuer?.close();
    });

    it.each(CAUSES)("%s: refused within ttl + 2 s", async (name, prepare) => {
      const { access, revoke } = await prepare(issuer, admin);
      await measure(rig, `[${flavor}] ${name}`, access, revoke);
      expect(await statusOf(issuer, access)).toBe(1);
      expect(await statusOf(issuer, rig.live)).toBe(0);
    });
  });

  describe("two instances on one database", () => {
    let group: InstanceGroup;
    let a: TestIssuer;
    let b: TestIssuer;
    let rig: Rig;
    let bBase: string;

    beforeAll(async () => {
      // One ISSUER for both (https://issuer.test, reachable by nobody): the tokens' status uri
      // names it, and the kit's fetch sends every request for it (JWKS and lists) to B. A, the
      // instance that revokes, has no listener at all.
      group = await startInstances(flavor, 2, { clock: new WallClock(), env: ENV, shareKeysDir: true });
      [a, b] = group.instances as [TestIssuer, TestIssuer];
      expect(a.config.issuer).toBe(b.config.issuer);
      for (const i of [a, b]) i.services.statusLists.start();
      bBase = await b.app.listen({ port: 0, host: "127.0.0.1" });
      const audience = b.config.accessTokenAudience;
      const recorded = recordingFetch(bBase);
      const checked = await expressService(createVerifier({ issuer: b.config.issuer, audience, fetch: recorded.fetch }));
      const unchecked = await expressService(createVerifier({ issuer: b.config.issuer, audience, fetch: recordingFetch(bBase).fetch, statusList: false }));
      rig = { checked, unchecked, seen: recorded.seen, live: (await login(b.app)).access_token };
    });
    afterAll(async () => {
      await rig?.checked.close();
      await rig?.unchecked.close();
      await group?.close();
    });

    it("logout through instance A: the service reading instance B's lists refuses the token within ttl + 2 s", async () => {
      const { access, cookie } = await browserLogin(a);
      await measure(rig, `[${flavor}] logout on instance A, lists from instance B`, access, () => logout(a, cookie));
      // Everything the kit fetched came from B (through the rewriting fetch): the key set and list 0.
      expect(new Set(rig.seen.map((r) => r.path))).toEqual(new Set(["/.well-known/jwks.json", "/statuslists/0"]));
      expect(await statusOf(b, access)).toBe(1);
      expect(await statusOf(b, rig.live)).toBe(0);
    });
  });
});
