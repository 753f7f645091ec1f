// The admin scripts as an operator (or cron) runs them: `node --import tsx scripts/<name>.ts`
// in a child process with an explicit environment. Every child is tracked; killAllScripts() in
// afterEach/afterAll leaves nothing running. Shared by test/ and bench/ (no vitest imports here).
import { baseEnv, killAll, spawnNode, type Exit, type NodeChild } from "./process.ts";

export interface ScriptResult extends Exit {
  stdout: string;
  stderr: string;
}

const running = new Set<NodeChild>();

export type Script = "rotate-keys" | "cli";

/**
 * Runs scripts/<script>.ts with `args` and resolves with its exit and output. A script still
 * running after `timeoutMs` is killed and the promise rejects ("does not hang", not a speed bound).
 */
export async function runScript(script: Script, args: string[], env: Record<string, string>, timeoutMs = 60_000): Promise<ScriptResult> {
  const what = `${script} ${args.join(" ")}`;
  const child = spawnNode(what, ["--import", "tsx", `scripts/${script}.ts`, ...args], {
    env: { ...baseEnv(), LOG_LEVEL: "warn", ...env },
    group: running,
  });
  let exit: Exit;
  try {
    exit = await child.exited(timeoutMs);
  } catch {
    await child.kill();
    throw new Error(`${what} still running after ${timeoutMs} ms\n--- stdout ---\n${child.stdoutText()}\n--- stderr ---\n${child.stderr}`);
  }
  return { ...exit, stdout: child.stdoutText(), stderr: child.stderr };
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
