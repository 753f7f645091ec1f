// Tessera as every benchmark runs it: a real child process on 127.0.0.1, the built dist when it
// is current (else src through tsx), rate limits off, and the bench users registered over HTTP.
// Shared by run.ts, scale.ts and soak.ts.
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { loadConfig } from "../../src/config.ts";
import { freePort } from "../../test/helpers/ports.ts";
import { ROOT, spawnIssuer, waitReady } from "../../test/helpers/process.ts";
import type { Flavor, Server } from "../scenarios/scenario.ts";
import { limited, PASSWORD, post } from "./http.ts";
import { benchEnv } from "./proc.ts";

/** A numeric environment variable, `def` when unset; throws on anything below `min`. */
export function envNum(name: string, def: number, min = 1): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return def;
  const v = Number(raw);
  if (!Number.isFinite(v) || v < min) throw new Error(`${name}=${JSON.stringify(raw)}: expected a number >= ${min}`);
  return v;
}

/** What Tessera gets from the bench's environment besides the settings below. */
const PASS_THROUGH = ["ARGON2_MEMORY_KIB", "ARGON2_ITERATIONS", "ARGON2_PARALLELISM", "PASSWORD_HASH_CONCURRENCY", "PASSWORD_HASH_QUEUE", "SIGNING_ALG"];

function newestMtime(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestMtime(p));
    else if (/\.(ts|js|json)$/.test(e.name)) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

/** The node arguments that start Tessera (BENCH_SERVER_NODE_ARGS first), and how, for the report. */
export function serverEntry(): { args: string[]; how: string } {
  const extra = (process.env.BENCH_SERVER_NODE_ARGS ?? "").split(/\s+/).filter(Boolean);
  const entry = serverEntryFile();
  return { args: [...extra, ...entry.args], how: ["node", ...extra, entry.how.replace(/^node /, "")].join(" ") };
}

/** The built server if it is at least as new as every source file (or BENCH_SERVER=dist), else src through tsx. */
function serverEntryFile(): { args: string[]; how: string } {
  const pref = process.env.BENCH_SERVER;
  const dist = path.join(ROOT, "dist/src/server.js");
  if (pref !== "src" && existsSync(dist)) {
    const current = statSync(dist).mtimeMs >= newestMtime(path.join(ROOT, "src"));
    if (current || pref === "dist") return { args: [dist], how: `node dist/src/server.js${current ? "" : " (forced; older than src/)"}` };
  }
  return {
    args: ["--import", "tsx", "src/server.ts"],
    how: `node --import tsx src/server.ts${existsSync(dist) && pref !== "src" ? " (dist/ is older than src/)" : ""}`,
  };
}

/** Tessera on `databaseUrl`, ready (`/readyz`); `extraEnv` over the bench's settings. */
export async function startTessera(flavor: Flavor, databaseUrl: string, keysDir: string, entry: string[], extraEnv: Record<string, string> = {}): Promise<Server> {
  let lastError: Error | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const env: Record<string, string> = { ...benchEnv() };
    for (const k of PASS_THROUGH) if (process.env[k]) env[k] = process.env[k]!;
    Object.assign(env, {
      DATABASE_URL: databaseUrl,
      KEYS_DIR: keysDir,
      LOG_LEVEL: "warn",
      COOKIE_SECURE: "false",
      ALLOW_REGISTRATION: "true",
      HOST: "127.0.0.1",
      PORT: String(port),
      ISSUER: `http://127.0.0.1:${port}`,
      UV_THREADPOOL_SIZE: process.env.UV_THREADPOOL_SIZE || "4",
      // The load generator is one address: per-address limits would measure the limiter, not the
      // path. The bench measures the paths; the limits are tested in test/security/rate-limits.
      RATE_LIMIT_PASSWORD: "0",
      RATE_LIMIT_REGISTER: "0",
      RATE_LIMIT_REFRESH: "0",
      RATE_LIMIT_CLIENT_AUTH_FAILURES: "0",
      ...extraEnv,
    });
    const config = loadConfig(env);
    const child = spawnIssuer(env, { name: `tessera[${flavor}]`, args: entry, bounded: true });
    const base = `http://127.0.0.1:${port}`;
    try {
      await waitReady(`${base}/readyz`, child, 120_000);
      return { child, base, config };
    } catch (err) {
      lastError = err as Error;
      await child.stop();
      if (!/EADDRINUSE/.test(lastError.message)) break; // only a lost port race is worth a retry
    }
  }
  throw lastError ?? new Error("Tessera did not start");
}

/** `count` users registered over HTTP (password PASSWORD), four at a time. */
export async function registerUsers(server: Server, count: number): Promise<string[]> {
  const tag = randomBytes(4).toString("hex");
  return limited(count, 4, async (i) => {
    const email = `bench-${tag}-${i}@example.test`;
    const r = await post(`${server.base}/auth/register`, JSON.stringify({ email, password: PASSWORD }), { "content-type": "application/json" });
    if (r.status !== 201) throw new Error(`register failed: ${r.status} ${JSON.stringify(r.json)}`);
    return email;
  });
}
