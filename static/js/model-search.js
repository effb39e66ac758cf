// Type to find a model in a compact picker (the <select> of the chat, start and regenerate forms):
// matching options stay, hosts with none left are hidden, and the select opens as a list while a
// search is typed. Enter takes the first match, ArrowDown moves into the list, Escape clears.
// Without this script the select works as it is.
(function () {
  "use strict";

  function setup(input) {
    if (input.dataset.ready) return;
    input.dataset.ready = "1";
    const select = document.getElementById(input.getAttribute("aria-controls"));
    if (!select) return;
    const status = document.createElement("span");
    status.className = "hint model-search-status";
    status.setAttribute("role", "status");
    select.after(status);
    input.hidden = false;

    function filter() {
      const words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
      let first = null;
      let shown = 0;
      for (const option of select.options) {
        const text = (option.textContent + " " + option.value).toLowerCase();
        option.hidden = !words.every(function (word) { return text.includes(word); });
        if (!option.hidden) { shown += 1; first = first || option; }
      }
      select.querySelectorAll("optgroup").forEach(function (group) {
        group.hidden = !group.querySelector("option:not([hidden])");
      });
      select.size = words.length ? Math.min(8, Math.max(2, shown + 1)) : 0;
      status.textContent = words.length ? (shown ? shown + " matching" : "No model matches") : "";
      return first;
    }

    function choose(option) {
      input.value = "";
      filter();
      if (!option) return;
      const changed = select.value !== option.value;
      select.value = option.value;
      select.focus();
      if (changed) select.dispatchEvent(new Event("change", { bubbles: true }));
    }

    input.addEventListener("input", filter);
    // The search box's own change (on blur) is not a choice: the chat's model form submits on change.
    input.addEventListener("change", function (event) { event.stopPropagation(); });
    input.addEventListener("keydown", function (event) {
      if (event.key === "Enter") {
        event.preventDefault();  // pick, not submit the form
        choose(filter());
      } else if (event.key === "ArrowDown") {
        event.preventDefault();
        const first = filter();
        if (first && select.selectedOptions[0] && select.selectedOptions[0].hidden) select.value = first.value;
        select.focus();
      } else if (event.key === "Escape") {
        input.value = "";
        filter();
      }
    });
    select.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && select.size > 1) {
        event.preventDefault();
        choose(select.selectedOptions[0]);
      }
    });
    select.addEventListener("click", function (event) {
      if (select.size > 1 && event.target.tagName === "OPTION") choose(event.target);
    });
  }

  function setupAll(root) {
    (root.querySelectorAll ? root : document).querySelectorAll("input.model-search").forEach(setup);
  }
  document.addEventListener("DOMContentLoaded", function () { setupAll(document); });
  document.addEventListener("htmx:load", function (event) { setupAll(event.target); });
})();
