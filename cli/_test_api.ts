/**
 * Test helpers of the CLI's unit tests: a small stateful fake of the API
 * over real HTTP (\`FakeApi\`), \`run()\` of a command line against it,
 * and \`usageError()\` for parser errors.
 *
 * @module
 */
import assert from "node:assert/strict";
import type {
  DrainReport,
  HostView,
  Network,
  Nic,
  RebalanceResult,
  Task,
  Vm,
} from "./client.ts";
import { UsageError } from "./errors.ts";
import { main } from "./main.ts";
import { type Output } from "./output.ts";
import { parseArgs } from "./parse.ts";

export const create = ["vm", "create", "--name", "web1", "--cpus", "1"];

export function usageError(
  argv: string[],
  message: string | RegExp,
): UsageError {
  let caught: unknown;
  try {
    parseArgs(argv);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof UsageError, `${argv.join(" ")} must throw`);
  assert.equal(caught.exitCode, 2);
  if (typeof message === "string") assert.equal(caught.message, message);
  else assert.match(caught.message, message);
  return caught;
}

export type Step<T> = Partial<T> | "gone";

/** A small stateful API that mimics the real one; steps advance per GET. */
export class FakeApi {
  readonly vms = new Map<string, Vm>();
  readonly tasks = new Map<string, Task>();
  readonly vmSteps = new Map<string, Step<Vm["status"]>[]>();
  readonly taskSteps = new Map<string, Partial<Task>[]>();
  /** Answers of `GET /v1/tasks/{id}/drain`, one per call (the last stays). */
  readonly drainReports = new Map<string, DrainReport[]>();
  /** The VM's NICs after each `GET /v1/vms/{id}` (undefined: unchanged). */
  readonly nicSteps = new Map<string, (Nic[] | undefined)[]>();
  readonly networks = new Map<string, Network>();
  readonly requests: {
    method: string;
    url: URL;
    headers: Headers;
    body: unknown;
  }[] = [];
  hosts: HostView[] = [];
  /** Applied to the host of that name at each `GET /v1/hosts`. */
  readonly hostSteps = new Map<string, Partial<HostView>[]>();
  /** What `POST /v1/maintenance/rebalance` answers. */
  rebalance?: RebalanceResult;
  /** Answers instead of the fake when it returns a response. */
  override?: (method: string, url: URL) => Response | undefined;
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  #taskSeq = 0;

  constructor() {
    this.#server = Deno.serve(
      { port: 0, hostname: "127.0.0.1", onListen: () => {} },
      (req) => this.#handle(req),
    );
  }

  get url(): string {
    return `http://127.0.0.1:${this.#server.addr.port}`;
  }

  close(): Promise<void> {
    return this.#server.shutdown();
  }

  addVm(id: string, name: string, status: Partial<Vm["status"]> = {}): Vm {
    const vm: Vm = {
      id,
      owner: "alice",
      spec: { name, cpus: 1, memory: 128, image: "tiny" },
      nics: [],
      desired: "running",
      status: {
        phase: "running",
        host: "h1",
        updatedAt: new Date().toISOString(),
        ...status,
      },
      createdAt: new Date().toISOString(),
    };
    this.vms.set(id, vm);
    return vm;
  }

  addNetwork(id: string, name: string, fields: Partial<Network> = {}): Network {
    const index = this.networks.size + 1;
    const net: Network = {
      id,
      name,
      owner: "alice",
      kind: "private",
      prefix: `fdc1:d00:0:${index}::/64`,
      vni: 99 + index,
      mode: "multicast",
      group: `ff05::${(99 + index).toString(16)}`,
      ra: true,
      dhcp: { v6: false, v4: false },
      vms: [],
      createdAt: new Date().toISOString(),
      ...fields,
    };
    this.networks.set(id, net);
    return net;
  }

  /** A NIC of `vm` in network `net` in the first free slot. */
  addNic(vm: Vm, net: string): Nic {
    const nics = vm.nics ??= [];
    let slot = 0;
    while (nics.some((n) => n.slot === slot)) slot++;
    const hex = (slot + 16).toString(16);
    const nic: Nic = {
      slot,
      network: net,
      mac: `52:54:00:00:00:${hex}`,
      ipv6: `${this.networks.get(net)!.prefix.slice(0, -3)}5054:ff:fe00:${hex}`,
      state: "attached",
    };
    nics.push(nic);
    this.networks.get(net)!.vms.push(vm.id);
    return nic;
  }

  addTask(kind: string, vm: string, fields: Partial<Task> = {}): Task {
    const now = new Date().toISOString();
    const task: Task = {
      id: `t-${++this.#taskSeq}`,
      kind,
      target: "any",
      payload: { vm },
      state: "queued",
      attempts: 0,
      maxAttempts: 3,
      notBefore: 0,
      createdAt: now,
      updatedAt: now,
      history: [{ at: now, state: "queued" }],
      ...fields,
    };
    this.tasks.set(task.id, task);
    return task;
  }

  async #handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const text = await req.text();
    const body = text ? JSON.parse(text) : undefined;
    this.requests.push({ method: req.method, url, headers: req.headers, body });
    const answer = this.override?.(req.method, url);
    if (answer) return answer;
    const parts = url.pathname.split("/").slice(2);
    const key = `${req.method} ${parts[0]}${parts.length > 1 ? "/:id" : ""}${
      parts[2] ? `/${parts[2]}` : ""
    }`;
    const id = parts[1];
    switch (key) {
      case "POST vms": {
        const vm = this.addVm(`vm-${this.vms.size + 1}`, body.name, {
          phase: "pending",
          host: undefined,
        });
        for (const net of body.networks ?? []) this.addNic(vm, net);
        const task = this.addTask("vm.create", vm.id);
        return Response.json({ vm, task }, { status: 201 });
      }
      case "GET vms":
        return Response.json({ items: [...this.vms.values()] });
      case "GET vms/:id": {
        const vm = this.vms.get(id);
        const step = this.vmSteps.get(id)?.shift();
        if (vm && step === "gone") this.vms.delete(id);
        else if (vm && step) {
          Object.assign(vm.status, step, {
            updatedAt: new Date().toISOString(),
          });
        }
        const nics = this.nicSteps.get(id)?.shift();
        if (vm && nics) vm.nics = nics;
        return this.vms.has(id) ? Response.json(vm) : notFound("vm", id);
      }
      case "POST vms/:id/nics": {
        const vm = this.vms.get(id);
        if (!vm) return notFound("vm", id);
        this.addNic(vm, body.network);
        const task = vm.status.host ? this.addTask("vm.nics", id) : null;
        return Response.json({ vm, task }, { status: 202 });
      }
      case "DELETE vms/:id/nics": {
        const vm = this.vms.get(id);
        const slot = Number(parts[3]);
        const nic = vm?.nics?.find((n) => n.slot === slot);
        if (!vm || !nic) return notFound("nic", `${id}/${slot}`);
        if (vm.status.host) {
          nic.state = "detaching";
          return Response.json({ vm, task: this.addTask("vm.nics", id) }, {
            status: 202,
          });
        }
        vm.nics = vm.nics!.filter((n) => n !== nic);
        return Response.json({ vm, task: null });
      }
      case "POST networks": {
        const net = this.addNetwork(`net-${this.networks.size + 1}`, body.name);
        return Response.json(net, { status: 201 });
      }
      case "GET networks":
        return Response.json({ items: [...this.networks.values()] });
      case "GET networks/:id": {
        const net = this.networks.get(id);
        return net ? Response.json(net) : notFound("network", id);
      }
      case "DELETE networks/:id": {
        const net = this.networks.get(id);
        if (!net) return notFound("network", id);
        if (net.vms.length) {
          return Response.json({
            error: {
              status: 409,
              code: "conflict",
              message: `Cannot delete network ${id}: VMs ${
                net.vms.join(", ")
              } have NICs in it; detach them first`,
            },
          }, { status: 409 });
        }
        this.networks.delete(id);
        return Response.json({ deleted: id });
      }
      case "DELETE vms/:id":
      case "POST vms/:id/start":
      case "POST vms/:id/stop":
      case "POST vms/:id/reboot": {
        const vm = this.vms.get(id);
        if (!vm) return notFound("vm", id);
        const action = parts[2] ?? "delete";
        return Response.json({ vm, task: this.addTask(`vm.${action}`, id) }, {
          status: 202,
        });
      }
      case "GET hosts":
        for (const h of this.hosts) {
          Object.assign(h, this.hostSteps.get(h.name)?.shift());
        }
        return Response.json({ items: this.hosts });
      case "POST hosts/:id/drain":
      case "POST hosts/:id/enable": {
        const host = this.hosts.find((h) => h.name === id);
        if (!host) return notFound("host", id);
        const state = parts[2] === "drain" ? "draining" : "active";
        if (host.state === state) return Response.json({ host, task: null });
        host.state = state;
        const task = this.addTask(`host.${parts[2]}`, "", {
          payload: { host: id } as Task["payload"],
        });
        return Response.json({ host, task }, {
          status: state === "draining" ? 202 : 200,
        });
      }
      case "POST maintenance/:id":
        return Response.json(this.rebalance);
      case "GET tasks": {
        const q = url.searchParams;
        const items = [...this.tasks.values()].filter((t) =>
          (!q.has("state") || t.state === q.get("state")) &&
          (!q.has("vm") || t.payload.vm === q.get("vm"))
        );
        return Response.json({ items });
      }
      case "GET tasks/:id/drain": {
        const steps = this.drainReports.get(id);
        if (!steps?.length) return notFound("task", id);
        return Response.json(steps.length > 1 ? steps.shift() : steps[0]);
      }
      case "GET tasks/:id": {
        const task = this.tasks.get(id);
        if (!task) return notFound("task", id);
        Object.assign(task, this.taskSteps.get(id)?.shift());
        return Response.json(task);
      }
    }
    return Response.json({
      error: { status: 404, code: "not_found", message: `No route ${key}` },
    }, { status: 404 });
  }
}

function notFound(kind: string, id: string): Response {
  return Response.json(
    {
      error: {
        status: 404,
        code: "not_found",
        message: `Cannot find ${kind} ${id}`,
      },
    },
    { status: 404 },
  );
}

export class Captured implements Output {
  text = "";
  constructor(private readonly tty = false) {}
  write(text: string): void {
    this.text += text;
  }
  isTerminal(): boolean {
    return this.tty;
  }
}

export async function run(
  argv: string[],
  api: FakeApi | string,
  { tty = false } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new Captured();
  const stderr = new Captured(tty);
  const env = { UCLOUD_API: typeof api === "string" ? api : api.url };
  const code = await main(argv, { stdout, stderr, env, pollIntervalMs: 5 });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

export async function withApi(
  fn: (api: FakeApi) => Promise<void>,
): Promise<void> {
  const api = new FakeApi();
  try {
    await fn(api);
  } finally {
    await api.close();
  }
}

export async function closedPort(): Promise<string> {
  const server = Deno.serve({
    port: 0,
    hostname: "127.0.0.1",
    onListen: () => {},
  }, () => new Response());
  const url = `http://127.0.0.1:${server.addr.port}`;
  await server.shutdown();
  return url;
}

export function addHost(api: FakeApi, name: string, vms: string[]): HostView {
  const host: HostView = {
    name,
    capacity: { cpus: 4, memoryMiB: 2048 },
    allocation: { cpuRatio: 1, memoryRatio: 1, reservedMemoryMiB: 0 },
    effective: { cpus: 4, memoryMiB: 2048 },
    usage: { cpus: vms.length, memoryMiB: 128 * vms.length, vms: vms.length },
    vms,
    state: "active",
    alive: true,
    addresses: [],
    os: "linux",
    drivers: ["qemu"],
  };
  api.hosts.push(host);
  return host;
}
