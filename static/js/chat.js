// The chat composer: POSTs with `X-BooChat-Stream: 1` and shows the answer as it is written
// (stream.js reads it, and follows it again after a network drop), then swaps in the saved answer,
// asks for a title and refreshes context use. An answer still being written when the page opens is
// followed from its start. Stop asks the server: the answer is a job of the server, not of this page.
// On a new chat's page nothing is saved until the first message, which saves the chat: the page then
// becomes the chat's page (its address, header and place in the list) without a reload.
(function () {
  "use strict";
  const composer = document.getElementById("composer");
  if (!composer) return;
  const input = document.getElementById("composer-input");
  const send = document.getElementById("send-button");
  const stop = document.getElementById("stop-button");
  const status = document.getElementById("stream-status");
  // #messages is swapped whole when the branch is refreshed: always look it up.
  const conversation = () => document.getElementById("messages");
  const csrf = composer.querySelector("input[name=csrfmiddlewaretoken]").value;
  let controller = null;
  let stopped = false;
  let becoming = null;  // the new chat's page becoming the saved chat's (its Stop address comes with it)
  const DRAFT = "boochat-new-chat-text";  // the new chat's text, kept while its page reloads for another model

  const { element, answerBubble, readStream, follow, errorMessage } = window.BooChatStream;

  // The footer a saved answer has ("qwen3-8b · sam-desktop"), for an answer the host refused.
  function modelFooter() {
    const id = composer.dataset.model || "";
    const slash = id.indexOf("/");
    return element("footer", "message-meta", slash < 0 ? id : id.slice(slash + 1) + " · " + id.slice(0, slash));
  }

  // The conversation as the server saved it.
  async function refreshMessages() {
    if (window.htmx) {
      // Each request names its own source: from <body> (htmx's default) a title still being written
      // would make htmx drop this one, and the answer would stay as streamed.
      await htmx.ajax("GET", window.location.pathname, { source: "#messages", target: "#messages", select: "#messages", swap: "outerHTML" });
    }
  }

  async function refreshContextUsage() {
    if (document.getElementById("context-usage") && window.htmx) {
      await htmx.ajax("GET", window.location.pathname, { source: "#context-usage", target: "#context-usage", select: "#context-usage", swap: "outerHTML" });
    }
  }

  async function refreshList() {
    if (window.htmx) {
      await htmx.ajax("GET", window.location.pathname, { source: "#chat-list-form", target: "#chat-list-form", select: "#chat-list-form", swap: "outerHTML" });
    }
  }

  async function maybeTitle() {
    const title = document.getElementById("session-title");
    if (title && "untitled" in title.dataset && composer.dataset.titleUrl && window.htmx) {
      await htmx.ajax("POST", composer.dataset.titleUrl, { source: "#session-title", target: "#session-title", swap: "outerHTML" });
    }
  }

  // The first message saved the chat at `url`: this page becomes its page, the answer streaming on.
  // The address changes in place (Back leads where the new chat was opened from); the header (title,
  // actions, prompt and parameters), the list, the model's form and the composer's addresses come
  // from the chat's page.
  async function becomeChat(url) {
    delete composer.dataset.newChat;
    sessionStorage.removeItem(DRAFT);
    history.replaceState(null, "", url);
    let page = null;
    try {
      const response = await fetch(url);
      if (response.ok) page = new DOMParser().parseFromString(await response.text(), "text/html");
    } catch (error) {
      page = null;
    }
    const saved = page && page.getElementById("composer");
    if (!saved) {
      window.location.assign(url);  // the chat's page, loaded whole, follows the answer being written
      return;
    }
    document.title = page.title;
    composer.setAttribute("action", saved.getAttribute("action"));
    composer.dataset.titleUrl = saved.dataset.titleUrl;
    composer.dataset.stopUrl = saved.dataset.stopUrl;
    composer.querySelectorAll("input[type=hidden][name=model_id]").forEach((node) => node.remove());
    for (const selector of [".session-header", "#chat-list-form", "#model-form"]) {
      const old = document.querySelector(selector);
      const fresh = page.querySelector(selector);
      if (!old || !fresh) continue;
      // The drawer's "Chats" button stays the one drawer.js set up.
      const toggle = old.querySelector(".drawer-toggle");
      const freshToggle = fresh.querySelector(".drawer-toggle");
      if (toggle && freshToggle) freshToggle.replaceWith(toggle);
      old.replaceWith(fresh);
      if (window.htmx) {
        htmx.process(fresh);
        htmx.trigger(fresh, "htmx:load");  // as after an htmx swap: the model search sets itself up
      }
    }
  }

  // One turn: POST `form` (the composer, an edited question, or a regenerate form) and show the
  // answer as it streams. `question` is the text shown as the new question, if the turn asks one.
  async function streamTurn(form, question, body) {
    if (controller) return;
    const first = form === composer && "newChat" in composer.dataset;
    let saved = false;
    const placeholder = document.getElementById("no-messages");
    if (placeholder) placeholder.remove();
    if (first) conversation().replaceChildren();  // a refused first message's note goes
    let asked = null;
    if (question) {
      asked = element("article", "message user");
      asked.append(element("div", "content", question));
      // The composer's files, sent in `body`, show with the question (an edit's stay on the server);
      // a new chat's stay in the composer until its first message is saved.
      if (form === composer && !first && window.BooChatAttachments) window.BooChatAttachments.sent(asked);
      conversation().append(asked);
    }
    controller = new AbortController();
    send.disabled = true;
    stop.hidden = false;
    status.textContent = "Waiting for the host…";
    let messageId = null;
    let bubble = null;
    const place = { lastId: null, end: null };
    stopped = false;
    try {
      const response = await fetch(form.action, {
        method: "POST", body, signal: controller.signal,
        headers: { "X-BooChat-Stream": "1", "X-CSRFToken": csrf },
      });
      const chatUrl = first && response.headers.get("X-BooChat-Chat");
      if (chatUrl) {
        saved = true;
        if (window.BooChatAttachments) window.BooChatAttachments.sent(asked);
        becoming = becomeChat(chatUrl);
        if (stopped) becoming.then(askToStop);  // Stop came before the chat's address
      }
      if (!response.ok) {
        const failed = element("article", "message assistant state-failed");
        failed.append(element("p", "message-error", await errorMessage(response)), modelFooter());
        conversation().append(failed);
        return;
      }
      messageId = response.headers.get("X-BooChat-Message");
      bubble = answerBubble(conversation(), messageId);
      status.textContent = "Streaming from " + (response.headers.get("X-BooChat-Provider") || "the host") + "…";
      const followUrl = response.headers.get("X-BooChat-Follow");
      try {
        await readStream(response, bubble, place);
      } catch (error) {
        if (error.name === "AbortError") throw error;
      }
      if (!place.end && followUrl) await follow(followUrl, bubble, place, controller.signal);
    } catch (error) {
      if (error.name !== "AbortError") {
        conversation().append(element("p", "message-error", "The connection to BooChat was lost: " + error.message));
      }
    } finally {
      if (first && !saved) {
        // Refused, and nothing saved: the question goes back into the box; its files stayed there.
        asked.remove();
        if (!input.value.trim()) {
          input.value = question;
          fit();
        }
      }
      controller = null;
      send.disabled = false;
      const stopHadFocus = document.activeElement === stop;
      stop.hidden = true;
      if (stopHadFocus) input.focus();  // the hidden Stop would leave the focus to <body>
      status.textContent = "";
      if (becoming) {
        await becoming;
        becoming = null;
      }
      // The saved turn replaces the streamed one: the question gets its Edit and Delete, the answer
      // its rendering and actions, and a new branch its ‹ › (an answer still marked streaming on the
      // server fetches itself again until it is not).
      if (messageId || stopped) await refreshMessages();
      await maybeTitle();
      await refreshContextUsage();
      if (saved) await refreshList();  // the new chat's title, and no longer "writing…"
    }
  }

  composer.addEventListener("submit", function (event) {
    event.preventDefault();
    const text = input.value.trim();
    if (!text || controller) return;
    const body = new FormData(composer);
    input.value = "";
    input.style.height = "";
    toBottom();
    streamTurn(composer, text, body);
  });

  // Edit-and-resend and regenerate: the message they replace, and everything after it, leave the
  // page (they stay on the server, as the earlier branch).
  document.addEventListener("submit", function (event) {
    const form = event.target.closest ? event.target.closest(".turn-form") : null;
    if (!form || controller) return;
    event.preventDefault();
    const body = new FormData(form);
    const question = form.querySelector("textarea[name=content]");
    const replaced = document.querySelector(form.dataset.replaces);
    const hadFocus = replaced && replaced.contains(document.activeElement);
    if (replaced) {
      while (replaced.nextElementSibling) replaced.nextElementSibling.remove();
      replaced.remove();
    }
    if (hadFocus) input.focus({ preventScroll: true });  // meanwhile: not lost to <body>
    toBottom();
    streamTurn(form, question ? question.value.trim() : "", body).then(function () {
      if (!hadFocus || document.activeElement !== input) return;
      // The saved turn is on the page now: its question's Edit (an edit) or the answer's ‹ › (a regenerate).
      const turns = conversation().querySelectorAll(question ? "article.message.user" : "article.message.assistant");
      const last = turns[turns.length - 1];
      const target = last && (last.querySelector(".branch-nav button:not([disabled])") || last.querySelector("summary, button"));
      if (target) target.focus();
    });
  });

  // An answer's Edit opens its question's edit box (without this script the link leads to it).
  document.addEventListener("click", function (event) {
    const link = event.target.closest ? event.target.closest("[data-edits]") : null;
    const question = link && document.querySelector(link.dataset.edits);
    const details = question && question.querySelector("details.edit-question");
    if (!details) return;
    event.preventDefault();
    details.open = true;
    const box = details.querySelector("textarea");
    box.focus();
    box.setSelectionRange(box.value.length, box.value.length);
  });

  // Copy a whole answer's Markdown: the icon button says so in its name and its icon.
  document.addEventListener("click", async function (event) {
    const button = event.target.closest ? event.target.closest(".copy-answer") : null;
    if (!button) return;
    const source = document.querySelector(button.dataset.copyFrom);
    const use = button.querySelector("use");
    const icon = use ? use.getAttribute("href") : "";
    try {
      await navigator.clipboard.writeText(source ? source.content.textContent : "");
      button.setAttribute("aria-label", "Copied");
      if (use) use.setAttribute("href", icon.replace(/#.*$/, "#check"));
    } catch (error) {
      button.setAttribute("aria-label", "Copy failed");
    }
    setTimeout(function () {
      button.setAttribute("aria-label", "Copy");
      if (use) use.setAttribute("href", icon);
    }, 1500);
  });

  // Answers the page opened on that are still being written: followed from their start.
  for (const saved of document.querySelectorAll("article[data-follow]")) {
    if (controller) break;
    controller = new AbortController();
    send.disabled = true;
    stop.hidden = false;
    status.textContent = "Writing…";
    const holder = document.createElement("div");
    const bubble = answerBubble(holder, saved.id.replace("message-", ""));
    saved.replaceWith(bubble.article);
    follow(saved.dataset.follow, bubble, { lastId: null, end: null }, controller.signal).finally(async function () {
      controller = null;
      send.disabled = false;
      stop.hidden = true;
      status.textContent = "";
      await refreshMessages();
      await refreshContextUsage();
    });
  }

  // Stop asks the server to stop the chat's answer (from any tab or device); the stream then ends.
  function askToStop() {
    fetch(composer.dataset.stopUrl, { method: "POST", headers: { "X-BooChat-Stream": "1", "X-CSRFToken": csrf } });
  }
  stop.addEventListener("click", async function () {
    stopped = true;
    if (becoming) await becoming;
    // A new chat whose first message is not saved yet has no address to ask: streamTurn asks once it has.
    if (composer.dataset.stopUrl) askToStop();
  });

  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) composer.requestSubmit();
  });
  // Ctrl+Enter sends an edited question too.
  document.addEventListener("keydown", function (event) {
    const box = event.target.closest ? event.target.closest(".edit-form textarea") : null;
    if (box && event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      box.form.requestSubmit();
    }
  });

  // The message box grows with its text, up to the height the stylesheet allows.
  function fit() {
    input.style.height = "auto";
    input.style.height = input.scrollHeight + 2 + "px";
  }
  input.addEventListener("input", fit);

  // Follow the answer while the reader is at the bottom; stop as soon as they scroll up, and offer a
  // way back. The page itself scrolls: the header and the composer stay in view (static/css/app.css).
  const jump = document.getElementById("jump-latest");
  const column = document.querySelector(".conversation");
  let following = true;
  function atBottom() {
    const page = document.scrollingElement || document.documentElement;
    return page.scrollHeight - (page.scrollTop + window.innerHeight) < 48;
  }
  function toBottom() {
    following = true;
    const page = document.scrollingElement || document.documentElement;
    window.scrollTo({ top: page.scrollHeight, behavior: "instant" });
    if (jump) jump.hidden = true;
  }
  // Only the reader moves the page up (growing content and BooChat's own scrolling move it down): a
  // move up stops following, reaching the bottom starts it again.
  let lastY = window.scrollY;
  window.addEventListener("scroll", function () {
    if (window.scrollY < lastY - 1) following = false;
    if (atBottom()) following = true;
    lastY = window.scrollY;
    if (jump) jump.hidden = following || atBottom();
  }, { passive: true });
  if (window.ResizeObserver && column) {
    new ResizeObserver(function () {
      if (following) toBottom();
      else if (jump) jump.hidden = atBottom();
    }).observe(column);
  }
  if (jump) jump.addEventListener("click", function () { toBottom(); input.focus(); });
  window.BooChatChat = { toBottom: toBottom };

  // An opened chat shows its latest turn, the cursor in the message box; a link to a message (a
  // search hit) shows that message instead.
  if (!window.location.hash) toBottom();
  else following = false;
  // A new chat's page opens again for another model; the text typed waits in this tab's storage
  // meanwhile (nothing is saved on the server before the first message).
  const modelForm = document.getElementById("model-form");
  if ("newChat" in composer.dataset && modelForm) {
    if (!input.value && sessionStorage.getItem(DRAFT)) {
      input.value = sessionStorage.getItem(DRAFT);
      fit();
    }
    sessionStorage.removeItem(DRAFT);
    modelForm.addEventListener("change", function () {
      if (!("newChat" in composer.dataset)) return;
      if (input.value.trim()) sessionStorage.setItem(DRAFT, input.value);
      modelForm.submit();
    });
  }
  // A question typed on the home page comes with the chat: send it.
  if ("autosend" in composer.dataset && input.value.trim()) composer.requestSubmit();
})();
