/**
 * Keeps a long chat's token fresh: at `fraction` of the token's lifetime (from its `iat` and
 * `exp`, read without checking: the server checks) it asks the token source for a new one and
 * presents it with an `auth` frame. A token that cannot be read, or a fixed string source,
 * schedules nothing: the server's 4001 at expiry then makes the client fetch one and reconnect.
 */

export function tokenTimes(token: string): { iat?: number; exp?: number } {
  try {
    const part = token.split(".")[1] ?? "";
    const json = atob(
      part
        .replace(/-/g, "+")
        .replace(/_/g, "/")
        .padEnd(Math.ceil(part.length / 4) * 4, "="),
    );
    const claims = JSON.parse(json) as { iat?: unknown; exp?: unknown };
    return {
      iat: typeof claims.iat === "number" ? claims.iat : undefined,
      exp: typeof claims.exp === "number" ? claims.exp : undefined,
    };
  } catch {
    return {};
  }
}

export interface RefreshOptions {
  /** A fresh token from the app's source; undefined when the source is a fixed string. */
  fetchToken: () => Promise<string> | undefined;
  /** Sends `{type: "auth", token}` on the open socket. */
  present: (token: string) => void;
  fraction?: number;
  now?: () => number;
}

export class TokenRefresher {
  private timer?: ReturnType<typeof setTimeout>;
  private current = "";

  constructor(private readonly opts: RefreshOptions) {}

  /** Plans the refresh of `token` (the one the socket opened or last re-authenticated with). */
  schedule(token: string): void {
    this.stop();
    this.current = token;
    const { iat, exp } = tokenTimes(token);
    if (exp === undefined) return;
    const nowS = (this.opts.now ?? Date.now)() / 1000;
    const issued = iat ?? nowS;
    const at = issued + (exp - issued) * (this.opts.fraction ?? 0.8);
    const delayMs = Math.max(0, Math.min((at - nowS) * 1000, 2 ** 31 - 1));
    this.timer = setTimeout(() => void this.refresh(), delayMs);
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private async refresh(): Promise<void> {
    let token: string | undefined;
    try {
      token = await this.opts.fetchToken();
    } catch {
      return; // the source failed: the server's 4001 at expiry leads to a reconnect instead
    }
    // The same token again (a pasted one): nothing to present, and no loop.
    if (token === undefined || token === this.current) return;
    this.opts.present(token);
    this.schedule(token);
  }
}
