// User administration: the rules behind `npm run cli -- users ...` and /admin/v1/users.
import type { UserRecord } from "../domain/credentials/user-store.ts";
import { normalizeEmail } from "../domain/credentials/users.ts";
import { InvalidField, InvalidRequest, NotFound } from "../domain/errors.ts";
import type { LiveSession } from "../domain/sessions/session-store.ts";
import { plural, type CommandResult } from "./command.ts";
import type { AdminContext } from "./context.ts";
import { decodeCursor, encodeCursor, pageLimit, paged, type PageRequest } from "./paging.ts";
import * as valid from "./validate.ts";

/** A user by id (the API's path), or by email (the CLI's usual handle). */
export type UserRef = { id: string } | { email: string };

/** The CLI's argument: an email when it has an @, otherwise an id. */
export const userRefOf = (arg: string): UserRef => (arg.includes("@") ? { email: arg } : { id: arg });

/** Why the operator ended sessions, as stored on them. */
export const USER_DISABLED = "user_disabled";
export const PASSWORD_RESET = "password_reset";
export const REVOKED_BY_OPERATOR = "revoked_by_operator";

export const userJson = (u: UserRecord) => ({
  id: u.id,
  email: u.email,
  roles: u.roles,
  created_at: u.createdAt.toISOString(),
  disabled_at: u.disabledAt?.toISOString() ?? null,
});

export const sessionJson = ({ session, lastUsedAt, idleExpiresAt }: LiveSession) => ({
  id: session.id,
  user_id: session.userId,
  client_id: session.clientId,
  scope: session.scope,
  created_at: session.createdAt.toISOString(),
  last_used_at: lastUsedAt.toISOString(),
  expires_at: { idle: idleExpiresAt.toISOString(), absolute: session.expiresAt.toISOString() },
  ...(session.userAgent ? { user_agent: session.userAgent } : {}),
  ...(session.address ? { address: session.address } : {}),
});

const describe = (ref: UserRef) => ("email" in ref ? `email ${ref.email}` : `id ${ref.id}`).slice(0, 300);

/** The user, or NotFound (404). */
export async function findUser(ctx: AdminContext, ref: UserRef): Promise<UserRecord> {
  let user: UserRecord | null = null;
  if ("email" in ref) {
    let email: string | null = null;
    try {
      email = normalizeEmail(ref.email);
    } catch {
      // not an address: no such user
    }
    user = email ? await ctx.storage.users.findByEmail(email) : null;
  } else {
    user = await ctx.storage.users.findById(ref.id);
  }
  if (!user) throw new NotFound(`No user with ${describe(ref)}.`);
  return user;
}

/** The domain's own policy errors (email, password) name their field here. */
async function asField<T>(field: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof InvalidRequest && !(err instanceof InvalidField)) throw new InvalidField(field, err.description);
    throw err;
  }
}

function roles(values: readonly string[]): string[] {
  return valid.words("roles", values);
}

export async function createUser(ctx: AdminContext, a: { email: string; password: string; roles?: string[] }): Promise<CommandResult> {
  const userRoles = roles(a.roles ?? []);
  await asField("email", async () => normalizeEmail(a.email));
  const user = await asField("password", () => ctx.users.register(a.email, a.password, userRoles));
  return { text: `user ${user.email} created (id ${user.id}${user.roles.length ? `, roles ${user.roles.join(" ")}` : ""})`, json: userJson(user) };
}

export async function listUsers(ctx: AdminContext, request: PageRequest & { email?: string } = {}): Promise<CommandResult> {
  const limit = pageLimit(request.limit);
  const after = decodeCursor("users", request.cursor, ["email"]);
  // Stored emails are NFKC lower-case (normalizeEmail): search the same way.
  const search = request.email?.normalize("NFKC").trim().toLowerCase();
  const emailContains = valid.filterText("email", search === "" ? undefined : search, 254);
  const page = await paged(
    limit,
    (take) => ctx.storage.users.page({ emailContains, after: after?.email ?? null, limit: take }),
    (u) => encodeCursor("users", { email: u.email }),
  );
  const rows = page.items.map((u) => [u.id, u.disabledAt ? "disabled" : "enabled", u.roles.join(",") || "-", u.email].join("  "));
  const text = rows.length ? ["ID  STATUS  ROLES  EMAIL", ...rows, ...(page.nextCursor ? [`more: --cursor ${page.nextCursor}`] : [])].join("\n") : "no users";
  return { text, json: { users: page.items.map(userJson), next_cursor: page.nextCursor } };
}

export async function getUser(ctx: AdminContext, ref: UserRef): Promise<CommandResult> {
  const user = await findUser(ctx, ref);
  return { text: `${user.email} (id ${user.id}); roles: ${user.roles.join(" ") || "(none)"}${user.disabledAt ? "; disabled" : ""}`, json: userJson(user) };
}

/** Roles go into access tokens from the user's next login or refresh on. */
export async function setUserRoles(ctx: AdminContext, ref: UserRef, newRoles: string[]): Promise<CommandResult> {
  const wanted = roles(newRoles);
  const user = await findUser(ctx, ref);
  const after = await ctx.storage.users.setRoles(user.id, wanted);
  if (!after) throw new NotFound(`No user with ${describe(ref)}.`);
  await ctx.audit.record("user.roles_changed", { userId: user.id, details: { from: user.roles, to: after.roles } });
  return {
    text: `user ${after.email}: roles ${after.roles.join(" ") || "(none)"}; access tokens carry them from the next login or refresh (tokens already issued keep the old ones until they expire, at most ${ctx.config.accessTokenTtl}s).`,
    json: userJson(after),
  };
}

const revocationLatency = (ctx: AdminContext) =>
  `Services that check the token status list refuse its access tokens within ${1.5 * ctx.config.statusListTtl}s (the servers' next list rebuild, STATUS_LIST_TTL/2, plus STATUS_LIST_TTL); ` +
  `services that do not accept them until they expire (at most ${ctx.config.accessTokenTtl}s).`;

/** Disabling ends every session of the user: refresh tokens stop, access tokens are flipped in the status list. */
export async function disableUser(ctx: AdminContext, ref: UserRef): Promise<CommandResult> {
  const user = await findUser(ctx, ref);
  const set = await ctx.storage.users.setDisabled(user.id, ctx.clock.now());
  if (!set) throw new NotFound(`No user with ${describe(ref)}.`);
  const after = set.user;
  // Recorded by the call that disabled, before the sessions end: a revocation that fails (the
  // operator retries; the retry revokes) leaves the disable on record all the same. Sessions
  // end after the flag, so one started in between is refused at its next refresh anyway.
  if (set.changed) await ctx.audit.record("user.disabled", { userId: user.id });
  const revoked = await ctx.sessions.revokeAllOfUser(user.id, USER_DISABLED);
  return {
    text: `user ${after.email} disabled; ${plural(revoked, "session")} revoked. ${revocationLatency(ctx)}`,
    json: { user: userJson(after), sessions_revoked: revoked },
  };
}

export async function enableUser(ctx: AdminContext, ref: UserRef): Promise<CommandResult> {
  const user = await findUser(ctx, ref);
  const set = await ctx.storage.users.setDisabled(user.id, null);
  if (!set) throw new NotFound(`No user with ${describe(ref)}.`);
  const after = set.user;
  if (set.changed) await ctx.audit.record("user.enabled", { userId: user.id });
  return { text: `user ${after.email} enabled: they can log in again (their old sessions stay ended).`, json: userJson(after) };
}

/** An operator sets the password: the registration policy, then every session of the user ends. */
export async function setUserPassword(ctx: AdminContext, ref: UserRef, password: string): Promise<CommandResult> {
  const user = await findUser(ctx, ref);
  const updated = await asField("password", () => ctx.users.setPassword(user.id, password));
  if (!updated) throw new NotFound(`No user with ${describe(ref)}.`);
  // On record before the sessions end: if ending them fails, the request fails (500) and the
  // trail shows a reset without its sessions.revoked; the operator's retry sets it again and ends them.
  await ctx.audit.record("password.reset", { userId: user.id });
  const revoked = await ctx.sessions.revokeAllOfUser(user.id, PASSWORD_RESET);
  return { text: `password of ${user.email} set; ${plural(revoked, "session")} revoked. ${revocationLatency(ctx)}`, json: { user: userJson(user), sessions_revoked: revoked } };
}

export async function listUserSessions(ctx: AdminContext, ref: UserRef): Promise<CommandResult> {
  const user = await findUser(ctx, ref);
  const live = await ctx.sessions.listLive(user.id);
  const rows = live.map((s) => [s.session.id, s.session.clientId, s.session.createdAt.toISOString(), s.lastUsedAt.toISOString(), s.session.address ?? "-"].join("  "));
  return {
    text: rows.length ? ["SESSION  CLIENT  CREATED  LAST-USED  ADDRESS", ...rows].join("\n") : `no live sessions for ${user.email}`,
    json: { sessions: live.map(sessionJson) },
  };
}

export async function revokeUserSessions(ctx: AdminContext, ref: UserRef): Promise<CommandResult> {
  const user = await findUser(ctx, ref);
  const revoked = await ctx.sessions.revokeAllOfUser(user.id, REVOKED_BY_OPERATOR);
  return { text: `${plural(revoked, "session")} of ${user.email} revoked. ${revocationLatency(ctx)}`, json: { sessions_revoked: revoked } };
}

/** Ends one session; revoking one already revoked changes nothing and is no error. */
export async function revokeSession(ctx: AdminContext, sessionId: string): Promise<CommandResult> {
  const session = await ctx.sessions.findById(sessionId);
  if (!session) throw new NotFound(`No session with id ${sessionId.slice(0, 100)}.`);
  const revokedNow = await ctx.sessions.revokeSession(session, REVOKED_BY_OPERATOR);
  return {
    text: revokedNow ? `session ${session.id} revoked. ${revocationLatency(ctx)}` : `session ${session.id} was already revoked`,
    json: { session_id: session.id, revoked: revokedNow },
  };
}
