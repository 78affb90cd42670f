/**
 * `ucloud image create | upload | list | show | delete | publish |
 * unpublish`: images from an HTTP upload of a local file, a file of the
 * user's SFTP upload directory or a URL; `--wait` follows the import
 * until the image is ready or failed. Admins publish images for everybody
 * and name other owners' images with `--owner`.
 *
 * @module
 */
import { NAME_RULE, noArgs, oneArg } from "./args.ts";
import type { FlagReader } from "./args.ts";
import type { Image, ImageInput } from "./client.ts";
import { command, type Input } from "./command.ts";
import { listCommand } from "./list_command.ts";
import { UsageError } from "./errors.ts";
import {
  formatSize,
  imageStatus,
  uploadImage,
  waitImage,
} from "./image_transfer.ts";
import { type Column, formatFields, print, printJson, when } from "./output.ts";

/** How long `--wait` waits for an import by default. */
export const IMPORT_TIMEOUT_SECONDS = 3600;
const FILE_RE = /^[A-Za-z0-9._-]{1,255}$/;

const WAIT = {
  "--wait": "wait until the image is ready or failed, showing the import",
  "--timeout SECONDS":
    `stop waiting after this long (default ${IMPORT_TIMEOUT_SECONDS})`,
};
const OWNER = {
  "--owner NAME":
    "the image of this owner (admins; anyone for a published one)",
};

/** `--wait` (off by default for images) and its timeout. */
function readWait(read: FlagReader) {
  const wait = read.wait(IMPORT_TIMEOUT_SECONDS);
  return read.has("wait") ? wait : null;
}

function createInput(read: FlagReader, topic: string[]): ImageInput {
  const name = read.name("name")!;
  const file = read.text("file");
  const url = read.text("url");
  const problem = (m: string) => new UsageError(m, topic);
  if (file !== undefined && url !== undefined) {
    throw problem("give --file or --url, not both");
  }
  if (file !== undefined && (!FILE_RE.test(file) || /^\.\.?$/.test(file))) {
    throw problem(
      `--file must be a file name in your upload directory (no path), got "${file}"`,
    );
  }
  if (url !== undefined) {
    let u: URL | null = null;
    try {
      u = new URL(url);
    } catch { /* reported below */ }
    if (!u || (u.protocol !== "http:" && u.protocol !== "https:")) {
      throw problem(`--url must be an http or https URL, got "${url}"`);
    }
  }
  return { name, ...(file ? { file } : {}), ...(url ? { url } : {}) };
}

const short = (sha?: string) => sha ? sha.slice(0, 12) : "-";

const IMAGE_COLUMNS: Column<Image>[] = [
  { header: "OWNER", value: (i) => i.owner },
  { header: "NAME", value: (i) => i.name },
  { header: "STATE", value: (i) => imageStatus(i).split(":")[0] },
  { header: "FORMAT", value: (i) => i.format ?? "-" },
  {
    header: "VIRTUAL",
    value: (i) => formatSize(i.virtualSize),
    align: "right",
  },
  { header: "STORED", value: (i) => formatSize(i.storedSize), align: "right" },
  { header: "SHA256", value: (i) => short(i.sha256) },
  { header: "PUBLIC", value: (i) => i.public ? "yes" : "no" },
];

function source(img: Image): string {
  const s = img.source;
  return s.kind === "file"
    ? `file ${s.file}`
    : s.kind === "url"
    ? `url ${s.url}`
    : "upload";
}

function imageFields(img: Image): string {
  return formatFields([
    ["name", img.name],
    ["owner", img.owner],
    ["state", imageStatus(img)],
    ["public", img.public ? "yes" : "no"],
    ["source", source(img)],
    ["format", img.format],
    ["store", img.store],
    [
      "virtual size",
      img.virtualSize === undefined ? undefined : formatSize(img.virtualSize),
    ],
    [
      "stored size",
      img.storedSize === undefined ? undefined : formatSize(img.storedSize),
    ],
    ["sha256", img.sha256],
    ["task", img.task],
    ["created", when(img.createdAt)],
    ["updated", when(img.updatedAt)],
  ]);
}

const create = command({
  summary: "Create an image from a file you uploaded by SFTP, or a URL",
  usage: "ucloud image create --name NAME [--file FILE | --url URL] [--wait]",
  flags: {
    "--name NAME": NAME_RULE,
    "--file FILE": "a file name in your SFTP upload directory",
    "--url URL": "an http or https URL that a host fetches",
    ...WAIT,
  },
  examples: [
    "ucloud image create --name deb12 --file debian-12.qcow2 --wait",
    "ucloud image create --name deb12 --url https://example.com/d.qcow2",
    "ucloud image create --name deb12   # then: ucloud image upload",
  ],
  parse({ read, args, topic }: Input) {
    read.required("name");
    noArgs(args, topic);
    const input = createInput(read, topic);
    const wait = readWait(read);
    if (wait && !input.file && !input.url) {
      throw new UsageError(
        "--wait needs --file or --url: without them the bytes follow with 'ucloud image upload'",
        topic,
      );
    }
    return { input, wait };
  },
  async run(args, ctx) {
    const made = await ctx.client.images.create(args.input);
    const img = args.wait
      ? await waitImage(ctx, made.image.name, args.wait.timeoutSeconds)
      : made.image;
    if (ctx.json) return printJson(ctx, args.wait ? img : made);
    print(ctx, `image ${img.name} created: ${imageStatus(img)}`);
  },
});

const upload = command({
  summary: "Upload a local qcow2 file as an image (resumes a broken upload)",
  usage: "ucloud image upload --name NAME PATH [--wait]",
  flags: { "--name NAME": NAME_RULE, ...WAIT },
  examples: ["ucloud image upload --name deb12 debian-12.qcow2 --wait"],
  parse({ read, args, topic }: Input) {
    read.required("name");
    return {
      name: read.name("name")!,
      path: oneArg(args, "the file to upload", topic),
      wait: readWait(read),
    };
  },
  async run(args, ctx) {
    const state = await uploadImage(ctx, args.name, args.path);
    const img = args.wait
      ? await waitImage(ctx, args.name, args.wait.timeoutSeconds)
      : state.image;
    if (ctx.json) return printJson(ctx, img);
    print(
      ctx,
      `image ${img.name}: ${formatSize(state.offset)} uploaded, ${
        imageStatus(img)
      }`,
    );
  },
});

const list = listCommand({
  summary: "List images: yours and the published ones",
  topic: "image",
  fetch: (client) => client.images.list(),
  columns: IMAGE_COLUMNS,
});

/** The one image of show, delete, publish and unpublish. */
function parseOne({ read, args, topic }: Input) {
  return {
    image: oneArg(args, "image name", topic),
    owner: read.name("owner"),
  };
}

const show = command({
  summary: "Show one image, with the import's progress or why it failed",
  usage: "ucloud image show NAME [--owner NAME] [--json]",
  flags: OWNER,
  examples: ["ucloud image show deb12"],
  parse: parseOne,
  async run(args, ctx) {
    const img = await ctx.client.images.get(args.image, args.owner);
    return ctx.json ? printJson(ctx, img) : print(ctx, imageFields(img));
  },
});

const remove = command({
  summary: "Delete an image no VM uses",
  usage: "ucloud image delete NAME [--owner NAME] [--json]",
  flags: OWNER,
  examples: ["ucloud image delete deb12"],
  parse: parseOne,
  async run(args, ctx) {
    const r = await ctx.client.images.delete(args.image, args.owner);
    if (ctx.json) return printJson(ctx, r);
    print(ctx, `image ${args.image} deleted`);
  },
});

const publishCommand = (value: boolean) =>
  command({
    summary: value
      ? "Publish an image: every user may create VMs from it (admins)"
      : "Unpublish an image (admins)",
    usage: `ucloud image ${
      value ? "publish" : "unpublish"
    } NAME [--owner NAME]`,
    flags: OWNER,
    examples: [
      `ucloud image ${value ? "publish" : "unpublish"} deb12 --owner alice`,
    ],
    parse: parseOne,
    async run(args, ctx) {
      const img = await ctx.client.images.publish(
        args.image,
        value,
        args.owner,
      );
      if (ctx.json) return printJson(ctx, img);
      print(
        ctx,
        `image ${img.owner}/${img.name} ${value ? "published" : "unpublished"}`,
      );
    },
  });

/** The image commands, by name. */
export const IMAGE_COMMANDS = {
  "image create": create,
  "image upload": upload,
  "image list": list,
  "image show": show,
  "image delete": remove,
  "image publish": publishCommand(true),
  "image unpublish": publishCommand(false),
};
