/**
 * The origin allow-list, compiled once. Entries are exact origins (`https://school.example`)
 * or a leading wildcard for subdomains (`https://*.school.example`); `*` allows any.
 * A request with no Origin header is not from a browser and is not subject to the list.
 *
 * Origins are parsed, never compared as strings: `https://evil.example/.school.example` ends
 * with `.school.example` but its host is `evil.example`. An Origin header that is not a bare
 * serialised origin (a path, credentials, `null`) matches nothing.
 */
export type OriginCheck = (origin: string | null) => boolean;

interface Parsed {
  protocol: string;
  hostname: string;
  port: string;
}

function parseOrigin(text: string): Parsed | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return undefined;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return undefined;
  // A browser sends exactly `scheme://host[:port]`; anything more is not an origin.
  if (url.origin !== text.toLowerCase().replace(/\/$/, "")) return undefined;
  return { protocol: url.protocol, hostname: url.hostname, port: url.port };
}

export function compileOrigins(list: readonly string[] | undefined): OriginCheck {
  if (!list || list.length === 0 || list.includes("*")) return () => true;
  const exact = new Set<string>();
  const wildcards: Parsed[] = [];
  for (const raw of list) {
    const entry = raw.trim().toLowerCase().replace(/\/+$/, "");
    const m = /^(https?:\/\/)\*\.(.+)$/.exec(entry);
    // The wildcard is parsed as its base domain: scheme, host and port are then compared apart.
    const parsed = parseOrigin(m ? `${m[1]}${m[2]}` : entry);
    if (!parsed) continue;
    if (m) wildcards.push(parsed);
    else exact.add(`${parsed.protocol}//${parsed.hostname}:${parsed.port}`);
  }
  return (origin) => {
    if (origin === null) return true;
    const o = parseOrigin(origin);
    if (!o) return false;
    if (exact.has(`${o.protocol}//${o.hostname}:${o.port}`)) return true;
    return wildcards.some(
      (w) =>
        o.protocol === w.protocol &&
        o.port === w.port &&
        o.hostname.endsWith(`.${w.hostname}`) &&
        // The wildcard stands for at least one non-empty label.
        !o.hostname.startsWith("."),
    );
  };
}
