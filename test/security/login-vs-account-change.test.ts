// A login whose password check passed must not end with a session when, while it was in flight,
// the account changed under it: an operator reset the password or disabled the user (both then
// revoke every session of the user), or the user changed the password. Before, the login
// inserted its session after that revocation had run, so the reset or the disable left it alive:
// its refresh token kept rotating on the old password, and a disabled user's access token kept a
// 0 in the status list. And a login that re-hashed the password (ARGON2_* raised) wrote the old
// password back over a reset made meanwhile. The session's insert is now conditional on the user
// being as the check found it (not disabled, the same password hash), and the re-hash on the
// hash it replaces. On Postgres the insert takes a share lock on the user's row, so a change in
// flight is waited for and seen.
import pg from "pg";
import { afterAll, beforeAll, expect, it } from "vitest";
import { disableUser, enableUser, setUserPassword } from "../../src/admin/users.ts";
import { adminOf, describeEachDb, errorOf, passwordGrant, register, startIssuer, type TestIssuer, type TokenPair } from "../helpers/issuer.ts";

const NEW_PASSWORD = "a brand new password 12345";

describeEachDb("security: a login racing a change of its account", (flavor) => {
  let issuer: TestIssuer;
  beforeAll(async () => {
    issuer = await startIssuer(flavor);
  });
  afterAll(async () => issuer?.close());

  /** The password grant, with `between` run after the password check and before the session is written. */
  async function loginWith(i: TestIssuer, email: string, password: string, between: () => Promise<unknown>) {
    const store = i.storage.sessions;
    const original = store.start;
    let ran = false;
    store.start = async (...args: Parameters<typeof original>) => {
      store.start = original;
      await between();
      ran = true;
      return original.apply(store, args);
    };
    try {
      const res = await passwordGrant(i.app, email, password);
      expect(ran).toBe(true);
      return res;
    } finally {
      store.start = original;
    }
  }

  const liveSessions = (i: TestIssuer, userId: string) => i.storage.db.session.count({ where: { userId, revokedAt: null } });
  const failures = async (i: TestIssuer, userId: string) =>
    (await i.storage.db.auditEvent.findMany({ where: { type: "login.failed", userId } })).map((e) => JSON.parse(e.details) as Record<string, unknown>);

  it("an operator's password reset during the login: the login is refused and leaves no session", async () => {
    const user = await register(issuer.app);
    const res = await loginWith(issuer, user.email, user.password, () => setUserPassword(adminOf(issuer), { email: user.email }, NEW_PASSWORD));
    expect(errorOf(res)).toMatchObject({ status: 400, error: "invalid_grant", description: "Invalid username or password." });
    expect((res.json() as Partial<TokenPair>).refresh_token).toBeUndefined();
    expect(await liveSessions(issuer, user.id)).toBe(0);
    expect(await failures(issuer, user.id)).toEqual([{ reason: "account_changed", address: "127.0.0.1" }]);
    // The reset itself stands: the new password logs in, the old one does not.
    expect((await passwordGrant(issuer.app, user.email, NEW_PASSWORD)).statusCode).toBe(200);
    expect((await passwordGrant(issuer.app, user.email, user.password)).statusCode).toBe(400);
  });

  it("the user disabled during the login: refused, and no session comes back when the user is enabled again", async () => {
    const user = await register(issuer.app);
    const res = await loginWith(issuer, user.email, user.password, () => disableUser(adminOf(issuer), { email: user.email }));
    expect(errorOf(res)).toMatchObject({ status: 400, error: "invalid_grant" });
    await enableUser(adminOf(issuer), { email: user.email });
    expect(await liveSessions(issuer, user.id)).toBe(0);
    expect((await passwordGrant(issuer.app, user.email, user.password)).statusCode).toBe(200);
    expect(await liveSessions(issuer, user.id)).toBe(1);
  });

  it("a change that is no change (the user disabled and enabled again, the same hash) does not refuse the login", async () => {
    const user = await register(issuer.app);
    const res = await loginWith(issuer, user.email, user.password, async () => {
      await disableUser(adminOf(issuer), { email: user.email });
      await enableUser(adminOf(issuer), { email: user.email });
    });
    // Enabled with the same password when the session is written: a login like any other.
    expect(res.statusCode).toBe(200);
    expect(await liveSessions(issuer, user.id)).toBe(1);
  });

  it.runIf(flavor === "postgres")("Postgres: a password change in flight (uncommitted) when the session is written is waited for, then the login is refused", async () => {
    const user = await register(issuer.app);
    const client = new pg.Client({ connectionString: issuer.databaseUrl });
    await client.connect();
    try {
      let committed: Promise<number> | undefined;
      const res = await loginWith(issuer, user.email, user.password, async () => {
        // Another instance changes the password and has not committed when the insert runs.
        await client.query("BEGIN");
        await client.query(`UPDATE "User" SET "passwordHash" = 'changed elsewhere' WHERE "id" = $1`, [user.id]);
        committed = new Promise((r) => setTimeout(r, 1000)).then(() => client.query("COMMIT")).then(() => Date.now());
      });
      const answeredAt = Date.now();
      // The insert waited for the change to commit, and then saw it.
      expect(await committed).toBeLessThanOrEqual(answeredAt);
      expect(errorOf(res)).toMatchObject({ status: 400, error: "invalid_grant" });
      expect(await liveSessions(issuer, user.id)).toBe(0);
    } finally {
      await client.end();
    }
  });
});

describeEachDb("security: a re-hashing login racing a password reset", (flavor) => {
  let first: TestIssuer;
  let second: TestIssuer;
  beforeAll(async () => {
    first = await startIssuer(flavor);
    // Raised parameters: a login here re-hashes a password hashed on `first`.
    second = await startIssuer(flavor, { databaseUrl: first.databaseUrl, keysDir: first.keysDir, env: { ARGON2_ITERATIONS: "3" } });
  });
  afterAll(async () => {
    await second?.close();
    await first?.close();
  });

  it("another login's re-hash of the same password during the login is no change: both logins get their tokens", async () => {
    const user = await register(first.app);
    const store = first.storage.sessions;
    const start = store.start;
    // A login on `first` (the older parameters: it does not re-hash) is held before its session
    // is written, while a login on `second` re-hashes the same password.
    store.start = async (...args: Parameters<typeof start>) => {
      store.start = start;
      const other = await passwordGrant(second.app, user.email, user.password);
      expect(other.statusCode).toBe(200);
      return start.apply(store, args);
    };
    let res;
    try {
      res = await passwordGrant(first.app, user.email, user.password);
    } finally {
      store.start = start;
    }
    expect(res.statusCode).toBe(200);
    expect(await first.storage.db.auditEvent.count({ where: { type: "password.rehashed", userId: user.id } })).toBe(1);
    expect(await first.storage.db.session.count({ where: { userId: user.id, revokedAt: null } })).toBe(2);
  });

  it("the reset wins: the old password does not come back, and the re-hashing login is refused", async () => {
    const user = await register(first.app);
    const hasher = second.services.hasher;
    const hash = hasher.hash.bind(hasher);
    // The reset lands after the login computed the new hash of the old password, before it is stored.
    hasher.hash = async (password: string) => {
      hasher.hash = hash;
      const rehashed = await hash(password);
      await setUserPassword(adminOf(first), { email: user.email }, NEW_PASSWORD);
      return rehashed;
    };
    let res;
    try {
      res = await passwordGrant(second.app, user.email, user.password);
    } finally {
      hasher.hash = hash;
    }
    expect(errorOf(res)).toMatchObject({ status: 400, error: "invalid_grant" });
    expect(await second.storage.db.session.count({ where: { userId: user.id, revokedAt: null } })).toBe(0);
    expect(await second.storage.db.auditEvent.count({ where: { type: "password.rehashed", userId: user.id } })).toBe(0);
    for (const i of [first, second]) {
      expect((await passwordGrant(i.app, user.email, user.password)).statusCode).toBe(400);
      expect((await passwordGrant(i.app, user.email, NEW_PASSWORD)).statusCode).toBe(200);
    }
  });
});
