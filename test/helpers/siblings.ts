// Instances linked as the workers of one host are (src/cluster/ipc.ts), in one process: what one
// publishes, every other one hears, at once. The IPC transport itself is tested with real workers
// in test/integration/cluster.test.ts.
import type { SiblingEvent, Siblings } from "../../src/cluster/ipc.ts";

export function linkedSiblings(count: number): Siblings[] {
  const handlers: Array<Array<(e: SiblingEvent) => void>> = Array.from({ length: count }, () => []);
  return handlers.map((own, i) => ({
    publish: (event) => handlers.forEach((hs, j) => j !== i && hs.forEach((h) => h(structuredClone(event)))),
    subscribe: (handler) => void own.push(handler),
  }));
}
