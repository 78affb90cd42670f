/**
 * The nemesis's client workload, over HTTP against the API process:
 * `clients` concurrent clients, each owning its VMs (so one VM's requests
 * never race each other), create, stop, start and delete VMs, attach NICs
 * to stopped VMs and detach them again (sim hosts run without host
 * networking, so a VM only starts without NICs, with qemu too), and
 * client 0 creates and deletes networks (VNI, /64 and IPv4 pool keys). A mover drains a random
 * host and enables it again a few seconds later (`vm.move` for each VM).
 *
 * The model is what the workload asked for: per VM its desired state
 * (running, stopped, deleted), per network whether it was deleted. An
 * ambiguous answer (error, 5xx) is resolved by reading back the document
 * (only the API writes `desired`), a create by repeating it with its
 * `Idempotency-Key`. Choices come from seeded {@linkcode Rng} streams.
 *
 * @example
 * ```ts
 * const w = new Workload(new ApiClient(env.api.url), rng, { hosts, start });
 * await w.run(signal); // until the signal
 * await w.finish(); // resolves what stayed ambiguous, enables hosts
 * ```
 */
import { ambiguous, type ApiClient, describe, type Reply } from "./client.ts";
import type { Rng } from "./rng.ts";

export type Desired = "running" | "stopped" | "deleted";

/** What the workload knows of one VM it created. */
export interface VmModel {
  id: string;
  name: string;
  client: number;
  desired: Desired;
  /** A request answered 404 while the workload had not deleted it. */
  vanished: boolean;
  /** A change whose outcome no read-back resolved. */
  uncertain: boolean;
  /** From the last document seen. */
  nics: { slot: number; state: string }[];
  phase: string;
  /** `+12.345s stop 202 desired=stopped phase=stopping h2` lines. */
  history: string[];
}

/** What the workload knows of one network it created. */
export interface NetModel {
  id: string;
  name: string;
  deleted: boolean;
  uncertain: boolean;
  history: string[];
}

export interface WorkloadOptions {
  hosts: readonly string[];
  /** Date.now() the history offsets count from. */
  start: number;
  clients?: number;
  maxVmsPerClient?: number;
  /** Drain and enable hosts (default true). */
  moves?: boolean;
  /** A client's pause between two requests, ms (default [100, 600]). */
  pauseMs?: readonly [number, number];
}

/** How long an ambiguous answer is read back before giving up. */
const SETTLE_MS = 60_000;

function pause(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done);
  });
}

export class Workload {
  readonly vms = new Map<string, VmModel>();
  readonly networks = new Map<string, NetModel>();
  /** `<op> <ok|rejected|ambiguous>` -> count. */
  readonly counts = new Map<string, number>();
  /** Creates with no definite answer yet (retried by `finish()`). */
  readonly #unresolved: { client: number; name: string }[] = [];
  readonly #draining = new Set<string>();
  readonly #clients: number;
  readonly #max: number;

  constructor(
    readonly api: ApiClient,
    readonly rng: Rng,
    readonly opts: WorkloadOptions,
  ) {
    this.#clients = opts.clients ?? 3;
    this.#max = opts.maxVmsPerClient ?? 6;
  }

  #off(): string {
    return `+${((Date.now() - this.opts.start) / 1000).toFixed(3)}s`;
  }

  #count(op: string, r: Reply | { error: string } | null): void {
    const kind = !r || ambiguous(r)
      ? "ambiguous"
      : (r as Reply).status < 300
      ? "ok"
      : "rejected";
    const k = `${op} ${kind}`;
    this.counts.set(k, (this.counts.get(k) ?? 0) + 1);
  }

  /** Takes desired state, NICs and phase from a VM document. */
  #see(vm: VmModel, doc: Record<string, unknown> | undefined): string {
    if (!doc || typeof doc !== "object") return "";
    const d = doc as {
      desired?: Desired;
      nics?: { slot: number; state: string }[];
      status?: { phase?: string; host?: string };
    };
    if (d.desired) vm.desired = d.desired;
    if (d.nics) vm.nics = d.nics.map((n) => ({ slot: n.slot, state: n.state }));
    if (d.status?.phase) vm.phase = d.status.phase;
    return ` desired=${vm.desired} phase=${vm.phase}${
      d.status?.host ? ` ${d.status.host}` : ""
    }`;
  }

  /** Runs the clients and the mover until `signal` fires. */
  async run(signal: AbortSignal): Promise<void> {
    const loops = Array.from(
      { length: this.#clients },
      (_, i) => this.#client(i, this.rng.fork(`client${i}`), signal),
    );
    if (this.opts.moves ?? true) {
      loops.push(this.#mover(this.rng.fork("mover"), signal));
    }
    await Promise.all(loops);
  }

  /** Resolves ambiguous creates and changes; enables drained hosts. */
  async finish(): Promise<void> {
    for (const c of this.#unresolved.splice(0)) {
      await this.#create(c.client, c.name);
    }
    for (const vm of this.vms.values()) {
      if (vm.uncertain) await this.#readBack(vm, "finish");
    }
    for (const h of [...this.#draining]) await this.#enable(h);
  }

  async #client(i: number, rng: Rng, signal: AbortSignal): Promise<void> {
    let n = 0;
    while (!signal.aborted) {
      const mine = [...this.vms.values()].filter((v) =>
        v.client === i && v.desired !== "deleted" && !v.vanished
      );
      const running = mine.filter((v) => v.desired === "running");
      const stopped = mine.filter((v) => v.desired === "stopped");
      const nets = [...this.networks.values()].filter((x) => !x.deleted);
      const op = rng.weighted(
        [
          ["create", mine.length < this.#max ? 3 : 0],
          ["stop", running.length ? 2 : 0],
          ["start", stopped.length ? 2 : 0],
          ["delete", mine.length ? 1 : 0],
          ["attach", stopped.length && nets.length ? 1 : 0],
          ["net-create", i === 0 && nets.length < 3 ? 0.4 : 0],
          ["net-delete", i === 0 && nets.length ? 0.2 : 0],
        ] as const,
      );
      switch (op) {
        case "create":
          await this.#create(i, `c${i}-v${n++}`);
          break;
        case "stop":
          await this.#change(rng.pick(running), "stop", "POST", "/stop");
          break;
        case "start":
          await this.#start(rng.pick(stopped));
          break;
        case "delete":
          await this.#change(rng.pick(mine), "delete", "DELETE", "");
          break;
        case "attach":
          await this.#attach(rng.pick(stopped), rng.pick(nets));
          break;
        case "net-create":
          await this.#netCreate(`n${this.networks.size}`, rng);
          break;
        case "net-delete":
          await this.#netDelete(rng.pick(nets));
          break;
      }
      await pause(rng.int(...(this.opts.pauseMs ?? [100, 600])), signal);
    }
  }

  async #create(client: number, name: string): Promise<void> {
    const body = { name, cpus: 1, memory: 128 };
    const headers = { "Idempotency-Key": `nemesis-${name}` };
    let r = await this.api.call("POST", "/v1/vms", body, headers);
    this.#count("create", r);
    if (ambiguous(r)) {
      r = await this.api.settle("/v1/vms", SETTLE_MS, "POST", body, headers) ??
        r;
    }
    if (ambiguous(r)) {
      this.#unresolved.push({ client, name });
      return;
    }
    const reply = r as Reply;
    if (reply.status !== 200 && reply.status !== 201) return;
    const doc = reply.body.vm;
    const vm: VmModel = this.vms.get(doc.id) ?? {
      id: doc.id,
      name,
      client,
      desired: "running",
      vanished: false,
      uncertain: false,
      nics: [],
      phase: "",
      history: [],
    };
    this.vms.set(vm.id, vm);
    vm.history.push(
      `${this.#off()} create ${reply.status}${this.#see(vm, doc)}`,
    );
  }

  /** Reads the VM back after an ambiguous answer to `op`. */
  async #readBack(vm: VmModel, op: string): Promise<void> {
    const back = await this.api.settle(`/v1/vms/${vm.id}`, SETTLE_MS);
    if (!back) {
      vm.uncertain = true;
      vm.history.push(`${this.#off()} ${op}: read-back got no answer`);
      return;
    }
    vm.uncertain = false;
    if (back.status === 404) this.#gone(vm, op);
    else {
      vm.history.push(
        `${this.#off()} ${op}: read back${this.#see(vm, back.body)}`,
      );
    }
  }

  #gone(vm: VmModel, op: string): void {
    if (op === "delete") vm.desired = "deleted";
    else if (vm.desired !== "deleted") vm.vanished = true;
    vm.history.push(`${this.#off()} ${op}: 404, the VM is gone`);
  }

  /** stop, start or delete: one request, read back when ambiguous. */
  async #change(
    vm: VmModel,
    op: string,
    method: string,
    suffix: string,
  ): Promise<void> {
    const r = await this.api.call(method, `/v1/vms/${vm.id}${suffix}`);
    this.#count(op, r);
    if (ambiguous(r)) {
      vm.history.push(`${this.#off()} ${op} ${describe(r)}`);
      return await this.#readBack(vm, op);
    }
    const reply = r as Reply;
    if (reply.status === 404) return this.#gone(vm, op);
    const seen = reply.status < 300 ? this.#see(vm, reply.body.vm) : "";
    vm.history.push(`${this.#off()} ${op} ${describe(r)}${seen}`);
  }

  /** The VM's document now, or null (404 marks it vanished). */
  async #doc(vm: VmModel, op: string): Promise<Reply["body"] | null> {
    const r = await this.api.call("GET", `/v1/vms/${vm.id}`);
    if (ambiguous(r)) return null;
    const reply = r as Reply;
    if (reply.status === 404) {
      this.#gone(vm, op);
      return null;
    }
    this.#see(vm, reply.body);
    return reply.status === 200 ? reply.body : null;
  }

  /** Starts a VM without NICs; detaches a NIC of one that has some. */
  async #start(vm: VmModel): Promise<void> {
    const doc = await this.#doc(vm, "start");
    if (!doc) return;
    const nic = (doc.nics as { slot: number; state: string }[])
      .find((x) => x.state === "attached");
    if (nic) {
      return await this.#change(vm, "detach", "DELETE", `/nics/${nic.slot}`);
    }
    if (doc.nics.length) return; // a detach is still under way
    await this.#change(vm, "start", "POST", "/start");
  }

  /** Attaches `net` to a stopped VM (it has no process to plug into). */
  async #attach(vm: VmModel, net: NetModel): Promise<void> {
    const doc = await this.#doc(vm, "attach");
    if (!doc || doc.desired !== "stopped" || doc.status.phase !== "stopped") {
      return;
    }
    const nics = doc.nics as { network: string }[];
    if (nics.length >= 2 || nics.some((x) => x.network === net.id)) return;
    const r = await this.api.call("POST", `/v1/vms/${vm.id}/nics`, {
      network: net.id,
    });
    this.#count("attach", r);
    vm.history.push(`${this.#off()} attach ${net.id} ${describe(r)}`);
    if (ambiguous(r)) return await this.#readBack(vm, "attach");
    const reply = r as Reply;
    if (reply.status === 404) return this.#gone(vm, "attach");
    if (reply.status < 300) this.#see(vm, reply.body.vm);
  }

  async #netCreate(name: string, rng: Rng): Promise<void> {
    const body = rng.next() < 0.5
      ? { name }
      : { name, ipv4: `10.${rng.int(0, 255)}.${rng.int(0, 255)}.0/28` };
    let r = await this.api.call("POST", "/v1/networks", body);
    this.#count("net-create", r);
    let id: string | undefined;
    if (ambiguous(r)) {
      // No idempotency key for networks: look the name up.
      const list = await this.api.settle("/v1/networks", SETTLE_MS);
      const found = (list?.body?.items ?? []).find((x: { name: string }) =>
        x.name === name
      );
      if (found) r = { status: 201, body: found };
    }
    if (!ambiguous(r) && (r as Reply).status === 201) id = (r as Reply).body.id;
    if (!id) return;
    this.networks.set(id, {
      id,
      name,
      deleted: false,
      uncertain: false,
      history: [`${this.#off()} net-create ${describe(r)}`],
    });
  }

  async #netDelete(net: NetModel): Promise<void> {
    const r = await this.api.call("DELETE", `/v1/networks/${net.id}`);
    this.#count("net-delete", r);
    net.history.push(`${this.#off()} net-delete ${describe(r)}`);
    let status = ambiguous(r) ? 0 : (r as Reply).status;
    if (!status) {
      const back = await this.api.settle(`/v1/networks/${net.id}`, SETTLE_MS);
      if (!back) {
        net.uncertain = true;
        return;
      }
      status = back.status === 404 ? 200 : 409;
    }
    if (status === 200 || status === 404) net.deleted = true;
  }

  async #mover(rng: Rng, signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      await pause(rng.int(4000, 10_000), signal);
      if (signal.aborted) break;
      const host = rng.pick(this.opts.hosts);
      this.#draining.add(host);
      const r = await this.api.call("POST", `/v1/hosts/${host}/drain`);
      this.#count("drain", r);
      await pause(rng.int(3000, 6000), signal);
      await this.#enable(host);
    }
  }

  async #enable(host: string): Promise<void> {
    const r = await this.api.settle(
      `/v1/hosts/${host}/enable`,
      SETTLE_MS,
      "POST",
    );
    this.#count("enable", r);
    if (r && r.status === 200) this.#draining.delete(host);
  }
}
