// One error handler for the whole app: protocol errors keep their RFC 6749 §5.2 shape and
// status; framework 4xx (bad JSON, wrong content type, body too large) become invalid_request;
// an unreachable database is 503 + Retry-After; anything else is a 500 that shows nothing
// internal. Every error response carries Cache-Control: no-store.
import type { FastifyError, FastifyInstance } from "fastify";
import { InvalidField, OAuthError } from "../../domain/errors.ts";
import { NoSigningKeyError } from "../../domain/keys/key-ring.ts";

export interface ErrorBody {
  error: string;
  error_description: string;
  /** the request member at fault (invalid_request on schema-validated routes) */
  field?: string;
}

/**
 * The member a schema validation error names: "name", "grant_types.0", "cursor". Ajv reports
 * the path of the value at fault, plus the property for a missing or unexpected one.
 */
function fieldOf(err: FastifyError): string | undefined {
  const v = err.validation?.[0];
  if (!v) return undefined;
  const params = v.params as { missingProperty?: string; additionalProperty?: string };
  const path = [...v.instancePath.split("/").slice(1), params.missingProperty ?? params.additionalProperty].filter((p) => p !== undefined && p !== "");
  return path.length > 0 ? path.join(".").slice(0, 100) : undefined;
}

function describeValidation(err: FastifyError, field: string | undefined): string {
  const v = err.validation?.[0];
  const where = err.validationContext ?? "request";
  if (!v) return FRAMEWORK_MESSAGES.FST_ERR_VALIDATION!;
  const params = v.params as { missingProperty?: string; additionalProperty?: string };
  if (params.missingProperty) return `The ${where} is missing ${field}.`;
  if (params.additionalProperty) return `The ${where} has an unknown member: ${field}.`;
  return `The ${where} member ${field ?? ""} ${v.message ?? "is not valid"}.`.replace("  ", " ");
}

const FRAMEWORK_MESSAGES: Record<string, string> = {
  FST_ERR_CTP_INVALID_JSON_BODY: "The request body is not valid JSON.",
  FST_ERR_CTP_EMPTY_JSON_BODY: "The request body is empty.",
  FST_ERR_CTP_INVALID_MEDIA_TYPE: "Unsupported content type; send application/x-www-form-urlencoded or application/json.",
  FST_ERR_CTP_BODY_TOO_LARGE: "The request body is too large.",
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: "The Content-Length header does not match the body.",
  FST_ERR_VALIDATION: "The request is malformed.",
};

/**
 * RFC 6749 §5.2: error_description holds only %x20-21 / %x23-5B / %x5D-7E. Some descriptions
 * name what the client sent (a repeated parameter's name, a path): a double quote becomes a
 * single one, anything else outside that set a "?".
 */
const describable = (text: string): string => text.replace(/"/g, "'").replace(/[^\x20-\x21\x23-\x5B\x5D-\x7E]/g, "?");

/** `databaseUnavailable(err)`: the error means the database cannot be reached (503, not 500). */
export function registerErrorHandler(app: FastifyInstance, databaseUnavailable: (err: unknown) => boolean): void {
  app.setErrorHandler<FastifyError | OAuthError>((err, request, reply) => {
    reply.header("cache-control", "no-store").header("pragma", "no-cache");
    if (err instanceof OAuthError) {
      reply.headers(err.headers);
      const body: ErrorBody = { error: err.error, error_description: describable(err.description), ...(err instanceof InvalidField && { field: err.field }) };
      if (err.status >= 500) request.log.warn({ error: err.error }, err.description);
      return reply.status(err.status).send(body);
    }
    const status = (err as FastifyError).statusCode;
    if (typeof status === "number" && status >= 400 && status < 500) {
      const code = (err as FastifyError).code;
      if (code === "FST_ERR_VALIDATION") {
        const field = fieldOf(err as FastifyError);
        const description = describeValidation(err as FastifyError, field);
        return reply.status(400).send({ error: "invalid_request", error_description: describable(description), ...(field && { field }) } satisfies ErrorBody);
      }
      const description = FRAMEWORK_MESSAGES[code] ?? "The request is malformed.";
      return reply.status(status).send({ error: "invalid_request", error_description: description } satisfies ErrorBody);
    }
    if (databaseUnavailable(err) || err instanceof NoSigningKeyError) {
      request.log.error({ err: { message: err.message, code: (err as FastifyError).code } }, "dependency unavailable");
      return reply
        .status(503)
        .header("retry-after", "5")
        .send({ error: "temporarily_unavailable", error_description: "The service is temporarily unavailable; retry later." });
    }
    request.log.error({ err }, "unhandled error");
    return reply.status(500).send({ error: "server_error", error_description: "An internal error occurred." } satisfies ErrorBody);
  });

  app.setNotFoundHandler((request, reply) => {
    reply
      .status(404)
      .header("cache-control", "no-store")
      .send({ error: "not_found", error_description: describable(`No route for ${request.method} ${(request.url.split("?")[0] ?? "").slice(0, 200)}.`) });
  });
}
