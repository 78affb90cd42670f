/**
 * Form pieces of the web pages: labelled fields that show their error
 * (`aria-invalid`, `aria-describedby`), the CSRF field, the error and
 * notice banners, and `problemOf()`, which turns what a resource module
 * throws into the same status and message the API answers, with the field
 * to mark.
 *
 * @example
 * ```tsx
 * <Field label="Name" name="name" value={v.name} problem={p} required />
 * ```
 */
import type { Child } from "hono/jsx";
import { z } from "zod";
import {
  ConflictError,
  ForbiddenError,
  InvalidError,
  NotFoundError,
  UnavailableError,
} from "../../core/errors.ts";
import { zodProblem } from "../errors.ts";
import { CSRF_FIELD } from "./csrf.ts";

/** Why a form was refused: the API's status, message and field. */
export interface Problem {
  status: 400 | 401 | 403 | 404 | 409 | 429 | 503;
  message: string;
  field?: string;
}

/**
 * The problem of an error a resource module threw (QuotaError is a
 * ForbiddenError), or null for one the page does not expect (rethrow it).
 */
export function problemOf(err: unknown): Problem | null {
  if (err instanceof z.ZodError) return { status: 400, ...zodProblem(err) };
  if (err instanceof InvalidError) {
    return { status: 400, message: err.message, field: err.field };
  }
  if (err instanceof NotFoundError) {
    return { status: 404, message: err.message };
  }
  if (err instanceof ConflictError) {
    return { status: 409, message: err.message };
  }
  if (err instanceof ForbiddenError) {
    return { status: 403, message: err.message };
  }
  if (err instanceof UnavailableError) {
    return { status: 503, message: err.message };
  }
  return null;
}

/** The hidden CSRF field of a form. */
export function Csrf({ token }: { token: string }) {
  return <input type="hidden" name={CSRF_FIELD} value={token} />;
}

/** The error of a refused form, announced to screen readers. */
export function ErrorBanner({ problem }: { problem?: Problem | null }) {
  if (!problem) return null;
  return (
    <div class="error" role="alert" id="form-error">
      <p>
        <strong>Not done:</strong> {problem.message}
      </p>
    </div>
  );
}

/** A short notice after an action succeeded. */
export function Notice({ text }: { text?: string }) {
  if (!text) return null;
  return <p class="notice" role="status">{text}</p>;
}

/** Whether `problem` is about field `name` (or a part of it: `keys.0`). */
export function isFieldOf(problem: Problem | null | undefined, name: string) {
  const f = problem?.field;
  return f !== undefined && (f === name || f.startsWith(`${name}.`));
}

/** A labelled input with its hint and error. */
export function Field(
  props: {
    label: string;
    name: string;
    value?: string | number;
    type?: string;
    hint?: Child;
    problem?: Problem | null;
    required?: boolean;
    min?: number;
    max?: number;
    pattern?: string;
    autocomplete?: string;
    inputmode?: "numeric" | "text";
  },
) {
  const { label, name, hint, problem, type = "text", ...rest } = props;
  const id = `f-${name}`;
  const bad = isFieldOf(problem, name);
  const described = [hint ? `${id}-hint` : "", bad ? `${id}-error` : ""]
    .filter(Boolean).join(" ");
  return (
    <div class={bad ? "field invalid" : "field"}>
      <label for={id}>{label}</label>
      <input
        id={id}
        name={name}
        type={type}
        {...rest}
        value={rest.value === undefined ? undefined : String(rest.value)}
        aria-invalid={bad ? "true" : undefined}
        aria-describedby={described || undefined}
      />
      {hint && <p class="hint" id={`${id}-hint`}>{hint}</p>}
      {bad && <p class="field-error" id={`${id}-error`}>{problem!.message}</p>}
    </div>
  );
}

/** What a page says after a redirect from a successful action (`?done=`). */
const NOTICES: Record<string, string> = {
  created: "VM created: it starts as soon as a host has taken it.",
  started: "Starting the VM.",
  stopped: "Stopping the VM.",
  deleted: "Deleting the VM.",
  attached: "Network attached.",
  detached: "Network detached.",
  "net-created": "Network created.",
  "net-deleted": "Network deleted.",
  "key-added": "SSH key added.",
  "key-deleted": "SSH key deleted.",
};

/** The notice of `done` (a fixed text; nothing of the URL is shown). */
export function noticeOf(done: string | undefined): string | undefined {
  return done === undefined ? undefined : NOTICES[done];
}

/** A form field's text ("" when absent or a file). */
export function textOf(form: FormData, name: string): string {
  const v = form.get(name);
  return typeof v === "string" ? v : "";
}

/** A number field: absent or blank is undefined, else `Number()` of it. */
export function numberOf(form: FormData, name: string): number | undefined {
  const v = textOf(form, name).trim();
  return v === "" ? undefined : Number(v);
}
