// Registration and the credential check behind the password grant and /auth/login.
import type { UserRecord, UserStore } from "../../storage/ports.ts";
import { EmailTakenError } from "../../storage/ports.ts";
import type { Audit } from "../audit.ts";
import type { Clock } from "../clock.ts";
import { Conflict, InvalidGrant, InvalidRequest } from "../errors.ts";
import { newId } from "../ids.ts";
import { checkPasswordPolicy, type PasswordHasher } from "./passwords.ts";

/** NFKC, trimmed, lower-cased; rejects what is not plausibly an address. */
export function normalizeEmail(raw: string): string {
  const email = raw.normalize("NFKC").trim().toLowerCase();
  if (email.length > 254 || !/^[^\s@]+@[^\s@]+$/.test(email) || /[\p{Cc}\p{Cs}]/u.test(email)) {
    throw new InvalidRequest("The email address is not valid.");
  }
  return email;
}

// One message for "no such user", "wrong password" and "disabled": nothing to enumerate.
const BAD_CREDENTIALS = "Invalid username or password.";

export class Users {
  constructor(
    private readonly store: UserStore,
    private readonly hasher: PasswordHasher,
    private readonly audit: Audit,
    private readonly clock: Clock,
    private readonly lockout: { threshold: number; base: number; max: number } = { threshold: 10, base: 60, max: 3600 },
  ) {}

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
      failedLogins: 0,
      lockedUntil: null,
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

  async authenticate(rawEmail: string, password: string, clientId: string): Promise<UserRecord> {
    let email: string;
    try {
      email = normalizeEmail(rawEmail);
    } catch {
      email = "";
    }
    const user = email ? await this.store.findByEmail(email) : null;
    if (!user) {
      await this.hasher.verifyDummy(password);
      await this.audit.record("login.failed", { clientId, details: { reason: "unknown_user" } });
      throw new InvalidGrant(BAD_CREDENTIALS);
    }
    // Always pay for the verification, locked or not: the answer and its timing are the same.
    const { ok, needsRehash } = await this.hasher.verify(user.passwordHash, password);
    const now = this.clock.now();
    if (user.lockedUntil !== null && user.lockedUntil > now) {
      // Temporarily locked after repeated failures: even the right password is refused, with the
      // same message, and attempts during the lock do not extend it.
      await this.audit.record("login.failed", { userId: user.id, clientId, details: { reason: "locked", lockedUntil: user.lockedUntil.toISOString() } });
      throw new InvalidGrant(BAD_CREDENTIALS);
    }
    if (!ok || user.disabledAt !== null) {
      const reason = ok ? "user_disabled" : "wrong_password";
      if (!ok) await this.throttle(user.id, now);
      await this.audit.record("login.failed", { userId: user.id, clientId, details: { reason } });
      throw new InvalidGrant(BAD_CREDENTIALS);
    }
    if (user.failedLogins > 0 || user.lockedUntil !== null) await this.store.clearFailedLogins(user.id);
    if (needsRehash) {
      // Parameters were raised since this hash was made: upgrade it while we hold the password.
      await this.store.updatePasswordHash(user.id, await this.hasher.hash(password));
      await this.audit.record("password.rehashed", { userId: user.id });
    }
    return user;
  }

  /**
   * Brute-force throttling: after `threshold` consecutive failures the account is locked for
   * `base` seconds, doubling with each further failure up to `max` (a temporary lock, so an
   * attacker can delay but never permanently lock out the owner).
   */
  private async throttle(userId: string, now: Date): Promise<void> {
    const { threshold, base, max } = this.lockout;
    if (threshold === 0) return;
    const failures = await this.store.recordFailedLogin(userId);
    if (failures < threshold) return;
    const seconds = Math.min(max, base * 2 ** Math.min(failures - threshold, 30));
    const until = new Date(now.getTime() + seconds * 1000);
    await this.store.setLockedUntil(userId, until);
    await this.audit.record("login.locked", { userId, details: { failures, lockedUntil: until.toISOString(), seconds } });
  }
}
