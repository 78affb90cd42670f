/**
 * NIC hot-plug of a running qemu over QMP: list, plug and unplug the
 * `nicN` devices on root ports `hpN`. The driver serializes the changes of
 * one VM; these functions do the QMP work. Internal.
 *
 * @example
 * ```ts
 * await plugNicInto(handle, { slot: 0, tap: "uc-tap0", mac: "52:54:00:00:00:01" });
 * await listNicSlots(handle); // [0]
 * ```
 *
 * @module
 */
import { basename } from "node:path";
import { delay } from "./_deadline.ts";
import { nicId, nicOptions, type QemuNic } from "./nic_options.ts";
import { QmpClient, QmpError } from "./qmp.ts";

/** The parts of a qemu handle that NIC changes need. */
export interface NicTarget {
  dir: string;
  qmp: string;
}

const QMP_CALL_TIMEOUT_MS = 3_000;
/** Hot-unplug under TCG took about 0.1 s (ACPI hot-plug); 20 s is generous. */
const UNPLUG_TIMEOUT_MS = 20_000;
/** How often an unplug request is repeated while the guest has not acted. */
const UNPLUG_REPEAT_MS = 2_000;
const UNPLUG_POLL_MS = 100;

/** Slots of the NICs qemu has now, sorted. */
export async function listNicSlots(
  target: NicTarget,
  signal?: AbortSignal,
): Promise<number[]> {
  return await withQmp(
    target,
    "list NICs",
    signal,
    (qmp) => nicSlots(qmp, signal),
  );
}

/** Plugs `nic` in (see `QemuDriver.plugNic`). */
export async function plugNicInto(
  target: NicTarget,
  nic: QemuNic,
  signal?: AbortSignal,
): Promise<void> {
  const { netdev, device } = nicOptions(nic, "nic", "plug NIC");
  const what = `plug NIC into slot ${nic.slot} of vm ${basename(target.dir)}`;
  await withQmp(target, what, signal, async (qmp) => {
    const opts = { signal, timeoutMs: QMP_CALL_TIMEOUT_MS };
    if ((await nicSlots(qmp, signal)).includes(nic.slot)) {
      const mac = await qmp.execute<string>("qom-get", {
        path: `/machine/peripheral/${device.id}`,
        property: "mac",
      }, opts);
      if (mac.toLowerCase() === device.mac) return;
      throw new Error(
        `Cannot ${what}: the slot holds a NIC with MAC ${mac}; unplug it first`,
      );
    }
    // A netdev left over by an interrupted plug or unplug.
    await netdevDel(qmp, netdev.id, signal);
    await qmp.execute("netdev_add", { ...netdev }, opts);
    try {
      await qmp.execute("device_add", { ...device }, opts);
    } catch (err) {
      await netdevDel(qmp, netdev.id, signal).catch(() => {});
      throw err;
    }
  });
}

/** Unplugs the NIC of `slot` (see `QemuDriver.unplugNic`). */
export async function unplugNicFrom(
  target: NicTarget,
  slot: number,
  { signal, timeoutMs = UNPLUG_TIMEOUT_MS }: {
    signal?: AbortSignal;
    timeoutMs?: number;
  } = {},
): Promise<void> {
  const id = nicId(slot);
  const what = `unplug NIC from slot ${slot} of vm ${basename(target.dir)}`;
  /** Asks the guest to release the NIC; false when it is not there. */
  const ask = () =>
    withQmp(target, what, signal, async (qmp) => {
      if (!(await nicSlots(qmp, signal)).includes(slot)) return false;
      try {
        await qmp.execute("device_del", { id }, {
          signal,
          timeoutMs: QMP_CALL_TIMEOUT_MS,
        });
      } catch (err) {
        // Asked before (e.g. by an attempt that timed out): keep waiting.
        if (!(err instanceof QmpError && /process of unplug/.test(err.desc))) {
          throw err;
        }
      }
      return true;
    });
  if (await ask()) {
    // Polled on short connections: QMP serves one client at a time, and
    // inspect() must not starve while the guest takes its time. The
    // request is repeated: a guest that was still booting when it came
    // (ACPI not up yet) never sees the first one.
    const until = Date.now() + timeoutMs;
    let again = Date.now() + UNPLUG_REPEAT_MS;
    while (
      (await withQmp(target, what, signal, (qmp) => nicSlots(qmp, signal)))
        .includes(slot)
    ) {
      if (Date.now() >= until) {
        throw new Error(
          `Cannot ${what}: the guest did not release it within ${timeoutMs} ms`,
        );
      }
      if (Date.now() >= again) {
        again = Date.now() + UNPLUG_REPEAT_MS;
        if (!await ask()) break;
      }
      await delay(UNPLUG_POLL_MS, signal);
    }
  }
  await withQmp(target, what, signal, (qmp) => netdevDel(qmp, id, signal));
}

/** Runs `fn` on a fresh QMP connection to the VM, then closes it. */
async function withQmp<T>(
  target: NicTarget,
  what: string,
  signal: AbortSignal | undefined,
  fn: (qmp: QmpClient) => Promise<T>,
): Promise<T> {
  let qmp: QmpClient;
  try {
    qmp = await QmpClient.connect(target.qmp, {
      signal,
      timeoutMs: QMP_CALL_TIMEOUT_MS,
    });
  } catch (err) {
    signal?.throwIfAborted();
    throw new Error(`Cannot ${what}: QMP does not answer`, { cause: err });
  }
  try {
    return await fn(qmp);
  } catch (err) {
    signal?.throwIfAborted();
    if (err instanceof Error && err.message.startsWith(`Cannot ${what}`)) {
      throw err;
    }
    throw new Error(
      `Cannot ${what}: ${err instanceof Error ? err.message : err}`,
      { cause: err },
    );
  } finally {
    await qmp.close();
  }
}

/** Slots of the `nicN` devices qemu has, sorted. */
async function nicSlots(
  qmp: QmpClient,
  signal?: AbortSignal,
): Promise<number[]> {
  const children = await qmp.execute<{ name: string; type: string }[]>(
    "qom-list",
    { path: "/machine/peripheral" },
    { signal, timeoutMs: QMP_CALL_TIMEOUT_MS },
  );
  return children.flatMap(({ name }) => {
    const match = /^nic([0-9]+)$/.exec(name);
    return match ? [Number(match[1])] : [];
  }).sort((a, b) => a - b);
}

/** Removes netdev `id`; one that does not exist is fine. */
async function netdevDel(
  qmp: QmpClient,
  id: string,
  signal?: AbortSignal,
): Promise<void> {
  try {
    await qmp.execute("netdev_del", { id }, {
      signal,
      timeoutMs: QMP_CALL_TIMEOUT_MS,
    });
  } catch (err) {
    if (!(err instanceof QmpError && err.errorClass === "DeviceNotFound")) {
      throw err;
    }
  }
}
