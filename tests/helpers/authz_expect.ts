/**
 * What the auth matrix expects of every API operation: `EXPECT` maps each
 * operation of the OpenAPI document to what a plain user gets on another
 * user's things; the matrix test fails when an operation is missing here.
 */

/** What a plain user (bob) gets on an operation aimed at alice's things. */
export type UserExpect =
  | "forbidden" // admin-only: 403
  | "notFound" // alice's VM, task, network, SSH key or image: 404
  | "refused" // 401 by design (bearer cannot extend itself, wrong password)
  | "own"; // works, on bob's own things only

/** Every operation of the API; the test fails when one is missing here. */
export const EXPECT: Record<string, UserExpect> = {
  "POST /v1/vms": "own",
  "GET /v1/vms": "own",
  "GET /v1/vms/{id}": "notFound",
  "DELETE /v1/vms/{id}": "notFound",
  "POST /v1/vms/{id}/stop": "notFound",
  "POST /v1/vms/{id}/start": "notFound",
  "POST /v1/vms/{id}/reboot": "notFound",
  "POST /v1/vms/{id}/console": "notFound",
  "POST /v1/vms/{id}/nics": "notFound",
  "DELETE /v1/vms/{id}/nics/{slot}": "notFound",
  "GET /v1/vms/{id}/user-data": "notFound",
  "POST /v1/networks": "own",
  "GET /v1/networks": "own",
  "GET /v1/networks/{id}": "notFound",
  "DELETE /v1/networks/{id}": "notFound",
  "POST /v1/keys": "own",
  "GET /v1/keys": "own",
  "GET /v1/keys/{name}": "notFound",
  "DELETE /v1/keys/{name}": "notFound",
  "POST /v1/images": "own",
  "GET /v1/images": "own",
  "GET /v1/images/{name}": "notFound",
  "DELETE /v1/images/{name}": "notFound",
  "PUT /v1/images/{name}/upload": "notFound",
  "GET /v1/images/{name}/upload": "notFound",
  "POST /v1/images/{name}/publish": "forbidden",
  "POST /v1/images/{name}/unpublish": "forbidden",
  "GET /v1/hosts": "forbidden",
  "POST /v1/hosts/{name}/drain": "forbidden",
  "POST /v1/hosts/{name}/enable": "forbidden",
  "POST /v1/hosts/{name}/shutdown": "forbidden",
  "GET /v1/tasks": "own",
  "GET /v1/events": "own",
  "GET /v1/tasks/{id}": "notFound",
  "GET /v1/tasks/{id}/drain": "notFound",
  "POST /v1/maintenance/rebalance": "forbidden",
  "GET /v1/maintenance/rebalance": "forbidden",
  "GET /v1/maintenance/etcd": "forbidden",
  "GET /v1/monitoring/targets": "forbidden",
  "POST /v1/auth/token": "refused",
  "POST /v1/auth/seed": "refused",
  "GET /v1/auth/seed/{name}": "forbidden",
  "GET /v1/auth/whoami": "own",
  "POST /v1/auth/session": "refused",
  "DELETE /v1/auth/session": "own",
  "POST /v1/auth/revoke": "own",
  "POST /v1/auth/services": "forbidden",
  "GET /v1/users": "forbidden",
  "GET /v1/users/{name}/quota": "forbidden",
  "PUT /v1/users/{name}/quota": "forbidden",
};

/** One answer of the app as the matrix records it. */
export interface Answer {
  status: number;
  text: string;
  body: unknown;
  headers: Headers;
}
