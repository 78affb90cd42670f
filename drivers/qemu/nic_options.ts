/**
 * A VM's NICs as qemu sees them: the NIC slots (one PCIe root port each),
 * the netdev and device options of one NIC (for the command line and QMP
 * hot-plug alike) and their checks. Pure, no I/O.
 *
 * @module
 */

/**
 * A virtio NIC on an existing host tap device. Slot N sits on its own PCIe
 * root port `hpN` (so it can be hot-plugged and unplugged); its netdev and
 * device are both named `nicN`.
 */
export interface QemuNic {
  /** 0 to {@linkcode NIC_SLOTS} - 1. */
  slot: number;
  /** Host tap name, 1 to 15 characters of `[a-z0-9-]`. */
  tap: string;
  /** Unicast MAC, `xx:xx:xx:xx:xx:xx` in hex. */
  mac: string;
  /**
   * MTU the guest is told (virtio `host_mtu`, 576 to 65535), e.g. the
   * network's: a VXLAN network has less than 1500. Absent: the default.
   */
  mtu?: number;
}

/** NIC slots (PCIe root ports `hp0`..`hp7`) every VM has. */
export const NIC_SLOTS = 8;

const TAP = /^[a-z0-9-]{1,15}$/;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

/** QMP arguments of `netdev_add` and `device_add` for one NIC. */
export interface NicOptions {
  netdev: {
    type: "tap";
    id: string;
    ifname: string;
    script: "no";
    downscript: "no";
  };
  device: {
    driver: "virtio-net-pci";
    id: string;
    netdev: string;
    mac: string;
    bus: string;
    /** Device 0 of the port's bus: the only one a guest scans there. */
    addr: "0";
    /** The MTU the guest uses (a number: QMP wants one). */
    host_mtu?: number;
  };
}

/**
 * The netdev and device of `nic`, as QMP `netdev_add` / `device_add`
 * arguments (the command line uses the same values). Throws TypeError or
 * RangeError naming the bad field of `nic` (as `field`, default "nic").
 *
 * @example
 * ```ts
 * const { netdev, device } = nicOptions({ slot: 1, tap: "t1", mac: "52:54:00:00:00:01" });
 * await qmp.execute("netdev_add", netdev);
 * await qmp.execute("device_add", device);
 * ```
 */
export function nicOptions(
  nic: QemuNic,
  field = "nic",
  task = "use NIC",
): NicOptions {
  checkNic(nic, field, task);
  const id = nicId(nic.slot);
  return {
    netdev: {
      type: "tap",
      id,
      ifname: nic.tap,
      script: "no",
      downscript: "no",
    },
    device: {
      driver: "virtio-net-pci",
      id,
      netdev: id,
      mac: nic.mac.toLowerCase(),
      bus: portId(nic.slot),
      addr: "0",
      ...(nic.mtu !== undefined ? { host_mtu: nic.mtu } : {}),
    },
  };
}

/** The netdev and device id of the NIC in `slot`: `nic<slot>`. */
export function nicId(slot: number): string {
  checkSlot(slot);
  return `nic${slot}`;
}

/** The PCIe root port of `slot`: `hp<slot>`. */
export function portId(slot: number): string {
  return `hp${slot}`;
}

/**
 * Throws TypeError or RangeError "Cannot <task>: <field> must be ..."
 * unless `slot` is an integer from 0 to {@linkcode NIC_SLOTS} - 1.
 *
 * @example
 * ```ts
 * checkSlot(8); // RangeError: Cannot use NIC: slot must be an integer from 0 to 7, got 8
 * ```
 */
export function checkSlot(
  slot: unknown,
  field = "slot",
  task = "use NIC",
): void {
  if (typeof slot !== "number") {
    throw new TypeError(
      `Cannot ${task}: ${field} must be a number, got ${typeof slot}`,
    );
  }
  if (!Number.isInteger(slot) || slot < 0 || slot >= NIC_SLOTS) {
    throw new RangeError(
      `Cannot ${task}: ${field} must be an integer from 0 to ${
        NIC_SLOTS - 1
      }, got ${slot}`,
    );
  }
}

/**
 * Throws TypeError or RangeError "Cannot <task>: <field>... must be ..."
 * unless `nic` is a valid {@linkcode QemuNic}.
 */
export function checkNic(nic: QemuNic, field: string, task: string): void {
  if (typeof nic !== "object" || nic === null) {
    throw new TypeError(
      `Cannot ${task}: ${field} must be an object { slot, tap, mac }`,
    );
  }
  checkSlot(nic.slot, `${field}.slot`, task);
  if (typeof nic.tap !== "string" || !TAP.test(nic.tap)) {
    throw new TypeError(
      `Cannot ${task}: ${field}.tap must be 1 to 15 characters of [a-z0-9-], got ${
        JSON.stringify(nic.tap)
      }`,
    );
  }
  if (typeof nic.mac !== "string" || !MAC.test(nic.mac)) {
    throw new TypeError(
      `Cannot ${task}: ${field}.mac must look like 52:54:00:12:34:56, got ${
        JSON.stringify(nic.mac)
      }`,
    );
  }
  if (parseInt(nic.mac.slice(0, 2), 16) & 1) {
    throw new TypeError(
      `Cannot ${task}: ${field}.mac must be a unicast MAC, got ${nic.mac}`,
    );
  }
  if (
    nic.mtu !== undefined &&
    (!Number.isInteger(nic.mtu) || nic.mtu < 576 || nic.mtu > 65_535)
  ) {
    throw new RangeError(
      `Cannot ${task}: ${field}.mtu must be an integer from 576 to 65535, got ${nic.mtu}`,
    );
  }
}
