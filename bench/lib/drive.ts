import type { Spec } from "../loadgen.ts";
import { CLIENT_CPU, pinned, ROOT } from "./servers.ts";

/**
 * Runs the load generator once, pinned to the client CPU, and returns what it printed last (one
 * JSON line of results). A failed run throws with its output: a refused frame, a server gone.
 */
export async function loadgen<T>(spec: Spec): Promise<T> {
  const proc = Bun.spawn(pinned(CLIENT_CPU, [process.execPath, "bench/loadgen.ts", JSON.stringify(spec)]), {
    cwd: ROOT,
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, err, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  if (code !== 0) throw new Error(`load generator failed (${code}):\n${err}${out}`);
  return JSON.parse(out.trim().split("\n").pop()!) as T;
}
