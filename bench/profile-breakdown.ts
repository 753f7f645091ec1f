// Where a request's CPU goes: reads a V8 .cpuprofile of the server (npm run bench with
// BENCH_SERVER_NODE_ARGS="--cpu-prof --cpu-prof-dir=DIR") and splits its busy time (idle left
// out) by what the code does. Each sample is charged to the first frame, from the leaf up,
// whose file belongs to a category below, so time in a library called by our code counts as the
// library's work (signing inside jose is the signature, not jose).
//
//   npx tsx bench/profile-breakdown.ts DIR/CPU.*.cpuprofile
//   npx tsx bench/profile-breakdown.ts DIR/CPU.*.cpuprofile --functions dist/src
//     (one report per file: on SQLite, the main thread's and the checkpointer thread's)
//     ...and the 25 functions, of files whose URL matches the pattern, with the largest share of
//     busy time inclusive of what they call (a sample counts once per function on its stack)
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const CATEGORIES: Array<[string, RegExp]> = [
  ["signature (WebCrypto ECDSA/RSA)", /node:internal\/crypto\/(ec|rsa|webcrypto|keys|util|webidl|sig)/],
  ["hashes (SHA-256: client secret, refresh token)", /node:internal\/crypto\/hash/],
  ["JWT encoding (jose: claims, header, base64url)", /node_modules\/jose\//],
  ["client authentication (Basic parsing, lookup, compare)", /\/src\/(http\/client-auth|domain\/clients\/)/],
  ["form body parsing", /node_modules\/(@fastify\/formbody|fast-querystring)\//],
  ["request log line (pino)", /node_modules\/(pino|sonic-boom|fast-redact|pino-std-serializers)\/|\/src\/(http\/request-log|logger)\./],
  ["metrics (prom-client)", /node_modules\/prom-client\/|\/src\/metrics\./],
  ["rate limits", /node_modules\/@fastify\/rate-limit\/|rate-limits\./],
  ["CORS", /node_modules\/@fastify\/cors\//],
  ["security headers", /node_modules\/@fastify\/helmet\/|security-headers\./],
  ["response serialisation (fast-json-stringify)", /node_modules\/fast-json-stringify\//],
  ["database (our queries, Prisma, driver)", /node_modules\/(@prisma|better-sqlite3|pg|pg-[a-z-]+)\/|\/src\/storage\//],
  ["Fastify (routing, hooks, request/reply)", /node_modules\/(fastify|find-my-way|avvio|light-my-request|@fastify\/[a-z-]+)\//],
  ["our grant and token code", /\/src\/(grants|domain|http)\//],
  ["HTTP parsing and socket I/O (node:http, net, streams)", /node:(_http_|http|net|internal\/(streams|stream_base_commons|http|net|js_stream))/],
  ["promises, timers, events (node internals)", /node:(internal\/(process\/task_queues|timers|async_hooks)|events|async_hooks)/],
];

// Every file named: on SQLite the server also has a worker thread (the WAL checkpointer), whose
// profile is written next to the main thread's (CPU.<date>.<time>.<pid>.<thread>.<n>.cpuprofile).
const { values, positionals: files } = parseArgs({ options: { functions: { type: "string" } }, allowPositionals: true });
const functionFilter = values.functions !== undefined ? new RegExp(values.functions) : null;
if (files.length === 0) {
  process.stderr.write("usage: npx tsx bench/profile-breakdown.ts <file.cpuprofile>... [--functions <url pattern>]\n");
  process.exit(64);
}
for (const [n, file] of files.entries()) {
  if (n > 0) process.stdout.write("\n");
  report(file);
}

function report(file: string): void {
  const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parentOf = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parentOf.set(c, n.id);

  const charged = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let busy = 0;
  let idle = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const t = profile.timeDeltas[i] ?? 0;
    const leaf = byId.get(profile.samples[i]!)!;
    const name = leaf.callFrame.functionName;
    if (name === "(idle)") {
      idle += t;
      continue;
    }
    busy += t;
    let category = name === "(garbage collector)" ? "garbage collection" : name === "(program)" ? "V8/native, outside JavaScript" : "";
    for (let id: number | undefined = leaf.id; !category && id !== undefined; id = parentOf.get(id)) {
      const url = byId.get(id)!.callFrame.url;
      if (url) category = CATEGORIES.find(([, re]) => re.test(url))?.[0] ?? "";
    }
    category ||= "other (module loading, native without a JS caller)";
    charged.set(category, (charged.get(category) ?? 0) + t);
    if (functionFilter) {
      const seen = new Set<string>();
      for (let id: number | undefined = leaf.id; id !== undefined; id = parentOf.get(id)) {
        const { url, functionName } = byId.get(id)!.callFrame;
        if (!url || !functionFilter.test(url)) continue;
        const key = `${url.split("/").slice(-2).join("/")} ${functionName || "(anonymous)"}`;
        if (!seen.has(key)) inclusive.set(key, (inclusive.get(key) ?? 0) + t);
        seen.add(key);
      }
    }
  }

  const ms = (us: number) => (us / 1000).toFixed(0);
  process.stdout.write(`busy ${ms(busy)} ms, idle ${ms(idle)} ms (${file})\n\n| share of busy CPU | what |\n|---:|---|\n`);
  for (const [category, t] of [...charged].sort((a, b) => b[1] - a[1])) {
    process.stdout.write(`| ${((100 * t) / busy).toFixed(1)}% | ${category} |\n`);
  }
  if (functionFilter) {
    process.stdout.write(`\n| share of busy CPU, inclusive | function (files matching ${functionFilter.source}) |\n|---:|---|\n`);
    for (const [fn, t] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, 25)) process.stdout.write(`| ${((100 * t) / busy).toFixed(1)}% | ${fn} |\n`);
  }
}
