// An attempt on an email that has no account must not take a different time from a wrong
// password on one that has: that difference tells an attacker which emails are registered. The
// hash was already the same (a dummy verify), but a real account's attempt also made the
// throttle's reservation (a transaction: lock, reads, insert) and its settle, which an unknown
// email skipped: on Postgres a known email was about 3 ms slower, in 108 of 120 alternated pairs
// (a throwaway probe, not in the repository). An unknown email's attempt now makes the same
// reservation and settle on an id no account has: they find nothing and write nothing.
import { afterAll, beforeAll, expect, it } from "vitest";
import type { LoginThrottleStore } from "../../src/domain/credentials/throttle.ts";
import { describeEachDb, errorOf, form, register, startIssuer, type TestIssuer } from "../helpers/issuer.ts";

describeEachDb("security: an unknown email costs the throttle's work too", (flavor) => {
  let issuer: TestIssuer;
  beforeAll(async () => {
    issuer = await startIssuer(flavor);
  });
  afterAll(async () => issuer?.close());

  /** The throttle store's calls during `run`, by method, in order. */
  async function throttleCalls(run: () => Promise<unknown>): Promise<string[]> {
    const store = issuer.storage.loginThrottle as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
    const calls: string[] = [];
    const originals = new Map<string, (...args: unknown[]) => Promise<unknown>>();
    for (const method of ["reserve", "settleFailed", "succeeded", "discard"] satisfies Array<keyof LoginThrottleStore>) {
      const original = store[method]!;
      originals.set(method, original);
      store[method] = (...args) => {
        calls.push(method);
        return original.apply(store, args);
      };
    }
    try {
      await run();
    } finally {
      for (const [method, original] of originals) store[method] = original;
    }
    return calls;
  }

  const attempt = (email: string, password: string) =>
    issuer.app.inject({ method: "POST", url: "/oauth/token", ...form({ grant_type: "password", client_id: "web", username: email, password }) });

  it("the same store calls, in the same order, for a wrong password and for an email with no account; nothing stored for the latter", async () => {
    const user = await register(issuer.app);
    let known, unknown;
    const knownCalls = await throttleCalls(async () => (known = await attempt(user.email, "a wrong password")));
    const before = await issuer.storage.db.loginFailure.count();
    const unknownCalls = await throttleCalls(async () => (unknown = await attempt("nobody.at.all@example.test", "a wrong password")));
    expect(knownCalls).toEqual(["reserve", "settleFailed"]);
    expect(unknownCalls).toEqual(knownCalls);
    expect(errorOf(unknown!)).toEqual(errorOf(known!));
    expect(await issuer.storage.db.loginFailure.count()).toBe(before);
    // A malformed email goes the same way.
    expect(await throttleCalls(() => attempt("not an email", "a wrong password"))).toEqual(knownCalls);
  });
});
