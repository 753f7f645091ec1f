// RFC 8414 §2: the issuer identifier is an https URL. A plain-http ISSUER on a real host would
// publish its discovery document and JWKS, which verifiers trust, over a channel anyone on the
// path can rewrite. What an operator sees: the server refuses to start (exit 2, one line naming
// ISSUER and the fix), unless the host is loopback (the default http://localhost:$PORT keeps
// `npm start` working) or ALLOW_INSECURE_ISSUER=true says it is a development setup.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { killAllIssuers, spawnIssuer, type IssuerProcess } from "../helpers/process.ts";

const dirs: string[] = [];
afterEach(async () => {
  await killAllIssuers();
});
afterAll(async () => {
  await killAllIssuers();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** The issuer on SQLite in a temp dir; ISSUER as given (unset when undefined). */
function spawnWith(issuer: string | undefined, extra: Record<string, string> = {}): IssuerProcess {
  const dir = mkdtempSync(path.join(os.tmpdir(), "tessera-issuer-"));
  dirs.push(dir);
  return spawnIssuer({
    PORT: "0",
    HOST: "127.0.0.1",
    ...(issuer === undefined ? {} : { ISSUER: issuer }),
    KEYS_DIR: path.join(dir, "keys"),
    DATABASE_URL: `file:${path.join(dir, "tessera.db")}`,
    LOG_LEVEL: "info",
    PRUNE_INTERVAL: "0",
    ...extra,
  });
}

/** Exit or listen, whichever comes first. */
async function outcome(proc: IssuerProcess): Promise<"listening" | { code: number | null }> {
  return Promise.race([
    proc.listening(90_000).then(() => "listening" as const),
    proc.exited(90_000).then((e) => ({ code: e.code })),
  ]).catch(async () => ({ code: (await proc.exited(30_000)).code }));
}

describe("security: plain-http ISSUER", () => {
  it("ISSUER=http://auth.example.com: exit 2 before listening, with one line naming ISSUER, https and ALLOW_INSECURE_ISSUER", async () => {
    const proc = spawnWith("http://auth.example.com");
    const result = await outcome(proc);
    expect(result, `the server must not start with a plain-http ISSUER\n${proc.output()}`).toEqual({ code: 2 });
    const lines = proc.stderr.split("\n").filter((l) => l.includes("ISSUER"));
    expect(lines, proc.output()).toHaveLength(1);
    expect(lines[0]).toContain('ISSUER="http://auth.example.com"');
    expect(lines[0]).toMatch(/https/);
    expect(lines[0]).toContain("ALLOW_INSECURE_ISSUER=true");
    expect(proc.stdout.some((l) => l.includes("Tessera listening"))).toBe(false);
  }, 120_000);

  it("the default ISSUER (http://localhost:$PORT) still starts: `npm start` on a fresh clone works", async () => {
    const proc = spawnWith(undefined);
    expect(await outcome(proc), proc.output()).toBe("listening");
    const started = proc.logs().find((l) => typeof l.issuer === "string");
    expect(started?.issuer).toBe("http://localhost:0");
  }, 120_000);

  it("ALLOW_INSECURE_ISSUER=true starts with a plain-http ISSUER and warns at start", async () => {
    const proc = spawnWith("http://auth.example.com", { ALLOW_INSECURE_ISSUER: "true" });
    expect(await outcome(proc), proc.output()).toBe("listening");
    const warning = proc.logs().find((l) => l.level === 40 && /ISSUER/.test(String(l.msg)));
    expect(warning, proc.output()).toBeDefined();
    expect(String(warning!.msg)).toMatch(/plain http/);
  }, 120_000);
});
