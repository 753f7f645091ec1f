// What every operator command shares: its result (text to print, JSON for --json) and the
// error for a command used wrongly (printed with the usage, exit code 2).

export interface CommandResult {
  text: string;
  json: unknown;
}

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** "1 key", "2 keys" (or the given plural). */
export const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;

/** A list flag: items separated by commas or spaces. */
export const listArg = (v: string | undefined): string[] => (v ?? "").split(/[\s,]+/).filter(Boolean);
