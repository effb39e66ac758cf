// Type-to-filter and arrow-key navigation for the model picker. The server filters too (?q=),
// so the page works without this script.
(function () {
  "use strict";
  const input = document.getElementById("model-filter");
  const picker = document.querySelector("[data-picker]");
  if (!input || !picker) return;

  const noMatch = document.getElementById("no-match");

  function applyFilter() {
    const words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    picker.querySelectorAll("li.model").forEach(function (row) {
      const text = row.dataset.filterText || "";
      row.hidden = !words.every(function (word) { return text.includes(word); });
    });
    // A host with no row left is hidden while a filter is typed; all hidden says so.
    let shown = 0;
    picker.querySelectorAll("section.model-group").forEach(function (group) {
      const rows = group.querySelectorAll("li.model");
      const visible = group.querySelectorAll("li.model:not([hidden])").length;
      group.hidden = words.length > 0 && rows.length > 0 && visible === 0;
      shown += visible;
    });
    if (noMatch) noMatch.hidden = !(words.length > 0 && shown === 0);
  }

  function visibleButtons() {
    return Array.from(picker.querySelectorAll("li.model:not([hidden]) button.star"));
  }

  input.addEventListener("input", applyFilter);
  input.closest("form").addEventListener("submit", function (event) { event.preventDefault(); applyFilter(); });
  input.addEventListener("keydown", function (event) {
    if (event.key === "ArrowDown") {
      const first = visibleButtons()[0];
      if (first) { event.preventDefault(); first.focus(); }
    }
  });
  picker.addEventListener("keydown", function (event) {
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
    const buttons = visibleButtons();
    const index = buttons.indexOf(document.activeElement);
    if (index === -1) return;
    event.preventDefault();
    const next = index + (event.key === "ArrowDown" ? 1 : -1);
    if (next < 0) input.focus();
    else if (next < buttons.length) buttons[next].focus();
  });
  // A star pressed with the keyboard keeps the focus, though its row is swapped for a new one.
  let pressed = null;
  picker.addEventListener("click", function (event) {
    const button = event.target.closest("button.star");
    pressed = button ? { row: button.closest("li").id } : null;
  });
  // Rows swapped in by a favorite toggle keep obeying the current filter (and the focus, above).
  function afterToggle() {
    applyFilter();
    if (pressed) {
      // Unstarred in Favorites, the row is gone from there: its provider's row takes the focus.
      const button = document.querySelector("#" + CSS.escape(pressed.row) + " button.star") ||
        document.querySelector("#" + CSS.escape(pressed.row.replace(/^fav-/, "")) + " button.star");
      if (button) button.focus();
      pressed = null;
    }
  }
  // The toggle's form swaps nothing itself (hx-swap="none"): its rows arrive out of band.
  document.body.addEventListener("htmx:afterRequest", function () { setTimeout(afterToggle, 0); });
  applyFilter();
})();
