// Finding 5: rotation must not outrun a revocation. "Session still live" is part of the atomic
// consume (one INSERT that requires the session row to be unrevoked), so a logout or a reuse
// revocation committed after the refresh read the session, but before it consumed the token,
// wins: no new token pair is issued for a revoked session. On Postgres a revocation still in
// flight is waited for (FOR SHARE), on SQLite the single writer lock orders the two.
import Database from "better-sqlite3";
import pg from "pg";
import { afterAll, beforeAll, expect, it } from "vitest";
import { sqlitePath } from "../../src/storage/prisma/client.ts";
import { describeEachDb, login, refreshGrant, startIssuer, verifyAccessToken, type TestIssuer, type TokenPair } from "../helpers/issuer.ts";

describeEachDb("security: refresh vs concurrent revocation", (flavor) => {
  let issuer: TestIssuer;
  beforeAll(async () => {
    issuer = await startIssuer(flavor);
  });
  afterAll(async () => issuer?.close());

  const sessionOf = async (pair: TokenPair) => (await verifyAccessToken(issuer, pair.access_token)).sid as string;

  it("a logout committed between the refresh's read and its consume: the refresh is refused and issues nothing", async () => {
    const pair = await login(issuer.app);
    const sid = await sessionOf(pair);
    const sessions = issuer.storage.sessions;
    const original = sessions.insertChild;
    // The logout commits exactly in the window between findToken (session live) and the insert.
    sessions.insertChild = async (child, now) => {
      await sessions.revoke(child.sessionId, "logout", now);
      return original.call(sessions, child, now);
    };
    try {
      const res = await refreshGrant(issuer.app, pair.refresh_token);
      expect(res.statusCode).toBe(400);
      expect(res.json()).toMatchObject({ error: "invalid_grant" });
      expect(res.body).not.toContain("access_token");
    } finally {
      sessions.insertChild = original;
    }
    // Nothing was written into the revoked session.
    expect(await issuer.storage.db.refreshToken.count({ where: { sessionId: sid } })).toBe(1);
  });

  it("a revocation in flight on another connection: the refresh waits for it, then is refused", async () => {
    const pair = await login(issuer.app);
    const sid = await sessionOf(pair);
    const revoker = await openRevoker(issuer.databaseUrl);
    try {
      await revoker.begin(sid);
      let settled = false;
      const refresh = refreshGrant(issuer.app, pair.refresh_token).finally(() => (settled = true));
      await new Promise((r) => setTimeout(r, 400));
      // The consume cannot overtake the uncommitted revocation...
      expect(settled).toBe(false);
      await revoker.commit();
      // ...and once it is committed, the refresh sees it.
      const res = await refresh;
      expect(res.statusCode).toBe(400);
      expect(res.json()).toMatchObject({ error: "invalid_grant" });
    } finally {
      await revoker.close();
    }
    expect(await issuer.storage.db.refreshToken.count({ where: { sessionId: sid } })).toBe(1);
  });

  it("a revocation that rolls back does not cost the refresh anything", async () => {
    const pair = await login(issuer.app);
    const sid = await sessionOf(pair);
    const revoker = await openRevoker(issuer.databaseUrl);
    try {
      await revoker.begin(sid);
      const refresh = refreshGrant(issuer.app, pair.refresh_token);
      await new Promise((r) => setTimeout(r, 200));
      await revoker.rollback();
      const res = await refresh;
      expect(res.statusCode).toBe(200);
    } finally {
      await revoker.close();
    }
  });

  it("logout and refresh racing from two tabs, 20 times: every outcome is consistent, never a 500, never a live token in a revoked session", async () => {
    for (let round = 0; round < 20; round++) {
      const res = await issuer.app.inject({
        method: "POST",
        url: "/auth/login",
        headers: { "content-type": "application/json", origin: "https://app.test" },
        payload: await (async () => {
          const email = `race.${round}.${Date.now()}.${Math.random().toString(36).slice(2)}@example.test`;
          await issuer.services.users.register(email, "correct horse battery staple");
          return { email, password: "correct horse battery staple" };
        })(),
      });
      expect(res.statusCode).toBe(200);
      const cookie = res.cookies.find((c) => c.name === "refresh_token")!.value;
      const sid = (await verifyAccessToken(issuer, (res.json() as TokenPair).access_token)).sid as string;
      const headers = { "content-type": "application/json", origin: "https://app.test", cookie: `refresh_token=${cookie}` };
      const [refreshed, loggedOut] = await Promise.all([
        issuer.app.inject({ method: "POST", url: "/auth/refresh", headers }),
        issuer.app.inject({ method: "POST", url: "/auth/logout", headers }),
      ]);
      expect(loggedOut.statusCode).toBe(204);
      expect([200, 401]).toContain(refreshed.statusCode);
      const session = await issuer.storage.db.session.findUniqueOrThrow({ where: { id: sid } });
      expect(session.revokedAt).not.toBeNull();
      const rows = await issuer.storage.db.refreshToken.count({ where: { sessionId: sid } });
      // A refresh that answered 200 committed its successor before the logout; one that failed wrote nothing.
      expect(rows).toBe(refreshed.statusCode === 200 ? 2 : 1);
      if (refreshed.statusCode === 200) {
        const successor = refreshed.cookies.find((c) => c.name === "refresh_token")!.value;
        const again = await issuer.app.inject({ method: "POST", url: "/auth/refresh", headers: { ...headers, cookie: `refresh_token=${successor}` } });
        expect(again.statusCode).toBe(401);
      }
    }
  });
});

/** A second connection that revokes a session inside a transaction it holds open. */
async function openRevoker(url: string) {
  if (url.startsWith("file:")) {
    const db = new Database(sqlitePath(url), { timeout: 5000 });
    return {
      async begin(sid: string) {
        db.exec("BEGIN IMMEDIATE");
        db.prepare(`UPDATE "Session" SET "revokedAt" = ?, "revokedReason" = 'logout' WHERE "id" = ?`).run(new Date().toISOString().replace("Z", "+00:00"), sid);
      },
      commit: async () => void db.exec("COMMIT"),
      rollback: async () => void db.exec("ROLLBACK"),
      close: async () => void (db.inTransaction ? db.exec("ROLLBACK") : undefined, db.close()),
    };
  }
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  let open = false;
  return {
    async begin(sid: string) {
      await client.query("BEGIN");
      open = true;
      await client.query(`UPDATE "Session" SET "revokedAt" = now() AT TIME ZONE 'UTC', "revokedReason" = 'logout' WHERE "id" = $1`, [sid]);
    },
    commit: async () => void (await client.query("COMMIT"), (open = false)),
    rollback: async () => void (await client.query("ROLLBACK"), (open = false)),
    close: async () => {
      if (open) await client.query("ROLLBACK");
      await client.end();
    },
  };
}
