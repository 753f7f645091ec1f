// An attempt whose outcome was never written (the write failed, or its instance died) stays
// "pending", and after PENDING_SECONDS the throttle counts it as a failure from its address. A
// success from that address forgives the address's failures, but it used to skip every pending
// attempt, stale ones included: such an attempt then counted against the owner's own address for
// 24 hours, whatever the owner's successes, and with two more typos locked the owner out.
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeEachDb, errorOf, passwordGrant, register, startIssuer, type TestIssuer } from "../helpers/issuer.ts";

describeEachDb("security: a stale pending attempt is forgiven by a success like any failure", (flavor) => {
  let issuer: TestIssuer;
  beforeAll(async () => {
    issuer = await startIssuer(flavor, { env: { LOGIN_LOCKOUT_THRESHOLD: "3", LOGIN_LOCKOUT_BASE: "600" } });
  });
  afterAll(async () => issuer?.close());

  it("a failed settle, then a success: two typos later the owner still logs in from that address", async () => {
    const user = await register(issuer.app);
    const typo = () => passwordGrant(issuer.app, user.email, "not the password!");
    const throttle = issuer.storage.loginThrottle;
    const settle = throttle.settleFailed;
    throttle.settleFailed = async () => {
      throttle.settleFailed = settle;
      throw new Error("the database went away");
    };
    const lost = await typo();
    expect(lost.statusCode).toBeGreaterThanOrEqual(500);
    expect(throttle.settleFailed).toBe(settle);
    // Past PENDING_SECONDS: the attempt counts as a failure (its instance may have died).
    issuer.clock.advance(61);
    expect(errorOf(await typo())).toMatchObject({ status: 400, error: "invalid_grant" });
    // The owner logs in: the address's failures are forgiven, the stale one with them.
    expect((await passwordGrant(issuer.app, user.email, user.password)).statusCode).toBe(200);
    expect(errorOf(await typo())).toMatchObject({ status: 400, error: "invalid_grant" });
    expect(errorOf(await typo())).toMatchObject({ status: 400, error: "invalid_grant" });
    // Two failures since the success, under the threshold of three.
    expect((await passwordGrant(issuer.app, user.email, user.password)).statusCode).toBe(200);
  });

  it("a success that took longer than PENDING_SECONDS forgets its own attempt (it is not left pending and forgiven)", async () => {
    const user = await register(issuer.app);
    const hasher = issuer.services.hasher;
    const verify = hasher.verify.bind(hasher);
    // The hash queue was long: the verification ends 61 s after the attempt was reserved.
    hasher.verify = async (...args: Parameters<typeof verify>) => {
      hasher.verify = verify;
      const result = await verify(...args);
      issuer.clock.advance(61);
      return result;
    };
    try {
      expect((await passwordGrant(issuer.app, user.email, user.password)).statusCode).toBe(200);
    } finally {
      hasher.verify = verify;
    }
    expect(await issuer.storage.db.loginFailure.count({ where: { userId: user.id } })).toBe(0);
  });

  it("a pending attempt that is not stale is not forgiven: it may be a guess still being evaluated", async () => {
    const user = await register(issuer.app);
    const address = "127.0.0.1";
    // A guess in flight on another instance, reserved a moment ago.
    await issuer.storage.db.loginFailure.create({ data: { id: `pending-${user.id}`, userId: user.id, address, at: issuer.clock.now(), pending: true } });
    expect((await passwordGrant(issuer.app, user.email, user.password)).statusCode).toBe(200);
    const row = await issuer.storage.db.loginFailure.findUniqueOrThrow({ where: { id: `pending-${user.id}` } });
    expect(row).toMatchObject({ pending: true, forgiven: false });
  });
});
