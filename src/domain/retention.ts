// What the issuer keeps, and for how long: one pruning pass shared by the server's schedule
// (PRUNE_INTERVAL) and the rotate-keys script, so neither forgets a table.
// - sessions that can never be used again (sessions.ts), only once every access token of theirs
//   has expired (their end or revocation + the longest access-token lifetime + the clock skew):
//   their row sets the token status list bit, or lets a later revocation set it,
// - deny-listed access tokens past their own expiry and the clock skew verifiers tolerate (a
//   revoked client_credentials token's row sets its status list bit),
// - login-throttle records older than the throttle remembers them (throttle.ts),
// - audit events older than AUDIT_RETENTION (ASVS 7.1: keep security logs for a stated time,
//   not for ever: every failed login writes one, so an attacker could otherwise grow the table
//   without bound).
import type { Audit } from "./audit.ts";
import type { AuditStore } from "./audit-store.ts";
import { maxAccessTokenTtl } from "./clients/clients.ts";
import type { ClientStore } from "./clients/client-store.ts";
import { addSeconds, type Clock } from "./clock.ts";
import { FAILURE_MEMORY_SECONDS, KNOWN_ADDRESS_SECONDS, type LoginThrottleStore } from "./credentials/throttle.ts";
import type { RevocationStore } from "./tokens/revocation-store.ts";
import { pruneDeadSessions, sessionRetention } from "./sessions/sessions.ts";

export interface PruneCounts {
  sessions: number;
  deniedAccessTokens: number;
  loginFailures: number;
  auditEvents: number;
}

const valueOf = (r: PromiseSettledResult<number>): number => (r.status === "fulfilled" ? r.value : 0);

/** The stores retention prunes, as far as it needs them. */
export interface RetentionStores {
  sessions: Parameters<typeof pruneDeadSessions>[0];
  revocations: Pick<RevocationStore, "prune">;
  loginThrottle: Pick<LoginThrottleStore, "prune">;
  audit: Pick<AuditStore, "prune">;
  /** the clients' access-token lifetimes bound how long dead sessions are kept */
  clients: Pick<ClientStore, "list">;
}

export async function pruneExpired(
  storage: RetentionStores,
  clock: Clock,
  audit: Audit,
  policy: { auditRetention: number; accessTokenTtl: number; clockSkew: number },
): Promise<PruneCounts> {
  const now = clock.now();
  // Each table on its own, one after the other (gentle on SQLite's single writer): one failing
  // prune must not leave the others to grow.
  const settle = async (run: () => Promise<number>): Promise<PromiseSettledResult<number>> => {
    try {
      return { status: "fulfilled", value: await run() };
    } catch (reason) {
      return { status: "rejected", reason };
    }
  };
  const sessions = await settle(async () => {
    const longest = maxAccessTokenTtl(policy.accessTokenTtl, await storage.clients.list());
    return pruneDeadSessions(storage.sessions, clock, audit, sessionRetention(longest, policy.clockSkew));
  });
  const deniedAccessTokens = await settle(() => storage.revocations.prune(addSeconds(now, -policy.clockSkew)));
  const loginFailures = await settle(() =>
    storage.loginThrottle.prune(addSeconds(now, -FAILURE_MEMORY_SECONDS), addSeconds(now, -KNOWN_ADDRESS_SECONDS)),
  );
  const auditEvents = await settle(() => storage.audit.prune(addSeconds(now, -policy.auditRetention)));
  const counts = {
    sessions: valueOf(sessions),
    deniedAccessTokens: valueOf(deniedAccessTokens),
    loginFailures: valueOf(loginFailures),
    auditEvents: valueOf(auditEvents),
  };
  if (counts.auditEvents > 0 || counts.loginFailures > 0) {
    await audit.record("records.pruned", { details: { ...counts } });
  }
  const failed = [sessions, deniedAccessTokens, loginFailures, auditEvents].find((r) => r.status === "rejected");
  if (failed) throw (failed as PromiseRejectedResult).reason;
  return counts;
}
