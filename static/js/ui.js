// The design system's behaviour: menus (<details class="menu">) close on an outside click, on Escape
// and when another opens; links and form buttons with data-confirm and htmx's hx-confirm ask in the page's <dialog>
// instead of a confirmation page or window.confirm; toasts leave after a while. Without this script
// menus close with their button, links lead to their confirmation page and htmx asks with confirm().
(function () {
  "use strict";

  function openMenus() { return Array.from(document.querySelectorAll("details.menu[open]")); }

  document.addEventListener("toggle", function (event) {
    const menu = event.target;
    if (!(menu instanceof HTMLDetailsElement) || !menu.classList.contains("menu") || !menu.open) return;
    openMenus().forEach(function (other) { if (other !== menu && !other.contains(menu)) other.open = false; });
    const first = menu.querySelector(".menu-panel input:not([type=hidden]), .menu-panel select");
    if (first && menu.classList.contains("model-picker")) first.focus();
  }, true);

  document.addEventListener("click", function (event) {
    openMenus().forEach(function (menu) { if (!menu.contains(event.target)) menu.open = false; });
  });
  // The focus leaving a menu closes it: the panel never covers what the keyboard is on.
  document.addEventListener("focusin", function (event) {
    openMenus().forEach(function (menu) { if (!menu.contains(event.target)) menu.open = false; });
  });
  // A form in a menu that htmx sent (Rename) closes its menu; the focus goes back to the menu's button.
  document.body.addEventListener("htmx:afterRequest", function (event) {
    const form = event.detail.elt;
    const menu = form && form.closest && form.closest("details.menu[open]");
    if (!menu || !event.detail.successful || form.closest(".settings-sheet")) return;
    menu.open = false;
    menu.querySelector("summary").focus();
  });

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    const menu = event.target.closest && event.target.closest("details.menu[open]");
    const open = menu || openMenus().pop();
    if (!open) return;
    event.preventDefault();
    event.stopPropagation();
    open.open = false;
    open.querySelector("summary").focus();
  }, true);

  // A Close button in a panel (the chat's settings) closes the <details> around it.
  document.addEventListener("click", function (event) {
    const close = event.target.closest && event.target.closest("[data-closes=details]");
    const panel = close && close.closest("details");
    if (!panel) return;
    panel.open = false;
    panel.querySelector("summary").focus();
  });

  // A menu item that closes its menu once used (Pin, Export): the page changes or the file comes.
  document.addEventListener("click", function (event) {
    const item = event.target.closest && event.target.closest("a.menu-item[download]");
    const menu = item && item.closest("details.menu");
    if (menu) setTimeout(function () { menu.open = false; }, 0);
  });

  const dialog = document.getElementById("confirm-dialog");
  if (dialog) {
    const form = document.getElementById("confirm-form");
    const heading = document.getElementById("confirm-heading");
    const text = document.getElementById("confirm-text");
    const ok = document.getElementById("confirm-ok");
    let onConfirm = null;
    let opener = null;

    function ask(options) {
      heading.textContent = options.heading;
      text.textContent = options.text || "";
      text.hidden = !options.text;
      ok.textContent = options.button || "Delete";
      form.action = options.action || "";
      onConfirm = options.onConfirm || null;
      opener = document.activeElement;
      openMenus().forEach(function (menu) { menu.open = false; });
      dialog.showModal();
    }

    document.getElementById("confirm-cancel").addEventListener("click", function () { dialog.close(); });
    dialog.addEventListener("close", function () {
      if (opener && opener.isConnected && dialog.returnValue !== "ok") opener.focus();
      dialog.returnValue = "";
    });
    form.addEventListener("submit", function (event) {
      if (!onConfirm) return;  // a plain POST to the link's action
      event.preventDefault();
      dialog.returnValue = "ok";
      const run = onConfirm;
      onConfirm = null;
      dialog.close();
      run();
    });

    document.addEventListener("click", function (event) {
      const link = event.target.closest && event.target.closest("a[data-confirm], button[data-confirm]");
      if (!link || event.ctrlKey || event.metaKey || event.shiftKey) return;
      event.preventDefault();
      const title = link.dataset.titleFrom && document.querySelector(link.dataset.titleFrom);
      const heading = title ? "Delete “" + title.textContent.trim() + "”?" : link.dataset.confirm;  // renamed in place meanwhile
      ask({ heading: heading, text: link.dataset.confirmText, button: link.dataset.confirmButton,
            action: link.dataset.confirmAction || link.href || (link.form && link.form.action) });
    });

    document.addEventListener("htmx:confirm", function (event) {
      const question = event.detail.question;
      if (!question) return;
      event.preventDefault();
      const source = event.detail.elt;
      ask({ heading: question, text: source.dataset.confirmText, button: source.dataset.confirmButton,
            onConfirm: function () { event.detail.issueRequest(true); } });
    });
  }

  // Toasts leave after eight seconds, not while the pointer or the focus is on them.
  document.querySelectorAll(".toasts li").forEach(function (toast) {
    let timer = null;
    function later() { timer = setTimeout(function () { toast.remove(); }, 8000); }
    toast.addEventListener("mouseenter", function () { clearTimeout(timer); });
    toast.addEventListener("mouseleave", later);
    later();
  });
})();
