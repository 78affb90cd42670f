// Uploads an image from the browser (the form with data-upload on
// /web/images) through the API itself: creates the image with
// POST /v1/images when it does not exist, then sends the file in chunks
// with PUT /v1/images/{name}/upload and Content-Range, each starting at the
// offset the server tells (the answer of the last chunk, GET of the same
// path, or the Upload-Offset of a 416). A failed chunk is asked for again
// from where the server stands; after a reload, choosing the same file
// again resumes. Progress shows in the <progress> and its status line.
(() => {
  const form = document.querySelector("form[data-upload]");
  if (!(form instanceof HTMLFormElement)) return;
  const nameInput = form.querySelector("#up-name");
  const fileInput = form.querySelector("#up-file");
  const box = form.querySelector("[data-upload-progress]");
  const bar = form.querySelector("progress");
  const status = form.querySelector("[data-upload-status]");
  const errorBox = form.querySelector("[data-upload-error]");
  const retry = form.querySelector("[data-upload-retry]");
  const submit = form.querySelector('button[type="submit"]');
  const MiB = 1024 * 1024;
  /** Failed chunks in a row before the upload stops and offers a retry. */
  const RETRIES = 5;
  let busy = false;

  /** The API said no: sending again does not help. */
  class Refused extends Error {}

  const path = (name) => `/v1/images/${encodeURIComponent(name)}/upload`;
  const mib = (n) => `${(n / MiB).toFixed(1)} MiB`;
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const storeKey = (name) => `ucloud-upload:${name}`;
  /** About 16 chunks per file, each 256 KiB to 16 MiB. */
  const chunkOf = (size) =>
    Math.min(16 * MiB, Math.max(256 * 1024, Math.ceil(size / 16)));

  function show(done, total, text) {
    box.hidden = false;
    const pct = total > 0 ? Math.floor((done / total) * 100) : 0;
    bar.value = pct;
    status.textContent = text ?? `${pct} % (${mib(done)} of ${mib(total)})`;
  }

  function fail(message, canRetry) {
    errorBox.hidden = false;
    errorBox.querySelector("p").textContent = message;
    retry.hidden = !canRetry;
  }

  const errorOf = (status, text) => {
    let message = `HTTP ${status}`;
    try {
      message = JSON.parse(text).error.message;
    } catch { /* not the API's JSON */ }
    return status >= 500 ? new Error(message) : new Refused(message);
  };

  /** Where the upload of `name` stands; null: there is no such image. */
  async function state(name) {
    const res = await fetch(path(name), {
      headers: { accept: "application/json" },
    });
    if (res.status === 404) return null;
    if (!res.ok) throw errorOf(res.status, await res.text());
    return await res.json();
  }

  async function create(name) {
    const res = await fetch("/v1/images", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name }),
    });
    if (res.status !== 201) throw errorOf(res.status, await res.text());
  }

  /** Sends bytes start..end-1; resolves with the offset the server tells. */
  function put(name, file, start, end) {
    return new Promise((resolve, reject) => {
      const x = new XMLHttpRequest();
      x.open("PUT", path(name));
      x.setRequestHeader("Content-Type", "application/octet-stream");
      x.setRequestHeader(
        "Content-Range",
        `bytes ${start}-${end - 1}/${file.size}`,
      );
      x.upload.onprogress = (e) => show(start + e.loaded, file.size);
      x.onload = () => {
        if (x.status === 200) resolve(JSON.parse(x.responseText).offset);
        else if (x.status === 416) {
          resolve(Number(x.getResponseHeader("Upload-Offset")));
        } else reject(errorOf(x.status, x.responseText));
      };
      x.onerror = () => reject(new Error("the connection broke off"));
      x.send(file.slice(start, end));
    });
  }

  /** The file an upload of `name` started with in this browser, if known. */
  function started(name) {
    try {
      return JSON.parse(localStorage.getItem(storeKey(name)) ?? "null");
    } catch {
      return null;
    }
  }

  async function upload() {
    const name = nameInput.value.trim();
    const file = fileInput.files[0];
    if (!file) return;
    busy = true;
    submit.disabled = true;
    errorBox.hidden = true;
    retry.hidden = true;
    // What an earlier upload showed is not this one's.
    box.hidden = true;
    bar.value = 0;
    status.textContent = "";
    try {
      if (file.size === 0) throw new Refused("the file is empty");
      let st = await state(name);
      if (st === null) {
        await create(name);
        st = { offset: 0, complete: false };
      } else if (st.complete) {
        throw new Refused(
          `image ${name} exists and is ${st.image.state}: choose another name or delete it`,
        );
      }
      const id = {
        file: file.name,
        size: file.size,
        modified: file.lastModified,
      };
      const was = started(name);
      const other = was &&
        (was.file !== id.file || was.size !== id.size ||
          was.modified !== id.modified);
      if (st.offset > file.size || (st.offset > 0 && other)) {
        throw new Refused(
          `the upload of ${name} started with another file: choose that file, or delete the image and start over`,
        );
      }
      localStorage.setItem(storeKey(name), JSON.stringify(id));
      let offset = st.offset;
      if (offset > 0) {
        show(
          offset,
          file.size,
          `Resuming at ${mib(offset)} of ${mib(file.size)}`,
        );
      }
      const chunk = chunkOf(file.size);
      for (let failures = 0; offset < file.size;) {
        try {
          offset = await put(
            name,
            file,
            offset,
            Math.min(file.size, offset + chunk),
          );
          failures = 0;
          show(offset, file.size);
        } catch (err) {
          if (err instanceof Refused || ++failures > RETRIES) throw err;
          show(
            offset,
            file.size,
            `A chunk failed (${err.message}); going on from where the server stands`,
          );
          await sleep(250 * 2 ** failures);
          const now = await state(name).catch(() => undefined);
          if (now === null) throw new Refused(`image ${name} was deleted`);
          if (now?.complete) break;
          if (now) offset = now.offset;
        }
        if (offset > file.size) {
          throw new Refused("the server has more bytes than the file");
        }
      }
      localStorage.removeItem(storeKey(name));
      show(
        file.size,
        file.size,
        `100 % uploaded (${mib(file.size)}): importing`,
      );
      document.dispatchEvent(new CustomEvent("ucloud:images-changed"));
    } catch (err) {
      fail(
        `The upload of ${name} stopped: ${err.message}.`,
        !(err instanceof Refused),
      );
    } finally {
      busy = false;
      submit.disabled = false;
    }
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (!busy) upload();
  });
  retry.addEventListener("click", () => {
    if (!busy) upload();
  });
})();
