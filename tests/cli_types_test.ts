/**
 * The CLI's API types (cli/api_types.ts) are generated from the API's
 * OpenAPI document; this fails when the API changed and the file was not
 * generated again.
 */
import assert from "node:assert/strict";
import { generateCliTypes, TYPES_FILE } from "../scripts/cli_types.ts";

Deno.test("cli/api_types.ts is what deno task cli-types generates from the API's OpenAPI document", async () => {
  const kept = await Deno.readTextFile(TYPES_FILE);
  assert.ok(
    kept === await generateCliTypes(),
    "cli/api_types.ts is out of date: run 'deno task cli-types'",
  );
});
