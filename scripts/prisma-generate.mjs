// postinstall: generate both Prisma clients (SQLite and Postgres) from their schemas.
// Runs offline: the "client" engine type needs no native query engine download.
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const prismaCli = require.resolve("prisma/build/index.js");
const flavors = {
  sqlite: "file:./data/tessera.db",
  postgres: "postgresql://localhost:5432/unused",
};
for (const [flavor, url] of Object.entries(flavors)) {
  execFileSync(process.execPath, [prismaCli, "generate"], {
    stdio: ["ignore", "inherit", "inherit"],
    env: { ...process.env, DATABASE_URL: url, PRISMA_HIDE_UPDATE_MESSAGE: "1" },
  });
  console.log(`prisma client generated for ${flavor}`);
}
