import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SignJWT } from "jose";

/**
 * Start-up time to the first accepted WebSocket connection, median of N runs:
 *   npm run build && bun scripts/startup-time.ts [path/to/executable] [runs=5]
 * Each run starts the executable on a fresh SQLite file and retries a connect (as mentor 10,
 * lesson 5, student 15 of the bundled sample directory) until the server says "ready".
 */

const [binary = "dist/lesson-chat", runsArg = "5"] = process.argv.slice(2);
const runs = Number(runsArg);
const secret = "startup-time-secret-0123456789abcdef";

async function freePort(): Promise<number> {
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = probe.port;
  probe.stop(true);
  return port;
}

function connectOnce(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url);
    ws.onmessage = (e) => {
      if (String(e.data).includes('"type":"ready"')) {
        ws.close();
        resolve(true);
      }
    };
    ws.onerror = () => resolve(false);
    ws.onclose = () => resolve(false);
  });
}

async function once(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "chat-startup-"));
  const port = await freePort();
  const token = await new SignJWT({ token_type: "access", user_id: 10, jti: crypto.randomUUID() })
    .setProtectedHeader({ alg: "HS256" })
    .setIssuedAt()
    .setExpirationTime("5m")
    .sign(new TextEncoder().encode(secret));
  const url = `ws://127.0.0.1:${port}/ws?lesson_id=5&student_id=15&token=${token}`;
  const started = performance.now();
  const proc = Bun.spawn([binary], {
    env: {
      PATH: process.env.PATH ?? "",
      PORT: String(port),
      HOST: "127.0.0.1",
      SQLITE_PATH: join(dir, "chat.db"),
      JWT_SECRET: secret,
      LOG_LEVEL: "error",
    },
    stdout: "ignore",
    stderr: "inherit",
  });
  try {
    const deadline = started + 15_000;
    while (performance.now() < deadline) {
      if (await connectOnce(url)) return performance.now() - started;
      if (proc.exitCode !== null) throw new Error(`${binary} exited with ${proc.exitCode}`);
      await Bun.sleep(2);
    }
    throw new Error("no connection within 15 s");
  } finally {
    proc.kill("SIGTERM");
    await proc.exited;
    rmSync(dir, { recursive: true, force: true });
  }
}

const times: number[] = [];
for (let i = 0; i < runs; i++) times.push(await once());
times.sort((a, b) => a - b);
const median = times[Math.floor(times.length / 2)]!;
const mib = statSync(binary).size / (1024 * 1024);
process.stdout.write(
  `${binary}: ${mib.toFixed(1)} MiB; start to first accepted WebSocket (ready frame), ${runs} runs: ` +
    `median ${median.toFixed(0)} ms (${times.map((t) => t.toFixed(0)).join(", ")})\n`,
);
