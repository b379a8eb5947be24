/**
 * Failures of the storage itself, as opposed to a bad write: the disk is full or the file
 * cannot be written. Every job of a batch that meets one is refused as `unavailable`
 * (retryable: the client keeps the message and resends it), never as `internal`.
 */

const STORAGE_CODES = /^(SQLITE_FULL|SQLITE_IOERR|ENOSPC|EIO|EDQUOT)/;

export function isStorageFailure(err: unknown): boolean {
  if (typeof err !== "object" || err === null) return false;
  const { code } = err as { code?: unknown };
  if (typeof code === "string" && STORAGE_CODES.test(code)) return true;
  const message = err instanceof Error ? err.message : "";
  return /database or disk is full|disk I\/O error|no space left on device/i.test(message);
}
