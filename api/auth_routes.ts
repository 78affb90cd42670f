/**
 * The base of the `/v1/auth` sub-app: `POST /token` exchanges TOTP
 * credentials for a short-lived bearer token (api/tokens.ts). Mount it behind
 * `totpAuth` (api/auth.ts); api/identity.ts adds the other `/v1/auth` routes.
 *
 * @example
 * ```ts
 * app.route("/v1/auth", authRoutes({ bearer }));
 * ```
 */
import { HTTPException } from "hono/http-exception";
import { createRoute, z } from "@hono/zod-openapi";
import { authMethod } from "./auth.ts";
import { router } from "./env.ts";
import { errorResponses } from "./errors.ts";
import type { BearerTokens } from "./tokens.ts";

/** The answer of `POST /v1/auth/token`. */
export const BearerToken = z.object({
  token: z.string(),
  tokenType: z.literal("Bearer"),
  expiresAt: z.string().openapi({ example: "2025-01-01T12:15:00.000Z" }),
  expiresIn: z.number().int().openapi({ example: 900 }),
}).openapi("BearerToken");

const issueToken = createRoute({
  method: "post",
  path: "/token",
  summary:
    "Exchange TOTP credentials (headers or JSON body) for a bearer token",
  responses: {
    200: {
      description: "A bearer token for `Authorization: Bearer <token>`",
      content: { "application/json": { schema: BearerToken } },
    },
    ...errorResponses(401, 503),
  },
});

/** The `/v1/auth` sub-app: `POST /token`. Mount it behind `totpAuth`. */
export function authRoutes({ bearer }: { bearer: BearerTokens }) {
  return router().openapi(issueToken, async (c) => {
    if (authMethod(c) !== "totp") {
      // A bearer token must not extend itself.
      throw new HTTPException(401, {
        message:
          "Cannot issue a bearer token for a bearer token: present TOTP credentials",
      });
    }
    const { token, claims } = await bearer.issue(c.get("principal"));
    return c.json({
      token,
      tokenType: "Bearer" as const,
      expiresAt: new Date(claims.exp * 1000).toISOString(),
      expiresIn: claims.exp - claims.iat,
    }, 200);
  });
}
