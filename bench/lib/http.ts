// What the benchmark's clients send outside the measured windows: setup (registering users,
// logging in) and checks before and after a measurement; and the refresh chain's request.
import type autocannon from "autocannon";

export const PASSWORD = "correct horse battery staple";
export const FORM = { "content-type": "application/x-www-form-urlencoded" };

export async function post(url: string, body: string, headers: Record<string, string>): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(url, { method: "POST", body, headers, signal: AbortSignal.timeout(60_000) });
  const text = await res.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    json = { raw: text.slice(0, 200) };
  }
  return { status: res.status, json };
}

export const passwordBody = (email: string) =>
  new URLSearchParams({ grant_type: "password", username: email, password: PASSWORD, client_id: "web" }).toString();
export const refreshBody = (token: string) => `grant_type=refresh_token&refresh_token=${encodeURIComponent(token)}&client_id=web`;

/**
 * One refresh rotation of `chain` under load: it always presents the newest token it was given
 * and keeps the next one; `onAnswer` sees every status (and the new token on a 200).
 */
export function refreshRequest(chain: { token: string }, onAnswer?: (status: number, next: string | undefined) => void): autocannon.Request {
  return {
    method: "POST",
    path: "/oauth/token",
    headers: FORM,
    setupRequest: (req) => ({ ...req, body: refreshBody(chain.token) }),
    onResponse: (status, body) => {
      const next = status === 200 ? (JSON.parse(body) as { refresh_token?: unknown }).refresh_token : undefined;
      if (typeof next === "string") chain.token = next;
      onAnswer?.(status, typeof next === "string" ? next : undefined);
    },
  };
}

/** The password grant; resolves with the refresh token. */
export async function login(base: string, email: string): Promise<string> {
  const r = await post(`${base}/oauth/token`, passwordBody(email), FORM);
  if (r.status !== 200 || typeof r.json.refresh_token !== "string") throw new Error(`login failed: ${r.status} ${JSON.stringify(r.json)}`);
  return r.json.refresh_token;
}

/** Runs fn(0..n-1) with at most `limit` in flight. */
export async function limited<T>(n: number, limit: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array<T>(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, n) }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await fn(i);
      }
    }),
  );
  return out;
}
