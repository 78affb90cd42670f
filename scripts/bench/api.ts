/**
 * Bench phase `api`: `POST /v1/vms` latency and throughput over real HTTP
 * (`Deno.serve` of the in-process app) at a fixed client concurrency, no
 * workers.
 */
import { createApp } from "../../api/app.ts";
import {
  type Cleanup,
  progress,
  rate,
  type Row,
  serve,
  storeFor,
  summarize,
  type Summary,
  timedPool,
} from "./util.ts";

const API_CLIENTS = 16;

/** Result of {@linkcode benchApi}. */
export interface ApiResult {
  requests: number;
  concurrency: number;
  requestsPerS: number;
  latencyMs: Summary;
  /** Responses other than 201. */
  errors: number;
  statuses: Record<string, number>;
}

/** Runs the API phase against the etcd at `endpoint`. */
export async function benchApi(
  endpoint: string,
  requests: number,
  cleanup: Cleanup,
): Promise<ApiResult> {
  const store = storeFor(endpoint, "/bench/api");
  const { base, stop } = serve(createApp({ store }), cleanup);
  try {
    const statuses: Record<string, number> = {};
    const post = async (i: number) => {
      const res = await fetch(`${base}/v1/vms`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name: `b${i}`, cpus: 1, memory: 128 }),
      });
      await res.arrayBuffer();
      statuses[res.status] = (statuses[res.status] ?? 0) + 1;
      return res.status === 201;
    };
    await timedPool(50, API_CLIENTS, post);
    for (const k of Object.keys(statuses)) delete statuses[k];
    progress(`api: ${requests} POST /v1/vms, ${API_CLIENTS} clients`);
    const r = await timedPool(requests, API_CLIENTS, post);
    return {
      requests,
      concurrency: API_CLIENTS,
      requestsPerS: rate(requests, r.elapsedMs),
      latencyMs: summarize(r.latencies),
      errors: r.failed,
      statuses,
    };
  } finally {
    await stop();
    store.close();
  }
}

/** Rows of the bench table. */
export function apiRows(api: ApiResult): Row[] {
  const out: Row[] = [];
  const n = `${api.requests} req, ${api.concurrency} clients, HTTP`;
  out.push(
    {
      name: "API POST /v1/vms p50",
      value: api.latencyMs.p50,
      unit: "ms",
      notes: n,
    },
    {
      name: "API POST /v1/vms p99",
      value: api.latencyMs.p99,
      unit: "ms",
      notes: `max ${api.latencyMs.max} ms`,
    },
    {
      name: "API POST /v1/vms throughput",
      value: api.requestsPerS,
      unit: "req/s",
      notes: api.errors
        ? `${api.errors} errors: ${JSON.stringify(api.statuses)}`
        : "all 201",
    },
  );
  return out;
}
