// The credential check behind the password grant and /auth/login: nothing to enumerate, the
// same argon2 work on every path, argon2id at the configured parameters with rehash, and
// NIST 800-63B Unicode normalisation.
import argon2 from "argon2";
import type { LightMyRequestResponse } from "fastify";
import { afterAll, afterEach, beforeAll, expect, it, vi } from "vitest";
import {
  PASSWORD,
  describeEachDb,
  errorOf,
  passwordGrant,
  register,
  startIssuer,
  uniqueEmail,
  verifyAccessToken,
  type TestIssuer,
  type TokenPair,
} from "../helpers/issuer.ts";

const ORIGIN = "https://app.test";

interface Argon2Hash {
  type: string;
  version: number;
  m: number;
  t: number;
  p: number;
}

/** "$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>" -> its parameters (throws on anything else). */
function parseArgon2(encoded: string): Argon2Hash {
  const m = /^\$(argon2(?:id|i|d))\$v=(\d+)\$m=(\d+),t=(\d+),p=(\d+)\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/.exec(encoded);
  if (!m) throw new Error(`not an encoded argon2 hash: ${encoded}`);
  return { type: m[1]!, version: Number(m[2]), m: Number(m[3]), t: Number(m[4]), p: Number(m[5]) };
}

/** Status, body and headers of a response, minus what differs per request. */
function shape(res: LightMyRequestResponse) {
  const { date: _date, "x-request-id": _id, ...headers } = res.headers;
  return { status: res.statusCode, body: res.body, headers };
}

function browserLogin(issuer: TestIssuer, email: string, password: string) {
  return issuer.app.inject({
    method: "POST",
    url: "/auth/login",
    headers: { "content-type": "application/json", origin: ORIGIN },
    payload: JSON.stringify({ email, password }),
  });
}

async function storedHash(issuer: TestIssuer, userId: string): Promise<string> {
  return (await issuer.storage.db.user.findUniqueOrThrow({ where: { id: userId } })).passwordHash;
}

describeEachDb("credentials", (flavor) => {
  let issuer: TestIssuer;
  beforeAll(async () => {
    issuer = await startIssuer(flavor);
  });
  afterAll(async () => issuer?.close());
  afterEach(() => {
    vi.restoreAllMocks();
  });

  /** A registered user and a disabled one (correct passwords known). */
  async function users() {
    const active = await register(issuer.app);
    const disabled = await register(issuer.app);
    await issuer.storage.db.user.update({ where: { id: disabled.id }, data: { disabledAt: issuer.clock.now() } });
    return { active, disabled };
  }

  it("unknown user, wrong password and disabled user get identical responses (password grant and /auth/login)", async () => {
    const { active, disabled } = await users();
    const cases = {
      unknownUser: { email: uniqueEmail("ghost"), password: PASSWORD },
      wrongPassword: { email: active.email, password: `${PASSWORD}!` },
      disabledUser: { email: disabled.email, password: disabled.password },
      disabledWrongPassword: { email: disabled.email, password: "not the password" },
    };
    for (const call of [
      (email: string, password: string) => passwordGrant(issuer.app, email, password),
      (email: string, password: string) => browserLogin(issuer, email, password),
    ]) {
      const responses = await Promise.all(Object.values(cases).map((c) => call(c.email, c.password)));
      const first = shape(responses[0]!);
      expect(errorOf(responses[0]!)).toEqual({ status: 400, error: "invalid_grant", description: "Invalid username or password." });
      for (const res of responses.slice(1)) expect(shape(res)).toEqual(first);
      // None of them set a cookie or mention which case it was.
      expect(responses.every((r) => r.headers["set-cookie"] === undefined)).toBe(true);
    }
    // The control: the same users with the right password do get in (or, disabled, do not).
    expect((await passwordGrant(issuer.app, active.email, active.password)).statusCode).toBe(200);
    expect((await passwordGrant(issuer.app, disabled.email, disabled.password)).statusCode).toBe(400);
  });

  it("every path runs exactly one argon2 verification: unknown user, malformed email, wrong password, disabled user, success", async () => {
    const { active, disabled } = await users();
    const activeHash = await storedHash(issuer, active.id);
    const disabledHash = await storedHash(issuer, disabled.id);
    const hasherVerify = vi.spyOn(issuer.services.hasher, "verify");
    const argonVerify = vi.spyOn(argon2, "verify");
    const argonHash = vi.spyOn(argon2, "hash");

    const run = async (email: string, password: string, status: number, passwordMatches = false) => {
      hasherVerify.mockClear();
      argonVerify.mockClear();
      argonHash.mockClear();
      const res = await passwordGrant(issuer.app, email, password);
      expect(res.statusCode, `${email}`).toBe(status);
      expect(hasherVerify, `${email}: PasswordHasher.verify calls`).toHaveBeenCalledTimes(1);
      expect(argonVerify, `${email}: argon2.verify calls`).toHaveBeenCalledTimes(1);
      // The verification really ran, with the presented password (normalised).
      expect(argonVerify.mock.calls[0]![1]).toBe(password.normalize("NFKC"));
      expect(await argonVerify.mock.results[0]!.value).toBe(passwordMatches);
      return { hash: hasherVerify.mock.calls[0]![0] as string, argon2HashCalls: argonHash.mock.calls.length };
    };

    // Unknown user: verified against a dummy hash made with the configured parameters (same cost).
    const unknown = await run(uniqueEmail("ghost"), "some password 1", 400);
    expect(unknown.hash).not.toBe(activeHash);
    expect(parseArgon2(unknown.hash)).toEqual({ type: "argon2id", version: 19, m: 19456, t: 2, p: 1 });
    const malformed = await run("not an email at all", "some password 2", 400);
    expect(malformed.hash).toBe(unknown.hash);
    expect(malformed.argon2HashCalls).toBe(0); // the dummy hash is made once, not per request

    // Wrong password: verified against the user's own hash, no hashing.
    const wrong = await run(active.email, "some password 3", 400);
    expect(wrong.hash).toBe(activeHash);
    expect(wrong.argon2HashCalls).toBe(0);

    // Disabled user with the right password: verified too (no shortcut that would time differently).
    const dis = await run(disabled.email, disabled.password, 400, true);
    expect(dis.hash).toBe(disabledHash);

    // Success: one verification, no rehash at the current parameters.
    const ok = await run(active.email, active.password, 200, true);
    expect(ok.hash).toBe(activeHash);
    expect(ok.argon2HashCalls).toBe(0);
  });

  it("failed logins are stored as login.failed audit events with their reason", async () => {
    const { active, disabled } = await users();
    const ghost = uniqueEmail("ghost");
    const before = await issuer.storage.db.auditEvent.count({ where: { type: "login.failed", userId: null } });
    await passwordGrant(issuer.app, ghost, PASSWORD);
    await passwordGrant(issuer.app, active.email, "wrong password!");
    await browserLogin(issuer, active.email, "another wrong password");
    await passwordGrant(issuer.app, disabled.email, disabled.password);

    const forActive = await issuer.storage.db.auditEvent.findMany({ where: { type: "login.failed", userId: active.id }, orderBy: { at: "asc" } });
    expect(forActive).toHaveLength(2);
    for (const e of forActive) {
      expect(e.clientId).toBe("web");
      expect(JSON.parse(e.details)).toEqual({ reason: "wrong_password", address: "127.0.0.1" });
    }
    const forDisabled = await issuer.storage.db.auditEvent.findMany({ where: { type: "login.failed", userId: disabled.id } });
    expect(forDisabled).toHaveLength(1);
    expect(JSON.parse(forDisabled[0]!.details)).toEqual({ reason: "user_disabled", address: "127.0.0.1" });

    const anonymous = await issuer.storage.db.auditEvent.findMany({ where: { type: "login.failed", userId: null } });
    expect(anonymous).toHaveLength(before + 1);
    expect(anonymous.map((e) => JSON.parse(e.details) as { reason: string }).every((d) => d.reason === "unknown_user")).toBe(true);
    // Never the password or the attempted email in the stored details.
    for (const e of [...forActive, ...forDisabled, ...anonymous]) {
      expect(e.details).not.toContain("wrong password");
      expect(e.details).not.toContain(ghost);
      expect(e.details).not.toContain(PASSWORD);
    }
    // No login.succeeded for any of them.
    expect(await issuer.storage.db.auditEvent.count({ where: { type: "login.succeeded", userId: { in: [active.id, disabled.id] } } })).toBe(0);
  });

  it("the stored password hash is argon2id m=19456,t=2,p=1 by default, salted, never the password", async () => {
    const a = await register(issuer.app, uniqueEmail(), PASSWORD);
    const b = await register(issuer.app, uniqueEmail(), PASSWORD);
    const [ha, hb] = [await storedHash(issuer, a.id), await storedHash(issuer, b.id)];
    for (const h of [ha, hb]) {
      expect(parseArgon2(h)).toEqual({ type: "argon2id", version: 19, m: 19456, t: 2, p: 1 });
      expect(h).not.toBe(PASSWORD);
      expect(h).not.toContain(PASSWORD);
      expect(h).not.toContain(Buffer.from(PASSWORD).toString("base64").replace(/=+$/, ""));
    }
    expect(ha).not.toBe(hb); // a fresh salt per hash
    expect(await argon2.verify(ha, PASSWORD)).toBe(true);
  });

  it("NFKC: a password registered with U+FB01 (ﬁ) logs in typed as \"fi\", and as typed", async () => {
    const email = uniqueEmail("nfkc");
    const composed = "\uFB01nancial secret 2024";
    await register(issuer.app, email, composed);
    const plain = await passwordGrant(issuer.app, email, "financial secret 2024");
    expect(plain.statusCode).toBe(200);
    const asTyped = await browserLogin(issuer, email, composed);
    expect(asTyped.statusCode).toBe(200);
    // ...and normalisation does not make unrelated passwords equal.
    expect((await passwordGrant(issuer.app, email, "Financial secret 2024")).statusCode).toBe(400);
    const claims = await verifyAccessToken(issuer, (plain.json() as TokenPair).access_token);
    expect(claims.sub).toBeTruthy();
  });
});

describeEachDb("credentials: rehash when parameters are raised", (flavor) => {
  let first: TestIssuer;
  let second: TestIssuer;
  beforeAll(async () => {
    first = await startIssuer(flavor);
    second = await startIssuer(flavor, {
      databaseUrl: first.databaseUrl,
      keysDir: first.keysDir,
      env: { ARGON2_ITERATIONS: "3" },
    });
  });
  afterAll(async () => {
    await second?.close();
    await first?.close();
  });

  it("logging in on an instance with ARGON2_ITERATIONS=3 upgrades the stored hash to t=3; both instances still accept the password", async () => {
    const user = await register(first.app);
    const original = await storedHash(first, user.id);
    expect(parseArgon2(original).t).toBe(2);

    const res = await passwordGrant(second.app, user.email, user.password);
    expect(res.statusCode).toBe(200);
    const upgraded = await storedHash(first, user.id);
    expect(upgraded).not.toBe(original);
    expect(parseArgon2(upgraded)).toEqual({ type: "argon2id", version: 19, m: 19456, t: 3, p: 1 });
    const events = await second.storage.db.auditEvent.findMany({ where: { type: "password.rehashed", userId: user.id } });
    expect(events).toHaveLength(1);

    // The upgraded hash works on both instances (tokens verify against the shared keys).
    for (const issuer of [second, first]) {
      const again = await passwordGrant(issuer.app, user.email, user.password);
      expect(again.statusCode).toBe(200);
      await verifyAccessToken(issuer, (again.json() as TokenPair).access_token);
    }
    expect((await passwordGrant(first.app, user.email, "wrong password!")).statusCode).toBe(400);
    expect((await passwordGrant(second.app, user.email, "wrong password!")).statusCode).toBe(400);
  });

  it("an instance still on the older, weaker parameters never downgrades a stronger hash", async () => {
    const user = await register(second.app); // hashed with t=3
    const strong = await storedHash(second, user.id);
    expect(parseArgon2(strong).t).toBe(3);
    // During a rolling upgrade an old instance (t=2) serves this login.
    expect((await passwordGrant(first.app, user.email, user.password)).statusCode).toBe(200);
    const after = await storedHash(first, user.id);
    expect(parseArgon2(after).t).toBe(3);
    expect(after).toBe(strong);
    expect(await first.storage.db.auditEvent.count({ where: { type: "password.rehashed", userId: user.id } })).toBe(0);
  });
});
