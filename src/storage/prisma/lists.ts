// List fields (roles, grant types, scopes, audiences, resources) are stored in one text column
// each, space-separated; read the same way by the Prisma stores and the driver queries.

export const splitList = (s: string): string[] => s.split(" ").filter(Boolean);
export const joinList = (a: readonly string[]): string => a.join(" ");
