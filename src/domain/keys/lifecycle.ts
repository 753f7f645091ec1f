// Key lifecycle rules: when a key may start signing and when it may leave the JWKS.
//
//   next ──(published long enough for every cache)──> active ──(rotation due)──> retired ──(every
//   token it signed has expired)──> removed
//
// Every wait counts the instances' reload interval: a key is "published" only once every
// instance serves it, and "no longer signing" only once every instance has reloaded.
import { addSeconds } from "../clock.ts";
import type { KeyMeta, KeyState, SigningAlg } from "./signing-key.ts";

export interface KeyPolicy {
  /** Cache-Control max-age of the JWKS */
  jwksMaxAge: number;
  /** extra wait after a cache lifetime before a published key may sign */
  keyPublishMargin: number;
  /** tolerated clock difference between issuer and verifiers */
  clockSkew: number;
  /** how often instances reload keys */
  reloadInterval: number;
  accessTokenTtl: number;
  /** how long a key stays active */
  rotationInterval: number;
}

export type { KeyMeta };

/** Earliest moment a `next` key may become `active`: every verifier cache already holds it. */
export function activatableAt(key: KeyMeta, p: KeyPolicy): Date {
  return addSeconds(key.createdAt, p.reloadInterval + p.jwksMaxAge + p.keyPublishMargin);
}

/** Until when a `retired` key stays published: every token it signed has expired by then. */
export function publishedUntil(key: KeyMeta, p: KeyPolicy): Date | null {
  if (key.state !== "retired" || key.retiredAt === null) return null;
  return addSeconds(key.retiredAt, p.reloadInterval + p.accessTokenTtl + p.jwksMaxAge + p.clockSkew);
}

/** When the active key is due to hand over to the next one. */
export function rotationDueAt(key: KeyMeta, p: KeyPolicy): Date | null {
  if (key.state !== "active") return null;
  return addSeconds(key.activatedAt ?? key.createdAt, p.rotationInterval);
}

export type KeyAction =
  | { type: "create_next"; alg: SigningAlg }
  | { type: "create_active"; alg: SigningAlg; reason: string }
  | { type: "promote"; kid: string; alg: SigningAlg; retire: string[] }
  | { type: "retire"; kid: string; reason: string }
  | { type: "remove"; kid: string };

const newestFirst = (a: KeyMeta, b: KeyMeta) => b.createdAt.getTime() - a.createdAt.getTime() || a.kid.localeCompare(b.kid);
/** The order KeyRing picks its signer in: the most recently activated first. */
const newestActiveFirst = (a: KeyMeta, b: KeyMeta) =>
  (b.activatedAt ?? b.createdAt).getTime() - (a.activatedAt ?? a.createdAt).getTime() || a.kid.localeCompare(b.kid);

/**
 * What a rotation run should do now, and nothing else. Pure: the same keys, algorithm and time
 * always give the same plan, which is what makes concurrent and repeated runs converge.
 */
export function planRotation(keys: readonly KeyMeta[], signingAlg: SigningAlg, now: Date, p: KeyPolicy): KeyAction[] {
  const actions: KeyAction[] = [];
  const of = (alg: SigningAlg, state: KeyState) => keys.filter((k) => k.alg === alg && k.state === state).sort(newestFirst);
  // Same order as KeyRing.signer(): after a crash, the key instances sign with is the one kept.
  const actives = of(signingAlg, "active").sort(newestActiveFirst);
  const nexts = of(signingAlg, "next");
  const next = nexts[0];

  for (const k of keys) {
    const until = publishedUntil(k, p);
    if (until !== null && now >= until) actions.push({ type: "remove", kid: k.kid });
  }
  // Extra next keys (two racing runs of a store without a lock) are useless: drop them.
  for (const extra of nexts.slice(1)) actions.push({ type: "remove", kid: extra.kid });
  // A next key of an algorithm no longer configured will never sign: drop it.
  for (const k of keys) if (k.state === "next" && k.alg !== signingAlg) actions.push({ type: "remove", kid: k.kid });

  if (!keys.some((k) => k.state === "active")) {
    // Nothing signs at all (first start, or the active key was revoked): something must sign now.
    // A next key that every cache already holds is the better choice; otherwise a new key.
    if (next && now >= activatableAt(next, p)) actions.push({ type: "promote", kid: next.kid, alg: signingAlg, retire: [] });
    else actions.push({ type: "create_active", alg: signingAlg, reason: "no active key" });
    return actions;
  }

  // Repair a crash between "activate the new key" and "retire the old one": the newest active
  // signs (KeyRing picks it), so retiring the others changes nothing a verifier sees.
  for (const extra of actives.slice(1)) actions.push({ type: "retire", kid: extra.kid, reason: "superseded active key" });

  const current = actives[0];
  // Other algorithms still signing: a deployment moving from one algorithm to another.
  const otherActives = keys.filter((k) => k.state === "active" && k.alg !== signingAlg);
  const due = current === undefined || now >= (rotationDueAt(current, p) ?? now);

  if (next === undefined) {
    actions.push({ type: "create_next", alg: signingAlg });
  } else if (due && now >= activatableAt(next, p)) {
    const retire = [...(current ? [current.kid] : []), ...otherActives.map((k) => k.kid)];
    actions.push({ type: "promote", kid: next.kid, alg: signingAlg, retire });
  }
  return actions;
}
