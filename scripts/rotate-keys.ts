// Scheduled key rotation (cron / Kubernetes CronJob): does whatever is due and nothing else,
// prunes dead sessions, prints what it did (--json for machines), exits 0 when nothing was due.
import { openAdmin, runMain } from "../src/admin/context.ts";
import { rotateKeys } from "../src/admin/keys.ts";

await runMain(async () => {
  const ctx = await openAdmin();
  try {
    const result = await rotateKeys(ctx);
    process.stdout.write((process.argv.includes("--json") ? JSON.stringify(result.json) : result.text) + "\n");
    return result.ok ? 0 : 1;
  } finally {
    await ctx.close();
  }
});
