/**
 * The origin allow-list, compiled once. Entries are exact origins (`https://school.example`)
 * or a leading wildcard for subdomains (`https://*.school.example`); `*` allows any.
 * A request with no Origin header is not from a browser and is not subject to the list.
 */
export type OriginCheck = (origin: string | null) => boolean;

export function compileOrigins(list: readonly string[] | undefined): OriginCheck {
  if (!list || list.length === 0 || list.includes("*")) return () => true;
  const exact = new Set<string>();
  const suffixes: Array<{ scheme: string; suffix: string }> = [];
  for (const raw of list) {
    const entry = raw.toLowerCase().replace(/\/+$/, "");
    const m = /^(https?:\/\/)\*(\.[^/]+)$/.exec(entry);
    if (m) suffixes.push({ scheme: m[1]!, suffix: m[2]! });
    else exact.add(entry);
  }
  return (origin) => {
    if (origin === null) return true;
    const o = origin.toLowerCase();
    if (exact.has(o)) return true;
    return suffixes.some(
      (s) => o.startsWith(s.scheme) && o.endsWith(s.suffix) && o.length > s.scheme.length + s.suffix.length,
    );
  };
}
