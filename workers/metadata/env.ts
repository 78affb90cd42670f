/**
 * What the metadata app's handlers know about a request (Hono variables),
 * set by the app's middleware (workers/metadata/app.ts) once the caller is
 * identified and its metadata read: the trees (ec2.ts, openstack.ts,
 * nocloud.ts) only format it.
 *
 * @example
 * ```ts
 * const tree = new Hono<MetadataEnv>();
 * tree.get("/instance-id", (c) => c.text(c.get("meta").instanceId));
 * ```
 */
import type { VmMetadata } from "../../resources/vms/metadata.ts";
import type { Identified, ListenerKind } from "./identity.ts";

/** The Hono environment of the metadata app. */
export interface MetadataEnv {
  Bindings: {
    /** The listener the request arrived on. */
    listener: ListenerKind;
    /** The connection's source address (as the socket reports it). */
    remote: string;
  };
  Variables: {
    who: Identified;
    meta: VmMetadata;
  };
}
