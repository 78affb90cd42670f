/**
 * Rejected API requests against a real etcd: every bad body, path, header
 * or caller is refused with the right error and leaves etcd exactly as it
 * was (same keys, values, mod revisions and store revision).
 */
import assert from "node:assert/strict";
import {
  assertError,
  call,
  type CallInit,
  dump,
  headerAuth,
  noSanitize,
} from "./helpers/api.ts";
import { input } from "./helpers/api_fixtures.ts";
import { withApiEnv } from "./helpers/api_env.ts";

Deno.test({
  name: "api: /v1 against a real etcd: rejected requests",
  ...noSanitize,
  fn: (t) =>
    withApiEnv(t, async ({ fresh, create }) => {
      await t.step({
        name: "rejected requests leave etcd unchanged",
        ...noSanitize,
        async fn(t) {
          const { store, app } = fresh({ auth: headerAuth });
          const seed = await create(app, input, {
            headers: { "X-User": "alice", "Idempotency-Key": "seed" },
          });
          await create(app, { ...input, name: "other" }, {
            headers: { "X-User": "bob" },
          });
          const unknownId = "vm-0000000000-00000000";
          const alice = { "X-User": "alice" };
          const json = { ...alice, "content-type": "application/json" };
          type Case = {
            name: string;
            method: string;
            path: string;
            init?: CallInit;
            status: number;
            field?: string;
            message: RegExp;
          };
          const cases: Case[] = [
            {
              name: "malformed JSON",
              method: "POST",
              path: "/v1/vms",
              init: { body: '{"name": "web1", ', headers: json },
              status: 400,
              field: "body",
              message: /JSON/,
            },
            {
              name: "a JSON array body",
              method: "POST",
              path: "/v1/vms",
              init: { json: [input], headers: alice },
              status: 400,
              field: "body",
              message: /expected object/,
            },
            {
              name: "unknown field",
              method: "POST",
              path: "/v1/vms",
              init: { json: { ...input, color: "red" }, headers: alice },
              status: 400,
              field: "color",
              message: /Unknown field "color"/,
            },
            {
              name: 'wrong type (cpus "two")',
              method: "POST",
              path: "/v1/vms",
              init: { json: { ...input, cpus: "two" }, headers: alice },
              status: 400,
              field: "cpus",
              message: /^cpus: .*expected number/,
            },
            {
              name: "cpus 0",
              method: "POST",
              path: "/v1/vms",
              init: { json: { ...input, cpus: 0 }, headers: alice },
              status: 400,
              field: "cpus",
              message: /^cpus: .*>=1/,
            },
            {
              name: "cpus 65",
              method: "POST",
              path: "/v1/vms",
              init: { json: { ...input, cpus: 65 }, headers: alice },
              status: 400,
              field: "cpus",
              message: /^cpus: .*<=64/,
            },
            {
              name: "cpus 1.5",
              method: "POST",
              path: "/v1/vms",
              init: { json: { ...input, cpus: 1.5 }, headers: alice },
              status: 400,
              field: "cpus",
              message: /^cpus: .*int/,
            },
            {
              name: "memory 10",
              method: "POST",
              path: "/v1/vms",
              init: { json: { ...input, memory: 10 }, headers: alice },
              status: 400,
              field: "memory",
              message: /^memory: .*>=96/,
            },
            {
              name: "memory too big",
              method: "POST",
              path: "/v1/vms",
              init: { json: { ...input, memory: 2_000_000 }, headers: alice },
              status: 400,
              field: "memory",
              message: /^memory: .*<=1048576/,
            },
            {
              name: "disk 0",
              method: "POST",
              path: "/v1/vms",
              init: { json: { ...input, disk: 0 }, headers: alice },
              status: 400,
              field: "disk",
              message: /^disk: .*>=1/,
            },
            {
              name: "disk too big",
              method: "POST",
              path: "/v1/vms",
              init: { json: { ...input, disk: 65_537 }, headers: alice },
              status: 400,
              field: "disk",
              message: /^disk: .*<=65536/,
            },
            {
              name: "disk not whole GiB",
              method: "POST",
              path: "/v1/vms",
              init: { json: { ...input, disk: 1.5 }, headers: alice },
              status: 400,
              field: "disk",
              message: /^disk: /,
            },
            {
              name: "disk as text",
              method: "POST",
              path: "/v1/vms",
              init: { json: { ...input, disk: "20" }, headers: alice },
              status: 400,
              field: "disk",
              message: /^disk: .*expected number/,
            },
            {
              name: "bad name",
              method: "POST",
              path: "/v1/vms",
              init: { json: { ...input, name: "Web_1" }, headers: alice },
              status: 400,
              field: "name",
              message: /^name must be 1-63 lowercase letters/,
            },
            {
              name: "bad image",
              method: "POST",
              path: "/v1/vms",
              init: { json: { ...input, image: "../x" }, headers: alice },
              status: 400,
              field: "image",
              message: /^image: /,
            },
            {
              name: "missing field",
              method: "POST",
              path: "/v1/vms",
              init: { json: { name: "web1", cpus: 1 }, headers: alice },
              status: 400,
              field: "memory",
              message: /^memory: .*expected number, received undefined/,
            },
            {
              name: "empty body",
              method: "POST",
              path: "/v1/vms",
              init: { body: "", headers: json },
              status: 400,
              field: "body",
              message: /JSON/,
            },
            {
              name: "text/plain body",
              method: "POST",
              path: "/v1/vms",
              init: {
                body: JSON.stringify(input),
                headers: { ...alice, "content-type": "text/plain" },
              },
              status: 415,
              message: /Unsupported Media Type/,
            },
            {
              name: "body without content type",
              method: "POST",
              path: "/v1/vms",
              init: { body: JSON.stringify(input), headers: alice },
              status: 415,
              message: /Unsupported Media Type/,
            },
            {
              name: "Idempotency-Key with a space",
              method: "POST",
              path: "/v1/vms",
              init: {
                json: input,
                headers: { ...alice, "Idempotency-Key": "a b" },
              },
              status: 400,
              field: "Idempotency-Key",
              message: /Idempotency-Key must be 1-200 characters/,
            },
            {
              name: "Idempotency-Key of 201 characters",
              method: "POST",
              path: "/v1/vms",
              init: {
                json: input,
                headers: { ...alice, "Idempotency-Key": "k".repeat(201) },
              },
              status: 400,
              field: "Idempotency-Key",
              message: /Idempotency-Key must be/,
            },
            {
              name: "Idempotency-Key reused with another body",
              method: "POST",
              path: "/v1/vms",
              init: {
                json: { ...input, memory: 256 },
                headers: { ...alice, "Idempotency-Key": "seed" },
              },
              status: 409,
              message: /Idempotency-Key seed was used with a different request/,
            },
            ...["GET", "DELETE"].flatMap((method) => [
              {
                name: `${method} unknown VM`,
                method,
                path: `/v1/vms/${unknownId}`,
                init: { headers: alice },
                status: 404,
                message: new RegExp(`Cannot find vm ${unknownId}`),
              },
              {
                name: `${method} malformed VM id`,
                method,
                path: "/v1/vms/Bad_Id",
                init: { headers: alice },
                status: 400,
                field: "id",
                message: /^id must be 1-64 lowercase/,
              },
              {
                name: `${method} another user's VM`,
                method,
                path: `/v1/vms/${seed.vm.id}`,
                init: { headers: { "X-User": "bob" } },
                status: 404,
                message: /Cannot find vm/,
              },
            ]),
            ...["stop", "start"].flatMap((action) => [
              {
                name: `${action} unknown VM`,
                method: "POST",
                path: `/v1/vms/${unknownId}/${action}`,
                init: { headers: alice },
                status: 404,
                message: /Cannot find vm/,
              },
              {
                name: `${action} malformed VM id`,
                method: "POST",
                path: `/v1/vms/-x/${action}`,
                init: { headers: alice },
                status: 400,
                field: "id",
                message: /id must be/,
              },
              {
                name: `${action} another user's VM`,
                method: "POST",
                path: `/v1/vms/${seed.vm.id}/${action}`,
                init: { headers: { "X-User": "bob" } },
                status: 404,
                message: /Cannot find vm/,
              },
            ]),
            {
              name: "stop a VM without host",
              method: "POST",
              path: `/v1/vms/${seed.vm.id}/stop`,
              init: { headers: alice },
              status: 409,
              message: /has no host yet \(phase pending\)/,
            },
            ...["0", "1001", "ten", "-1", "2.5"].map((limit) => ({
              name: `tasks limit=${limit}`,
              method: "GET",
              path: `/v1/tasks?limit=${limit}`,
              init: { headers: alice },
              status: 400,
              field: "limit",
              message: /^limit: /,
            })),
            {
              name: "tasks state=bogus",
              method: "GET",
              path: "/v1/tasks?state=bogus",
              init: { headers: alice },
              status: 400,
              field: "state",
              message: /^state: /,
            },
            {
              name: "unknown task",
              method: "GET",
              path: "/v1/tasks/t-nope",
              init: { headers: alice },
              status: 404,
              message: /Cannot find task t-nope/,
            },
            {
              name: "drain report of a task that is no drain",
              method: "GET",
              path: `/v1/tasks/${seed.task.id}/drain`,
              init: { headers: alice },
              status: 409,
              message: /is a vm\.create, not a host\.drain/,
            },
            {
              name: "another user's task",
              method: "GET",
              path: `/v1/tasks/${seed.task.id}`,
              init: { headers: { "X-User": "bob" } },
              status: 404,
              message: /Cannot find task/,
            },
            {
              name: "unknown route",
              method: "GET",
              path: "/v1/nope",
              init: { headers: alice },
              status: 404,
              message: /No route GET \/v1\/nope/,
            },
            {
              name: "unsupported method",
              method: "PUT",
              path: "/v1/vms",
              init: { json: input, headers: alice },
              status: 404,
              message: /No route PUT/,
            },
            {
              name: "no principal (auth rejects)",
              method: "POST",
              path: "/v1/vms",
              init: { json: input },
              status: 401,
              message: /No X-User header/,
            },
            {
              name: "body over 64 KiB",
              method: "POST",
              path: "/v1/networks",
              init: {
                json: { name: "n", kind: "private", x: "a".repeat(70_000) },
                headers: alice,
              },
              status: 413,
              message: /larger than 65536 bytes/,
            },
            {
              // VM create has room for 64 KiB of user data, JSON-escaped.
              name: "VM create body over its own limit",
              method: "POST",
              path: "/v1/vms",
              init: {
                json: { ...input, name: "a".repeat(460_000) },
                headers: alice,
              },
              status: 413,
              message: /larger than 458752 bytes/,
            },
          ];
          for (const k of cases) {
            await t.step({
              name: `${k.name} -> ${k.status}`,
              ...noSanitize,
              async fn() {
                const before = await dump(store);
                const r = await call(app, k.method, k.path, k.init);
                assertError(r, k.status, k.field, k.message);
                assert.deepEqual(await dump(store), before);
              },
            });
          }
        },
      });
    }),
});
