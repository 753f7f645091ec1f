// What the credential rules need from storage, in their own words (implemented in storage/prisma).

export interface UserRecord {
  id: string;
  email: string;
  passwordHash: string;
  roles: string[];
  createdAt: Date;
  disabledAt: Date | null;
}

export class EmailTakenError extends Error {
  constructor() {
    super("email already registered");
    this.name = "EmailTakenError";
  }
}

export interface UserStore {
  findByEmail(email: string): Promise<UserRecord | null>;
  findById(id: string): Promise<UserRecord | null>;
  /** throws EmailTakenError when the email exists */
  create(user: UserRecord): Promise<void>;
  updatePasswordHash(id: string, passwordHash: string): Promise<void>;
  /** Sets the hash only if it is still `expected` (a compare-and-set); whether it did. */
  replacePasswordHash(id: string, expected: string, passwordHash: string): Promise<boolean>;
  /**
   * Disables the user at `at` (a disabled user keeps the first time), or enables them (`null`):
   * the user as it is now and whether this call changed it (of concurrent calls, one does), or
   * null when there is no such user.
   */
  setDisabled(id: string, at: Date | null): Promise<{ user: UserRecord; changed: boolean } | null>;
  /** replaces the user's roles; the user as it is now, or null when there is no such user */
  setRoles(id: string, roles: string[]): Promise<UserRecord | null>;
  /**
   * Users in email order after `after` (exclusive; null: from the start), at most `limit`;
   * with `emailContains`, only those whose email contains it (a literal substring).
   */
  page(filter: { emailContains?: string; after: string | null; limit: number }): Promise<UserRecord[]>;
}
