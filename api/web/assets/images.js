// Keeps the images table of /web/images current while an import runs, and
// after an upload (the event ucloud:images-changed of upload.js): loads this
// page again every 2 s and puts its table in place of the one shown, until
// no image is importing. The rows are the server's (no second rendering).
(() => {
  const SEL = "[data-image-table]";
  let timer = 0;
  const importing = () =>
    document.querySelector(`${SEL} tr[data-state="importing"]`) !== null;

  async function refresh() {
    timer = 0;
    try {
      const res = await fetch(location.pathname, {
        headers: { accept: "text/html" },
      });
      // Redirected: the session ended (session.js goes to the login).
      if (res.redirected || !res.ok) return;
      const doc = new DOMParser().parseFromString(
        await res.text(),
        "text/html",
      );
      const fresh = doc.querySelector(SEL);
      const shown = document.querySelector(SEL);
      if (fresh && shown) shown.replaceWith(document.adoptNode(fresh));
    } catch { /* the next round tries again */ }
    schedule(false);
  }

  function schedule(force) {
    if (timer || !(force || importing())) return;
    timer = setTimeout(refresh, 2000);
  }

  document.addEventListener("ucloud:images-changed", () => schedule(true));
  schedule(false);
})();
