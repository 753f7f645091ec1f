// WORKERS > 1: what a worker process shares with the other workers of its host, through the
// cluster primary (cluster/primary.ts) over Node's IPC channel.
//
// - Siblings: what one worker changed (a revocation, a key rotation, a client update), the others
//   learn at once, instead of at their next status-list rebuild, key reload or client-cache expiry.
//   Other hosts still learn at those timers, as they always have.
// - Rate limits: without REDIS_URL, the per-address counters live in the primary, so a limit means
//   the same per host with one worker or eight (with REDIS_URL they live in Redis, as before).
// - Metrics: a scrape gets the sum over every listening worker (prom-client's aggregation).
//
// Every message carries a `tessera` field, so it never mixes with prom-client's own messages.
import cluster from "node:cluster";
import type { Registry } from "prom-client";

/** What one worker changed that its siblings should act on now. */
export type SiblingEvent = { type: "revoked" } | { type: "keys-changed" } | { type: "client-changed"; id: string };

export interface Siblings {
  /** Tells every other worker of this host (nothing to do without a cluster). */
  publish(event: SiblingEvent): void;
  /** Hears what the other workers publish. */
  subscribe(handler: (event: SiblingEvent) => void): void;
}

/** One process, no siblings. */
export const noSiblings: Siblings = { publish: () => undefined, subscribe: () => undefined };


/** worker -> primary */
export type ToPrimary =
  | { tessera: "sibling"; event: SiblingEvent }
  /** count one more for `key` (reads are answered in the worker: limitedRead) */
  | { tessera: "rate"; id: number; key: string; timeWindow: number; max: number; announce: boolean }
  | { tessera: "metrics"; id: number }
  | { tessera: "collected"; id: number; metrics: unknown[] }
  /** every key at its limit now: asked once, before the worker listens */
  | { tessera: "limited-list"; id: number };

/** primary -> worker */
export type ToWorker =
  | { tessera: "sibling"; event: SiblingEvent }
  | { tessera: "rate"; id: number; current: number; ttl: number }
  | { tessera: "metrics"; id: number; contentType: string; body: string }
  | { tessera: "failed"; id: number; message: string }
  | { tessera: "collect"; id: number }
  /**
   * keys at their limit, each until when (ms since the epoch: the same host's clock); with `id`,
   * the answer to a worker's limited-list
   */
  | { tessera: "limited"; id?: number; entries: Array<[key: string, until: number]> };

/** The environment variable the primary gives each worker: its index, 0..WORKERS-1, kept across restarts. */
export const WORKER_INDEX_ENV = "TESSERA_WORKER_INDEX";

/** This process's worker index, or null when it is not a cluster worker. */
export function workerIndex(): number | null {
  if (!cluster.isWorker) return null;
  const n = Number(process.env[WORKER_INDEX_ENV]);
  return Number.isInteger(n) && n >= 0 ? n : null;
}

/** A worker forked by Tessera's primary (not any cluster parent, such as a process manager's). */
export const isClusterWorker = (): boolean => cluster.isWorker && typeof process.send === "function" && process.env[WORKER_INDEX_ENV] !== undefined;

export function isSiblingEvent(e: unknown): e is SiblingEvent {
  if (!e || typeof e !== "object") return false;
  const { type, id } = e as { type?: unknown; id?: unknown };
  return type === "revoked" || type === "keys-changed" || (type === "client-changed" && typeof id === "string");
}

const pending = new Map<number, { resolve: (m: ToWorker) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
const siblingHandlers: Array<(event: SiblingEvent) => void> = [];
let ownMetrics: Registry | null = null;
/** Rate-limit keys at their limit on this host, and until when (ms since the epoch), as the primary announced them. */
const limitedUntil = new Map<string, number>();
const MAX_LIMITED = 100_000;
let nextId = 1;
let listening = false;

function listen(): void {
  if (listening) return;
  listening = true;
  process.on("message", (raw: unknown) => {
    if (!raw || typeof raw !== "object" || !("tessera" in raw)) return;
    const msg = raw as ToWorker;
    if (msg.tessera === "sibling") {
      if (isSiblingEvent(msg.event)) for (const h of siblingHandlers) h(msg.event);
      return;
    }
    if (msg.tessera === "limited") {
      if (!Array.isArray(msg.entries)) return;
      for (const [key, until] of msg.entries) {
        if (typeof key !== "string" || typeof until !== "number") continue;
        limitedUntil.delete(key); // re-inserted last: the oldest entries go first when full
        limitedUntil.set(key, until);
        if (limitedUntil.size > MAX_LIMITED) limitedUntil.delete(limitedUntil.keys().next().value!);
      }
      if (msg.id === undefined) return;
      // The answer to limitedList(): settled below.
    }
    if (msg.tessera === "collect") {
      const registry = ownMetrics;
      void (registry ? registry.getMetricsAsJSON() : Promise.resolve([])).then(
        (metrics) => send({ tessera: "collected", id: msg.id, metrics }),
        () => send({ tessera: "collected", id: msg.id, metrics: [] }),
      );
      return;
    }
    const waiting = msg.id === undefined ? undefined : pending.get(msg.id);
    if (!waiting) return; // answered after its timeout
    pending.delete(msg.id!);
    clearTimeout(waiting.timer);
    if (msg.tessera === "failed") waiting.reject(new Error(msg.message));
    else waiting.resolve(msg);
  });
}

function send(msg: ToPrimary): void {
  // A closed channel (the primary is gone) throws or reports an error; the worker is about to exit.
  process.send?.(msg, undefined, {}, () => undefined);
}

/** Asks the primary and waits at most `timeoutMs` for its answer. */
function ask(msg: ToPrimary & { id: number }, timeoutMs: number): Promise<ToWorker> {
  listen();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      pending.delete(msg.id);
      reject(new Error(`the cluster primary did not answer within ${timeoutMs} ms`));
    }, timeoutMs);
    pending.set(msg.id, { resolve, reject, timer });
    send(msg);
  });
}

/** The siblings of this cluster worker. */
export function workerSiblings(): Siblings {
  listen();
  return {
    publish: (event) => send({ tessera: "sibling", event }),
    subscribe: (handler) => void siblingHandlers.push(handler),
  };
}

/** One more count for `key`, kept by the primary (the store contract's incr, @fastify/rate-limit). */
export async function primaryIncr(key: string, timeWindow: number, max: number, announce: boolean): Promise<{ current: number; ttl: number }> {
  // Short: a request must not wait long on a busy primary; the caller falls back to local counters.
  const res = await ask({ tessera: "rate", id: nextId++, key, timeWindow, max, announce }, 300);
  if (res.tessera !== "rate") throw new Error("unexpected answer from the cluster primary");
  return { current: res.current, ttl: res.ttl };
}

/** This worker's registry, which the primary collects for a scrape. */
export function answerMetricsWith(registry: Registry): void {
  ownMetrics = registry;
  listen();
}

/**
 * Whether `key` is at its limit on this host, from what the primary announced (no round trip: the
 * check every token request makes stays local). `max` and its remaining window when it is, else
 * zero (the store contract's read: @fastify/rate-limit derives "remaining" from it).
 */
export function limitedRead(key: string, max: number): { current: number; ttl: number } {
  listen();
  const until = limitedUntil.get(key);
  const ttl = until === undefined ? 0 : until - Date.now();
  if (ttl > 0) return { current: max, ttl };
  if (until !== undefined) limitedUntil.delete(key);
  return { current: 0, ttl: 0 };
}

/**
 * Every key at its limit on this host, from the primary, before this worker listens: a worker
 * started while an address is over its limit refuses it from its first connection. Later keys
 * are announced to every worker, listening or not.
 */
export async function limitedList(timeoutMs = 2000): Promise<number> {
  const res = await ask({ tessera: "limited-list", id: nextId++ }, timeoutMs);
  if (res.tessera !== "limited") throw new Error("unexpected answer from the cluster primary");
  return res.entries.length;
}

/** The metrics of every worker of this host, summed by the primary. */
export async function clusterMetrics(): Promise<{ contentType: string; body: string }> {
  const res = await ask({ tessera: "metrics", id: nextId++ }, 6000);
  if (res.tessera !== "metrics") throw new Error("unexpected answer from the cluster primary");
  return { contentType: res.contentType, body: res.body };
}
