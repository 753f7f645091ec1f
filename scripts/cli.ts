// Admin CLI: npm run cli -- <command>. Talks to the database and key store directly, through
// the same composition root as the server (never through HTTP).
import { createClient, disableClient, listClients, rotateClientSecret } from "../src/admin/clients.ts";
import { openAdmin, runMain, type AdminContext } from "../src/admin/context.ts";
import { UsageError, type CommandResult } from "../src/admin/command.ts";
import { listKeys, revokeKey, rotateKeys, rotateKeysNow, sealKeys } from "../src/admin/keys.ts";
import { createUser, disableUser } from "../src/admin/users.ts";

const USAGE = `usage: npm run cli -- <command> [--json]

  keys list                 every key: kid, alg, state, created, activated, retired, publishes-until
  keys rotate               what the scheduled rotation does (same as npm run rotate-keys)
  keys rotate --now         emergency: a new key signs immediately, the old one is retired
  keys revoke <kid>         compromised key: removed from the JWKS at once, never signs again
  keys seal                 KEY_STORE=file: seal plaintext key files and the secret with KEYS_ENCRYPTION_KEY

  clients create --name <n> [--confidential] --grant-types a,b --scopes s1,s2 [--audience aud] [--resource res]
                 [--access-token-ttl s] [--refresh-token-ttl s]
                            prints client_id (and client_secret once, for confidential clients)
  clients list
  clients disable <client_id>
  clients rotate-secret <client_id>

  users create --email <e> --password <p> [--roles r1,r2]
  users disable <email>     also revokes every session of the user
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

type Command = (ctx: AdminContext, words: string[], flag: (n: string) => string | undefined, has: (n: string) => boolean) => Promise<CommandResult & { found?: boolean; ok?: boolean }>;

const COMMANDS: Record<string, Command> = {
  "keys list": (ctx) => listKeys(ctx),
  "keys rotate": (ctx, _w, _f, has) => (has("now") ? rotateKeysNow(ctx) : rotateKeys(ctx)),
  "keys revoke": (ctx, w) => revokeKey(ctx, need(w[2], "<kid>")),
  "keys seal": (ctx) => sealKeys(ctx),
  "clients create": (ctx, _w, f, has) =>
    createClient(ctx, {
      name: f("name"),
      confidential: has("confidential"),
      grantTypes: f("grant-types"),
      scopes: f("scopes"),
      audience: f("audience"),
      resource: f("resource"),
      accessTokenTtl: f("access-token-ttl"),
      refreshTokenTtl: f("refresh-token-ttl"),
    }),
  "clients list": (ctx) => listClients(ctx),
  "clients disable": (ctx, w) => disableClient(ctx, need(w[2], "<client_id>")),
  "clients rotate-secret": (ctx, w) => rotateClientSecret(ctx, need(w[2], "<client_id>")),
  "users create": (ctx, _w, f) => createUser(ctx, { email: f("email"), password: f("password"), roles: f("roles") }),
  "users disable": (ctx, w) => disableUser(ctx, need(w[2], "<email>")),
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
    return result.found === false || result.ok === false ? 1 : 0;
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`${err.message}\n\n${USAGE}`);
      return 64;
    }
    throw err;
  } finally {
    await ctx.close();
  }
});
