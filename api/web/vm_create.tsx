/**
 * `GET /web/vms/new` and `POST /web/vms`: the create form (name, size,
 * image, SSH keys, networks, user data) and its handler, which calls the
 * same resource function as `POST /v1/vms` (resources/vms `createVm`: one
 * transaction, nothing written when it refuses) after the same input
 * schema (`VmCreateInput`). A refusal shows the form again with the API's
 * status and message, the field marked. Each form carries a fresh
 * idempotency key, so sending it twice creates one VM.
 *
 * @example
 * ```ts
 * vms.get("/new", createPage(w)).post("/", createVmAction(w));
 * ```
 */
import type { Context, Handler } from "hono";
import type { Image } from "../../core/image_schemas.ts";
import type { Network } from "../../core/schemas.ts";
import { VmCreateInput } from "../../core/schemas.ts";
import { listImages } from "../../resources/images/mod.ts";
import { listKeys } from "../../resources/keys/mod.ts";
import { canUse, listNetworks } from "../../resources/networks/mod.ts";
import { createVm } from "../../resources/vms/mod.ts";
import type { SshKey } from "../../core/image_schemas.ts";
import type { WebDeps, WebEnv } from "./env.ts";
import {
  Csrf,
  ErrorBanner,
  Field,
  isFieldOf,
  numberOf,
  type Problem,
  problemOf,
  textOf,
} from "./form.tsx";
import { Layout, pageCtx } from "./layout.tsx";

/** What the form shows: the values sent, or the defaults. */
interface Values {
  name: string;
  cpus: string;
  memory: string;
  disk: string;
  image: string;
  /** "all": the owner's keys when served; "chosen": `keys` only. */
  keyMode: string;
  keys: string[];
  networks: string[];
  userData: string;
}

const DEFAULTS: Values = {
  name: "",
  cpus: "1",
  memory: "512",
  disk: "",
  image: "tiny",
  keyMode: "all",
  keys: [],
  networks: [],
  userData: "",
};

const IDEM_RE = /^[A-Za-z0-9_.:-]{1,200}$/;

/** The create input of a sent form (VmCreateInput checks it). */
function inputOf(form: FormData): unknown {
  const userData = textOf(form, "userData");
  const strings = (n: string) =>
    form.getAll(n).filter((v): v is string => typeof v === "string");
  return {
    name: textOf(form, "name").trim(),
    cpus: numberOf(form, "cpus"),
    memory: numberOf(form, "memory"),
    disk: numberOf(form, "disk"),
    image: textOf(form, "image").trim() || undefined,
    keys: textOf(form, "keyMode") === "chosen" ? strings("keys") : undefined,
    networks: strings("networks"),
    userData: userData === "" ? undefined : userData.replaceAll("\r\n", "\n"),
  };
}

function valuesOf(form: FormData): Values {
  const strings = (n: string) =>
    form.getAll(n).filter((v): v is string => typeof v === "string");
  return {
    name: textOf(form, "name"),
    cpus: textOf(form, "cpus"),
    memory: textOf(form, "memory"),
    disk: textOf(form, "disk"),
    image: textOf(form, "image"),
    keyMode: textOf(form, "keyMode") === "chosen" ? "chosen" : "all",
    keys: strings("keys"),
    networks: strings("networks"),
    userData: textOf(form, "userData"),
  };
}

function Choices(
  { legend, name, items, checked, problem, hint }: {
    legend: string;
    name: string;
    items: { value: string; label: string }[];
    checked: string[];
    problem?: Problem | null;
    hint?: string;
  },
) {
  const bad = isFieldOf(problem, name);
  return (
    <fieldset class={bad ? "invalid" : undefined}>
      <legend>{legend}</legend>
      {hint && <p class="hint">{hint}</p>}
      {items.length === 0 && <p class="hint">None yet.</p>}
      {items.map((it) => (
        <div class="check" key={it.value}>
          <input
            type="checkbox"
            id={`f-${name}-${it.value}`}
            name={name}
            value={it.value}
            checked={checked.includes(it.value)}
          />
          <label for={`f-${name}-${it.value}`}>{it.label}</label>
        </div>
      ))}
      {bad && <p class="field-error">{problem!.message}</p>}
    </fieldset>
  );
}

function CreateForm(
  { csrf, v, problem, images, keys, networks }: {
    csrf: string;
    v: Values;
    problem?: Problem | null;
    images: Image[];
    keys: SshKey[];
    networks: Network[];
  },
) {
  const imageNames = [...new Set(["tiny", ...images.map((i) => i.name)])];
  const imageBad = isFieldOf(problem, "image");
  return (
    <form method="post" action="/web/vms">
      <Csrf token={csrf} />
      <input type="hidden" name="idem" value={crypto.randomUUID()} />
      <Field
        label="Name"
        name="name"
        value={v.name}
        problem={problem}
        required
        hint="Lowercase letters, digits and '-', at most 63."
      />
      <Field
        label="CPUs"
        name="cpus"
        type="number"
        min={1}
        max={64}
        value={v.cpus}
        problem={problem}
        required
      />
      <Field
        label="Memory (MiB)"
        name="memory"
        type="number"
        min={96}
        value={v.memory}
        problem={problem}
        required
      />
      <Field
        label="Disk size (GiB)"
        name="disk"
        type="number"
        min={1}
        value={v.disk}
        problem={problem}
        hint="Empty: the image's own size."
      />
      <div class={imageBad ? "field invalid" : "field"}>
        <label for="f-image">Image</label>
        <select
          id="f-image"
          name="image"
          aria-invalid={imageBad ? "true" : undefined}
        >
          {imageNames.map((n) => (
            <option key={n} value={n} selected={n === v.image}>{n}</option>
          ))}
        </select>
        {imageBad && <p class="field-error">{problem!.message}</p>}
      </div>
      <fieldset>
        <legend>SSH keys</legend>
        <div class="check">
          <input
            type="radio"
            id="f-keymode-all"
            name="keyMode"
            value="all"
            checked={v.keyMode !== "chosen"}
          />
          <label for="f-keymode-all">All my keys, also ones added later</label>
        </div>
        <div class="check">
          <input
            type="radio"
            id="f-keymode-chosen"
            name="keyMode"
            value="chosen"
            checked={v.keyMode === "chosen"}
          />
          <label for="f-keymode-chosen">Only the keys checked below</label>
        </div>
      </fieldset>
      <Choices
        legend="Keys to give the VM"
        name="keys"
        items={keys.map((k) => ({ value: k.name, label: k.name }))}
        checked={v.keys}
        problem={problem}
        hint="Used with 'Only the keys checked below'."
      />
      <Choices
        legend="Networks"
        name="networks"
        items={networks.map((n) => ({
          value: n.id,
          label: `${n.name} (${n.kind}, ${n.prefix})`,
        }))}
        checked={v.networks}
        problem={problem}
        hint="One NIC in each, in this order."
      />
      <div class={isFieldOf(problem, "userData") ? "field invalid" : "field"}>
        <label for="f-userData">User data</label>
        <textarea id="f-userData" name="userData" rows={6} spellcheck={false}>
          {v.userData}
        </textarea>
        <p class="hint">For example a cloud-config; at most 64 KiB.</p>
        {isFieldOf(problem, "userData") && (
          <p class="field-error">{problem!.message}</p>
        )}
      </div>
      <button type="submit">Create VM</button>
    </form>
  );
}

/** Renders the form page with `v` and `problem`. */
async function formPage(
  c: Context<WebEnv>,
  { deps }: WebDeps,
  v: Values,
  problem?: Problem,
) {
  const who = c.get("principal");
  const [images, keys, networks] = await Promise.all([
    listImages(deps.store, who),
    listKeys(deps.store, who),
    listNetworks(deps.store, who),
  ]);
  return c.html(
    <Layout title="Create a VM" ctx={pageCtx(c)}>
      <ErrorBanner problem={problem} />
      <CreateForm
        csrf={c.get("csrf")}
        v={v}
        problem={problem}
        images={images.filter((i) => i.state === "ready")}
        keys={keys}
        networks={networks.filter((n) => canUse(who, n))}
      />
    </Layout>,
    problem?.status ?? 200,
  );
}

/** `GET /web/vms/new`. */
export function createPage(w: WebDeps): Handler<WebEnv> {
  return (c) => formPage(c, w, DEFAULTS);
}

/** `POST /web/vms`. */
export function createVmAction(w: WebDeps): Handler<WebEnv> {
  return async (c) => {
    const form = await c.req.formData();
    const idem = textOf(form, "idem");
    try {
      const input = VmCreateInput.parse(inputOf(form));
      const r = await createVm(
        w.deps,
        c.get("principal"),
        input,
        IDEM_RE.test(idem) ? `web:${idem}` : undefined,
      );
      return c.redirect(`/web/vms/${r.vm.id}?done=created`, 303);
    } catch (err) {
      const p = problemOf(err);
      if (!p) throw err;
      return formPage(c, w, valuesOf(form), p);
    }
  };
}
