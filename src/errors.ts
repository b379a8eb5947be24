/**
 * One error type for refusals the caller should see. HTTP renders it as
 * `{"error": {"code", "message"}}` with its status; WebSocket as an `error` frame or a refused upgrade.
 */
export type ErrorStatus = 400 | 401 | 403 | 404 | 409 | 413 | 415 | 416 | 429 | 500 | 503;

export class AppError extends Error {
  constructor(
    readonly status: ErrorStatus,
    readonly code: string,
    message: string,
    readonly retryAfterS?: number,
  ) {
    super(message);
    this.name = "AppError";
  }
}

export const unauthorized = (message = "a valid bearer token is required") =>
  new AppError(401, "unauthorized", message);
export const forbidden = (message: string) => new AppError(403, "forbidden", message);
export const notFound = (message: string) => new AppError(404, "not_found", message);
export const badRequest = (message: string) => new AppError(400, "bad_request", message);
export const unavailable = (message: string) => new AppError(503, "unavailable", message);

/** The one shape every refusal takes: `{"error": {"code", "message"}}`. */
export function errorBody(err: AppError) {
  return { error: { code: err.code, message: err.message } };
}

/** A refusal as an HTTP answer: REST routes and a refused WebSocket upgrade alike. */
export function errorResponse(err: AppError): Response {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (err.retryAfterS !== undefined) headers["retry-after"] = String(err.retryAfterS);
  if (err.status === 401) headers["www-authenticate"] = 'Bearer realm="chat"';
  return new Response(JSON.stringify(errorBody(err)), { status: err.status, headers });
}

export function toAppError(err: unknown): AppError {
  return err instanceof AppError ? err : new AppError(500, "internal", "internal error");
}
