// BENCH_SCENARIOS key -> scenario, in the order a run takes them: memory last, since it reports
// the server's peak RSS over everything before it and its login flood would disturb what follows.
import { clientCredentialsScenario } from "./client-credentials.ts";
import { jwksScenario } from "./jwks.ts";
import { loginScenario } from "./login.ts";
import { memoryScenario } from "./memory.ts";
import { refreshScenario } from "./refresh.ts";
import type { Scenario } from "./scenario.ts";
import { workersScenario } from "./workers.ts";

export const scenarios: ReadonlyMap<string, Scenario> = new Map(
  [jwksScenario, loginScenario, refreshScenario, clientCredentialsScenario, workersScenario, memoryScenario].map((s) => [s.key, s]),
);

export { Findings, type Flavor, type Scenario, type ScenarioContext, type ScenarioResult, type Server, type Settings } from "./scenario.ts";
