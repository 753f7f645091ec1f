// Admin CLI: npm run cli -- <command>. Talks to the database and key store directly, through
// the same composition root as the server (never through HTTP), and runs the same admin
// functions (src/admin/) as the admin API: one rule, two doors.
import { listAuditEvents } from "../src/admin/audit.ts";
import { createClient, disableClient, enableClient, getClient, listClients, rotateClientSecret, updateClient } from "../src/admin/clients.ts";
import { openAdmin, runMain, type AdminContext } from "../src/admin/context.ts";
import { listArg, UsageError, type CommandResult } from "../src/admin/command.ts";
import { listKeys, revokeKey, rotateKeys, rotateKeysNow, sealKeys } from "../src/admin/keys.ts";
import {
  createUser,
  disableUser,
  enableUser,
  getUser,
  listUsers,
  listUserSessions,
  revokeSession,
  revokeUserSessions,
  setUserPassword,
  setUserRoles,
  userRefOf,
} from "../src/admin/users.ts";
import { InvalidField, OAuthError } from "../src/domain/errors.ts";

const USAGE = `usage: npm run cli -- <command> [--json]

  keys list                 every key: kid, alg, state, created, activated, retired, publishes-until
  keys rotate               what the scheduled rotation does (same as npm run rotate-keys)
  keys rotate --now         emergency: a new key signs immediately, the old one is retired
  keys revoke <kid>         compromised key: removed from the JWKS at once, never signs again
  keys seal                 KEY_STORE=file: seal plaintext key files and the secret with KEYS_ENCRYPTION_KEY

  clients create --name <n> [--confidential] --grant-types a,b --scopes s1,s2 [--audience aud] [--resource res]
                 [--access-token-ttl s] [--refresh-token-ttl s]
                            prints client_id (and client_secret once, for confidential clients)
  clients list [--limit n] [--cursor c]
  clients show <client_id>
  clients update <client_id> [--name n] [--grant-types a,b] [--scopes s1,s2] [--audience a] [--resource r]
                 [--access-token-ttl s|default] [--refresh-token-ttl s|default]
  clients disable <client_id>
  clients enable <client_id>
  clients rotate-secret <client_id>

  users create --email <e> --password <p> [--roles r1,r2]
  users list [--email part] [--limit n] [--cursor c]
  users show <email|id>
  users set-roles <email|id> --roles r1,r2      (--roles "" for none)
  users disable <email|id>  also revokes every session of the user
  users enable <email|id>
  users set-password <email|id> --password <p>  also revokes every session of the user
  users sessions <email|id> the user's live sessions
  users revoke-sessions <email|id>

  sessions revoke <session_id>

  audit list [--type t] [--user id] [--client id] [--from time] [--to time] [--limit n] [--cursor c]
                            newest first
`;

const BOOLEAN_FLAGS = new Set(["json", "now", "confidential"]);

function parse(argv: string[]): { words: string[]; flags: Map<string, string | true> } {
  const words: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith("--")) {
      words.push(a);
      continue;
    }
    const [name, inline] = a.slice(2).split("=", 2) as [string, string | undefined];
    if (inline !== undefined) flags.set(name, inline);
    else if (BOOLEAN_FLAGS.has(name)) flags.set(name, true);
    else {
      const value = argv[i + 1];
      if (value === undefined || value.startsWith("--")) throw new UsageError(`--${name} needs a value`);
      flags.set(name, value);
      i++;
    }
  }
  return { words, flags };
}

type Flag = (n: string) => string | undefined;
type Command = (ctx: AdminContext, words: string[], flag: Flag, has: (n: string) => boolean) => Promise<CommandResult & { ok?: boolean }>;

/** A flag's API field name: --grant-types -> grant_types (errors name the flag back). */
const flagOf = (field: string): string => `--${({ audiences: "audience", resources: "resource", user_id: "user", client_id: "client" } as Record<string, string>)[field] ?? field.replace(/_/g, "-")}`;

const list = (v: string | undefined) => (v === undefined ? undefined : listArg(v));
const seconds = (v: string | undefined): number | null | undefined => (v === undefined ? undefined : v === "default" ? null : /^\d+$/.test(v) ? Number(v) : NaN);
const integer = (v: string | undefined): number | undefined => (v === undefined ? undefined : /^\d+$/.test(v) ? Number(v) : NaN);
const page = (f: Flag) => ({ limit: integer(f("limit")), cursor: f("cursor") });

const COMMANDS: Record<string, Command> = {
  "keys list": (ctx) => listKeys(ctx),
  "keys rotate": (ctx, _w, _f, has) => (has("now") ? rotateKeysNow(ctx) : rotateKeys(ctx)),
  "keys revoke": (ctx, w) => revokeKey(ctx, need(w[2], "<kid>")),
  "keys seal": (ctx) => sealKeys(ctx),
  "clients create": (ctx, _w, f, has) =>
    createClient(ctx, {
      name: f("name") ?? "",
      type: has("confidential") ? "confidential" : "public",
      grantTypes: list(f("grant-types")) ?? [],
      scopes: list(f("scopes")),
      audiences: list(f("audience")),
      resources: list(f("resource")),
      accessTokenTtl: seconds(f("access-token-ttl")),
      refreshTokenTtl: seconds(f("refresh-token-ttl")),
    }),
  "clients list": (ctx, _w, f) => listClients(ctx, page(f)),
  "clients show": (ctx, w) => getClient(ctx, need(w[2], "<client_id>")),
  "clients update": (ctx, w, f) =>
    updateClient(ctx, need(w[2], "<client_id>"), {
      name: f("name"),
      grantTypes: list(f("grant-types")),
      scopes: list(f("scopes")),
      audiences: list(f("audience")),
      resources: list(f("resource")),
      accessTokenTtl: seconds(f("access-token-ttl")),
      refreshTokenTtl: seconds(f("refresh-token-ttl")),
    }),
  "clients disable": (ctx, w) => disableClient(ctx, need(w[2], "<client_id>")),
  "clients enable": (ctx, w) => enableClient(ctx, need(w[2], "<client_id>")),
  "clients rotate-secret": (ctx, w) => rotateClientSecret(ctx, need(w[2], "<client_id>")),
  "users create": (ctx, _w, f) => createUser(ctx, { email: f("email") ?? "", password: f("password") ?? "", roles: list(f("roles")) }),
  "users list": (ctx, _w, f) => listUsers(ctx, { ...page(f), email: f("email") }),
  "users show": (ctx, w) => getUser(ctx, userRefOf(need(w[2], "<email|id>"))),
  "users set-roles": (ctx, w, f, has) => {
    if (!has("roles")) throw new UsageError("--roles is required (--roles \"\" for none)");
    return setUserRoles(ctx, userRefOf(need(w[2], "<email|id>")), list(f("roles")) ?? []);
  },
  "users disable": (ctx, w) => disableUser(ctx, userRefOf(need(w[2], "<email|id>"))),
  "users enable": (ctx, w) => enableUser(ctx, userRefOf(need(w[2], "<email|id>"))),
  "users set-password": (ctx, w, f) => setUserPassword(ctx, userRefOf(need(w[2], "<email|id>")), f("password") ?? ""),
  "users sessions": (ctx, w) => listUserSessions(ctx, userRefOf(need(w[2], "<email|id>"))),
  "users revoke-sessions": (ctx, w) => revokeUserSessions(ctx, userRefOf(need(w[2], "<email|id>"))),
  "sessions revoke": (ctx, w) => revokeSession(ctx, need(w[2], "<session_id>")),
  "audit list": (ctx, _w, f) =>
    listAuditEvents(ctx, { ...page(f), type: f("type"), userId: f("user"), clientId: f("client"), from: f("from"), to: f("to") }),
};

function need(v: string | undefined, what: string): string {
  if (!v) throw new UsageError(`missing ${what}`);
  return v;
}

await runMain(async () => {
  let parsed;
  try {
    parsed = parse(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}`);
    return 64;
  }
  const { words, flags } = parsed;
  const command = COMMANDS[`${words[0]} ${words[1]}`];
  if (!command) {
    process.stderr.write(USAGE);
    return 64; // EX_USAGE
  }
  const ctx = await openAdmin();
  try {
    const flag = (n: string) => {
      const v = flags.get(n);
      return typeof v === "string" ? v : undefined;
    };
    const result = await command(ctx, words, flag, (n) => flags.has(n));
    process.stdout.write((flags.has("json") ? JSON.stringify(result.json) : result.text) + "\n");
    return result.ok === false ? 1 : 0;
  } catch (err) {
    // A value the rules refuse: the command was used wrongly (64, with the usage).
    if (err instanceof InvalidField) {
      process.stderr.write(`${flagOf(err.field)}: ${err.description}\n\n${USAGE}`);
      return 64;
    }
    if (err instanceof UsageError) {
      process.stderr.write(`${err.message}\n\n${USAGE}`);
      return 64;
    }
    // Not found, conflicts, other refusals: one line, exit 1.
    if (err instanceof OAuthError && err.status < 500) {
      process.stderr.write(`${err.description}\n`);
      return 1;
    }
    throw err;
  } finally {
    await ctx.close();
  }
});
