/**
 * The table of images on `/web/images`: one `<tr data-image="NAME"
 * data-owner="OWNER">` per image with its state in `data-field="state"`
 * (uploading with the bytes received, importing with its progress, ready
 * with its size, failed with the reason) and `data-state` on the row, which
 * images.js reads to keep polling while an import runs (it swaps the
 * `[data-image-table]` around this table). The images come
 * already reduced to what the user may see (resources/host_internals.ts
 * `imageView`).
 *
 * @example
 * ```tsx
 * <ImageTable items={rows} who={who} csrf={csrf} />
 * ```
 */
import type { Image } from "../../core/image_schemas.ts";
import type { Caller } from "../../resources/deps.ts";
import { canSee } from "../../resources/deps.ts";
import { PostButton } from "./vm_detail.tsx";

/** An image to show, with the bytes of its upload received so far. */
export interface ImageItem {
  image: Image;
  /** Bytes received (state `uploading`). */
  received?: number;
}

/** `12.3 MiB` (binary units, one decimal below 100). */
export function sizeText(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 || v >= 100 ? Math.round(v) : v.toFixed(1)} ${units[u]}`;
}

/** The badge class of an image state (the task colours). */
const BADGE: Record<Image["state"], string> = {
  uploading: "task-queued",
  importing: "task-running",
  ready: "task-succeeded",
  failed: "task-failed",
};

function StateCell({ item }: { item: ImageItem }) {
  const img = item.image;
  return (
    <td data-field="state">
      <span class={`badge ${BADGE[img.state]}`}>{img.state}</span>
      {img.state === "uploading" && item.received !== undefined && (
        <span class="detail">
          {sizeText(item.received)} received
        </span>
      )}
      {img.state === "importing" && (
        <span class="detail">{img.progress ?? 0} %</span>
      )}
      {img.state === "failed" && img.reason && (
        <span class="detail">{img.reason}</span>
      )}
    </td>
  );
}

function sourceText(img: Image): string {
  const s = img.source;
  return s.kind === "url" ? s.url : s.kind === "file" ? `SFTP ${s.file}` : (
    "browser or CLI upload"
  );
}

function ImageRow(
  { item, who, csrf }: { item: ImageItem; who: Caller; csrf: string },
) {
  const img = item.image;
  const own = img.owner === who.name;
  const extra = own ? undefined : { owner: img.owner };
  const label = own ? img.name : `${img.name} (${img.owner})`;
  return (
    <tr data-image={img.name} data-owner={img.owner} data-state={img.state}>
      <th scope="row">{label}</th>
      <StateCell item={item} />
      <td>{img.virtualSize ? sizeText(img.virtualSize) : "–"}</td>
      <td class="wrap">{sourceText(img)}</td>
      <td>{img.public ? "public" : "private"}</td>
      <td>
        <div class="row-actions">
          {own && img.state === "uploading" && (
            <a
              class="button secondary"
              href={`/web/images?resume=${encodeURIComponent(img.name)}#upload`}
            >
              Resume<span class="sr-only">{` upload of ${img.name}`}</span>
            </a>
          )}
          {canSee(who, img.owner) && img.state !== "importing" && (
            <PostButton
              action={`/web/images/${encodeURIComponent(img.name)}/delete`}
              csrf={csrf}
              label={`Delete ${label}`}
              secondary
              extra={extra}
              confirm={`Delete image ${label}?`}
            />
          )}
        </div>
      </td>
    </tr>
  );
}

/** The images table. */
export function ImageTable(
  { items, who, csrf }: { items: ImageItem[]; who: Caller; csrf: string },
) {
  return (
    <div class="table-wrap">
      <table>
        <caption class="sr-only">Images: yours and the public ones</caption>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">State</th>
            <th scope="col">Size</th>
            <th scope="col">Source</th>
            <th scope="col">Visibility</th>
            <th scope="col">
              <span class="sr-only">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody data-image-list>
          {items.map((i) => (
            <ImageRow
              key={`${i.image.owner}/${i.image.name}`}
              item={i}
              who={who}
              csrf={csrf}
            />
          ))}
        </tbody>
      </table>
    </div>
  );
}
