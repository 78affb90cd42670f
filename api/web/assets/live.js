// Live updates of ucloud's web pages, from the server-sent event stream
// GET /v1/events (api/events.ts): no reload, no inline script (CSP
// script-src 'self'). A `vm` event updates every `[data-vm="ID"]
// [data-field=F]` cell (phase, host, addresses); a VM without a row gets one
// appended to `<tbody data-live-list="vms">` from
// `/web/fragments/vm-row/ID`; `vm-deleted` removes its rows. When a VM's
// phase (a task's: state) changed, its element is replaced by a fresh one
// from its fragment (`data-fragment`, else `vm-row` or `task-row`): the
// badge, the buttons and the Console link go with the phase. Tasks the same
// with `data-task`, fields `state` and `progress`, list `tasks`, fragment
// `/web/fragments/task-row/ID`. Once a connection's snapshot is in
// (`synced`), rows it did not mention are checked against the API: a VM row
// the snapshot did not have and an unfinished task row (changes may have come
// while no stream was open) are read again, and removed when gone.
// `[data-live-status]` shows "live",
// "reconnecting", "session ended" or "logged out". A page with
// `[data-live-all]` (an admin's list of everyone's) follows `?all=1`.
"use strict";
(() => {
  const addresses = (vm) =>
    (vm.nics ?? []).flatMap((n) => [n.ipv6, n.ipv4].filter(Boolean)).join(" ");
  const KINDS = {
    vm: {
      attr: "data-vm",
      list: "vms",
      fragment: "vm-row",
      swapOn: "phase",
      fields: {
        phase: (vm) => vm.status.phase,
        host: (vm) => vm.status.host ?? "",
        addresses,
      },
    },
    task: {
      attr: "data-task",
      list: "tasks",
      fragment: "task-row",
      swapOn: "state",
      fields: {
        state: (t) => t.state,
        progress: (t) => t.progress ?? "",
      },
    },
  };
  /** Rows being fetched, by kind and id: the newest document seen. */
  const fetching = new Map();

  const status = (text) => {
    for (const el of document.querySelectorAll("[data-live-status]")) {
      el.textContent = text;
    }
  };

  const rowsOf = (kind, id) =>
    document.querySelectorAll(`[${kind.attr}="${CSS.escape(id)}"]`);

  function fill(kind, row, doc) {
    for (const cell of row.querySelectorAll("[data-field]")) {
      const field = kind.fields[cell.dataset.field];
      if (!field) continue;
      const text = String(field(doc));
      if (cell.textContent !== text) cell.textContent = text;
    }
  }

  /** Whether `el` shows another phase (a task: state) than `doc` has. */
  function stale(kind, el, doc) {
    const shown = el.querySelector(`[data-field="${kind.swapOn}"]`);
    return shown !== null &&
      shown.textContent.trim() !== kind.fields[kind.swapOn](doc);
  }

  function update(kind, doc) {
    const rows = rowsOf(kind, doc.id);
    if (rows.length === 0) return addRow(kind, doc);
    for (const row of rows) {
      if (stale(kind, row, doc)) swap(kind, row, doc);
      else fill(kind, row, doc);
    }
  }

  /** Elements being replaced by their fragment: the newest document seen. */
  const swapping = new Map();

  /** Replaces `el` by its fragment read again (its phase changed). */
  async function swap(kind, el, doc) {
    const busy = swapping.has(el);
    swapping.set(el, doc);
    if (busy) return;
    let fresh = null;
    try {
      const name = el.dataset.fragment ?? kind.fragment;
      const res = await fetch(
        `/web/fragments/${name}/${encodeURIComponent(doc.id)}`,
        { credentials: "same-origin", headers: { accept: "text/html" } },
      );
      if (res.ok) {
        const template = document.createElement("template");
        template.innerHTML = (await res.text()).trim();
        fresh = template.content.firstElementChild;
      }
    } catch {
      // The API is not reachable: the next event tries again.
    }
    const latest = swapping.get(el);
    swapping.delete(el);
    if (!el.isConnected) return;
    if (fresh) el.replaceWith(fresh);
    // An event that came while the fragment was on its way may be newer.
    if (latest !== doc) update(kind, latest);
  }

  async function addRow(kind, doc) {
    const list = document.querySelector(
      `tbody[data-live-list="${kind.list}"]`,
    );
    if (!list) return;
    const key = `${kind.list}/${doc.id}`;
    const busy = fetching.has(key);
    fetching.set(key, doc);
    if (busy) return;
    try {
      const res = await fetch(
        `/web/fragments/${kind.fragment}/${encodeURIComponent(doc.id)}`,
        { credentials: "same-origin", headers: { accept: "text/html" } },
      );
      if (!res.ok) return;
      const template = document.createElement("template");
      template.innerHTML = (await res.text()).trim();
      const row = template.content.querySelector("tr");
      if (!row || rowsOf(kind, doc.id).length > 0) return;
      list.append(row);
    } finally {
      const latest = fetching.get(key);
      fetching.delete(key);
      // Events that came while the fragment was on its way are newer.
      if (latest && latest !== doc && rowsOf(kind, doc.id).length > 0) {
        update(kind, latest);
      }
    }
  }

  function remove(kind, id) {
    fetching.delete(`${kind.list}/${id}`);
    for (const row of rowsOf(kind, id)) {
      if (row.tagName === "TR") row.remove();
    }
  }

  /** Reads a row's document again; removes the row when it is gone. */
  async function refresh(kind, path, id) {
    const res = await fetch(`/v1/${path}/${encodeURIComponent(id)}`, {
      credentials: "same-origin",
    });
    if (res.status === 404) return remove(kind, id);
    if (res.ok) update(kind, await res.json());
  }

  /** After a snapshot: rows it did not cover may be stale. */
  async function reconcile(shown) {
    const vmRows = document.querySelectorAll(
      'tbody[data-live-list="vms"] tr[data-vm]',
    );
    const taskRows = document.querySelectorAll("tr[data-task]");
    const unfinished = (row) =>
      /^(queued|running)$/.test(
        row.querySelector('[data-field="state"]')?.textContent ?? "",
      );
    try {
      for (const row of vmRows) {
        if (!shown.has(row.dataset.vm)) {
          await refresh(KINDS.vm, "vms", row.dataset.vm);
        }
      }
      for (const row of taskRows) {
        if (unfinished(row)) {
          await refresh(KINDS.task, "tasks", row.dataset.task);
        }
      }
    } catch {
      // The API is not reachable: the stream's next connection tries again.
    }
  }

  let delay = 1000;
  let source = null;

  function retry() {
    source?.close();
    source = null;
    status("reconnecting");
    const wait = delay * (0.75 + Math.random() / 2);
    delay = Math.min(delay * 2, 30_000);
    setTimeout(connect, wait);
  }

  /** After a failed connection: logged out, or try again later. */
  async function failed() {
    source?.close();
    source = null;
    try {
      const res = await fetch("/v1/auth/whoami", {
        credentials: "same-origin",
      });
      if (res.status === 401) return status("logged out");
    } catch {
      // The API is not reachable: try again later.
    }
    retry();
  }

  function connect() {
    const all = document.querySelector("[data-live-all]") ? "?all=1" : "";
    const es = new EventSource(`/v1/events${all}`);
    source = es;
    const on = (name, f) =>
      es.addEventListener(name, (e) => f(JSON.parse(e.data)));
    es.addEventListener("open", () => {
      delay = 1000;
      status("live");
    });
    /** VM ids of this connection's snapshot, until it is complete. */
    let shown = new Set();
    on("vm", (vm) => {
      shown?.add(vm.id);
      update(KINDS.vm, vm);
    });
    on("synced", () => {
      const ids = shown;
      shown = null;
      reconcile(ids);
    });
    on("vm-deleted", ({ id }) => remove(KINDS.vm, id));
    on("task", (t) => update(KINDS.task, t));
    on("reset", retry);
    on("end", () => {
      es.close();
      source = null;
      status("session ended");
    });
    es.addEventListener("error", () => {
      if (source === es) failed();
    });
  }

  connect();
})();
