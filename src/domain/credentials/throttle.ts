// Brute-force throttling of password checks (OWASP ASVS v4 2.2.1), decided per account AND per
// client address, from a log of failed attempts:
//
// - Per (account, address): after `threshold` failures from one address, that address waits
//   `base` seconds, doubling with each further failure up to `max`. Failures are forgotten after
//   FAILURE_MEMORY_SECONDS, and a success from the address forgets them at once. An attacker who
//   keeps guessing from one address keeps only that address out; the owner logging in from
//   another address is not affected (the lock is never the account's).
// - Per account, whatever the addresses: at most `accountLimit` (<= 100) failed attempts in any
//   rolling hour are evaluated at all. Beyond that, attempts are refused without looking at the
//   password until the hour slides, so a botnet gets 100 guesses an hour, not one per address.
//
// An attempt is recorded as a (pending) failure *before* the password is verified, inside one
// atomic step with the check, and forgotten if it succeeds: N concurrent guesses see each other,
// so at most `threshold` of them are evaluated, on one instance or many. An attempt held back
// only by others still pending waits for them instead of failing (concurrent logins of the owner).

export interface ThrottlePolicy {
  /** failures from one address before that address must wait; 0 turns the per-address lock off */
  threshold: number;
  /** first wait, seconds; doubles with each further failure */
  base: number;
  /** longest wait, seconds */
  max: number;
  /** failed attempts per account per rolling hour that are evaluated (ASVS 2.2.1: at most 100) */
  accountLimit: number;
}

/** How long a failure counts against its address (also how long the log keeps it). */
export const FAILURE_MEMORY_SECONDS = 24 * 3600;
/** How long an address the account logged in from stays exempt from the account's hourly limit. */
export const KNOWN_ADDRESS_SECONDS = 30 * 86400;
export const ACCOUNT_WINDOW_SECONDS = 3600;

/** An attempt whose outcome is not known yet counts as a failure; after this long, it is one (its instance died). */
export const PENDING_SECONDS = 60;

/** One attempt from the log, as the throttle sees it. */
export interface LoggedAttempt {
  at: Date;
  /** reserved, not yet evaluated to the end */
  pending: boolean;
}

/** What the log says about an account at the moment of an attempt. */
export interface FailureHistory {
  /** failed or pending attempts on the account in the last ACCOUNT_WINDOW_SECONDS */
  accountFailures: number;
  /** of those, the pending ones */
  accountPending: number;
  /** this address's failed or pending attempts on the account in the last FAILURE_MEMORY_SECONDS, oldest first */
  address: LoggedAttempt[];
  /** the account logged in successfully from this address in the last KNOWN_ADDRESS_SECONDS */
  knownAddress: boolean;
}

export type ThrottleVerdict =
  | { allowed: true }
  | { allowed: false; reason: "address_locked"; until: Date }
  | { allowed: false; reason: "account_limit" }
  /** over a limit only because of attempts still being evaluated: wait for them, they may succeed */
  | { allowed: false; reason: "busy" };

/** Seconds the address waits after its `failures`-th failure (0 below the threshold). */
export function lockSeconds(failures: number, policy: ThrottlePolicy): number {
  if (policy.threshold === 0 || failures < policy.threshold) return 0;
  return Math.min(policy.max, policy.base * 2 ** Math.min(failures - policy.threshold, 30));
}

function limitVerdict(accountFailures: number | null, address: Date[], now: Date, policy: ThrottlePolicy): ThrottleVerdict {
  if (accountFailures !== null && accountFailures >= policy.accountLimit) return { allowed: false, reason: "account_limit" };
  const n = address.length;
  const last = address[n - 1];
  const wait = lockSeconds(n, policy);
  if (last !== undefined && wait > 0) {
    const until = new Date(last.getTime() + wait * 1000);
    if (until > now) return { allowed: false, reason: "address_locked", until };
  }
  return { allowed: true };
}

/**
 * Pending attempts count as failures: that is what stops N concurrent guesses from all being
 * evaluated. But when only the pending ones push an attempt over a limit, the answer is "busy"
 * (wait and ask again), not a lock: they may well be the owner's own concurrent logins.
 */
export function judge(history: FailureHistory, now: Date, policy: ThrottlePolicy): ThrottleVerdict {
  const all = history.address.map((a) => a.at);
  // An address the owner logged in from is held only to its own wait, not to the account's hour.
  const account = history.knownAddress ? null : history.accountFailures;
  const verdict = limitVerdict(account, all, now, policy);
  if (verdict.allowed) return verdict;
  const staleBefore = now.getTime() - PENDING_SECONDS * 1000;
  const settled = history.address.filter((a) => !a.pending || a.at.getTime() < staleBefore).map((a) => a.at);
  const freshPending = history.address.length - settled.length;
  if (freshPending === 0 && history.accountPending === 0) return verdict;
  const settledAccount = account === null ? null : account - history.accountPending;
  return limitVerdict(settledAccount, settled, now, policy).allowed ? { allowed: false, reason: "busy" } : verdict;
}

// ---- the store the throttle needs (implemented in storage/prisma/login-throttle.ts) ----

/** A password attempt as the throttle log keeps it: recorded as failed before it is evaluated. */
export interface LoginAttempt {
  id: string;
  userId: string;
  /** the client address it is counted against (http/client-address.ts addressKey: IPv4, or IPv6 /64) */
  address: string;
  at: Date;
}

export interface LoginThrottleStore {
  /**
   * One atomic step, one account at a time across every instance (a lock on the user's row on
   * Postgres, the single writer lock on SQLite): reads the account's failed and pending attempts
   * since `since.account` (and how many of them are pending since `since.pending`) and this
   * address's since `since.address`, and when `decide` allows, records `attempt` as pending
   * before returning. Concurrent callers therefore see each other. An attempt on a user id that
   * does not exist reads nothing and records nothing (and is not an error).
   */
  reserve(
    attempt: LoginAttempt,
    since: { account: Date; address: Date; pending: Date; known: Date },
    decide: (history: FailureHistory) => boolean,
  ): Promise<{ history: FailureHistory; reserved: boolean }>;
  /** The attempt was evaluated and failed: it stays, no longer pending. */
  settleFailed(attemptId: string): Promise<void>;
  /**
   * The attempt succeeded, at `at`: forget it, forgive its address's earlier failures (settled
   * ones, and pending ones older than PENDING_SECONDS, which count as failures; no longer held
   * against the address, still in the account's hourly count), and remember the address as one
   * the account logs in from.
   */
  succeeded(attempt: LoginAttempt, at: Date): Promise<void>;
  /** The attempt turned out not to be a guess (e.g. never evaluated): forget it alone. */
  discard(attemptId: string): Promise<void>;
  /** Deletes attempts older than `failuresBefore` (returns how many) and addresses last used before `addressesBefore`. */
  prune(failuresBefore: Date, addressesBefore: Date): Promise<number>;
}
