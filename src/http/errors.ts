import { AppError } from "../domain/errors.ts";

/** The one shape every refusal takes: `{"error": {"code", "message"}}`. */
export function errorBody(err: AppError) {
  return { error: { code: err.code, message: err.message } };
}

export function errorResponse(err: AppError): Response {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (err.retryAfterS !== undefined) headers["retry-after"] = String(err.retryAfterS);
  if (err.status === 401) headers["www-authenticate"] = 'Bearer realm="chat"';
  return new Response(JSON.stringify(errorBody(err)), { status: err.status, headers });
}

export function toAppError(err: unknown): AppError {
  return err instanceof AppError ? err : new AppError(500, "internal", "internal error");
}
