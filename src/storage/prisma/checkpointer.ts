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
//   not finish, and would only hold writers up.
// Durability is unchanged: what a commit wrote is in the WAL either way. The cost is a bigger
// WAL file under heavy writes: it grows by what is written between two rounds (tens of MB at
// thousands of commits a second); the writers' journal_size_limit cuts a file grown past
// WAL_SIZE_LIMIT back when it starts over.
//
// If the worker cannot start or fails, both connections go back to SQLite's own checkpoints.
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";

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
/** SQLite's own default for wal_autocheckpoint, restored if the worker fails. */
export const AUTOCHECKPOINT_PAGES = 1000;

/** The worker: plain CommonJS, evaluated (no TypeScript loader needed in tests or dist). */
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.driver);
const db = new Database(workerData.file, { timeout: 0, fileMustExist: true });
let timer;
const busy = (err) => /^SQLITE_(BUSY|LOCKED)/.test(String(err && err.code));
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
    }
    if (workerData.report) parentPort.postMessage({ log: passive.log, checkpointed: passive.checkpointed, restarted });
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
  /** told if the worker fails (the connections then checkpoint on their own) */
  onFailure?: (err: Error) => void;
  /** told of each round (tests) */
  onRound?: (round: { log: number; checkpointed: number; restarted: boolean }) => void;
}

export interface Checkpointer {
  /** false once the worker failed: the connections checkpoint on their own again */
  readonly running: boolean;
  /** resolves when the worker has failed and the fallback is in place (tests) */
  readonly failed: Promise<Error>;
  close(): Promise<void>;
}

/**
 * Starts the worker for the SQLite database `file`. `configure(worker)` is applied to every
 * connection of this process on that file: true now (the connections' own checkpoints off, the
 * WAL size limit on), false if the worker fails (SQLite's defaults back).
 */
export async function startCheckpointer(
  file: string,
  configure: (worker: boolean) => Promise<void>,
  opts: CheckpointerOptions = {},
): Promise<Checkpointer> {
  // Before the worker exists, so that a worker failing at once is always followed by the restore.
  await configure(true);
  const require = createRequire(import.meta.url);
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: {
      driver: opts.driver ?? require.resolve("better-sqlite3"),
      file,
      intervalMs: opts.intervalMs ?? CHECKPOINT_INTERVAL_MS,
      restartPages: opts.restartPages ?? RESTART_PAGES,
      restartWaitMs: RESTART_WAIT_MS,
      report: opts.onRound !== undefined,
    },
  });
  worker.unref();
  let running = true;
  let closing = false;
  let reportFailure!: (err: Error) => void;
  const failed = new Promise<Error>((resolve) => (reportFailure = resolve));
  const exited = new Promise<void>((resolve) => worker.once("exit", () => resolve()));

  const fallBack = async (err: Error) => {
    if (!running || closing) return;
    running = false;
    await configure(false).catch(() => undefined);
    reportFailure(err);
    opts.onFailure?.(err);
  };
  worker.on("error", (err) => void fallBack(err));
  worker.on("exit", (code) => {
    if (!closing) void fallBack(new Error(`checkpoint worker exited with code ${code}`));
  });
  if (opts.onRound) worker.on("message", opts.onRound);

  return {
    get running() {
      return running;
    },
    failed,
    async close() {
      if (closing) return exited;
      closing = true;
      if (running) {
        worker.postMessage("close");
        const timeout = setTimeout(() => void worker.terminate(), 2000);
        await exited;
        clearTimeout(timeout);
      }
      running = false;
    },
  };
}
