// On a phone the chat list is a drawer: a "Chats" button opens it over the conversation, which is
// inert meanwhile; Escape, the backdrop or the button close it and the focus goes back to the button.
// Without this script the list simply follows the conversation (static/css/app.css).
(function () {
  "use strict";
  const layout = document.querySelector(".chat-layout");
  const list = layout && layout.querySelector("aside.sessions");
  const conversation = layout && layout.querySelector(".conversation");
  if (!list || !conversation) return;
  const narrow = window.matchMedia("(max-width: 48rem)");
  list.id = list.id || "chat-sessions";

  // The page's own "Chats" link (without this script it leads to the list) becomes the drawer's button;
  // a page without one gets one.
  let toggle = conversation.querySelector(".drawer-toggle");
  if (!toggle) {
    toggle = document.createElement("button");
    toggle.className = "drawer-toggle";
    toggle.textContent = "Chats";
    conversation.prepend(toggle);
  }
  toggle.setAttribute("role", "button");
  toggle.setAttribute("aria-controls", list.id);
  toggle.setAttribute("aria-expanded", "false");
  toggle.addEventListener("keydown", function (event) {
    if (event.key === " ") { event.preventDefault(); toggle.click(); }
  });
  const backdrop = document.createElement("div");
  backdrop.className = "drawer-backdrop";
  backdrop.hidden = true;
  layout.append(backdrop);
  layout.classList.add("has-drawer");
  const outside = [conversation, document.querySelector(".topbar")].filter(Boolean);

  function isOpen() { return layout.classList.contains("drawer-open"); }

  function open() {
    layout.classList.add("drawer-open");
    toggle.setAttribute("aria-expanded", "true");
    backdrop.hidden = false;
    outside.forEach(function (node) { node.inert = true; });
    const first = list.querySelector("a[href], button, input:not([type=hidden]), select, textarea");
    if (first) first.focus();
  }

  function close(returnFocus) {
    layout.classList.remove("drawer-open");
    toggle.setAttribute("aria-expanded", "false");
    backdrop.hidden = true;
    outside.forEach(function (node) { node.inert = false; });
    if (returnFocus) toggle.focus();
  }

  toggle.addEventListener("click", function (event) {
    event.preventDefault();
    if (isOpen()) close(true); else open();
  });
  backdrop.addEventListener("click", function () { close(true); });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && isOpen()) { event.preventDefault(); close(true); }
  });
  narrow.addEventListener("change", function () { if (!narrow.matches && isOpen()) close(false); });
})();
