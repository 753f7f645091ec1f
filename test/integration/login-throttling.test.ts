// Brute-force throttling: repeated wrong passwords lock the account temporarily, with
// exponential backoff, the same answer as any other failure, and an atomic failure count.
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeEachDb, errorOf, passwordGrant, register, startIssuer, uniqueEmail, type TestIssuer } from "../helpers/issuer.ts";

describeEachDb("login throttling", (flavor) => {
  let issuer: TestIssuer;
  beforeAll(async () => {
    issuer = await startIssuer(flavor, {
      env: { LOGIN_LOCKOUT_THRESHOLD: "3", LOGIN_LOCKOUT_BASE: "60", LOGIN_LOCKOUT_MAX: "600" },
    });
  });
  afterAll(async () => issuer?.close());

  const row = (email: string) => issuer.storage.db.user.findUniqueOrThrow({ where: { email } });

  it("after 3 wrong passwords even the right one is refused, with the same answer, until the lock ends", async () => {
    const user = await register(issuer.app);
    const wrong = await passwordGrant(issuer.app, user.email, "not the password");
    for (let i = 0; i < 3; i++) expect(errorOf(await passwordGrant(issuer.app, user.email, "not the password"))).toEqual(errorOf(wrong));

    const locked = await passwordGrant(issuer.app, user.email, user.password);
    expect(locked.statusCode).toBe(400);
    expect(locked.body).toBe(wrong.body);
    const unknown = await passwordGrant(issuer.app, uniqueEmail("nobody"), user.password);
    expect(unknown.body).toBe(wrong.body);
    expect((await row(user.email)).lockedUntil).not.toBeNull();
    const events = await issuer.services.storage.audit.list({ type: "login.locked" });
    expect(events.some((e) => e.userId === user.id)).toBe(true);

    issuer.clock.advance(59);
    expect((await passwordGrant(issuer.app, user.email, user.password)).statusCode).toBe(400);
    issuer.clock.advance(2);
    expect((await passwordGrant(issuer.app, user.email, user.password)).statusCode).toBe(200);
    // A success clears the count and the lock.
    expect(await row(user.email)).toMatchObject({ failedLogins: 0, lockedUntil: null });
  });

  it("the lock doubles with each further failure, up to the maximum", async () => {
    const user = await register(issuer.app);
    for (let i = 0; i < 3; i++) await passwordGrant(issuer.app, user.email, "nope nope nope");
    issuer.clock.advance(61); // first lock (60 s) over
    await passwordGrant(issuer.app, user.email, "nope nope nope"); // 4th failure: 120 s
    issuer.clock.advance(61);
    expect((await passwordGrant(issuer.app, user.email, user.password)).statusCode).toBe(400);
    issuer.clock.advance(60);
    expect((await passwordGrant(issuer.app, user.email, user.password)).statusCode).toBe(200);
  });

  it("attempts during a lock do not extend it", async () => {
    const user = await register(issuer.app);
    for (let i = 0; i < 3; i++) await passwordGrant(issuer.app, user.email, "wrong wrong wrong");
    const until = (await row(user.email)).lockedUntil!;
    for (let i = 0; i < 5; i++) await passwordGrant(issuer.app, user.email, "wrong wrong wrong");
    expect((await row(user.email)).lockedUntil!.getTime()).toBe(until.getTime());
    expect((await row(user.email)).failedLogins).toBe(3);
  });
});

describeEachDb("login throttling counts", (flavor) => {
  let issuer: TestIssuer;
  beforeAll(async () => {
    // A high threshold: this test is about the count, not the lock.
    issuer = await startIssuer(flavor, { env: { LOGIN_LOCKOUT_THRESHOLD: "100" } });
  });
  afterAll(async () => issuer?.close());

  it("concurrent wrong passwords are all counted (atomic increment, none lost)", async () => {
    const user = await register(issuer.app);
    const results = await Promise.all(Array.from({ length: 12 }, () => passwordGrant(issuer.app, user.email, "parallel guess")));
    expect(results.every((r) => r.statusCode === 400)).toBe(true);
    const { failedLogins, lockedUntil } = await issuer.storage.db.user.findUniqueOrThrow({ where: { email: user.email } });
    expect(failedLogins).toBe(12);
    expect(lockedUntil).toBeNull();
  });
});

describeEachDb("login throttling disabled", (flavor) => {
  let issuer: TestIssuer;
  beforeAll(async () => {
    issuer = await startIssuer(flavor, { env: { LOGIN_LOCKOUT_THRESHOLD: "0" } });
  });
  afterAll(async () => issuer?.close());

  it("LOGIN_LOCKOUT_THRESHOLD=0 never locks", async () => {
    const user = await register(issuer.app);
    for (let i = 0; i < 12; i++) await passwordGrant(issuer.app, user.email, "wrong wrong wrong");
    expect((await passwordGrant(issuer.app, user.email, user.password)).statusCode).toBe(200);
  });
});
