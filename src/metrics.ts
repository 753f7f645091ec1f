// The issuer's Prometheus registry: security events by type (the same audit function that
// writes the log and the AuditEvent table increments these), tokens issued by grant type (the
// grant dispatch reports them), the password-hash queue, signing keys by state, and the
// process's own metrics. Served by http/routes/metrics.ts.
import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";
import { answerMetricsWith, clusterMetrics, isClusterWorker } from "./cluster/ipc.ts";
import type { Services } from "./services.ts";

export interface Metrics {
  registry: Registry;
  /** The scrape: this process's registry, or with WORKERS > 1 every worker's, summed by the primary. */
  render(): Promise<{ contentType: string; body: string }>;
}

const registries = new WeakMap<Services, Metrics>();

/** The issuer's one registry: fed by the main app and the audit function, served by either listener. */
export function metricsOf(services: Services): Metrics {
  let metrics = registries.get(services);
  if (!metrics) registries.set(services, (metrics = createMetrics(services)));
  return metrics;
}

function createMetrics(services: Services): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "tessera_" });
  const clustered = isClusterWorker();
  // The primary collects this registry for a scrape (cluster/primary.ts).
  if (clustered) answerMetricsWith(registry);
  const audit = new Counter({
    name: "tessera_audit_events_total",
    help: "Security-relevant events by type (reuse detected, grace retry, login failed, key rotated, ...)",
    labelNames: ["type"],
    registers: [registry],
  });
  // Grace retries get their own counter besides the per-type one: a rising rate means clients
  // race their refreshes (or a stolen token is being retried inside the window), worth an alert.
  const graceRetries = new Counter({
    name: "tessera_refresh_grace_retries_total",
    help: "Refresh tokens presented again within REFRESH_REUSE_GRACE and answered with the same successor",
    registers: [registry],
  });
  services.audit.onRecord((type) => {
    audit.inc({ type });
    if (type === "refresh.grace_retry") graceRetries.inc();
  });
  const tokensIssued = new Counter({
    name: "tessera_tokens_issued_total",
    help: "Token responses from the token and browser endpoints, by grant type",
    labelNames: ["grant_type"],
    registers: [registry],
  });
  services.issuedTokens.onIssued((grantType) => tokensIssued.inc({ grant_type: grantType }));
  new Gauge({
    name: "tessera_password_hash_operations",
    help: "argon2 operations running and waiting in the bounded queue",
    labelNames: ["state"],
    registers: [registry],
    collect() {
      const { running, waiting } = services.hasher.load;
      this.set({ state: "running" }, running);
      this.set({ state: "waiting" }, waiting);
    },
  });
  new Gauge({
    name: "tessera_signing_keys",
    help: "Signing keys this instance has loaded, by state and algorithm",
    labelNames: ["state", "alg"],
    registers: [registry],
    // Every worker loads the same keys: summing them would count each key once per worker.
    aggregator: "max",
    collect() {
      this.reset();
      for (const k of services.keys.keys) this.inc({ state: k.state, alg: k.alg });
    },
  });
  const render = clustered
    ? clusterMetrics
    : async () => ({ contentType: registry.contentType, body: await registry.metrics() });
  return { registry, render };
}
