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
    const { ok, needsRehash } = await this.hasher.verify(user.passwordHash, password);
    if (!ok || user.disabledAt !== null) {
      const reason = ok ? "user_disabled" : "wrong_password";
      await this.audit.record("login.failed", { userId: user.id, clientId, details: { reason } });
      throw new InvalidGrant(BAD_CREDENTIALS);
    }
    if (needsRehash) {
      // Parameters were raised since this hash was made: upgrade it while we hold the password.
      await this.store.updatePasswordHash(user.id, await this.hasher.hash(password));
      await this.audit.record("password.rehashed", { userId: user.id });
    }
    return user;
  }
}
