// Bodiless POSTs (the cookie endpoints, the admin API's disable/enable/rotate) may still say
// Content-Type: application/json (the CSRF check wants it): an empty JSON body is {}, not a 400.
import type { FastifyInstance } from "fastify";

export function acceptEmptyJson(app: FastifyInstance): void {
  const defaultJson = app.getDefaultJsonParser("error", "error");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (request, body, done) => {
    const text = typeof body === "string" ? body : body.toString("utf8");
    if (text.trim() === "") return done(null, {});
    return defaultJson(request, text, done);
  });
}
