// User administration for `npm run cli -- users ...`.
import { listArg, plural, UsageError, type CommandResult } from "./command.ts";
import type { AdminContext } from "./context.ts";

export async function createUser(ctx: AdminContext, a: { email?: string; password?: string; roles?: string }): Promise<CommandResult> {
  if (!a.email || !a.password) throw new UsageError("--email and --password are required");
  const user = await ctx.users.register(a.email, a.password, listArg(a.roles));
  return { text: `user ${user.email} created (id ${user.id}${user.roles.length ? `, roles ${user.roles.join(" ")}` : ""})`, json: { id: user.id, email: user.email, roles: user.roles } };
}

export async function disableUser(ctx: AdminContext, email: string): Promise<CommandResult & { found: boolean }> {
  const user = await ctx.storage.users.disable(email.normalize("NFKC").trim().toLowerCase(), ctx.clock.now());
  if (!user) return { found: false, text: `no user with email ${email}`, json: { disabled: null } };
  // A disabled user's sessions end now: every refresh token of theirs stops working.
  const revoked = await ctx.storage.sessions.revokeAllForUser(user.id, "user_disabled", ctx.clock.now());
  await ctx.audit.record("user.disabled", { userId: user.id, details: { sessionsRevoked: revoked } });
  return {
    found: true,
    text:
      `user ${user.email} disabled; ${plural(revoked, "session")} revoked. Services that check the token status list refuse its access tokens ` +
      `within ${1.5 * ctx.config.statusListTtl}s (the servers' next list rebuild, STATUS_LIST_TTL/2, plus STATUS_LIST_TTL); ` +
      `services that do not accept them until they expire (at most ${ctx.config.accessTokenTtl}s).`,
    json: { disabled: user.email, sessionsRevoked: revoked },
  };
}
