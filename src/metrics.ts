/**
 * A small Prometheus registry: counters, gauges read at scrape time, and fixed-bucket
 * histograms. Enough for this service without pulling in a client library.
 */

type Labels = Record<string, string>;

const UNSAFE_LABEL = /["\\\n]/;
const labelValue = (v: string) => (UNSAFE_LABEL.test(v) ? v.replace(/["\\\n]/g, "_") : v);

/**
 * Single-label keys already made, by name then value. Counters are bumped per frame, and the
 * values are a few codes and frame types: building the key each time was ~2% of a message's
 * CPU. At most `MEMO_VALUES` values a name are kept (the rest are made per call), so a label
 * fed by callers cannot grow it without bound.
 */
const singleKeys = new Map<string, Map<string, string>>();
const MEMO_VALUES = 256;

const singleKey = (name: string, value: string): string => {
  let byValue = singleKeys.get(name);
  const hit = byValue?.get(value);
  if (hit !== undefined) return hit;
  const key = `${name}="${labelValue(value)}"`;
  if (!byValue) {
    byValue = new Map();
    singleKeys.set(name, byValue);
  }
  if (byValue.size < MEMO_VALUES) byValue.set(value, key);
  return key;
};

// The common single-label case skips the sort and the arrays.
const labelKey = (labels: Labels | undefined) => {
  if (!labels) return "";
  let only: string | undefined;
  for (const k in labels) {
    if (only !== undefined) {
      return Object.entries(labels)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([key, v]) => `${key}="${labelValue(v)}"`)
        .join(",");
    }
    only = k;
  }
  return only === undefined ? "" : singleKey(only, labels[only]!);
};

export class Counter {
  private readonly values = new Map<string, number>();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}
  inc(labels?: Labels, by = 1): void {
    const k = labelKey(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }
  get(labels?: Labels): number {
    return this.values.get(labelKey(labels)) ?? 0;
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    if (this.values.size === 0) lines.push(`${this.name} 0`);
    for (const [k, v] of this.values) lines.push(`${this.name}${k ? `{${k}}` : ""} ${v}`);
    return lines.join("\n");
  }
}

export class Gauge {
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly read: () => number | Array<[Labels, number]>,
  ) {}
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} gauge`];
    const v = this.read();
    if (typeof v === "number") lines.push(`${this.name} ${v}`);
    else for (const [labels, n] of v) lines.push(`${this.name}{${labelKey(labels)}} ${n}`);
    return lines.join("\n");
  }
}

export class Histogram {
  private readonly counts: number[];
  private sum = 0;
  private count = 0;
  constructor(
    readonly name: string,
    readonly help: string,
    readonly buckets: number[],
  ) {
    this.counts = buckets.map(() => 0);
  }
  observe(v: number): void {
    this.sum += v;
    this.count++;
    for (let i = 0; i < this.buckets.length; i++) {
      if (v <= this.buckets[i]!) {
        this.counts[i]!++;
        break;
      }
    }
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    let cumulative = 0;
    this.buckets.forEach((b, i) => {
      cumulative += this.counts[i]!;
      lines.push(`${this.name}_bucket{le="${b}"} ${cumulative}`);
    });
    lines.push(`${this.name}_bucket{le="+Inf"} ${this.count}`);
    lines.push(`${this.name}_sum ${this.sum}`, `${this.name}_count ${this.count}`);
    return lines.join("\n");
  }
}

export class Registry {
  private readonly items: Array<Counter | Gauge | Histogram> = [];
  counter(name: string, help: string): Counter {
    return this.add(new Counter(name, help));
  }
  gauge(name: string, help: string, read: () => number | Array<[Labels, number]>): Gauge {
    return this.add(new Gauge(name, help, read));
  }
  histogram(name: string, help: string, buckets: number[]): Histogram {
    return this.add(new Histogram(name, help, buckets));
  }
  private add<T extends Counter | Gauge | Histogram>(m: T): T {
    this.items.push(m);
    return m;
  }
  render(): string {
    return `${this.items.map((m) => m.render()).join("\n")}\n`;
  }
}

/** The series the service reports; gauges are registered by whoever owns the state. */
export function createMetrics() {
  const registry = new Registry();
  return {
    registry,
    connectionsOpened: registry.counter("chat_ws_connections_opened_total", "WebSocket connections accepted"),
    connectionsRefused: registry.counter(
      "chat_ws_connections_refused_total",
      "WebSocket upgrades refused, by reason",
    ),
    messagesIn: registry.counter("chat_messages_in_total", "Messages accepted and stored"),
    messagesOut: registry.counter(
      "chat_frames_out_total",
      "Frames published to conversation topics, by type",
    ),
    framesRejected: registry.counter(
      "chat_frames_rejected_total",
      "Inbound frames answered with an error, by code",
    ),
    httpRequests: registry.counter("chat_http_requests_total", "REST requests, by status class"),
    ackLatency: registry.histogram(
      "chat_ack_latency_seconds",
      "Time from a message frame's arrival to its ack (includes the durable SQLite commit)",
      [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    ),
    commitBatch: registry.histogram(
      "chat_sqlite_commit_batch_size",
      "Messages per SQLite group commit",
      [1, 2, 5, 10, 25, 50, 100, 250, 1000],
    ),
    commitSeconds: registry.histogram(
      "chat_sqlite_commit_seconds",
      "Time each SQLite group commit held the event loop (writes, and the sync when it runs on the loop)",
      [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    ),
    // Registered before the MongoDB flusher exists, so dashboards and alerts can be written
    // against series that are always present (0 with no MONGO_URI).
    outboxFlushed: registry.counter("chat_outbox_flushed_total", "Outbox rows confirmed by MongoDB"),
    outboxFlushErrors: registry.counter(
      "chat_outbox_flush_errors_total",
      "Outbox flush attempts that failed, by reason",
    ),
    /**
     * Up/down of components that own an outside connection and report it themselves (the
     * MongoDB flusher sets "mongo"); rendered with the built-in ones in `chat_up`.
     */
    componentUp: new Map<string, boolean>(),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
