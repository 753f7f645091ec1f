// Key commands shared by `npm run rotate-keys` and `npm run cli -- keys ...`. Each returns the
// text to print and a JSON value for --json.
import { pruneDeadSessions } from "../domain/sessions/refresh-families.ts";
import type { AppliedAction, KeyInfo } from "../domain/keys/key-manager.ts";
import { summarize, type AdminContext } from "./context.ts";

export interface CommandResult {
  text: string;
  json: unknown;
}

const iso = (d: Date | null) => (d ? d.toISOString().replace(/\.\d{3}Z$/, "Z") : "-");

function describeAction(a: AppliedAction): string {
  switch (a.action) {
    case "create_next":
      return `created next key ${a.kid} (${a.alg}): published now, signs after its publication window`;
    case "create_active":
      return `created active key ${a.kid} (${a.alg})${a.detail ? `: ${a.detail}` : ""}`;
    case "promote":
      return `activated key ${a.kid} (${a.alg}): it signs new tokens from now on`;
    case "retire":
      return `retired key ${a.kid} (${a.alg}): stays published until every token it signed has expired${a.detail ? ` (${a.detail})` : ""}`;
    case "remove":
      return `removed key ${a.kid} (${a.alg}) from the JWKS${a.detail ? ` (${a.detail})` : ""}`;
    case "revoke":
      return `revoked key ${a.kid} (${a.alg}, ${a.detail ?? ""}): removed from the JWKS`;
  }
}

const actionJson = (a: AppliedAction) => ({ action: a.action, kid: a.kid, alg: a.alg, ...(a.detail ? { detail: a.detail } : {}) });

const keyJson = (k: KeyInfo) => ({
  kid: k.kid,
  alg: k.alg,
  state: k.state,
  createdAt: k.createdAt.toISOString(),
  activatedAt: k.activatedAt?.toISOString() ?? null,
  retiredAt: k.retiredAt?.toISOString() ?? null,
  activatableAt: k.activatableAt?.toISOString() ?? null,
  rotationDueAt: k.rotationDueAt?.toISOString() ?? null,
  publishesUntil: k.publishedUntil?.toISOString() ?? null,
});

export async function listKeys(ctx: AdminContext): Promise<CommandResult> {
  const keys = await ctx.keyManager.list();
  const header = ["KID", "ALG", "STATE", "CREATED", "ACTIVATED", "RETIRED", "PUBLISHES-UNTIL", "NEXT STEP"];
  const rows = keys.map((k) => [
    k.kid,
    k.alg,
    k.state,
    iso(k.createdAt),
    iso(k.activatedAt),
    iso(k.retiredAt),
    k.state === "retired" ? iso(k.publishedUntil) : "-",
    k.state === "next" ? `may sign from ${iso(k.activatableAt)}` : k.state === "active" ? `rotation due ${iso(k.rotationDueAt)}` : `removed after ${iso(k.publishedUntil)}`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();
  const text = keys.length === 0 ? "no keys" : [line(header), ...rows.map(line)].join("\n");
  return { text, json: { store: ctx.keyStore.kind, keys: keys.map(keyJson) } };
}

/** The scheduled run: whatever key step is due, then prune dead sessions. */
export async function rotateKeys(ctx: AdminContext): Promise<CommandResult & { ok: boolean }> {
  const actions = await ctx.keyManager.rotate();
  const lines = actions.length === 0 ? ["keys: nothing due"] : actions.map((a) => `keys: ${describeAction(a)}`);
  // The key steps are committed; a failed prune is reported without hiding them.
  let pruned: number | null = null;
  let pruneError: string | null = null;
  try {
    pruned = await pruneDeadSessions(ctx.storage.sessions, ctx.clock, ctx.audit);
    lines.push(pruned === 0 ? "sessions: nothing to prune" : `sessions: pruned ${pruned} dead session${pruned === 1 ? "" : "s"}`);
    const denied = await ctx.storage.deniedAccessTokens.prune(ctx.clock.now());
    if (denied > 0) lines.push(`access tokens: dropped ${denied} expired deny-list entr${denied === 1 ? "y" : "ies"}`);
  } catch (err) {
    pruneError = summarize(err);
    lines.push(`sessions: prune failed: ${pruneError}`);
  }
  return {
    ok: pruneError === null,
    text: lines.join("\n"),
    json: { actions: actions.map(actionJson), prunedSessions: pruned, ...(pruneError ? { pruneError } : {}) },
  };
}

export async function rotateKeysNow(ctx: AdminContext): Promise<CommandResult> {
  const actions = await ctx.keyManager.rotateNow();
  const { jwksMaxAge, keysReloadInterval } = ctx.config;
  const lines = actions.map((a) => `keys: ${describeAction(a)}`);
  lines.push(
    `Emergency rotation: the new key signs as soon as each instance reloads (within ${keysReloadInterval}s).`,
    `Verifiers that cached the JWKS will meet an unknown kid and refetch it (jose's createRemoteJWKSet does); the old key stays published, so tokens it signed keep verifying until they expire.`,
    `A scheduled rotation avoids the refetch: the next key is published ${jwksMaxAge}s+ before it signs.`,
  );
  return { text: lines.join("\n"), json: { actions: actions.map(actionJson) } };
}

export async function revokeKey(ctx: AdminContext, kid: string): Promise<CommandResult & { found: boolean }> {
  const { revoked, applied } = await ctx.keyManager.revoke(kid);
  if (!revoked) return { found: false, text: `no key with kid ${kid}`, json: { revoked: null, actions: [] } };
  const { jwksMaxAge, keysReloadInterval, accessTokenTtl } = ctx.config;
  const lines = applied.map((a) => `keys: ${describeAction(a)}`);
  lines.push(
    `What this does to live tokens: access tokens signed by ${kid} stop verifying as soon as a verifier refreshes the JWKS`,
    `  (instances serve the new JWKS within ${keysReloadInterval}s; verifier caches expire within ${jwksMaxAge}s).`,
    `  Until then a verifier with a cached JWKS still accepts them; they expire on their own within ${accessTokenTtl}s.`,
    `  Clients whose access token is rejected get a new one with their refresh token (refresh tokens are not signed and stay valid).`,
  );
  if (revoked.state === "active") lines.push(`  ${kid} was the signing key; the replacement above signs from the next reload on.`);
  return { found: true, text: lines.join("\n"), json: { revoked: { kid: revoked.kid, alg: revoked.alg, state: revoked.state }, actions: applied.map(actionJson) } };
}
