// Fails CI when a required half of the suite did not run:
// - Postgres: every integration test is named "... [postgres]" by describeEachDb; there must be
//   many, all passed, none skipped, and no fewer than the "[sqlite]" ones;
// - Redis: the Redis-backed tests are named "... [redis]"; there must be some, all passed.
import { readFileSync } from "node:fs";

const report = JSON.parse(readFileSync(process.argv[2], "utf8"));
const results = report.testResults.flatMap((f) => f.assertionResults);
let failed = false;

const pg = results.filter((r) => r.fullName.includes("[postgres]"));
const passed = pg.filter((r) => r.status === "passed").length;
const notPassed = pg.filter((r) => r.status !== "passed");
const sqlite = results.filter((r) => r.fullName.includes("[sqlite]")).length;
console.log(`postgres tests: ${passed} passed, ${notPassed.length} not passed; sqlite tests: ${sqlite}`);
if (passed === 0 || notPassed.length > 0 || passed < sqlite) {
  for (const r of notPassed) console.log(`  ${r.status}: ${r.fullName}`);
  console.error("The Postgres suite was skipped or incomplete.");
  failed = true;
}

const redis = results.filter((r) => r.fullName.includes("[redis]"));
const redisPassed = redis.filter((r) => r.status === "passed").length;
const redisNotPassed = redis.filter((r) => r.status !== "passed");
console.log(`redis tests: ${redisPassed} passed, ${redisNotPassed.length} not passed`);
if (redisPassed === 0 || redisNotPassed.length > 0) {
  for (const r of redisNotPassed) console.log(`  ${r.status}: ${r.fullName}`);
  console.error("The Redis suite was skipped or incomplete.");
  failed = true;
}
if (failed) process.exit(1);
