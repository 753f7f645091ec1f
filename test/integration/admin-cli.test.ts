// The client and user administration commands as an operator runs them: `npm run cli --
// clients ...|users ...` as real child processes (node --import tsx scripts/cli.ts) on a real
// database, checked against an in-process issuer on that same database: what they print, their
// exit codes, what they store (hashes only), and what a client then sees at the token endpoint.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { LightMyRequestResponse } from "fastify";
import { afterAll, afterEach, beforeEach, expect, it } from "vitest";
import { describeResult, killAllScripts, runCli, type ScriptResult } from "../helpers/cli.ts";
import {
  PASSWORD,
  describeEachDb,
  errorOf,
  form,
  freshDatabase,
  passwordGrant,
  refreshGrant,
  startIssuer,
  uniqueEmail,
  verifyAccessToken,
  type TestIssuer,
  type TokenPair,
} from "../helpers/issuer.ts";

const tempDirs: string[] = [];
afterAll(async () => {
  await killAllScripts();
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});

const formEncode = (s: string) => new URLSearchParams({ x: s }).toString().slice(2);
const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${formEncode(id)}:${formEncode(secret)}`).toString("base64")}`;
const expectExit = (r: ScriptResult, code: number) => expect(r.code, describeResult(r)).toBe(code);

interface CreatedClient {
  client_id: string;
  client_secret?: string;
  name: string;
  type: string;
  grant_types: string[];
  scopes: string[];
  audiences: string[];
  disabled_at: string | null;
}

/** stdout of a --json command: exactly one JSON object (and nothing else). */
function oneJson<T>(r: ScriptResult): T {
  expectExit(r, 0);
  const lines = r.stdout.split("\n").filter((l) => l.trim() !== "");
  expect(lines, describeResult(r)).toHaveLength(1);
  const parsed = JSON.parse(lines[0]!) as unknown;
  expect(typeof parsed === "object" && parsed !== null && !Array.isArray(parsed), describeResult(r)).toBe(true);
  return parsed as T;
}

describeEachDb("admin CLI: clients and users", (flavor) => {
  let env: Record<string, string>;
  let issuer: TestIssuer;
  let drop: () => Promise<void>;

  beforeEach(async () => {
    const db = await freshDatabase(flavor);
    drop = db.drop;
    const dir = mkdtempSync(path.join(os.tmpdir(), "tessera-cli-"));
    tempDirs.push(dir);
    const keysDir = path.join(dir, "keys");
    // The fresh database is migrated already: skip the migrate step the CLI runs by default.
    env = { DATABASE_URL: db.url, KEYS_DIR: keysDir, LOG_LEVEL: "warn", MIGRATE_ON_START: "false" };
    issuer = await startIssuer(flavor, { databaseUrl: db.url, keysDir, env: { CLIENT_CACHE_TTL: "0" } });
  });
  afterEach(async () => {
    await killAllScripts();
    await issuer?.close();
    await drop?.();
  });

  function clientCredentials(id: string, secret: string, params: Record<string, string> = {}): Promise<LightMyRequestResponse> {
    const f = form({ grant_type: "client_credentials", ...params });
    return issuer.app.inject({ method: "POST", url: "/oauth/token", headers: { ...f.headers, authorization: basic(id, secret) }, payload: f.payload });
  }

  it("clients create --confidential --json: one JSON object with a 256-bit secret, stored only as a hash; the issuer accepts it; rotate-secret and disable take effect", async () => {
    const created = await runCli(
      ["clients", "create", "--name", "billing", "--confidential", "--grant-types", "client_credentials", "--scopes", "read,write", "--audience", "billing-api", "--json"],
      env,
    );
    const c = oneJson<CreatedClient>(created);
    expect(typeof c.client_id).toBe("string");
    expect(c.client_id.length).toBeGreaterThan(0);
    expect(c.client_secret).toMatch(/^[A-Za-z0-9_-]{43,}$/);
    expect(Buffer.from(c.client_secret!, "base64url").length).toBeGreaterThanOrEqual(32);
    expect(c).toMatchObject({ name: "billing", type: "confidential", grant_types: ["client_credentials"], scopes: ["read", "write"], audiences: ["billing-api"] });
    const secret = c.client_secret!;
    expect(created.stderr).not.toContain(secret);

    // Stored as a hash only: the secret appears nowhere in the client's row or the audit trail.
    const row = await issuer.storage.db.client.findUniqueOrThrow({ where: { id: c.client_id } });
    expect(row.secretHash).toBeTruthy();
    expect(JSON.stringify(row)).not.toContain(secret);
    const audit = await issuer.storage.db.auditEvent.findMany();
    expect(JSON.stringify(audit)).not.toContain(secret);

    // Listed, without the secret.
    const listed = await runCli(["clients", "list", "--json"], env);
    const { clients } = oneJson<{ clients: CreatedClient[] }>(listed);
    const mine = clients.find((x) => x.client_id === c.client_id);
    expect(mine).toMatchObject({ name: "billing", type: "confidential", grant_types: ["client_credentials"], disabled_at: null });
    expect(mine).not.toHaveProperty("client_secret");
    expect(listed.stdout).not.toContain(secret);
    expect(listed.stdout).not.toContain(row.secretHash!);
    const text = await runCli(["clients", "list"], env);
    expectExit(text, 0);
    expect(text.stdout).toContain(c.client_id);
    expect(text.stdout).not.toContain(secret);

    // The issuer on the same database issues tokens for it.
    const ok = await clientCredentials(c.client_id, secret);
    expect(ok.statusCode, ok.body).toBe(200);
    const body = ok.json() as { access_token: string; scope: string; refresh_token?: string };
    expect(body.scope.split(" ").sort()).toEqual(["read", "write"]);
    expect(body).not.toHaveProperty("refresh_token");
    const claims = await verifyAccessToken(issuer, body.access_token, { audience: "billing-api" });
    expect(claims).toMatchObject({ sub: c.client_id, client_id: c.client_id, aud: "billing-api" });
    expect(errorOf(await clientCredentials(c.client_id, secret, { resource: "payroll-api" })).error).toBe("invalid_target");

    // rotate-secret: a new secret that works; the old one fails.
    const rotated = oneJson<{ client_id: string; client_secret: string }>(await runCli(["clients", "rotate-secret", c.client_id, "--json"], env));
    expect(rotated.client_id).toBe(c.client_id);
    expect(rotated.client_secret).toMatch(/^[A-Za-z0-9_-]{43,}$/);
    expect(rotated.client_secret).not.toBe(secret);
    const old = await clientCredentials(c.client_id, secret);
    expect(errorOf(old)).toMatchObject({ status: 401, error: "invalid_client" });
    expect(old.headers["www-authenticate"]).toMatch(/^Basic\b/);
    expect((await clientCredentials(c.client_id, rotated.client_secret)).statusCode).toBe(200);
    const rowAfter = await issuer.storage.db.client.findUniqueOrThrow({ where: { id: c.client_id } });
    expect(JSON.stringify(rowAfter)).not.toContain(rotated.client_secret);

    // disable: then 401 with any secret.
    const disabled = await runCli(["clients", "disable", c.client_id], env);
    expectExit(disabled, 0);
    expect(disabled.stdout).toContain(c.client_id);
    expect(errorOf(await clientCredentials(c.client_id, rotated.client_secret))).toMatchObject({ status: 401, error: "invalid_client" });
    const afterDisable = oneJson<{ clients: CreatedClient[] }>(await runCli(["clients", "list", "--json"], env));
    expect(afterDisable.clients.find((x) => x.client_id === c.client_id)?.disabled_at).toEqual(expect.any(String));
  });

  it("clients create without --json prints the client_id and the secret once", async () => {
    const r = await runCli(["clients", "create", "--name", "reports", "--confidential", "--grant-types", "client_credentials", "--scopes", "read"], env);
    expectExit(r, 0);
    const id = /client_id:\s*(\S+)/.exec(r.stdout)?.[1];
    const secret = /client_secret:\s*(\S+)/.exec(r.stdout)?.[1];
    expect(id, describeResult(r)).toBeTruthy();
    expect(secret, describeResult(r)).toMatch(/^[A-Za-z0-9_-]{43,}$/);
    expect((await clientCredentials(id!, secret!)).statusCode).toBe(200);
  });

  it("a public client (no secret) can be created for the password grant", async () => {
    const c = oneJson<CreatedClient>(await runCli(["clients", "create", "--name", "spa", "--grant-types", "password,refresh_token", "--scopes", "profile", "--json"], env));
    expect(c.type).toBe("public");
    expect(c).not.toHaveProperty("client_secret");
    const row = await issuer.storage.db.client.findUniqueOrThrow({ where: { id: c.client_id } });
    expect(row.secretHash).toBeNull();
  });

  it("clients create: a public client with client_credentials, or an unknown grant type, exits 64 with a message and creates nothing", async () => {
    const before = await issuer.storage.db.client.count();
    const pub = await runCli(["clients", "create", "--name", "nope", "--grant-types", "client_credentials", "--scopes", "read"], env);
    expectExit(pub, 64);
    expect(pub.stderr).toMatch(/confidential/);
    const unknown = await runCli(["clients", "create", "--name", "nope", "--confidential", "--grant-types", "client_credentials,implicit", "--scopes", "read"], env);
    expectExit(unknown, 64);
    expect(unknown.stderr).toContain("implicit");
    const missing = await runCli(["clients", "create", "--confidential", "--grant-types", "client_credentials"], env);
    expectExit(missing, 64);
    expect(missing.stderr).toMatch(/--name/);
    expect(await issuer.storage.db.client.count()).toBe(before);
  });

  it("clients disable / rotate-secret of an unknown client exit 1", async () => {
    const d = await runCli(["clients", "disable", "c_does_not_exist"], env);
    expectExit(d, 1);
    expect(d.stdout + d.stderr).toContain("c_does_not_exist");
    expectExit(await runCli(["clients", "rotate-secret", "c_does_not_exist"], env), 1);
  });

  it("users create --roles admin: login works and the access token carries roles [admin]; users disable revokes sessions and stops login", async () => {
    const email = uniqueEmail("cli-admin");
    const created = await runCli(["users", "create", "--email", email, "--password", PASSWORD, "--roles", "admin"], env);
    expectExit(created, 0);
    expect(created.stdout).toContain(email);
    expect(created.stdout).not.toContain(PASSWORD);

    const res = await passwordGrant(issuer.app, email, PASSWORD);
    expect(res.statusCode, res.body).toBe(200);
    const pair = res.json() as TokenPair;
    expect((await verifyAccessToken(issuer, pair.access_token)).roles).toEqual(["admin"]);
    const second = (await passwordGrant(issuer.app, email, PASSWORD)).json() as TokenPair;
    const wrong = await passwordGrant(issuer.app, email, `${PASSWORD}?`);

    const disabled = await runCli(["users", "disable", email], env);
    expectExit(disabled, 0);
    expect(disabled.stdout).toMatch(/\b2 sessions revoked/);

    expect(errorOf(await refreshGrant(issuer.app, pair.refresh_token))).toMatchObject({ status: 400, error: "invalid_grant" });
    expect(errorOf(await refreshGrant(issuer.app, second.refresh_token))).toMatchObject({ status: 400, error: "invalid_grant" });
    const login = await passwordGrant(issuer.app, email, PASSWORD);
    expect(errorOf(login)).toMatchObject({ status: 400, error: "invalid_grant" });
    expect(login.json()).toEqual(wrong.json());

    // Disabling again is harmless: nothing left to revoke.
    const again = await runCli(["users", "disable", email, "--json"], env);
    expect(oneJson<{ sessions_revoked: number }>(again).sessions_revoked).toBe(0);
  });

  it("users disable matches the email case-insensitively", async () => {
    const email = uniqueEmail("cli-case");
    expectExit(await runCli(["users", "create", "--email", email, "--password", PASSWORD], env), 0);
    expect((await passwordGrant(issuer.app, email, PASSWORD)).statusCode).toBe(200);
    const r = await runCli(["users", "disable", email.toUpperCase()], env);
    expectExit(r, 0);
    expect(r.stdout).toMatch(/\b1 session revoked/);
    expect(errorOf(await passwordGrant(issuer.app, email, PASSWORD)).error).toBe("invalid_grant");
  });

  it("users disable of an unknown email exits 1", async () => {
    const r = await runCli(["users", "disable", uniqueEmail("ghost")], env);
    expectExit(r, 1);
    expect(r.stdout + r.stderr).toMatch(/no user/i);
  });

  it("users create without --password exits 64", async () => {
    expectExit(await runCli(["users", "create", "--email", uniqueEmail("nopw")], env), 64);
  });

  it("users list/show/set-roles/set-password/sessions/revoke-sessions/enable and audit list: the API's rules, with the CLI named as actor", async () => {
    const email = uniqueEmail("cli-users");
    const created = oneJson<{ id: string }>(await runCli(["users", "create", "--email", email, "--password", PASSWORD, "--json"], env));
    const first = (await passwordGrant(issuer.app, email, PASSWORD)).json() as TokenPair;
    const second = (await passwordGrant(issuer.app, email, PASSWORD)).json() as TokenPair;

    const listed = oneJson<{ users: Array<{ email: string }>; next_cursor: string | null }>(await runCli(["users", "list", "--email", email.split("@")[0]!.toUpperCase(), "--json"], env));
    expect(listed).toEqual({ users: [expect.objectContaining({ email })], next_cursor: null });
    expect(oneJson<{ roles: string[] }>(await runCli(["users", "set-roles", created.id, "--roles", "ops,billing", "--json"], env)).roles).toEqual(["ops", "billing"]);
    expect(oneJson<{ id: string; roles: string[] }>(await runCli(["users", "show", email, "--json"], env))).toMatchObject({ id: created.id, roles: ["ops", "billing"] });

    const sessions = oneJson<{ sessions: Array<{ id: string }> }>(await runCli(["users", "sessions", email, "--json"], env)).sessions;
    expect(sessions).toHaveLength(2);
    const revokeOne = await runCli(["sessions", "revoke", sessions[0]!.id], env);
    expectExit(revokeOne, 0);
    expect(oneJson<{ sessions_revoked: number }>(await runCli(["users", "revoke-sessions", email, "--json"], env)).sessions_revoked).toBe(1);
    for (const pair of [first, second]) expect(errorOf(await refreshGrant(issuer.app, pair.refresh_token))).toMatchObject({ status: 400, error: "invalid_grant" });

    const newPassword = "set by the operator 2026";
    const set = await runCli(["users", "set-password", email, "--password", newPassword], env);
    expectExit(set, 0);
    expect(set.stdout + set.stderr).not.toContain(newPassword);
    expect((await passwordGrant(issuer.app, email, newPassword)).statusCode).toBe(200);
    expect(errorOf(await passwordGrant(issuer.app, email, PASSWORD)).error).toBe("invalid_grant");

    const weak = await runCli(["users", "set-password", email, "--password", "short"], env);
    expectExit(weak, 64);
    expect(weak.stderr).toContain("--password");

    const events = oneJson<{ events: Array<{ type: string; details: { actor?: unknown } }> }>(await runCli(["audit", "list", "--user", created.id, "--json"], env)).events;
    expect(events.map((e) => e.type)).toEqual(expect.arrayContaining(["user.registered", "user.roles_changed", "session.revoked", "sessions.revoked", "password.reset"]));
    // The logins were the user's own (in the issuer); everything else the CLI did.
    for (const e of events.filter((e) => !e.type.startsWith("login."))) expect(e.details.actor, e.type).toEqual({ via: "cli" });
    expectExit(await runCli(["users", "show", "no-such-user-id"], env), 1);
  }, 120_000);

  it("clients show/update/enable: the same checks as the API (a bad value exits 64 naming its flag)", async () => {
    const c = oneJson<CreatedClient>(await runCli(["clients", "create", "--name", "svc", "--confidential", "--grant-types", "client_credentials", "--scopes", "read,write", "--json"], env));
    const updated = oneJson<CreatedClient & { access_token_ttl: number }>(await runCli(["clients", "update", c.client_id, "--scopes", "read", "--access-token-ttl", "90", "--json"], env));
    expect(updated).toMatchObject({ scopes: ["read"], access_token_ttl: 90 });
    expect(errorOf(await clientCredentials(c.client_id, c.client_secret!, { scope: "write" })).error).toBe("invalid_scope");
    const bad = await runCli(["clients", "update", c.client_id, "--access-token-ttl", "soon"], env);
    expectExit(bad, 64);
    expect(bad.stderr).toContain("--access-token-ttl");
    expectExit(await runCli(["clients", "disable", c.client_id], env), 0);
    expect(errorOf(await clientCredentials(c.client_id, c.client_secret!)).error).toBe("invalid_client");
    expect(oneJson<CreatedClient>(await runCli(["clients", "enable", c.client_id, "--json"], env)).disabled_at).toBeNull();
    expect((await clientCredentials(c.client_id, c.client_secret!)).statusCode).toBe(200);
    expect(oneJson<CreatedClient>(await runCli(["clients", "show", c.client_id, "--json"], env))).not.toHaveProperty("client_secret");
  }, 90_000);
});
