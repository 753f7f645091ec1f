// Time comes from here so expiry, idle timeouts and grace windows are tested without sleeping.
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

export const epochSeconds = (d: Date): number => Math.floor(d.getTime() / 1000);
export const addSeconds = (d: Date, s: number): Date => new Date(d.getTime() + s * 1000);
