// The project's root folder (where package.json and prisma.config.ts are), found from this
// module's location: the same whether running from src/ (tsx) or from dist/src/ (the build).
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export function projectRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, "prisma.config.ts"))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error("cannot find prisma.config.ts above " + fileURLToPath(import.meta.url));
    dir = up;
  }
  return dir;
}
