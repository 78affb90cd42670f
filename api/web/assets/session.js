// Shows how long the web session has left, and goes to the login page
// when it has ended (the server would redirect there on the next click).
(() => {
  const at = document.querySelector("[data-session-expires]");
  const left = document.querySelector("[data-session-left]");
  if (!at) return;
  const end = Date.parse(at.getAttribute("datetime"));
  const tick = () => {
    const ms = end - Date.now();
    if (ms <= 0) {
      location.assign("/web/login?m=expired");
      return;
    }
    if (left) {
      const min = Math.ceil(ms / 60000);
      left.textContent = ` (in ${min} min)`;
    }
    setTimeout(tick, Math.min(ms, 15000));
  };
  tick();
})();
