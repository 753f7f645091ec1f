// Refresh-token rotation, reuse detection and the grace window, end to end through
// POST /oauth/token on a real database.
import { afterAll, beforeAll, expect, it } from "vitest";
import { hashRefreshToken } from "../../src/domain/tokens/refresh-token.ts";
import {
  describeEachDb,
  errorOf,
  login,
  refreshGrant,
  startIssuer,
  verifyAccessToken,
  type TestIssuer,
  type TokenPair,
} from "../helpers/issuer.ts";

describeEachDb("refresh rotation", (flavor) => {
  let issuer: TestIssuer;
  beforeAll(async () => {
    issuer = await startIssuer(flavor, { env: { REFRESH_REUSE_GRACE: "10" } });
  });
  afterAll(async () => issuer?.close());

  const refresh = async (token: string) => {
    const res = await refreshGrant(issuer.app, token);
    return { res, body: res.json() as TokenPair };
  };

  it("rotates on every use: each refresh returns a new token and the old one is consumed", async () => {
    const pair = await login(issuer.app);
    const r1 = await refresh(pair.refresh_token);
    expect(r1.res.statusCode).toBe(200);
    expect(r1.body.refresh_token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(r1.body.refresh_token).not.toBe(pair.refresh_token);
    expect(r1.res.headers["cache-control"]).toBe("no-store");
    const claims = await verifyAccessToken(issuer, r1.body.access_token);
    expect(claims.sub).toBe(pair.userId);
    expect(claims.sid).toBe((await verifyAccessToken(issuer, pair.access_token)).sid);
    // Only hashes are stored: neither plain token is in the database.
    const rows = await issuer.storage.db.refreshToken.findMany({ where: { sessionId: claims.sid as string } });
    expect(rows).toHaveLength(2);
    for (const row of rows) {
      expect([pair.refresh_token, r1.body.refresh_token]).not.toContain(row.hash);
    }
    expect(rows.map((r) => r.hash).sort()).toEqual([hashRefreshToken(pair.refresh_token), hashRefreshToken(r1.body.refresh_token)].sort());
  });

  it("login -> refresh x3 -> replaying the first token kills the whole family", async () => {
    const pair = await login(issuer.app);
    const tokens = [pair.refresh_token];
    for (let i = 0; i < 3; i++) {
      issuer.clock.advance(60); // well past the grace window
      const r = await refresh(tokens.at(-1)!);
      expect(r.res.statusCode).toBe(200);
      tokens.push(r.body.refresh_token);
    }
    issuer.clock.advance(60);
    const replay = await refresh(tokens[0]!);
    expect(errorOf(replay.res)).toMatchObject({ status: 400, error: "invalid_grant" });
    expect(errorOf(replay.res).description).toMatch(/already used/);

    // Every token of that family is now dead, including the newest one.
    for (const t of tokens) {
      const r = await refresh(t);
      expect(errorOf(r.res)).toMatchObject({ status: 400, error: "invalid_grant" });
    }
    const sid = (await verifyAccessToken(issuer, pair.access_token)).sid as string;
    const session = await issuer.storage.db.session.findUniqueOrThrow({ where: { id: sid } });
    expect(session.revokedAt).not.toBeNull();
    expect(session.revokedReason).toBe("refresh_token_reuse");
    // Recorded as a security event with session, user and client.
    const events = await issuer.services.storage.audit.list({ type: "refresh.reuse_detected", sessionId: sid });
    expect(events.length).toBeGreaterThanOrEqual(1);
    expect(events[0]).toMatchObject({ userId: pair.userId, clientId: "web", sessionId: sid });
    expect(events[0]!.details).toMatchObject({ familyRevoked: true });
  });

  it("reuse revokes only that family; the user's other sessions keep working", async () => {
    const a = await login(issuer.app);
    const b = await login(issuer.app);
    const a1 = await refresh(a.refresh_token);
    issuer.clock.advance(60);
    await refresh(a.refresh_token); // replay: family A dies
    expect((await refresh(a1.body.refresh_token)).res.statusCode).toBe(400);
    expect((await refresh(b.refresh_token)).res.statusCode).toBe(200);
  });

  it("two concurrent refreshes with one token inside the grace window both succeed with the same new token", async () => {
    const pair = await login(issuer.app);
    const [x, y] = await Promise.all([refresh(pair.refresh_token), refresh(pair.refresh_token)]);
    expect(x.res.statusCode).toBe(200);
    expect(y.res.statusCode).toBe(200);
    expect(x.body.refresh_token).toBe(y.body.refresh_token);
    // Both access tokens are valid, and the family stays alive.
    await verifyAccessToken(issuer, x.body.access_token);
    await verifyAccessToken(issuer, y.body.access_token);
    const next = await refresh(x.body.refresh_token);
    expect(next.res.statusCode).toBe(200);
  });

  it("a retry within the grace window (lost response) gets the same successor; after the window it is reuse", async () => {
    const pair = await login(issuer.app);
    const first = await refresh(pair.refresh_token);
    issuer.clock.advance(9);
    const retry = await refresh(pair.refresh_token);
    expect(retry.res.statusCode).toBe(200);
    expect(retry.body.refresh_token).toBe(first.body.refresh_token);
    const grace = await issuer.services.storage.audit.list({ type: "refresh.grace_retry" });
    expect(grace.length).toBeGreaterThanOrEqual(1);

    issuer.clock.advance(2); // now 11 s after the rotation: outside the 10 s window
    const late = await refresh(pair.refresh_token);
    expect(errorOf(late.res)).toMatchObject({ status: 400, error: "invalid_grant" });
    expect((await refresh(first.body.refresh_token)).res.statusCode).toBe(400);
  });

  it("inside the grace window, a parent whose child was already used counts as reuse", async () => {
    const pair = await login(issuer.app);
    const child = await refresh(pair.refresh_token);
    const grandchild = await refresh(child.body.refresh_token);
    expect(grandchild.res.statusCode).toBe(200);
    const stale = await refresh(pair.refresh_token); // still inside 10 s, but two generations old
    expect(errorOf(stale.res).error).toBe("invalid_grant");
    expect((await refresh(grandchild.body.refresh_token)).res.statusCode).toBe(400);
  });

  it("20 concurrent refreshes with one token: all get the same successor, exactly one new token exists", async () => {
    const pair = await login(issuer.app);
    const results = await Promise.all(Array.from({ length: 20 }, () => refresh(pair.refresh_token)));
    expect(results.map((r) => r.res.statusCode)).toEqual(Array(20).fill(200));
    expect(new Set(results.map((r) => r.body.refresh_token)).size).toBe(1);
    const parent = await issuer.storage.db.refreshToken.findUniqueOrThrow({ where: { hash: hashRefreshToken(pair.refresh_token) } });
    const children = await issuer.storage.db.refreshToken.findMany({ where: { parentId: parent.id } });
    expect(children).toHaveLength(1);
    expect(children[0]!.hash).toBe(hashRefreshToken(results[0]!.body.refresh_token));
    expect(await issuer.storage.db.refreshToken.count({ where: { sessionId: parent.sessionId } })).toBe(2);
  });

  it("refresh token bound to its client: another client cannot use it", async () => {
    const pair = await login(issuer.app);
    await issuer.services.storage.clients.upsert({
      id: "other-spa",
      name: "Other SPA",
      type: "public",
      secretHash: null,
      grantTypes: ["password", "refresh_token"],
      scopes: ["profile"],
      audiences: [],
      resources: [],
      accessTokenTtl: null,
      refreshTokenTtl: null,
      createdAt: issuer.clock.now(),
      disabledAt: null,
    });
    const res = await refreshGrant(issuer.app, pair.refresh_token, { client_id: "other-spa" });
    expect(errorOf(res)).toMatchObject({ status: 400, error: "invalid_grant" });
    // ...and the rightful client still can.
    expect((await refresh(pair.refresh_token)).res.statusCode).toBe(200);
  });

  it("a refresh may narrow the scope but never widen it", async () => {
    const pair = await login(issuer.app);
    const wider = await refreshGrant(issuer.app, pair.refresh_token, { scope: "profile admin" });
    expect(errorOf(wider)).toMatchObject({ status: 400, error: "invalid_scope" });
  });

  it("garbage, unknown and wrong-shaped refresh tokens are invalid_grant, never 500", async () => {
    for (const t of ["x", "A".repeat(43), "💥".repeat(20), "a".repeat(5000)]) {
      const res = await refreshGrant(issuer.app, t);
      expect(errorOf(res)).toMatchObject({ status: 400, error: "invalid_grant" });
    }
  });
});

describeEachDb("refresh without grace", (flavor) => {
  let issuer: TestIssuer;
  beforeAll(async () => {
    issuer = await startIssuer(flavor, { env: { REFRESH_REUSE_GRACE: "0" } });
  });
  afterAll(async () => issuer?.close());

  it("two concurrent refreshes with one token: one wins, the other is reuse and the family is revoked", async () => {
    const pair = await login(issuer.app);
    const results = await Promise.all([refreshGrant(issuer.app, pair.refresh_token), refreshGrant(issuer.app, pair.refresh_token)]);
    const codes = results.map((r) => r.statusCode).sort();
    expect(codes).toEqual([200, 400]);
    const winner = results.find((r) => r.statusCode === 200)!;
    // The winner's token died with the family.
    const after = await refreshGrant(issuer.app, (winner.json() as TokenPair).refresh_token);
    expect(errorOf(after).error).toBe("invalid_grant");
    const sid = (await verifyAccessToken(issuer, pair.access_token)).sid as string;
    const events = await issuer.services.storage.audit.list({ type: "refresh.reuse_detected", sessionId: sid });
    // However many requests detect the reuse, the family is revoked exactly once.
    expect(events.filter((e) => e.details?.familyRevoked === true)).toHaveLength(1);
  });

  it("20 concurrent refreshes with one token: exactly one new token exists and the family is revoked", async () => {
    const pair = await login(issuer.app);
    const results = await Promise.all(Array.from({ length: 20 }, () => refreshGrant(issuer.app, pair.refresh_token)));
    expect(results.filter((r) => r.statusCode === 200)).toHaveLength(1);
    expect(results.filter((r) => r.statusCode === 400)).toHaveLength(19);
    const parent = await issuer.storage.db.refreshToken.findUniqueOrThrow({ where: { hash: hashRefreshToken(pair.refresh_token) } });
    expect(await issuer.storage.db.refreshToken.count({ where: { parentId: parent.id } })).toBe(1);
    const session = await issuer.storage.db.session.findUniqueOrThrow({ where: { id: parent.sessionId } });
    expect(session.revokedAt).not.toBeNull();
  });
});

describeEachDb("session lifetime", (flavor) => {
  let issuer: TestIssuer;
  beforeAll(async () => {
    issuer = await startIssuer(flavor, {
      env: { REFRESH_IDLE_TTL: "1h", REFRESH_TOKEN_TTL: "3h", REFRESH_REUSE_GRACE: "5" },
    });
  });
  afterAll(async () => issuer?.close());

  it("idle timeout: a token unused for REFRESH_IDLE_TTL stops working", async () => {
    const pair = await login(issuer.app);
    issuer.clock.advance(3599);
    const ok = await refreshGrant(issuer.app, pair.refresh_token);
    expect(ok.statusCode).toBe(200);
    issuer.clock.advance(3600); // the successor has been idle for exactly an hour
    const idle = await refreshGrant(issuer.app, (ok.json() as TokenPair).refresh_token);
    expect(errorOf(idle)).toMatchObject({ status: 400, error: "invalid_grant" });
    expect(errorOf(idle).description).toMatch(/expired/);
  });

  it("absolute lifetime: rotation never extends the session past REFRESH_TOKEN_TTL", async () => {
    const pair = await login(issuer.app);
    let token = pair.refresh_token;
    // Refresh every 50 minutes: never idle, but the session still ends 3 h after login.
    for (let i = 0; i < 3; i++) {
      issuer.clock.advance(50 * 60);
      const r = await refreshGrant(issuer.app, token);
      expect(r.statusCode).toBe(200);
      token = (r.json() as TokenPair).refresh_token;
    }
    issuer.clock.advance(30 * 60 + 1); // 3 h 0 m 1 s after login
    const late = await refreshGrant(issuer.app, token);
    expect(errorOf(late)).toMatchObject({ status: 400, error: "invalid_grant" });
    expect(errorOf(late).description).toMatch(/expired/);
  });

  it("pruning deletes dead sessions (expired, idle, long-revoked) and leaves live ones", async () => {
    const live = await login(issuer.app);
    const idle = await login(issuer.app);
    const revoked = await login(issuer.app);
    const sidOf = async (t: string) => (await verifyAccessToken(issuer, t)).sid as string;
    const [liveSid, idleSid, revokedSid] = await Promise.all([sidOf(live.access_token), sidOf(idle.access_token), sidOf(revoked.access_token)]);
    await issuer.services.sessions.revokeByToken(revoked.refresh_token, "logout");
    issuer.clock.advance(50 * 60);
    const liveNext = await refreshGrant(issuer.app, live.refresh_token);
    expect(liveNext.statusCode).toBe(200);
    issuer.clock.advance(20 * 60); // idle session: 70 min without use; live one: 20 min
    const pruned = await issuer.services.sessions.pruneDead(0);
    expect(pruned).toBeGreaterThanOrEqual(2);
    const remaining = await issuer.storage.db.session.findMany({ where: { id: { in: [liveSid, idleSid, revokedSid] } } });
    expect(remaining.map((s) => s.id)).toEqual([liveSid]);
    // The live session still refreshes after the prune.
    expect((await refreshGrant(issuer.app, (liveNext.json() as TokenPair).refresh_token)).statusCode).toBe(200);
  });
});
