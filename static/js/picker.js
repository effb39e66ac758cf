// Type-to-filter and arrow-key navigation for the model picker. The server filters too (?q=),
// so the page works without this script.
(function () {
  "use strict";
  const input = document.getElementById("model-filter");
  const picker = document.querySelector("[data-picker]");
  if (!input || !picker) return;

  function applyFilter() {
    const words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    picker.querySelectorAll("li.model").forEach(function (row) {
      const text = row.dataset.filterText || "";
      row.hidden = !words.every(function (word) { return text.includes(word); });
    });
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
  // Rows swapped in by a favorite toggle keep obeying the current filter.
  document.body.addEventListener("htmx:afterSettle", applyFilter);
  applyFilter();
})();
