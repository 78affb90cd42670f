/**
 * `/v1/keys`: add, list, show and delete the caller's SSH public keys (the
 * keys of SFTP uploads and of VMs). The handlers validate (zod) and call
 * the key resource (resources/keys/: the OpenSSH line checks, one
 * transaction per change); api/errors.ts maps what it throws.
 *
 * @example
 * ```ts
 * app.route("/v1/keys", sshKeys({ store, config }));
 * ```
 */
import { createRoute, z } from "@hono/zod-openapi";
import { SshKey, SshKeyCreateInput } from "../core/image_schemas.ts";
import { NAME_RE } from "../core/schemas.ts";
import * as res from "../resources/keys/mod.ts";
import { type Deps, router } from "./env.ts";
import { errorResponses } from "./errors.ts";

export const SshKeyDoc = z.object(SshKey.shape).openapi("SshKey");

/** The `{name}` path parameter of a key. */
const KeyParams = z.object({
  name: z.string().regex(
    NAME_RE,
    "name must be 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit",
  ).openapi({ param: { name: "name", in: "path" }, example: "k1" }),
});

const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});

const createKey = createRoute({
  method: "post",
  path: "/",
  summary: "Add an SSH public key",
  description: "`publicKey` is one OpenSSH public key line, `type base64 " +
    "[comment]` (at most 16 KiB, no authorized_keys options), of type " +
    `${res.KEY_TYPES.join(", ")}; RSA keys need at least ` +
    `${res.MIN_RSA_BITS} bits. The answer has its fingerprint as ` +
    "`ssh-keygen -l -E sha256` prints it.",
  request: {
    body: {
      required: true,
      content: { "application/json": { schema: SshKeyCreateInput } },
    },
  },
  responses: {
    201: json(SshKeyDoc, "Key added"),
    ...errorResponses(400, 409, 415, 503),
  },
});

const listKeys = createRoute({
  method: "get",
  path: "/",
  summary: "List the caller's SSH keys",
  responses: {
    200: json(z.object({ items: z.array(SshKeyDoc) }), "Keys"),
    ...errorResponses(503),
  },
});

const showKey = createRoute({
  method: "get",
  path: "/{name}",
  summary: "Show one of the caller's SSH keys",
  request: { params: KeyParams },
  responses: {
    200: json(SshKeyDoc, "The key"),
    ...errorResponses(400, 404, 503),
  },
});

const deleteKey = createRoute({
  method: "delete",
  path: "/{name}",
  summary: "Delete one of the caller's SSH keys",
  request: { params: KeyParams },
  responses: {
    200: json(z.object({ deleted: z.string() }), "Key deleted"),
    ...errorResponses(400, 404, 409, 503),
  },
});

/** Builds the `/v1/keys` sub-app. */
export function sshKeys({ store }: Deps) {
  return router()
    .openapi(createKey, async (c) => {
      const key = await res.createKey(
        store,
        c.get("principal"),
        c.req.valid("json"),
      );
      return c.json(key, 201);
    })
    .openapi(listKeys, async (c) => {
      const items = await res.listKeys(store, c.get("principal"));
      return c.json({ items }, 200);
    })
    .openapi(showKey, async (c) => {
      const key = await res.showKey(
        store,
        c.get("principal"),
        c.req.valid("param").name,
      );
      return c.json(key, 200);
    })
    .openapi(deleteKey, async (c) => {
      const name = c.req.valid("param").name;
      await res.deleteKey(store, c.get("principal"), name);
      return c.json({ deleted: name }, 200);
    });
}
