// SQLite's WAL checkpoints off the event loop. In WAL mode with synchronous=NORMAL a commit writes
// its pages to the WAL without an fsync; the fsyncs happen when the WAL is copied back into the
// database file (a checkpoint). By default the connection that commits runs that checkpoint
// itself, inline, whenever the WAL passes 1000 pages: better-sqlite3 is synchronous, so every few
// hundred commits one request's statement blocks the event loop for the copy and two fsyncs
// (see README, "SQLite checkpoints off the event loop").
//
// Here both of the process's connections (Prisma's and the direct one) have automatic
// checkpoints turned off, and a worker thread with its own connection checkpoints instead:
// - every CHECKPOINT_INTERVAL_MS a PASSIVE checkpoint, which never takes the write lock;
// - once the WAL holds RESTART_PAGES and that PASSIVE round copied all of it, a RESTART, so the
//   next writer starts the WAL file from the beginning again. Without it, under steady writes,
//   the WAL is never seen fully copied when a write begins, and grows without bound. The RESTART
//   waits at most RESTART_WAIT_MS for a writer's statement to end, then holds the write lock
//   while it copies what was written since the PASSIVE round and syncs (a writer meanwhile is
//   retried, as any writer is: retryWhileBusy, or Prisma's busy timeout). It is not tried while
//   a reader keeps an older snapshot (the PASSIVE round could not copy everything): it could
//   not finish, and would only hold writers up. Right after it, the worker makes the first write
//   of the new WAL itself, so the fsync of the WAL's header that comes with that write is not
//   paid on the event loop (it took up to 200 ms there while a million sessions were pruned).
// Durability is unchanged: what a commit wrote is in the WAL either way. The cost is a bigger
// WAL file under heavy writes: it grows by what is written between two rounds (tens of MB at
// thousands of commits a second); the writers' journal_size_limit cuts a file grown past
// WAL_SIZE_LIMIT back when it starts over.
//
// If the worker cannot start or fails, both connections go back to SQLite's own checkpoints until
// another worker, started after a delay, runs.
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import type { CheckpointerEvent } from "../storage.ts";

export const CHECKPOINT_INTERVAL_MS = 100;
/** 4096 pages of 4 KiB: 16 MiB of WAL before the file is started over. */
export const RESTART_PAGES = 4096;
/**
 * journal_size_limit of the writing connections while the worker runs: a WAL file that grew past
 * this (a burst of writes between two rounds) is cut back to it by the first commit after it
 * starts over.
 */
export const WAL_SIZE_LIMIT = 64 * 1024 * 1024;
/** How long the RESTART waits for a writer's statement to end. */
export const RESTART_WAIT_MS = 20;
/** A failed worker is started again after this, doubling while they keep failing... */
export const RETRY_MS = 1000;
export const MAX_RETRY_MS = 60_000;
/** ...within this of their start. */
export const HEALTHY_AFTER_MS = 60_000;
/** SQLite's own default for wal_autocheckpoint, restored if the worker fails. */
export const AUTOCHECKPOINT_PAGES = 1000;

/** The worker: plain CommonJS, evaluated (no TypeScript loader needed in tests or dist). */
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.driver);
const db = new Database(workerData.file, { timeout: 0, fileMustExist: true });
// This connection writes too (beginWal): the same cut-back as the server's writers.
db.pragma("journal_size_limit = " + workerData.walSizeLimit);
let timer;
let ran;
const busy = (err) => /^SQLITE_(BUSY|LOCKED)/.test(String(err && err.code));
// After a RESTART, the next write starts the WAL over: SQLite syncs the new WAL header (and cuts
// the file back to journal_size_limit) in the connection that writes it. A write of this
// thread's own (user_version set to what it is) takes that cost here instead of in the server's
// next request. If a writer holds the lock already, it pays it: skipped.
const beginWal = () => {
  try {
    db.exec("BEGIN IMMEDIATE");
  } catch (err) {
    if (busy(err)) return;
    throw err;
  }
  try {
    db.pragma("user_version = " + db.pragma("user_version", { simple: true }));
    db.exec("COMMIT");
  } catch (err) {
    if (db.inTransaction) db.exec("ROLLBACK");
    throw err;
  }
};
const tick = () => {
  try {
    const [passive] = db.pragma("wal_checkpoint(PASSIVE)");
    let restarted = false;
    if (passive.log >= workerData.restartPages && passive.busy === 0 && passive.checkpointed === passive.log) {
      db.pragma("busy_timeout = " + workerData.restartWaitMs);
      try {
        const [restart] = db.pragma("wal_checkpoint(RESTART)");
        restarted = restart.busy === 0;
      } finally {
        db.pragma("busy_timeout = 0");
      }
      if (restarted) beginWal();
    }
    if (workerData.report) parentPort.postMessage({ log: passive.log, checkpointed: passive.checkpointed, restarted });
    if (!ran) parentPort.postMessage((ran = "ran"));
  } catch (err) {
    if (!busy(err)) throw err;
  }
  timer = setTimeout(tick, workerData.intervalMs);
};
parentPort.on("message", (m) => {
  if (m === "close") {
    clearTimeout(timer);
    db.close();
    parentPort.close();
  }
});
tick();
`;

export interface CheckpointerOptions {
  intervalMs?: number;
  restartPages?: number;
  /** module id of the driver the worker loads (tests point it elsewhere to make the worker fail) */
  driver?: string;
  /** the first delay before a failed worker is started again (RETRY_MS) */
  retryMs?: number;
  /** told of each round (tests) */
  onRound?: (round: { log: number; checkpointed: number; restarted: boolean }) => void;
}

export interface Checkpointer {
  /** false while no worker runs (it failed, and the next is not started yet): the connections checkpoint on their own */
  readonly running: boolean;
  /** resolves when a worker first failed and the fallback is in place (tests) */
  readonly failed: Promise<Error>;
  /** `listener` is told of every failure (once the fallback is in place) and of every worker that runs after one */
  watch(listener: (event: CheckpointerEvent) => void): void;
  close(): Promise<void>;
}

/**
 * Starts the worker for the SQLite database `file`. `configure(worker)` is applied to every
 * connection of this process on that file: true while a worker runs (the connections' own
 * checkpoints off, the WAL size limit on), false when it fails (SQLite's defaults back). A failed
 * worker (a full disk, an I/O error) is started again after RETRY_MS, doubling up to
 * MAX_RETRY_MS while the new ones keep failing within HEALTHY_AFTER_MS.
 */
export async function startCheckpointer(
  file: string,
  configure: (worker: boolean) => Promise<void>,
  opts: CheckpointerOptions = {},
): Promise<Checkpointer> {
  const require = createRequire(import.meta.url);
  const workerData = {
    driver: opts.driver ?? require.resolve("better-sqlite3"),
    file,
    intervalMs: opts.intervalMs ?? CHECKPOINT_INTERVAL_MS,
    restartPages: opts.restartPages ?? RESTART_PAGES,
    restartWaitMs: RESTART_WAIT_MS,
    walSizeLimit: WAL_SIZE_LIMIT,
    report: opts.onRound !== undefined,
  };
  const retryMs = opts.retryMs ?? RETRY_MS;
  let current: { worker: Worker; exited: Promise<void> } | null = null;
  let closing = false;
  let failures = 0;
  let retry: NodeJS.Timeout | undefined;
  let reportFailure!: (err: Error) => void;
  const failed = new Promise<Error>((resolve) => (reportFailure = resolve));
  const listeners = new Set<(event: CheckpointerEvent) => void>();
  // The failure in force (the fallback running, no worker yet): told to a listener that comes late.
  let inForce: CheckpointerEvent | null = null;
  const safely = (listener: (event: CheckpointerEvent) => void, event: CheckpointerEvent) => {
    try {
      listener(event);
    } catch {
      // a listener's failure (its logger) must not stop the retries
    }
  };
  const tell = (event: CheckpointerEvent) => {
    inForce = event.type === "failed" ? event : null;
    for (const listener of listeners) safely(listener, event);
  };

  const spawn = () => {
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData });
    worker.unref();
    const exited = new Promise<void>((resolve) => worker.once("exit", () => resolve()));
    const self = { worker, exited };
    current = self;
    const startedAt = Date.now();
    let down = false;
    // 'error' and then 'exit' for one failure: handled once.
    const fail = (err: Error) => {
      if (down || closing) return;
      down = true;
      if (current === self) current = null;
      failures = Date.now() - startedAt >= HEALTHY_AFTER_MS ? 1 : failures + 1;
      void configure(false)
        .catch(() => undefined)
        .then(() => {
          reportFailure(err);
          if (closing) return;
          const delay = Math.min(MAX_RETRY_MS, retryMs * 2 ** (failures - 1));
          retry = setTimeout(() => void start(), delay);
          retry.unref();
          tell({ type: "failed", error: err, retryInMs: delay });
        });
    };
    worker.on("error", fail);
    worker.on("exit", (code) => fail(new Error(`checkpoint worker exited with code ${code}`)));
    worker.on("message", (m: unknown) => {
      // "ran": its first round is done. After a failure, that is the news: the fallback is over.
      if (m === "ran") {
        if (failures > 0 && !down && !closing) tell({ type: "restarted" });
      } else opts.onRound?.(m as Parameters<NonNullable<CheckpointerOptions["onRound"]>>[0]);
    });
  };
  // Off before the worker exists, so that a worker failing at once is always followed by the restore.
  const start = async () => {
    if (closing) return;
    await configure(true);
    if (!closing) spawn();
  };

  await start();
  return {
    get running() {
      return current !== null;
    },
    failed,
    watch(listener) {
      listeners.add(listener);
      if (inForce) safely(listener, inForce);
    },
    async close() {
      closing = true;
      clearTimeout(retry);
      const running = current;
      current = null;
      if (running) {
        running.worker.postMessage("close");
        const timeout = setTimeout(() => void running.worker.terminate(), 2000);
        await running.exited;
        clearTimeout(timeout);
      }
    },
  };
}
