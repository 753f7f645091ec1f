// The kit as a service installs it: `npm pack` in packages/verifier (prepack builds dist/), the
// tarball installed into an empty project outside the repository next to Express 5 and Fastify 5
// (pinned to the majors the kit supports, so a new major of a framework cannot break CI),
// then that project's own scripts (ESM, CommonJS, and a TypeScript typecheck) run against a real
// issuer process. What must hold: no native module and no install script anywhere in the
// service's node_modules, jose as the kit's only dependency, ESM and require() both work, and
// a token the issuer signed is accepted while a tampered one is refused.
// About packaging, not databases: the issuer runs on SQLite only. Not skipped in CI (npm only
// needs the registry the project installs from, and --prefer-offline uses npm's cache first).
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { flavors, freshDatabase, PASSWORD, uniqueEmail } from "../helpers/issuer.ts";
import type { TempDatabase } from "../helpers/databases.ts";
import { freePort } from "../helpers/ports.ts";
import { baseEnv, killAllIssuers, ROOT, spawnIssuer, waitReady } from "../helpers/process.ts";

const run = promisify(execFile);
const KIT = path.join(ROOT, "packages", "verifier");
const ORIGIN = "https://app.test";
/** The frameworks the service installs next to the kit: majors within its peerDependencies. */
const FRAMEWORKS = ["express@^5", "fastify@^5", "fastify-plugin@^5"];

/** npm and node with a clean environment (no npm_* settings inherited from a surrounding `npm test`). */
const npmEnv = () =>
  baseEnv(["npm_config_cache", "npm_config_registry", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "no_proxy", "NODE_EXTRA_CA_CERTS"]);

async function npm(args: string[], cwd: string, timeoutMs = 240_000) {
  try {
    return await run("npm", args, { cwd, env: npmEnv(), timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`npm ${args.join(" ")} failed: ${e.message}\n${e.stdout ?? ""}\n${e.stderr ?? ""}`);
  }
}

/** Every file below `dir`, relative paths. */
function walk(dir: string, out: string[] = [], prefix = ""): string[] {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const rel = path.join(prefix, entry.name);
    if (entry.isDirectory()) walk(path.join(dir, entry.name), out, rel);
    else out.push(rel);
  }
  return out;
}

const kib = (dir: string) => run("du", ["-sk", dir]).then(({ stdout }) => Number(stdout.split(/\s/)[0]));

interface PackResult {
  filename: string;
  size: number;
  unpackedSize: number;
  files: { path: string; size: number }[];
}

const ESM_SCRIPT = `
import express from "express";
import Fastify from "fastify";
import { createVerifier, TokenVerificationError } from "@tessera/verifier";
import { bearerAuth, requireScope } from "@tessera/verifier/express";
import fastifyBearerAuth, { authenticate } from "@tessera/verifier/fastify";

const [issuer, token, tampered] = process.argv.slice(2);
const verifier = createVerifier({ issuer, audience: "api" });

const app = express();
app.get("/me", bearerAuth({ verifier, realm: "svc" }), (req, res) => res.json({ sub: req.auth.sub, status: req.auth.status ?? null }));
app.get("/admin", bearerAuth({ verifier, realm: "svc" }), requireScope("admin"), (req, res) => res.json({ sub: req.auth.sub }));
const server = await new Promise((resolve) => { const s = app.listen(0, "127.0.0.1", () => resolve(s)); });
const expressBase = "http://127.0.0.1:" + server.address().port;

const fastify = Fastify();
await fastify.register(fastifyBearerAuth, { verifier, realm: "svc" });
fastify.get("/me", { preHandler: authenticate }, async (req) => ({ sub: req.auth.sub, status: req.auth.status ?? null }));
const fastifyBase = await fastify.listen({ port: 0, host: "127.0.0.1" });

async function ask(base, path, t) {
  const res = await fetch(base + path, { headers: { authorization: "Bearer " + t } });
  return { status: res.status, challenge: res.headers.get("www-authenticate"), body: await res.json() };
}
const direct = async (t) => verifier.verify(t).then((c) => c.sub, (e) => (e instanceof TokenVerificationError ? e.code : "unexpected: " + e));
console.log(JSON.stringify({
  express: { valid: await ask(expressBase, "/me", token), tampered: await ask(expressBase, "/me", tampered), scope: await ask(expressBase, "/admin", token) },
  fastify: { valid: await ask(fastifyBase, "/me", token), tampered: await ask(fastifyBase, "/me", tampered) },
  direct: { valid: await direct(token), tampered: await direct(tampered) },
}));
server.close();
await fastify.close();
`;

const CJS_SCRIPT = `
const kit = require("@tessera/verifier");
const { bearerAuth } = require("@tessera/verifier/express");
const [issuer, token] = process.argv.slice(2);
kit.createVerifier({ issuer, audience: "api" }).verify(token).then(
  (claims) => console.log(JSON.stringify({ createVerifier: typeof kit.createVerifier, bearerAuth: typeof bearerAuth, sub: claims.sub })),
  (err) => { console.error(err); process.exit(1); },
);
`;

// A TypeScript service: the published declarations, and req.auth typed in Express handlers.
const TS_SOURCE = `
import express from "express";
import { createVerifier, type AccessTokenClaims, type TokenErrorCode } from "@tessera/verifier";
import { bearerAuth, requireRole } from "@tessera/verifier/express";
const verifier = createVerifier({ issuer: "https://auth.example.com", audience: "api", statusList: { maxStale: 60_000 } });
const app = express();
app.get("/me", bearerAuth({ verifier }), requireRole("admin"), (req, res) => {
  const claims: AccessTokenClaims | undefined = req.auth;
  const sub: string = req.auth!.sub;
  res.json({ sub, scopes: claims?.scopes });
});
const code: TokenErrorCode = "revoked";
// @ts-expect-error: not a code of the kit
const wrong: TokenErrorCode = "nope";
export { app, code, wrong };
`;

describe("the packed kit (npm pack, installed outside the repository)", () => {
  const temp: string[] = [];
  const tempDir = (prefix: string) => {
    const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
    temp.push(dir);
    return dir;
  };
  let packed: PackResult;
  let tarball: string;
  let project: string;

  beforeAll(async () => {
    const out = tempDir("tessera-pack-");
    const { stdout } = await npm(["pack", "--json", "--pack-destination", out], KIT);
    packed = (JSON.parse(stdout.slice(stdout.indexOf("["))) as PackResult[])[0]!;
    tarball = path.join(out, packed.filename);
    project = tempDir("tessera-service-");
    writeFileSync(path.join(project, "package.json"), JSON.stringify({ name: "a-service", private: true, type: "module" }, null, 2));
    await npm(["install", tarball, ...FRAMEWORKS, "--no-audit", "--no-fund", "--prefer-offline"], project);
  }, 300_000);
  const databases: TempDatabase[] = [];
  afterAll(async () => {
    await killAllIssuers();
    for (const db of databases) await db.drop();
    for (const d of temp) rmSync(d, { recursive: true, force: true });
  });

  it("npm pack builds dist/ and ships only the build, the README, the LICENSE and package.json", () => {
    const files = packed.files.map((f) => f.path).sort();
    expect(files).toEqual(expect.arrayContaining(["README.md", "LICENSE", "package.json", "dist/index.js", "dist/index.d.ts", "dist/fastify.js", "dist/express.js", "dist/express.d.ts"]));
    expect(files.filter((f) => !/^dist\/[a-z-]+\.(js|d\.ts)$/.test(f))).toEqual(["LICENSE", "README.md", "package.json"]);
    console.log(`@tessera/verifier tarball: ${packed.files.length} files, ${packed.size} bytes packed, ${packed.unpackedSize} bytes unpacked`);
  });

  it("installs without native modules or install scripts; jose is the kit's only dependency", async () => {
    const nodeModules = path.join(project, "node_modules");
    const files = walk(nodeModules);
    expect(files.filter((f) => f.endsWith(".node") || path.basename(f) === "binding.gyp")).toEqual([]);
    const withScripts = files
      .filter((f) => path.basename(f) === "package.json")
      .flatMap((f) => {
        let pkg: { name?: string; scripts?: Record<string, string> };
        try {
          pkg = JSON.parse(readFileSync(path.join(nodeModules, f), "utf8")) as typeof pkg;
        } catch {
          return [];
        }
        const hooks = ["preinstall", "install", "postinstall"].filter((s) => pkg.scripts?.[s] !== undefined);
        return hooks.length ? [`${f}: ${hooks.join(",")}`] : [];
      });
    expect(withScripts).toEqual([]);

    const kit = JSON.parse(readFileSync(path.join(nodeModules, "@tessera", "verifier", "package.json"), "utf8")) as { dependencies: Record<string, string> };
    expect(Object.keys(kit.dependencies)).toEqual(["jose"]);
    const [all, own, jose] = await Promise.all([kib(nodeModules), kib(path.join(nodeModules, "@tessera", "verifier")), kib(path.join(nodeModules, "jose"))]);
    console.log(`service node_modules: ${all} KiB in all (with ${FRAMEWORKS.join(", ")}); @tessera/verifier ${own} KiB + jose ${jose} KiB`);
    // The issue this answers: 229 MB when the kit came with the issuer.
    expect(own + jose).toBeLessThan(2048);
    expect(all).toBeLessThan(40 * 1024);
  });

  // The issuer behind the kit runs on each database (test names carry [sqlite] / [postgres]).
  for (const flavor of flavors()) it(`ESM (Express 5 and Fastify), CommonJS require() and TypeScript, against a real issuer process [${flavor}]`, async () => {
    const db = await freshDatabase(flavor);
    databases.push(db);
    const port = await freePort();
    const issuer = `http://127.0.0.1:${port}`;
    const data = tempDir("tessera-kit-issuer-");
    const proc = spawnIssuer({
      PORT: String(port),
      HOST: "127.0.0.1",
      ISSUER: issuer,
      ALLOWED_ORIGINS: ORIGIN,
      KEYS_DIR: path.join(data, "keys"),
      DATABASE_URL: db.url,
      COOKIE_SECURE: "false",
      LOG_LEVEL: "warn",
      PRUNE_INTERVAL: "0",
    });
    await waitReady(`${issuer}/readyz`, proc);

    // A user, then a token from the password grant, over HTTP as a client would.
    const email = uniqueEmail("kit");
    const registered = await fetch(`${issuer}/auth/register`, {
      method: "POST",
      headers: { "content-type": "application/json", origin: ORIGIN },
      body: JSON.stringify({ email, password: PASSWORD }),
    });
    expect(registered.status, await registered.clone().text()).toBe(201);
    const grant = await fetch(`${issuer}/oauth/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "password", username: email, password: PASSWORD, client_id: "web" }).toString(),
    });
    const { access_token: token } = (await grant.json()) as { access_token: string };
    expect(grant.status).toBe(200);
    const [h, p, s] = token.split(".") as [string, string, string];
    const payload = JSON.parse(Buffer.from(p, "base64url").toString("utf8")) as Record<string, unknown>;
    const tampered = `${h}.${Buffer.from(JSON.stringify({ ...payload, sub: "someone-else" })).toString("base64url")}.${s}`;

    writeFileSync(path.join(project, "service.js"), ESM_SCRIPT);
    writeFileSync(path.join(project, "service.cjs"), CJS_SCRIPT);
    const node = (script: string) => run(process.execPath, [script, issuer, token, tampered], { cwd: project, env: npmEnv(), timeout: 60_000 });

    const esm = JSON.parse((await node("service.js")).stdout) as Record<string, Record<string, { status: number; challenge: string | null; body: Record<string, unknown> }>> & {
      direct: { valid: string; tampered: string };
    };
    for (const framework of ["express", "fastify"] as const) {
      expect([framework, esm[framework]!.valid!.status, esm[framework]!.valid!.body.sub]).toEqual([framework, 200, payload.sub]);
      expect([framework, esm[framework]!.tampered!.status]).toEqual([framework, 401]);
      expect(esm[framework]!.tampered!.challenge).toMatch(/^Bearer realm="svc", error="invalid_token"/);
      // Whatever the token carries about its status is what the issuer put in it, checked.
      expect(esm[framework]!.valid!.body.status).toEqual(payload.status ?? null);
    }
    expect(esm.express!.scope!.status).toBe(403);
    expect(esm.direct).toEqual({ valid: payload.sub, tampered: "bad_signature" });

    const cjs = JSON.parse((await node("service.cjs")).stdout) as Record<string, unknown>;
    expect(cjs).toEqual({ createVerifier: "function", bearerAuth: "function", sub: payload.sub });

    // TypeScript, with the service's own compiler: the published .d.ts files and the req.auth augmentation.
    await npm(["install", "--save-dev", "typescript@5", "@types/express@5", "@types/node@20", "--no-audit", "--no-fund", "--prefer-offline"], project);
    writeFileSync(path.join(project, "service.ts"), TS_SOURCE);
    const tsconfig = { compilerOptions: { module: "NodeNext", moduleResolution: "NodeNext", target: "ES2022", strict: true, noEmit: true, types: ["node"] }, files: ["service.ts"] };
    writeFileSync(path.join(project, "tsconfig.json"), JSON.stringify(tsconfig));
    try {
      await run(process.execPath, [path.join(project, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.json"], { cwd: project, timeout: 120_000 });
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string };
      throw new Error(`tsc failed:\n${e.stdout ?? ""}${e.stderr ?? ""}`);
    }
    await proc.stop();
  }, 300_000);
});
