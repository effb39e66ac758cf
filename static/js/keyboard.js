// Keyboard: the shortcuts list (?), the search box (/), Escape stops an answer being written, and the
// focus kept where it was when HTMX replaces the part of the page that held it.
(function () {
  "use strict";
  const dialog = document.getElementById("shortcuts");
  const opener = document.querySelector(".shortcuts-button");

  function typing(target) {
    return target.closest("input, textarea, select, [contenteditable]:not([contenteditable=false])") !== null;
  }

  function visible(node) { return node && node.getClientRects().length > 0; }

  if (opener && dialog) opener.addEventListener("click", function () { dialog.showModal(); });

  // Ctrl+Enter in the home page's message box starts the chat (the chat page's own box: chat.js).
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey)) return;
    const box = event.target.closest ? event.target.closest("#home-composer textarea") : null;
    if (box && box.value.trim()) { event.preventDefault(); box.form.requestSubmit(); }
  });

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "?" && dialog && !dialog.open && !typing(event.target)) {
      event.preventDefault();
      dialog.showModal();
    } else if (event.key === "/" && !typing(event.target) && !(dialog && dialog.open)) {
      const search = ["chat-search", "model-filter"].map((id) => document.getElementById(id)).find(visible);
      if (search) { event.preventDefault(); search.focus(); }
    } else if (event.key === "Escape" && event.shiftKey && !(dialog && dialog.open)) {
      const box = document.getElementById("composer-input");  // from anywhere: back to the message box
      if (box && visible(box)) { event.preventDefault(); box.focus(); }
    } else if (event.key === "Escape" && !(dialog && dialog.open)) {
      const stop = document.getElementById("stop-button") || document.getElementById("arena-stop");
      if (stop && !stop.hidden) { event.preventDefault(); stop.click(); }
    }
  });

  // htmx keeps the focus on an element whose id comes back in the new content; other controls (a
  // form's Save button) lose it to <body>. Remember what had it and find its new self.
  let remembered = null;
  document.body.addEventListener("htmx:beforeSwap", function () {
    const active = document.activeElement;
    if (!active || active === document.body) return;
    const nav = active.closest(".branch-nav");
    if (nav) {
      // ‹ › shows another branch: the message there has another id; its place in the list is the same.
      const turns = Array.from(document.querySelectorAll("#messages > article.message"));
      remembered = { branch: turns.indexOf(active.closest("article.message")), label: active.getAttribute("aria-label") };
      return;
    }
    const form = active.closest("[id]");
    remembered = {
      id: active.id, container: form ? form.id : null, tag: active.tagName,
      name: active.getAttribute("name"), text: active.textContent.trim(),
    };
  });
  document.body.addEventListener("htmx:afterSettle", function () {
    const wanted = remembered;
    remembered = null;
    if (!wanted || (document.activeElement && document.activeElement !== document.body)) return;
    if (wanted.branch !== undefined) {
      const turn = document.querySelectorAll("#messages > article.message")[wanted.branch];
      const buttons = turn ? Array.from(turn.querySelectorAll(".branch-nav button")) : [];
      const same = buttons.find(function (b) { return b.getAttribute("aria-label") === wanted.label && !b.disabled; });
      const other = buttons.find(function (b) { return !b.disabled; });
      if (same || other) (same || other).focus();
      return;
    }
    let found = wanted.id ? document.getElementById(wanted.id) : null;
    const container = wanted.container ? document.getElementById(wanted.container) : null;
    if (!found && container) {
      found = Array.from(container.querySelectorAll(wanted.tag)).find(function (node) {
        return node.getAttribute("name") === wanted.name && node.textContent.trim() === wanted.text;
      }) || null;
    }
    if (found && visible(found)) found.focus();
  });
})();
