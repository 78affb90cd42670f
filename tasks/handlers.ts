/**
 * The task kinds a worker runs, by name.
 *
 * @example
 * ```ts
 * const handler = handlers["vm.start"];
 * ```
 */
import type { TaskHandler } from "./context.ts";
import { hostDrain } from "./host_drain.ts";
import { hostFailed } from "./host_failed.ts";
import { imageDelete } from "./image_delete.ts";
import { imageImport } from "./image_import.ts";
import { imageFetch } from "./image_fetch.ts";
import { vmCreate } from "./vm_create.ts";
import { vmDelete } from "./vm_delete.ts";
import { vmMove } from "./vm_move.ts";
import { vmNics } from "./vm_nics.ts";
import { vmReboot } from "./vm_reboot.ts";
import { vmStart } from "./vm_start.ts";
import { vmStop } from "./vm_stop.ts";

export const handlers: Readonly<Record<string, TaskHandler>> = {
  "vm.create": vmCreate,
  "vm.start": vmStart,
  "vm.stop": vmStop,
  "vm.reboot": vmReboot,
  "vm.delete": vmDelete,
  "vm.move": vmMove,
  "vm.nics": vmNics,
  "host.failed": hostFailed,
  "host.drain": hostDrain,
  "image.import": imageImport,
  "image.delete": imageDelete,
  "image.fetch": imageFetch,
};
