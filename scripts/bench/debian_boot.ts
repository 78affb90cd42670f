/**
 * The `debian-boot` phase of the bench (only with `--only=debian-boot`; a
 * TCG boot takes minutes): the one-host cloud of
 * tests/helpers/debian_cloud.ts (worker with qemu under TCG, host
 * networking, metadata service, the Debian image uploaded through the
 * API), then `boots` times one after the other: a VM from the image with
 * one key, timed from `POST /v1/vms` to running and to the first ssh login
 * over its IPv6 address from the network's bridge, then deleted.
 *
 * @example
 * ```ts
 * const r = await benchDebianBoot({ boots: 3 }, cleanup);
 * console.log(debianBootRows(r));
 * ```
 */
import { waitFor } from "../../tests/helpers/cluster.ts";
import { startDebianCloud } from "../../tests/helpers/debian_cloud.ts";
import {
  type Cleanup,
  progress,
  type Row,
  summarize,
  type Summary,
} from "./util.ts";

/** What the phase measured. */
export interface DebianBootResult {
  boots: number;
  /** `POST /v1/vms` to the VM's phase `running`, ms. */
  runningMs: Summary;
  /** `POST /v1/vms` to the first ssh login, ms. */
  sshMs: Summary;
}

/** A boot that takes longer than this failed (TCG on a loaded machine). */
const BOOT_MS = 1_200_000;

/** Boots the Debian image `boots` times; see the module doc. */
export async function benchDebianBoot(
  { boots }: { boots: number },
  cleanup: Cleanup,
): Promise<DebianBootResult> {
  const cloud = await startDebianCloud();
  // close() runs once: at the end here, or on a signal through the cleanup.
  cleanup.add("debian cloud", () => cloud.close());
  const running: number[] = [];
  const ssh: number[] = [];
  try {
    const key = await cloud.addKey("bench");
    for (let i = 0; i < boots; i++) {
      const start = performance.now();
      const vm = await cloud.createVm({
        name: `deb-bench-${i}`,
        keys: ["bench"],
      });
      await cloud.waitRunning(vm.id);
      running.push(performance.now() - start);
      await waitFor(
        `an ssh login to ${vm.nics[0].ipv6}`,
        () =>
          cloud.client.ssh(
            key.privateFile,
            `debian@${vm.nics[0].ipv6}`,
            "true",
          ),
        BOOT_MS,
        1_000,
      );
      ssh.push(performance.now() - start);
      progress(
        `debian-boot ${i + 1}/${boots}: running ${
          Math.round(running[i])
        } ms, ` +
          `ssh ${Math.round(ssh[i])} ms`,
      );
      await cloud.deleteVm(vm.id);
    }
  } finally {
    await cloud.close();
  }
  return { boots, runningMs: summarize(running), sshMs: summarize(ssh) };
}

/** The phase's rows of the bench table. */
export function debianBootRows(r: DebianBootResult): Row[] {
  const notes =
    `${r.boots} boots of the Debian image under TCG, 1 vCPU, 512 MiB`;
  return [
    {
      name: "debian boot to ssh p50",
      value: Math.round(r.sshMs.p50 / 100) / 10,
      unit: "s",
      notes: `${notes}, POST /v1/vms to the first ssh login; ` +
        `min ${Math.round(r.sshMs.min / 1000)} s, max ${
          Math.round(r.sshMs.max / 1000)
        } s`,
    },
    {
      name: "debian VM running p50",
      value: Math.round(r.runningMs.p50 / 100) / 10,
      unit: "s",
      notes: `${notes}, POST /v1/vms to phase running`,
    },
  ];
}
