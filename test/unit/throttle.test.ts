// The throttle's pure rules: per-address backoff, the account's hourly limit, and the address
// an attempt is counted against.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  ACCOUNT_WINDOW_SECONDS,
  FAILURE_MEMORY_SECONDS,
  PENDING_SECONDS,
  judge,
  lockSeconds,
  type ThrottlePolicy,
} from "../../src/domain/credentials/throttle.ts";

const policy: ThrottlePolicy = { threshold: 3, base: 60, max: 600, accountLimit: 100 };
const t0 = Date.UTC(2030, 0, 1);
const at = (s: number) => new Date(t0 + s * 1000);

describe("throttle rules", () => {
  it("waits 0 below the threshold, then base doubling up to max", () => {
    expect([1, 2, 3, 4, 5, 6, 7, 50].map((n) => lockSeconds(n, policy))).toEqual([0, 0, 60, 120, 240, 480, 600, 600]);
    expect(lockSeconds(100, { ...policy, threshold: 0 })).toBe(0);
  });

  it("an address waits from its last failure; the account limit applies whatever the address", () => {
    const three = [at(0), at(1), at(2)].map((d) => ({ at: d, pending: false }));
    expect(judge({ accountFailures: 3, accountPending: 0, address: three, knownAddress: false }, at(61), policy)).toMatchObject({ allowed: false, reason: "address_locked" });
    expect(judge({ accountFailures: 3, accountPending: 0, address: three, knownAddress: false }, at(62), policy)).toEqual({ allowed: true });
    expect(judge({ accountFailures: 100, accountPending: 0, address: [], knownAddress: false }, at(0), policy)).toEqual({ allowed: false, reason: "account_limit" });
    expect(judge({ accountFailures: 99, accountPending: 0, address: [], knownAddress: false }, at(0), policy)).toEqual({ allowed: true });
  });

  it("an address the account logged in from is held to its own wait only, never to the account's full hour", () => {
    expect(judge({ accountFailures: 100, accountPending: 0, address: [], knownAddress: true }, at(0), policy)).toEqual({ allowed: true });
    const three = [0, 1, 2].map((n) => ({ at: at(n), pending: false }));
    expect(judge({ accountFailures: 100, accountPending: 0, address: three, knownAddress: true }, at(10), policy)).toMatchObject({ reason: "address_locked" });
  });

  it("attempts still pending count as failures, but only hold the next one back (busy), never lock it", () => {
    const pending = [at(0), at(0), at(0)].map((d) => ({ at: d, pending: true }));
    expect(judge({ accountFailures: 3, accountPending: 3, address: pending, knownAddress: false }, at(1), policy)).toEqual({ allowed: false, reason: "busy" });
    // Two settled failures and one pending: still only busy (the pending one may succeed).
    const mixed = [{ at: at(0), pending: false }, { at: at(0), pending: false }, { at: at(0), pending: true }];
    expect(judge({ accountFailures: 3, accountPending: 1, address: mixed, knownAddress: false }, at(1), policy)).toEqual({ allowed: false, reason: "busy" });
    // Three settled failures: locked, whatever is pending.
    const locked = [...three(), { at: at(0), pending: true }];
    expect(judge({ accountFailures: 4, accountPending: 1, address: locked, knownAddress: false }, at(1), policy)).toMatchObject({ reason: "address_locked" });
    // A pending attempt whose instance died is a failure after PENDING_SECONDS.
    expect(judge({ accountFailures: 3, accountPending: 0, address: pending, knownAddress: false }, at(PENDING_SECONDS + 1), { ...policy, base: 600 })).toMatchObject({ reason: "address_locked" });
    // The account's hour, filled partly by pending attempts: busy; filled by settled ones: refused.
    expect(judge({ accountFailures: 100, accountPending: 1, address: [], knownAddress: false }, at(0), policy)).toEqual({ allowed: false, reason: "busy" });
    function three() {
      return [0, 0, 0].map(() => ({ at: at(0), pending: false }));
    }
  });

  it("property: an attacker with any schedule of addresses never gets more than accountLimit evaluations in any rolling hour", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ gap: fc.integer({ min: 0, max: 120 }), address: fc.integer({ min: 0, max: 40 }) }), { minLength: 1, maxLength: 400 }),
        fc.integer({ min: 1, max: 100 }),
        (attempts, accountLimit) => {
          const p = { ...policy, accountLimit };
          const log: Array<{ at: number; address: number }> = [];
          let now = 0;
          for (const a of attempts) {
            now += a.gap;
            const history = {
              accountFailures: log.filter((f) => f.at > now - ACCOUNT_WINDOW_SECONDS).length,
              accountPending: 0,
              address: log.filter((f) => f.address === a.address && f.at > now - FAILURE_MEMORY_SECONDS).map((f) => ({ at: at(f.at), pending: false })),
              knownAddress: false,
            };
            if (judge(history, at(now), p).allowed) log.push({ at: now, address: a.address }); // every guess fails
          }
          for (const f of log) {
            expect(log.filter((g) => g.at >= f.at && g.at < f.at + ACCOUNT_WINDOW_SECONDS).length).toBeLessThanOrEqual(accountLimit);
          }
        },
      ),
    );
  });

});
