// What the issuer keeps, and for how long: one pruning pass shared by the server's schedule
// (PRUNE_INTERVAL) and the rotate-keys script, so neither forgets a table.
// - sessions that can never be used again (refresh-families.ts),
// - deny-listed access tokens past their own expiry,
// - login-throttle records older than the throttle remembers them (throttle.ts),
// - audit events older than AUDIT_RETENTION (ASVS 7.1: keep security logs for a stated time,
//   not for ever: every failed login writes one, so an attacker could otherwise grow the table
//   without bound).
import type { Storage } from "../storage/ports.ts";
import type { Audit } from "./audit.ts";
import { addSeconds, type Clock } from "./clock.ts";
import { FAILURE_MEMORY_SECONDS } from "./credentials/throttle.ts";
import { pruneDeadSessions } from "./sessions/refresh-families.ts";

export interface PruneCounts {
  sessions: number;
  deniedAccessTokens: number;
  loginFailures: number;
  auditEvents: number;
}

export async function pruneExpired(
  storage: Pick<Storage, "sessions" | "deniedAccessTokens" | "loginThrottle" | "audit">,
  clock: Clock,
  audit: Audit,
  policy: { auditRetention: number },
): Promise<PruneCounts> {
  const now = clock.now();
  const sessions = await pruneDeadSessions(storage.sessions, clock, audit);
  const deniedAccessTokens = await storage.deniedAccessTokens.prune(now);
  const loginFailures = await storage.loginThrottle.prune(addSeconds(now, -FAILURE_MEMORY_SECONDS));
  const auditEvents = await storage.audit.prune(addSeconds(now, -policy.auditRetention));
  if (auditEvents > 0 || loginFailures > 0) {
    await audit.record("records.pruned", { details: { auditEvents, loginFailures, deniedAccessTokens } });
  }
  return { sessions, deniedAccessTokens, loginFailures, auditEvents };
}
