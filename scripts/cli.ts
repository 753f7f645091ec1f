// Admin CLI: npm run cli -- <command>. Talks to the database and key store directly, through
// the same composition root as the server (never through HTTP).
import { openAdmin, runMain } from "../src/admin/context.ts";
import { listKeys, revokeKey, rotateKeys, rotateKeysNow, type CommandResult } from "../src/admin/keys.ts";

const USAGE = `usage: npm run cli -- <command> [--json]

  keys list                 every key: kid, alg, state, created, activated, retired, publishes-until
  keys rotate               what the scheduled rotation does (same as npm run rotate-keys)
  keys rotate --now         emergency: a new key signs immediately, the old one is retired
  keys revoke <kid>         compromised key: removed from the JWKS at once, never signs again
`;

await runMain(async () => {
  const args = process.argv.slice(2);
  const json = args.includes("--json");
  const words = args.filter((a) => !a.startsWith("--"));
  const [group, command, arg] = words;
  if (group !== "keys" || !command || !["list", "rotate", "revoke"].includes(command) || (command === "revoke" && !arg)) {
    process.stderr.write(USAGE);
    return 64; // EX_USAGE
  }
  const ctx = await openAdmin();
  try {
    let result: CommandResult & { found?: boolean; ok?: boolean };
    if (command === "list") result = await listKeys(ctx);
    else if (command === "rotate") result = args.includes("--now") ? await rotateKeysNow(ctx) : await rotateKeys(ctx);
    else result = await revokeKey(ctx, arg!);
    process.stdout.write((json ? JSON.stringify(result.json) : result.text) + "\n");
    return result.found === false || result.ok === false ? 1 : 0;
  } finally {
    await ctx.close();
  }
});
