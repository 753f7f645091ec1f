// Fails CI when the Postgres half of the suite did not run: every integration test is named
// "... [postgres]" by describeEachDb; there must be many, all passed, none skipped.
import { readFileSync } from "node:fs";

const report = JSON.parse(readFileSync(process.argv[2], "utf8"));
const results = report.testResults.flatMap((f) => f.assertionResults);
const pg = results.filter((r) => r.fullName.includes("[postgres]"));
const passed = pg.filter((r) => r.status === "passed").length;
const notPassed = pg.filter((r) => r.status !== "passed");
const sqlite = results.filter((r) => r.fullName.includes("[sqlite]")).length;
console.log(`postgres tests: ${passed} passed, ${notPassed.length} not passed; sqlite tests: ${sqlite}`);
if (passed === 0 || notPassed.length > 0 || passed < sqlite) {
  for (const r of notPassed) console.log(`  ${r.status}: ${r.fullName}`);
  console.error("The Postgres suite was skipped or incomplete.");
  process.exit(1);
}
