// Asks before a form with data-confirm is sent (delete, force stop).
document.addEventListener("submit", (e) => {
  const form = e.target;
  const question = form instanceof HTMLFormElement && form.dataset.confirm;
  if (question && !confirm(question)) e.preventDefault();
});
