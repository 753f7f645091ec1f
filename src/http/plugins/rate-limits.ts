// Per-address request limits (@fastify/rate-limit), on top of the per-account login throttle:
// they stop one address from trying more than a few dozen passwords a minute (or registering,
// refreshing, or failing client authentication in bulk), without touching other addresses.
//
// Counters live in memory per instance (with WORKERS > 1, in the cluster primary, shared by the
// host's workers), or in Redis (REDIS_URL) so that every instance shares them. When Redis cannot be reached the limits fall back to per-instance counters: the issuer
// keeps serving and keeps limiting (each instance counts on its own) until Redis returns. It does
// not fail closed: refusing every login because a cache is down would turn a Redis outage into
// an authentication outage, and the database-backed account throttle still caps password
// guesses per account whatever happens to Redis.
import { createRequire } from "node:module";
import rateLimit from "@fastify/rate-limit";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { Redis } from "ioredis";
import type { Config, RateLimit } from "../../config.ts";
import { TooManyRequests } from "../../domain/errors.ts";
import { addressKey } from "../client-address.ts";
import { isClusterWorker, limitedRead, primaryIncr } from "../../cluster/ipc.ts";

/** The store contract of @fastify/rate-limit (store/LocalStore.js, store/RedisStore.js). */
type Counted = { current: number; ttl: number };
type Callback = (err: Error | null, result?: Counted) => void;
interface Store {
  incr(key: string, cb: Callback, timeWindow: number, max: number): void;
  read(key: string, cb: Callback, timeWindow: number, max: number): void;
  child(routeOptions: Record<string, unknown>): Store;
}
type LocalStoreCtor = new (continueExceeding: boolean, exponentialBackoff: boolean, cache?: number) => Store;
type RedisStoreCtor = new (continueExceeding: boolean, exponentialBackoff: boolean, redis: Redis, key?: string) => Store;

// The plugin's own stores, reused: the Redis one is an atomic Lua INCR + PEXPIRE.
const require = createRequire(import.meta.url);
const LocalStore = require("@fastify/rate-limit/store/LocalStore.js") as LocalStoreCtor;
const RedisStore = require("@fastify/rate-limit/store/RedisStore.js") as RedisStoreCtor;

/** Redis first; on any Redis error, this instance's own counters. */
class FallbackStore implements Store {
  constructor(
    private readonly shared: Store,
    private readonly local: Store,
    private readonly onError: (err: Error) => void,
  ) {}
  incr(key: string, cb: Callback, timeWindow: number, max: number): void {
    this.shared.incr(key, (err, res) => (err ? (this.onError(err), this.local.incr(key, cb, timeWindow, max)) : cb(null, res)), timeWindow, max);
  }
  /**
   * The shared count, or this instance's own if it is higher: what was counted here while the
   * shared store was away still counts once it is back (until its window ends).
   */
  read(key: string, cb: Callback, timeWindow: number, max: number): void {
    this.shared.read(
      key,
      (err, res) => {
        if (err) this.onError(err);
        this.local.read(
          key,
          (localErr, own) => {
            const shared = err ? undefined : res;
            const mine = localErr ? undefined : own;
            const higher = shared && mine ? (mine.current > shared.current ? mine : shared) : (shared ?? mine);
            return higher ? cb(null, higher) : cb(err ?? localErr ?? new Error("no count"));
          },
          timeWindow,
          max,
        );
      },
      timeWindow,
      max,
    );
  }
  child(routeOptions: Record<string, unknown>): Store {
    return new FallbackStore(this.shared.child(routeOptions), this.local.child(routeOptions), this.onError);
  }
}

/**
 * The limiters whose `check` refuses an address at its limit before anything else is done (the
 * client authentication failures): the primary announces their addresses to every worker.
 */
const CHECKED_LIMITERS = new Set(["client-auth"]);

/** After the primary failed to answer, this worker counts on its own for this long before asking it again. */
const PRIMARY_RETRY_MS = 5000;
let primaryFailedAt = -Infinity;
const PRIMARY_SKIPPED = new Error("the cluster primary did not answer recently; counting locally");

/** A cluster worker's counters, kept by the primary for every worker of the host (cluster/primary.ts). */
class PrimaryStore implements Store {
  incr(key: string, cb: Callback, timeWindow: number, max: number): void {
    // A primary that is not answering costs one request its timeout, not every request.
    if (Date.now() - primaryFailedAt < PRIMARY_RETRY_MS) return cb(PRIMARY_SKIPPED);
    primaryIncr(key, timeWindow, max, CHECKED_LIMITERS.has(key.slice(0, key.indexOf(":")))).then(
      (res) => cb(null, res),
      (err: Error) => {
        primaryFailedAt = Date.now();
        cb(err);
      },
    );
  }
  /**
   * Only whether the key is at its limit (Limiter.check, on every token, revocation and
   * introspection request): answered here, from the primary's announcements, without a round trip.
   */
  read(key: string, cb: Callback, _timeWindow: number, max: number): void {
    // A primary that just failed to answer may have missed counts: then this worker's own.
    if (Date.now() - primaryFailedAt < PRIMARY_RETRY_MS) return cb(PRIMARY_SKIPPED);
    cb(null, limitedRead(key, max));
  }
  child(): Store {
    return this; // keys carry the limiter's name; the primary keeps a table per name
  }
}

export interface Limiter {
  /** Counts this request and refuses it (429) once the address is over the limit. */
  hit(request: FastifyRequest): Promise<void>;
  /** Refuses (429) an address that is already at the limit, without counting this request. */
  check(request: FastifyRequest): Promise<void>;
  /** Counts a request (e.g. a failed client authentication) without refusing it. */
  count(request: FastifyRequest): Promise<void>;
}

export interface RateLimits {
  password: Limiter;
  register: Limiter;
  refresh: Limiter;
  clientAuthFailures: Limiter;
}

const unlimited: Limiter = { hit: async () => undefined, check: async () => undefined, count: async () => undefined };

export interface RateLimitLogger {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

/** Registers @fastify/rate-limit (no route is limited by default) and builds Tessera's limiters. */
export async function registerRateLimits(app: FastifyInstance, config: Config, logger: RateLimitLogger): Promise<RateLimits> {
  let store: (new () => Store) | undefined;
  if (config.redisUrl) {
    const redis = new Redis(config.redisUrl, {
      // Never queue commands while disconnected, never wait long for an answer: a request must
      // not hang on a missing cache, it falls back to local counters at once.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: 1000,
      commandTimeout: 300,
      // Keep reconnecting in the background, at most every 2 s.
      retryStrategy: (times: number) => Math.min(times * 200, 2000),
    });
    let degraded = false;
    const onError = (err: Error) => {
      if (degraded) return;
      degraded = true;
      logger.warn({ err: { message: err.message } }, "rate limits: Redis unavailable; counting per instance until it is back");
    };
    redis.on("error", (err: Error) => onError(err)); // an unhandled 'error' event would crash the process
    redis.on("ready", () => {
      if (degraded) logger.info({}, "rate limits: Redis is back; counters are shared again");
      degraded = false;
    });
    app.addHook("onClose", async () => {
      redis.disconnect();
    });
    const prefix = `${config.redisKeyPrefix}rl:`;
    // The plugin constructs the store itself (`new Store(options)`); a constructor returning an
    // object hands it ours.
    store = function SharedStore() {
      return new FallbackStore(new RedisStore(false, false, redis, prefix), new LocalStore(false, false, 20_000), onError);
    } as unknown as new () => Store;
  } else if (isClusterWorker()) {
    // The host's workers count together in the primary; if it does not answer within 300 ms, this
    // worker counts on its own for 5 s before asking it again (never fails the request, as with
    // Redis; meanwhile the host's limit is up to WORKERS times the configured one).
    let degraded = false;
    const onError = (err: Error) => {
      if (degraded) return;
      degraded = true;
      logger.warn({ err: { message: err.message } }, "rate limits: the cluster primary did not answer; this worker counts on its own meanwhile");
      setTimeout(() => (degraded = false), 60_000).unref();
    };
    store = function ClusterStore() {
      return new FallbackStore(new PrimaryStore(), new LocalStore(false, false, 20_000), onError);
    } as unknown as new () => Store;
  }
  await app.register(rateLimit, { global: false, ...(store ? { store: store as never } : { cache: 20_000 }) });

  const limiter = (name: string, limit: RateLimit | null): Limiter => {
    if (!limit) return unlimited;
    const check = app.createRateLimit({
      max: limit.max,
      timeWindow: limit.window * 1000,
      // Per address, counted as the login throttle counts it (IPv6 by /64).
      keyGenerator: (req) => `${name}:${addressKey(req.ip)}`,
      // A store error (both Redis and the local fallback failing) must not fail the request.
      skipOnError: true,
      // Addresses kept by the in-memory counters (the plugin's LRU; 5000 by default).
      cache: 20_000,
    } as Parameters<typeof app.createRateLimit>[0]);
    const refuseIfOver = (r: Awaited<ReturnType<typeof check>>, atLimit: boolean) => {
      if (r.isAllowed) return;
      if (atLimit ? r.remaining === 0 && r.ttl > 0 : r.isExceeded) throw new TooManyRequests(r.ttlInSeconds);
    };
    return {
      hit: async (req) => refuseIfOver(await check(req), false),
      check: async (req) => refuseIfOver(await check(req, { increment: false }), true),
      count: async (req) => void (await check(req)),
    };
  };
  const { rateLimits } = config;
  return {
    password: limiter("password", rateLimits.password),
    register: limiter("register", rateLimits.register),
    refresh: limiter("refresh", rateLimits.refresh),
    clientAuthFailures: limiter("client-auth", rateLimits.clientAuthFailures),
  };
}
