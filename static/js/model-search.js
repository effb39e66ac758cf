// Type to find a model in a compact picker (the <select> of the chat, start and regenerate forms):
// matching options stay, best first (the model's name exactly, then names that start with the words,
// then the rest), hosts with none left are hidden; a host's display name matches its models. Enter
// takes the first match, ArrowDown moves into the list, Escape clears. In the model chip's menu the
// select is a list (data-listbox): moving through it chooses nothing until Enter or a click.
// Without this script the select works as it is.
(function () {
  "use strict";

  function tokens(text) { return text.toLowerCase().split(/[^a-z0-9.]+/).filter(Boolean); }

  // How well `option` matches the typed words: 0 not at all, 1 contains them, 2 the name starts with
  // them, 3 the name is them. Words naming the host (its slug or display name) only narrow the list.
  function score(option, words) {
    const group = option.parentElement.tagName === "OPTGROUP" ? option.parentElement.label : "";
    const text = (option.textContent + " " + option.value + " " + group).toLowerCase();
    if (!words.every(function (word) { return text.includes(word); })) return 0;
    const slash = option.value.indexOf("/");
    const host = tokens(option.value.slice(0, slash) + " " + group.replace(/\(.*\)$/, "") + " " + option.textContent.split(" · ").slice(1).join(" "));
    const name = tokens(option.value.slice(slash + 1).split("/").pop());
    const rest = words.flatMap(tokens).filter(function (word) { return !host.includes(word) || name.includes(word); });
    if (!rest.length) return 1;
    if (rest.join("-") === name.join("-")) return 3;
    const starts = rest.every(function (word, i) { return name[i] !== undefined && name[i].startsWith(word); });
    return starts ? 2 : 1;
  }

  function setup(input) {
    if (input.dataset.ready) return;
    input.dataset.ready = "1";
    const select = document.getElementById(input.getAttribute("aria-controls"));
    if (!select) return;
    const listbox = "listbox" in select.dataset;
    const status = document.createElement("span");
    status.className = "hint model-search-status";
    status.setAttribute("role", "status");
    select.after(status);
    input.hidden = false;
    // The order the server gave: restored when the search is cleared.
    Array.from(select.children).forEach(function (child, i) { child.dataset.order = i; });
    Array.from(select.options).forEach(function (option, i) { option.dataset.order = i; });

    function byOrder(a, b) { return Number(a.dataset.order) - Number(b.dataset.order); }

    function filter() {
      const words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
      let shown = 0;
      const best = new Map();
      for (const option of select.options) {
        const rank = words.length ? score(option, words) : 1;
        option.hidden = rank === 0;
        option.dataset.rank = rank;
        if (!option.hidden) shown += 1;
      }
      // Best matches first: inside each host, and hosts by their best match.
      Array.from(select.children).forEach(function (child) {
        if (child.tagName !== "OPTGROUP") { best.set(child, Number(child.dataset.rank || 0)); return; }
        const options = Array.from(child.children).sort(function (a, b) {
          return words.length ? (b.dataset.rank - a.dataset.rank) || byOrder(a, b) : byOrder(a, b);
        });
        options.forEach(function (option) { child.append(option); });
        child.hidden = !child.querySelector("option:not([hidden])");
        best.set(child, Math.max(0, ...options.map(function (o) { return Number(o.dataset.rank); })));
      });
      Array.from(select.children).sort(function (a, b) {
        return words.length ? (best.get(b) - best.get(a)) || byOrder(a, b) : byOrder(a, b);
      }).forEach(function (child) { select.append(child); });
      if (!listbox) select.size = words.length ? Math.min(8, Math.max(2, shown + 1)) : 0;
      status.textContent = words.length ? (shown ? shown + " matching" : "No model matches") : "";
      return Array.from(select.options).find(function (option) { return !option.hidden; }) || null;
    }

    let choosing = false;
    let chosen = select.value;  // in a list, arrows move the selection before anything is chosen
    function choose(option) {
      input.value = "";
      filter();
      if (!option) return;
      const changed = (listbox ? chosen : select.value) !== option.value;
      select.value = chosen = option.value;
      select.focus();
      if (changed) {
        choosing = true;
        select.dispatchEvent(new Event("change", { bubbles: true }));
        choosing = false;
      }
    }

    input.addEventListener("input", filter);
    // The search box's own change (on blur) is not a choice: the chat's model form submits on change.
    input.addEventListener("change", function (event) { event.stopPropagation(); });
    // In a list, arrows move the selection: a choice is Enter or a click (the form submits on change).
    select.addEventListener("change", function (event) {
      if (listbox && !choosing) event.stopImmediatePropagation();
    }, true);
    input.addEventListener("keydown", function (event) {
      if (event.key === "Enter") {
        event.preventDefault();  // pick, not submit the form
        choose(filter());
      } else if (event.key === "ArrowDown") {
        event.preventDefault();
        const first = filter();
        if (first && (!select.selectedOptions[0] || select.selectedOptions[0].hidden)) select.value = first.value;
        select.focus();
      } else if (event.key === "Escape" && input.value) {
        event.preventDefault();
        event.stopPropagation();
        input.value = "";
        filter();
      }
    });
    select.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && (listbox || select.size > 1)) {
        event.preventDefault();
        choose(select.selectedOptions[0]);
      }
    });
    select.addEventListener("click", function (event) {
      if ((listbox || select.size > 1) && event.target.tagName === "OPTION") choose(event.target);
    });
    filter();
  }

  function setupAll(root) {
    (root.querySelectorAll ? root : document).querySelectorAll("input.model-search").forEach(setup);
  }
  document.addEventListener("DOMContentLoaded", function () { setupAll(document); });
  document.addEventListener("htmx:load", function (event) { setupAll(event.target); });

  // The chat header's model chip opens the composer's.
  document.addEventListener("click", function (event) {
    const chip = event.target.closest && event.target.closest("[data-opens-picker]");
    if (!chip) return;
    const select = document.querySelector(chip.getAttribute("href"));
    const menu = select && select.closest("details");
    if (!menu) return;
    event.preventDefault();
    event.stopPropagation();
    menu.open = true;
    const search = menu.querySelector("input.model-search");
    (search && !search.hidden ? search : select).focus();
  });
})();
