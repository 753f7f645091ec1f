// Reading a Prometheus text exposition the way a scraper does, for the metrics tests.

/** The value of `name` with (at least) these labels, or undefined when no such sample exists. */
export function sampleOf(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split("\n")) {
    const m = /^([a-z_]+)(\{([^}]*)\})? ([0-9.e+-]+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = (m[3] ?? "").split(",").filter(Boolean);
    if (want.every((w) => have.includes(w))) return Number(m[4]);
  }
  return undefined;
}

/** The same, counting a sample not yet exposed as 0 (a counter never incremented). */
export const sample = (text: string, name: string, labels: Record<string, string> = {}): number => sampleOf(text, name, labels) ?? 0;
