// Baseline for the refresh scenario: the rotation transaction done with the raw driver on a
// scratch table: a conditional UPDATE that consumes the presented token (by hash, only if not
// yet consumed) and an INSERT of its successor, in one transaction.
//   SQLite:   better-sqlite3, WAL, synchronous=NORMAL, one synchronous loop over CHAINS chains.
//   Postgres: pg Pool (POOL clients), CONCURRENCY async loops, each rotating its own chain.
// argv: sqlite <file> | postgres <url>. Serves measurement slices on request (lib/slices.ts).
import { createHash, randomBytes, randomUUID } from "node:crypto";
import Database from "better-sqlite3";
import pg from "pg";
import { serveSlices, timedLoops } from "../lib/slices.ts";

const [flavor, target] = process.argv.slice(2);
if ((flavor !== "sqlite" && flavor !== "postgres") || !target) throw new Error("usage: rotation.ts sqlite <file> | postgres <url>");
const num = (name: string, def: number) => {
  const v = Number(process.env[name] ?? def);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`bad ${name}`);
  return v;
};
const concurrency = num("CONCURRENCY", 64);
const poolSize = num("POOL", 10);
const chainCount = flavor === "sqlite" ? num("CHAINS", 64) : concurrency;

const IDLE_MS = 7 * 86400_000;
const sha = (t: string) => createHash("sha256").update(t, "utf8").digest("base64url");
const newToken = () => randomBytes(32).toString("base64url");

interface Chain {
  sessionId: string;
  hash: string;
}

if (flavor === "sqlite") {
  const db = new Database(target);
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = NORMAL");
  db.exec(`CREATE TABLE bench_refresh_token (
    id TEXT PRIMARY KEY, session_id TEXT NOT NULL, hash TEXT NOT NULL UNIQUE, parent_id TEXT UNIQUE,
    created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, consumed_at INTEGER);
    CREATE INDEX bench_refresh_token_session ON bench_refresh_token(session_id);`);
  const consume = db.prepare("UPDATE bench_refresh_token SET consumed_at = ? WHERE hash = ? AND consumed_at IS NULL RETURNING id");
  const insert = db.prepare(
    "INSERT INTO bench_refresh_token (id, session_id, hash, parent_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
  );
  const chains: Chain[] = [];
  for (let i = 0; i < chainCount; i++) {
    const c = { sessionId: randomUUID(), hash: sha(newToken()) };
    insert.run(randomUUID(), c.sessionId, c.hash, null, Date.now(), Date.now() + IDLE_MS);
    chains.push(c);
  }
  const rotate = db.transaction((c: Chain, nextHash: string, now: number) => {
    const row = consume.get(now, c.hash) as { id: string } | undefined;
    if (!row) throw new Error("token already consumed");
    insert.run(randomUUID(), c.sessionId, nextHash, row.id, now, now + IDLE_MS);
  });
  let next = 0;
  // better-sqlite3 is synchronous: one loop is all one process can do.
  await serveSlices(
    (seconds) =>
      timedLoops(1, seconds, () => {
        const c = chains[next++ % chains.length]!;
        const nextHash = sha(newToken());
        rotate(c, nextHash, Date.now());
        c.hash = nextHash;
        return true;
      }),
    () => {
      db.close();
    },
  );
} else {
  const pool = new pg.Pool({ connectionString: target, max: poolSize });
  await pool.query(`CREATE TABLE bench_refresh_token (
    id text PRIMARY KEY, session_id text NOT NULL, hash text NOT NULL UNIQUE, parent_id text UNIQUE,
    created_at timestamptz NOT NULL, expires_at timestamptz NOT NULL, consumed_at timestamptz)`);
  await pool.query("CREATE INDEX bench_refresh_token_session ON bench_refresh_token(session_id)");
  const INSERT =
    "INSERT INTO bench_refresh_token (id, session_id, hash, parent_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)";
  const chains: Chain[] = [];
  for (let i = 0; i < chainCount; i++) {
    const c = { sessionId: randomUUID(), hash: sha(newToken()) };
    const now = new Date();
    await pool.query(INSERT, [randomUUID(), c.sessionId, c.hash, null, now, new Date(now.getTime() + IDLE_MS)]);
    chains.push(c);
  }
  const rotate = async (c: Chain): Promise<boolean> => {
    const nextHash = sha(newToken());
    const now = new Date();
    const client = await pool.connect();
    try {
      await client.query("BEGIN");
      const r = await client.query<{ id: string }>(
        "UPDATE bench_refresh_token SET consumed_at = $1 WHERE hash = $2 AND consumed_at IS NULL RETURNING id",
        [now, c.hash],
      );
      if (r.rowCount !== 1) throw new Error("token already consumed");
      await client.query(INSERT, [randomUUID(), c.sessionId, nextHash, r.rows[0]!.id, now, new Date(now.getTime() + IDLE_MS)]);
      await client.query("COMMIT");
      c.hash = nextHash;
      return true;
    } catch (err) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  };
  // One loop per chain, CONCURRENCY in flight over POOL connections.
  await serveSlices(
    (seconds) => timedLoops(chains.length, seconds, (loop) => rotate(chains[loop]!)),
    () => pool.end(),
  );
}
