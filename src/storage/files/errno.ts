/** The errno code (ENOENT, EEXIST, ...) of a failed fs call, if it has one. */
export const errCode = (err: unknown) => (err as NodeJS.ErrnoException | null)?.code;
