/**
 * Attachment throughput and memory: uploads and downloads a 10 MB file against the real service
 * (a child process), and samples the child's RSS from /proc while it does. With FerretDB
 * available it also times the GridFS copy and reads through GridFS from a second instance.
 *
 *   bun bench/attachments.ts [--runs 5] [--mb 10] [--no-mongo]
 */
import { readFileSync } from "node:fs";
import { conversationIdFor } from "../src/ids.ts";
import { type MongoHandle, startMongo } from "../tests/helpers/ferretdb.ts";
import { bigPng } from "../tests/helpers/files.ts";
import { drained, mongoEnv } from "../tests/helpers/outbox.ts";
import { type ChildService, spawnService, tempDir } from "../tests/helpers/service.ts";
import { mintToken } from "../tests/helpers/tokens.ts";

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const RUNS = arg("runs", 5);
const MB = arg("mb", 10);
const WITH_MONGO = !process.argv.includes("--no-mongo");
const CONV = conversationIdFor(5, 10, 15);

function rssKb(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const get = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, "m").exec(status)?.[1] ?? 0);
  return { rss: get("VmRSS"), hwm: get("VmHWM") };
}

/** Samples RSS every 10 ms while `work` runs; returns its result and the peak seen. */
async function sampled<T>(pid: number, work: () => Promise<T>): Promise<{ out: T; peakKb: number }> {
  let peak = rssKb(pid).rss;
  const timer = setInterval(() => {
    peak = Math.max(peak, rssKb(pid).rss);
  }, 10);
  try {
    const out = await work();
    peak = Math.max(peak, rssKb(pid).rss);
    return { out, peakKb: peak };
  } finally {
    clearInterval(timer);
  }
}

const mib = (kb: number) => `${(kb / 1024).toFixed(1)} MiB`;
const rate = (bytes: number, ms: number) => `${(bytes / 1048576 / (ms / 1000)).toFixed(0)} MiB/s`;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function phase(label: string, svc: ChildService, file: Uint8Array<ArrayBuffer>, token: string) {
  const pid = svc.proc.pid;
  await fetch(`${svc.url}/healthz`);
  const base = rssKb(pid).rss;
  const ids: string[] = [];
  const up: number[] = [];
  const upPeak = await sampled(pid, async () => {
    for (let i = 0; i < RUNS; i++) {
      // Different bytes each run, so content addressing does not turn a write into a no-op.
      file[100] = i;
      const t0 = performance.now();
      const res = await fetch(`${svc.url}/attachments?conversation_id=${CONV}`, {
        method: "POST",
        body: file,
        headers: { Authorization: `Bearer ${token}`, "X-Filename": "bench.png" },
      });
      if (res.status !== 201) throw new Error(`upload: ${res.status} ${await res.text()}`);
      up.push(performance.now() - t0);
      ids.push(((await res.json()) as { id: string }).id);
    }
  });
  const down: number[] = [];
  const downPeak = await sampled(pid, async () => {
    for (const id of ids) {
      const t0 = performance.now();
      const res = await fetch(`${svc.url}/attachments/${id}`, {
        headers: { Authorization: `Bearer ${token}` },
      });
      const n = (await res.arrayBuffer()).byteLength;
      if (res.status !== 200 || n !== file.length) throw new Error(`download: ${res.status}, ${n} bytes`);
      down.push(performance.now() - t0);
    }
  });
  console.log(
    `${label}: upload ${rate(file.length, median(up))} (median of ${RUNS}, ${median(up).toFixed(0)} ms), ` +
      `download ${rate(file.length, median(down))} (${median(down).toFixed(0)} ms); ` +
      `RSS before ${mib(base)}, peak uploading ${mib(upPeak.peakKb)}, peak downloading ${mib(downPeak.peakKb)}`,
  );
  return ids;
}

const dir = tempDir("bench-attach-");
let mongo: MongoHandle | undefined;
const children: ChildService[] = [];
try {
  const file = bigPng(MB * 1024 * 1024, 3);
  const token = await mintToken(10);
  const env: Record<string, string> = {
    ATTACHMENT_MAX_MB: String(MB + 1),
    RATE_REST_PER_MIN: "100000",
  };
  if (WITH_MONGO) mongo = await startMongo();
  // Production timeouts, not the tests' short ones: FerretDB on SQLite takes seconds for a batch of chunks.
  const menv = mongo
    ? { ...mongoEnv(mongo, mongo.uri, env), MONGO_SOCKET_TIMEOUT_MS: "10000", MONGO_READ_TIMEOUT_MS: "2000" }
    : env;
  const a = await spawnService({
    dir: `${dir.path}`,
    env: { ...menv, SQLITE_PATH: `${dir.path}/a/chat.db` },
  });
  children.push(a);
  // Make the conversation exist.
  const s = await a.connect(10, { lesson_id: 5, student_id: 15 });
  await s.next("ready");
  s.close();
  console.log(
    `file ${MB} MiB, ${RUNS} runs, Bun ${Bun.version}, ${mongo ? "FerretDB behind" : "no MongoDB"}`,
  );
  const ids = await phase("local volume", a, file, token);
  if (mongo) {
    const t0 = performance.now();
    const copy = await sampled(a.proc.pid, () => drained(a, 120_000));
    const ms = performance.now() - t0;
    console.log(
      `GridFS copy of ${RUNS} × ${MB} MiB: ${rate(file.length * RUNS, ms)} (${ms.toFixed(0)} ms); peak RSS ${mib(copy.peakKb)}`,
    );
    // A second instance that never saw the uploads reads them through GridFS.
    const b = await spawnService({
      dir: `${dir.path}`,
      env: { ...menv, SQLITE_PATH: `${dir.path}/b/chat.db` },
    });
    children.push(b);
    const pid = b.proc.pid;
    await fetch(`${b.url}/healthz`);
    const base = rssKb(pid).rss;
    const times: number[] = [];
    const peak = await sampled(pid, async () => {
      for (const id of ids) {
        const t = performance.now();
        const res = await fetch(`${b.url}/attachments/${id}`, {
          headers: { Authorization: `Bearer ${token}` },
        });
        const n = (await res.arrayBuffer()).byteLength;
        if (res.status !== 200 || n !== file.length) throw new Error(`GridFS download: ${res.status}, ${n}`);
        times.push(performance.now() - t);
      }
    });
    console.log(
      `GridFS read on another instance: ${rate(file.length, median(times))} (${median(times).toFixed(0)} ms); ` +
        `RSS before ${mib(base)}, peak ${mib(peak.peakKb)}`,
    );
  }
} catch (err) {
  for (const c of children) console.error(c.logs().split("\n").slice(-8).join("\n"));
  throw err;
} finally {
  for (const c of children) await c.stop().catch(() => {});
  await mongo?.destroy();
  dir.remove();
}
