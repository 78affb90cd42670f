// The console page's script (api/console_page.ts): takes the ticket from
// the URL's fragment (a URL printed by `ucloud vm console`), or asks for
// one with the web session, then shows the VM's screen with noVNC's RFB
// over the console websocket. Times land in `document.body.dataset`
// (clickedAt, connectedAt in ms of performance.now()) for tests and the
// benchmark.
// Not a static import: served by the API (api/console_page.ts), it is
// no module of this tree for `deno check` to resolve.
const NOVNC = "/web/assets/novnc/core/rfb.js";
const { default: RFB } = await import(NOVNC);

const body = document.body;
const vm = body.dataset.vm;
const status = document.getElementById("console-status");
const screen = document.getElementById("console-screen");
const cad = document.getElementById("console-cad");
const reconnect = document.getElementById("console-reconnect");

function say(text, state) {
  status.textContent = text;
  body.dataset.state = state;
}

/** The ticket of the fragment (once: it is dropped from the URL), or a new one. */
async function ticket() {
  const m = /(?:^|&)ticket=([A-Za-z0-9_-]{43})(?:&|$)/.exec(
    location.hash.slice(1),
  );
  if (m) {
    history.replaceState(null, "", location.pathname + location.search);
    return m[1];
  }
  const res = await fetch(`/v1/vms/${encodeURIComponent(vm)}/console`, {
    method: "POST",
    credentials: "same-origin",
    headers: { accept: "application/json" },
  });
  const answer = await res.json().catch(() => ({}));
  if (!res.ok) {
    throw new Error(answer?.error?.message ?? `HTTP ${res.status}`);
  }
  return answer.ticket;
}

let rfb;

async function connect() {
  body.dataset.clickedAt = String(performance.now());
  reconnect.hidden = true;
  say("Connecting…", "connecting");
  let t;
  try {
    t = await ticket();
  } catch (err) {
    say(`Cannot open the console: ${err.message}`, "error");
    reconnect.hidden = false;
    return;
  }
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const url = `${scheme}://${location.host}/web/console/${
    encodeURIComponent(vm)
  }/ws?ticket=${t}`;
  rfb = new RFB(screen, url, { wsProtocols: [] });
  rfb.scaleViewport = true;
  rfb.focusOnClick = true;
  rfb.addEventListener("connect", () => {
    body.dataset.connectedAt = String(performance.now());
    say("Connected", "connected");
    cad.disabled = false;
    rfb.focus();
  });
  rfb.addEventListener("disconnect", (ev) => {
    say(
      ev.detail.clean ? "Disconnected" : "Connection lost",
      "disconnected",
    );
    cad.disabled = true;
    reconnect.hidden = false;
  });
}

cad.addEventListener("click", () => rfb?.sendCtrlAltDel());
reconnect.addEventListener("click", () => connect());
connect();
