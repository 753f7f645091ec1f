// Key commands shared by `npm run rotate-keys` and `npm run cli -- keys ...`. Each returns the
// text to print and a JSON value for --json.
import { maxAccessTokenTtl } from "../domain/clients/clients.ts";
import { pruneExpired, type PruneCounts } from "../domain/retention.ts";
import type { AppliedAction, KeyInfo } from "../domain/keys/key-manager.ts";
import { keyMetaJson } from "../domain/keys/signing-key.ts";
import { NotFound } from "../domain/errors.ts";
import { plural, type CommandResult } from "./command.ts";
import { summarize, type AdminContext } from "./context.ts";
import { FileKeyStore } from "../storage/file-key-store.ts";


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
  ...keyMetaJson(k),
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

/** The scheduled run: whatever key step is due, then prune what has outlived its retention (retention.ts). */
export async function rotateKeys(ctx: AdminContext): Promise<CommandResult & { ok: boolean }> {
  const actions = await ctx.keyManager.rotate();
  if (actions.length > 0) await ctx.keysChanged();
  const lines = actions.length === 0 ? ["keys: nothing due"] : actions.map((a) => `keys: ${describeAction(a)}`);
  // The key steps are committed; a failed prune is reported without hiding them.
  let pruned: PruneCounts | null = null;
  let pruneError: string | null = null;
  try {
    pruned = await pruneExpired(ctx.storage, ctx.clock, ctx.audit, ctx.config);
    const { sessions, deniedAccessTokens: denied, auditEvents, loginFailures } = pruned;
    lines.push(sessions === 0 ? "sessions: nothing to prune" : `sessions: pruned ${plural(sessions, "dead session")}`);
    if (denied > 0) lines.push(`access tokens: dropped ${plural(denied, "expired deny-list entry", "expired deny-list entries")}`);
    if (auditEvents > 0) lines.push(`audit: deleted ${plural(auditEvents, "event")} older than AUDIT_RETENTION (${ctx.config.auditRetention}s)`);
    if (loginFailures > 0) lines.push(`logins: forgot ${plural(loginFailures, "throttle record")} older than a day`);
  } catch (err) {
    pruneError = summarize(err);
    lines.push(`sessions: prune failed: ${pruneError}`);
  }
  return {
    ok: pruneError === null,
    text: lines.join("\n"),
    json: {
      actions: actions.map(actionJson),
      prunedSessions: pruned?.sessions ?? null,
      pruned,
      ...(pruneError ? { pruneError } : {}),
    },
  };
}

export async function rotateKeysNow(ctx: AdminContext): Promise<CommandResult> {
  const actions = await ctx.keyManager.rotateNow();
  await ctx.keysChanged();
  const { jwksMaxAge, keysReloadInterval } = ctx.config;
  const lines = actions.map((a) => `keys: ${describeAction(a)}`);
  lines.push(
    `Emergency rotation: the new key signs as soon as each instance reloads (within ${keysReloadInterval}s).`,
    `Verifiers that cached the JWKS will meet an unknown kid and refetch it (jose's createRemoteJWKSet does); the old key stays published, so tokens it signed keep verifying until they expire.`,
    `A scheduled rotation avoids the refetch: the next key is published ${jwksMaxAge}s+ before it signs.`,
  );
  return { text: lines.join("\n"), json: { actions: actions.map(actionJson) } };
}

/**
 * How long a verifier keeps a JWKS when it ignores the issuer's Cache-Control: jose's
 * createRemoteJWKSet default cacheMaxAge (600000 ms), the most common such cache in Node. Only
 * an example in the revoke output; Tessera's own verifier kit honours max-age.
 */
const JOSE_DEFAULT_CACHE_SECONDS = 600;

/**
 * The longest access-token lifetime any client can have been given (clients may override
 * ACCESS_TOKEN_TTL); null if the clients cannot be read. The revocation is already committed by
 * then, so a failed read must not turn its report into an error.
 */
async function longestAccessTokenTtl(ctx: AdminContext): Promise<number | null> {
  try {
    return maxAccessTokenTtl(ctx.config.accessTokenTtl, await ctx.storage.clients.list());
  } catch {
    return null;
  }
}

export async function revokeKey(ctx: AdminContext, kid: string): Promise<CommandResult> {
  const { revoked, applied } = await ctx.keyManager.revoke(kid);
  if (!revoked) throw new NotFound(`No key with kid ${kid.slice(0, 100)}.`);
  await ctx.keysChanged();
  const { jwksMaxAge, keysReloadInterval } = ctx.config;
  // Rounded up to the second: the output prints whole seconds and must not state a bound early.
  const at = (base: Date, seconds: number) => new Date(Math.ceil((base.getTime() + seconds * 1000) / 1000) * 1000);
  const now = ctx.clock.now();
  // Other instances keep serving (and, for an active key, signing with) the old key set until
  // their next reload; a verifier that fetched it just then keeps it for the served max-age
  // (RFC 9111 §5.2.2.1), counted on its own clock, so no clock skew enters this bound.
  const oldJwksServedUntil = at(now, keysReloadInterval);
  const acceptedUntil = at(oldJwksServedUntil, jwksMaxAge);
  const longerCacheUntil = at(oldJwksServedUntil, JOSE_DEFAULT_CACHE_SECONDS);
  // Tokens the issuer itself signed with the key; a next key never signed anything.
  const clientTtl = await longestAccessTokenTtl(ctx);
  const ttl = clientTtl ?? ctx.config.accessTokenTtl;
  const stoppedSigning = revoked.state === "active" ? oldJwksServedUntil : revoked.state === "retired" && revoked.retiredAt ? at(revoked.retiredAt, keysReloadInterval) : null;
  const latestTokenExp = stoppedSigning ? at(stoppedSigning, ttl) : null;

  const lines = applied.map((a) => `keys: ${describeAction(a)}`);
  lines.push(
    `What this does to live tokens: access tokens signed by ${kid} stop verifying as each verifier refreshes the JWKS.`,
    `  Bound: from ${iso(acceptedUntil)} no verifier that honours the JWKS Cache-Control accepts a token signed by ${kid}`,
    `    = now + KEYS_RELOAD_INTERVAL ${keysReloadInterval}s (other instances serve the old JWKS until they reload, by ${iso(oldJwksServedUntil)})`,
    `      + JWKS_MAX_AGE ${jwksMaxAge}s (the Cache-Control max-age the JWKS is served with; Tessera's verifier kit honours it).`,
    `  Verifiers with their own, longer JWKS cache may accept them for that cache's lifetime after ${iso(oldJwksServedUntil)}:`,
    `    e.g. jose's createRemoteJWKSet with its default cacheMaxAge (${JOSE_DEFAULT_CACHE_SECONDS}s) until ${iso(longerCacheUntil)}.`,
    `  Introspection (the kit's requireActive()) refuses them from ${iso(oldJwksServedUntil)}, once every instance has reloaded.`,
    latestTokenExp === null
      ? `  The issuer never signed with ${kid} (it was a ${revoked.state} key); only tokens forged with a stolen copy of it can exist, and the bound above ends them.`
      : `  Tokens the issuer signed with ${kid} expire by ${iso(latestTokenExp)} at the latest (longest access-token TTL ${ttl}s${clientTtl === null ? " = ACCESS_TOKEN_TTL: the clients' own TTLs could not be read" : ""}${revoked.state === "active" ? ", counting instances that sign with it until they reload" : ""});` +
        ` a token forged with a stolen copy of ${kid} may carry any exp, so only the bound above ends it.`,
    `  Clients whose access token is rejected get a new one with their refresh token (refresh tokens are not signed and stay valid).`,
  );
  if (revoked.state === "active") lines.push(`  ${kid} was the signing key; the replacement above signs from the next reload on.`);
  return {
    text: lines.join("\n"),
    json: {
      revoked: { kid: revoked.kid, alg: revoked.alg, state: revoked.state },
      actions: applied.map(actionJson),
      bound: {
        // no verifier that honours the JWKS Cache-Control accepts tokens signed by the key after this
        acceptedUntil: acceptedUntil.toISOString(),
        oldJwksServedUntil: oldJwksServedUntil.toISOString(),
        keysReloadInterval,
        jwksMaxAge,
        // verifiers with their own longer cache: oldJwksServedUntil + their cache lifetime
        longerCacheExample: { cache: "jose createRemoteJWKSet default cacheMaxAge", seconds: JOSE_DEFAULT_CACHE_SECONDS, acceptedUntil: longerCacheUntil.toISOString() },
        // tokens the issuer signed with the key (null: it never signed); forged tokens may carry any exp
        latestTokenExp: latestTokenExp?.toISOString() ?? null,
        longestAccessTokenTtl: ttl,
        ...(clientTtl === null && { clientTtlsUnread: true }),
      },
    },
  };
}


/**
 * `keys seal`: the migration after turning KEYS_ENCRYPTION_KEY on for the file store. Rewrites
 * every plaintext key file and secret in KEYS_DIR sealed, under the store's lock; idempotent.
 * Prints file names and kids (public), never anything of a key.
 */
export async function sealKeys(ctx: AdminContext): Promise<CommandResult> {
  if (!(ctx.keyStore instanceof FileKeyStore)) {
    return {
      text: "KEY_STORE=database keeps every private key and secret sealed already: nothing to seal",
      json: { store: ctx.keyStore.kind, sealed: { keys: [], secrets: [] }, alreadySealed: null },
    };
  }
  const r = await ctx.keyStore.sealAll();
  if (r.sealedKeys.length + r.sealedSecrets.length > 0) {
    await ctx.audit.record("keys.sealed", { details: { kids: r.sealedKeys, secrets: r.sealedSecrets } });
  }
  const lines = [...r.sealedKeys.map((kid) => `keys: sealed key ${kid} (${kid}.json)`), ...r.sealedSecrets.map((name) => `secrets: sealed ${name}.secret`)];
  const already = `${plural(r.alreadySealedKeys.length, "key file")} and ${plural(r.alreadySealedSecrets.length, "secret")}`;
  if (lines.length === 0) {
    lines.push(`nothing to seal: ${already} in ${ctx.keyStore.dir}, all sealed already`);
  } else {
    if (r.alreadySealedKeys.length + r.alreadySealedSecrets.length > 0) lines.push(`left as they were (sealed already): ${already}`);
    lines.push(
      `Sealed with KEYS_ENCRYPTION_KEY; start Tessera with the same key. The plaintext is gone from KEYS_DIR but may remain in`,
      `  backups, snapshots or unused disk blocks: if that matters, replace the keys (npm run cli -- keys rotate --now).`,
    );
  }
  return {
    text: lines.join("\n"),
    json: {
      store: "file",
      sealed: { keys: r.sealedKeys, secrets: r.sealedSecrets },
      alreadySealed: { keys: r.alreadySealedKeys, secrets: r.alreadySealedSecrets },
    },
  };
}
