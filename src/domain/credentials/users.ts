// Registration and the credential check behind the password grant and /auth/login.
import type { Audit } from "../audit.ts";
import { addSeconds, type Clock } from "../clock.ts";
import { Conflict, InvalidGrant, InvalidRequest } from "../errors.ts";
import { newId } from "../ids.ts";
import { KeyedBulkhead } from "./bulkhead.ts";
import { checkPasswordPolicy, type PasswordHasher } from "./passwords.ts";
import {
  ACCOUNT_WINDOW_SECONDS,
  FAILURE_MEMORY_SECONDS,
  KNOWN_ADDRESS_SECONDS,
  PENDING_SECONDS,
  judge,
  lockSeconds,
  type FailureHistory,
  type LoginAttempt,
  type LoginThrottleStore,
  type ThrottlePolicy,
  type ThrottleVerdict,
} from "./throttle.ts";
import { EmailTakenError, type UserRecord, type UserStore } from "./user-store.ts";

/** How long an attempt waits for concurrent attempts on the same account to be evaluated. */
const BUSY_WAIT_MS = 5000;

/** NFKC, trimmed, lower-cased; rejects what is not plausibly an address. */
export function normalizeEmail(raw: string): string {
  const email = raw.normalize("NFKC").trim().toLowerCase();
  if (email.length > 254 || !/^[^\s@]+@[^\s@]+$/.test(email) || /[\p{Cc}\p{Cs}]/u.test(email)) {
    throw new InvalidRequest("The email address is not valid.");
  }
  return email;
}

/** The throttle's look-back windows for an attempt at `now`. */
const windowsAt = (now: Date) => ({
  account: addSeconds(now, -ACCOUNT_WINDOW_SECONDS),
  address: addSeconds(now, -FAILURE_MEMORY_SECONDS),
  pending: addSeconds(now, -PENDING_SECONDS),
  known: addSeconds(now, -KNOWN_ADDRESS_SECONDS),
});

// One message for "no such user", "wrong password" and "disabled": nothing to enumerate.
export const BAD_CREDENTIALS = "Invalid username or password.";

export class Users {
  constructor(
    private readonly store: UserStore,
    private readonly throttleStore: LoginThrottleStore,
    private readonly hasher: PasswordHasher,
    private readonly audit: Audit,
    private readonly clock: Clock,
    private readonly throttle: ThrottlePolicy,
    /** attempts waiting per account and address on this instance before 503 (PASSWORD_HASH_QUEUE) */
    maxWaiting = 256,
  ) {
    // One budget with the hasher's queue: a flood is refused (503) at the same depth as before.
    this.perAddress = new KeyedBulkhead(Math.max(1, throttle.threshold || 10), maxWaiting, () => hasher.load.waiting);
  }

  private readonly perAddress: KeyedBulkhead;

  async register(rawEmail: string, password: string, roles: string[] = []): Promise<UserRecord> {
    const email = normalizeEmail(rawEmail);
    checkPasswordPolicy(password);
    const user: UserRecord = {
      id: newId(),
      email,
      passwordHash: await this.hasher.hash(password),
      roles,
      createdAt: this.clock.now(),
      disabledAt: null,
    };
    try {
      await this.store.create(user);
    } catch (err) {
      if (err instanceof EmailTakenError) throw new Conflict("An account with this email already exists.");
      throw err;
    }
    await this.audit.record("user.registered", { userId: user.id });
    return user;
  }

  /**
   * The password check behind the password grant and /auth/login. `address` is the key of the
   * client's address (IPv4, or IPv6 /64), which the brute-force throttle counts failures against.
   */
  async authenticate(rawEmail: string, password: string, from: { clientId: string; address: string }): Promise<UserRecord> {
    const { clientId, address } = from;
    let email: string;
    try {
      email = normalizeEmail(rawEmail);
    } catch {
      email = "";
    }
    const user = email ? await this.store.findByEmail(email) : null;
    if (!user) {
      // The work of a wrong password on a real account, in the same order, so that the time does
      // not tell which emails are registered: the throttle's reservation, its insert included, and
      // settle (on an id no account has: they find nothing and write nothing), the hash, the audit.
      const ghost: LoginAttempt = { id: newId(), userId: newId(), address, at: this.clock.now() };
      await this.throttleStore.reserve(ghost, windowsAt(ghost.at), () => true);
      await this.hasher.verifyDummy(password);
      await this.throttleStore.settleFailed(ghost.id);
      await this.audit.record("login.failed", { clientId, details: { reason: "unknown_user", address } });
      throw new InvalidGrant(BAD_CREDENTIALS);
    }
    // Concurrent attempts on one account from one address queue here first, at most `threshold`
    // at once on this instance: they would only be held back as "busy" by each other below, and
    // waiting in memory is cheaper than asking the database again and again (a login flood).
    return this.perAddress.run(`${user.id} ${address}`, () => this.checkPassword(user, password, clientId, address));
  }

  /**
   * The user if, as stored now, they are enabled and `password` is their password (a verify at
   * full cost); null if not. For a login whose session found the account changed under it
   * (grants/password.ts): a concurrent re-hash of the same password passes, a reset does not.
   */
  async recheck(userId: string, password: string): Promise<UserRecord | null> {
    const user = await this.store.findById(userId);
    if (!user || user.disabledAt !== null) return null;
    return (await this.hasher.verify(user.passwordHash, password)).ok ? user : null;
  }

  /**
   * A signed-in user changes their password. The new one must meet the registration policy
   * (checked first: a refused new password costs no guess); the current one is checked by the
   * login's own throttled path (authenticate's queue, reservation, failure count, lock and audit),
   * so a wrong one is a failed login, answered as one (invalid_grant). Returns the user.
   */
  async changePassword(
    userId: string,
    currentPassword: string,
    newPassword: string,
    from: { clientId: string; address: string },
  ): Promise<UserRecord> {
    checkPasswordPolicy(newPassword);
    const user = await this.store.findById(userId);
    if (!user) {
      await this.hasher.verifyDummy(currentPassword);
      throw new InvalidGrant(BAD_CREDENTIALS);
    }
    await this.perAddress.run(`${user.id} ${from.address}`, () => this.checkPassword(user, currentPassword, from.clientId, from.address));
    await this.store.updatePasswordHash(user.id, await this.hasher.hash(newPassword));
    return user;
  }

  /**
   * An operator sets a user's password (no current password: the operator is trusted). The same
   * policy as registration. Returns the user, or null when there is no such user.
   */
  async setPassword(userId: string, newPassword: string): Promise<UserRecord | null> {
    checkPasswordPolicy(newPassword);
    const user = await this.store.findById(userId);
    if (!user) return null;
    await this.store.updatePasswordHash(user.id, await this.hasher.hash(newPassword));
    return user;
  }

  private async checkPassword(user: UserRecord, password: string, clientId: string, address: string): Promise<UserRecord> {
    // Reserve the attempt before evaluating it: it is recorded as a pending failure in the same
    // atomic step that checks the limits, so concurrent guesses count against each other.
    const { attempt, history, verdict } = await this.reserve(user.id, address);
    if (attempt === null) {
      // Not evaluated at all. The same answer, and the same cost, as a wrong password: a
      // throttled account must not be told apart from an unknown one by its timing.
      await this.hasher.verifyDummy(password);
      const details = verdict.allowed ? {} : { reason: verdict.reason, ...(verdict.reason === "address_locked" ? { lockedUntil: verdict.until.toISOString() } : {}) };
      await this.audit.record("login.failed", { userId: user.id, clientId, details: { ...details, address } });
      throw new InvalidGrant(BAD_CREDENTIALS);
    }
    const now = attempt.at;
    let result: { ok: boolean; needsRehash: boolean };
    try {
      result = await this.hasher.verify(user.passwordHash, password);
    } catch (err) {
      // Never evaluated (the hash queue is full: 503): it was not a guess.
      await this.throttleStore.discard(attempt.id).catch(() => undefined);
      throw err;
    }
    const { ok, needsRehash } = result;
    if (!ok) {
      await this.throttleStore.settleFailed(attempt.id);
      await this.audit.record("login.failed", { userId: user.id, clientId, details: { reason: "wrong_password", address } });
      await this.reportLock(user.id, address, history, now);
      throw new InvalidGrant(BAD_CREDENTIALS);
    }
    if (user.disabledAt !== null) {
      // The right password on a disabled account is not a guess: it does not count.
      await this.throttleStore.discard(attempt.id);
      await this.audit.record("login.failed", { userId: user.id, clientId, details: { reason: "user_disabled", address } });
      throw new InvalidGrant(BAD_CREDENTIALS);
    }
    // A success forgives the address's earlier failures (they no longer make it wait, but still
    // count in the account's hourly limit) and marks the address as one the owner logs in from.
    await this.throttleStore.succeeded(attempt, this.clock.now());
    if (needsRehash) {
      // Parameters were raised since this hash was made: upgrade it while we hold the password,
      // only over the hash it was checked against. If another write came first (a reset, or a
      // concurrent login's own re-hash), the login's session start sees the other hash and the
      // grant checks the password again against it (grants/password.ts).
      const upgraded = await this.hasher.hash(password);
      if (await this.store.replacePasswordHash(user.id, user.passwordHash, upgraded)) {
        await this.audit.record("password.rehashed", { userId: user.id });
        return { ...user, passwordHash: upgraded };
      }
    }
    return user;
  }

  /**
   * Reserves an attempt, or says why not. An attempt held back only by others still being
   * evaluated ("busy": most likely the owner's own concurrent logins) waits for them, up to
   * BUSY_WAIT_MS, instead of being refused.
   */
  private async reserve(userId: string, address: string): Promise<{ attempt: LoginAttempt | null; history: FailureHistory; verdict: ThrottleVerdict }> {
    const giveUpAt = Date.now() + BUSY_WAIT_MS;
    for (let delay = 10; ; delay = Math.min(delay * 2, 100)) {
      const now = this.clock.now();
      const attempt: LoginAttempt = { id: newId(), userId, address, at: now };
      const { history, reserved } = await this.throttleStore.reserve(attempt, windowsAt(now), (h) => judge(h, now, this.throttle).allowed);
      if (reserved) return { attempt, history, verdict: { allowed: true } };
      const verdict = judge(history, now, this.throttle);
      if (verdict.allowed || verdict.reason !== "busy" || Date.now() >= giveUpAt) return { attempt: null, history, verdict };
      await new Promise((r) => setTimeout(r, delay));
    }
  }

  /** Records `login.locked` when this failure is the one that made its address wait, or filled the account's hour. */
  private async reportLock(userId: string, address: string, before: FailureHistory, now: Date): Promise<void> {
    const failures = before.address.length + 1;
    const seconds = lockSeconds(failures, this.throttle);
    if (seconds > 0) {
      const lockedUntil = new Date(now.getTime() + seconds * 1000).toISOString();
      await this.audit.record("login.locked", { userId, details: { scope: "address", address, failures, seconds, lockedUntil } });
    }
    // Crossing the limit (pending attempts included), not landing exactly on it.
    if (before.accountFailures < this.throttle.accountLimit && before.accountFailures + 1 >= this.throttle.accountLimit) {
      await this.audit.record("login.locked", { userId, details: { scope: "account", failuresInLastHour: this.throttle.accountLimit } });
    }
  }
}
