import { join } from "node:path";

/**
 * Runs a program to its end (the service's CLI, `bun run build`, the compiled binary) and
 * collects what it printed. Its environment is PATH and HOME plus `env`: nothing of the test
 * runner's own configuration reaches it unless a test passes it on.
 */
export async function runProgram(cmd: string[], opts: { cwd?: string; env?: Record<string, string> } = {}) {
  const proc = Bun.spawn(cmd, {
    cwd: opts.cwd ?? join(import.meta.dir, "../.."),
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...opts.env },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, err, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { code, out, err };
}
