// The admin scripts as an operator (or cron) runs them: `node --import tsx scripts/<name>.ts`
// in a child process with an explicit environment. Every child is tracked; killAllScripts() in
// afterEach/afterAll leaves nothing running.
import { spawn, type ChildProcess } from "node:child_process";
import { killAll, ROOT } from "./process.ts";

export interface ScriptResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const running = new Set<ChildProcess>();
process.once("exit", () => {
  for (const c of running) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
});

/** Only what the scripts need from the parent environment; the rest is explicit. */
function baseEnv(): Record<string, string> {
  const keep = ["PATH", "HOME", "TMPDIR", "LANG", "SYSTEMROOT"];
  const env: Record<string, string> = {};
  for (const k of keep) if (process.env[k] !== undefined) env[k] = process.env[k]!;
  return env;
}

export type Script = "rotate-keys" | "cli";

/**
 * Runs scripts/<script>.ts with `args` and resolves with its exit and output. A script still
 * running after `timeoutMs` is killed and the promise rejects ("does not hang", not a speed bound).
 */
export function runScript(script: Script, args: string[], env: Record<string, string>, timeoutMs = 60_000): Promise<ScriptResult> {
  const child = spawn(process.execPath, ["--import", "tsx", `scripts/${script}.ts`, ...args], {
    cwd: ROOT,
    env: { ...baseEnv(), LOG_LEVEL: "warn", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.add(child);
  let stdout = "";
  let stderr = "";
  child.stdout!.setEncoding("utf8").on("data", (c: string) => (stdout += c));
  child.stderr!.setEncoding("utf8").on("data", (c: string) => (stderr += c));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${script} ${args.join(" ")} still running after ${timeoutMs} ms\n--- stdout ---\n${stdout}\n--- stderr ---\n${stderr}`));
    }, timeoutMs);
    child.once("error", (err) => {
      clearTimeout(timer);
      running.delete(child);
      reject(err);
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      running.delete(child);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** `npm run cli -- <args>` */
export const runCli = (args: string[], env: Record<string, string>, timeoutMs?: number) => runScript("cli", args, env, timeoutMs);

/** `npm run rotate-keys [-- args]` */
export const runRotateKeys = (args: string[], env: Record<string, string>, timeoutMs?: number) =>
  runScript("rotate-keys", args, env, timeoutMs);

/** A script's result as text, for assertion messages. */
export const describeResult = (r: ScriptResult) =>
  `exit ${r.code}${r.signal ? ` (${r.signal})` : ""}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`;

/** SIGKILL every script still running, and wait for them to exit. */
export function killAllScripts(): Promise<void> {
  return killAll(running);
}

export interface ListedKey {
  kid: string;
  alg: string;
  state: "next" | "active" | "retired";
  createdAt: string;
  activatedAt: string | null;
  retiredAt: string | null;
  activatableAt: string | null;
  rotationDueAt: string | null;
  publishesUntil: string | null;
}

/** `keys list --json`, parsed; throws with the output if it did not exit 0. */
export async function listKeysJson(env: Record<string, string>): Promise<{ store: string; keys: ListedKey[] }> {
  const r = await runCli(["keys", "list", "--json"], env);
  if (r.code !== 0) throw new Error(`keys list --json failed: ${describeResult(r)}`);
  return JSON.parse(r.stdout) as { store: string; keys: ListedKey[] };
}
