// The chat composer: POSTs with `X-BooChat-Stream: 1` and shows the answer as it is written
// (stream.js reads it, and follows it again after a network drop), then swaps in the saved answer,
// asks for a title and refreshes context use. An answer still being written when the page opens is
// followed from its start. Stop asks the server: the answer is a job of the server, not of this page.
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
      await htmx.ajax("GET", window.location.pathname, { target: "#messages", select: "#messages", swap: "outerHTML" });
    }
  }

  async function refreshContextUsage() {
    if (document.getElementById("context-usage") && window.htmx) {
      await htmx.ajax("GET", window.location.pathname, { target: "#context-usage", select: "#context-usage", swap: "outerHTML" });
    }
  }

  async function maybeTitle() {
    const title = document.getElementById("session-title");
    if (title && "untitled" in title.dataset && window.htmx) {
      await htmx.ajax("POST", composer.dataset.titleUrl, { target: "#session-title", swap: "outerHTML" });
    }
  }

  // One turn: POST `form` (the composer, an edited question, or a regenerate form) and show the
  // answer as it streams. `question` is the text shown as the new question, if the turn asks one.
  async function streamTurn(form, question, body) {
    if (controller) return;
    const placeholder = document.getElementById("no-messages");
    if (placeholder) placeholder.remove();
    if (question) {
      const asked = element("article", "message user");
      asked.append(element("div", "content", question));
      // The composer's files, sent in `body`, show with the question (an edit's stay on the server).
      if (form === composer && window.BooChatAttachments) window.BooChatAttachments.sent(asked);
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
      controller = null;
      send.disabled = false;
      stop.hidden = true;
      status.textContent = "";
      // The saved turn replaces the streamed one: the question gets its Edit and Delete, the answer
      // its rendering and actions, and a new branch its ‹ › (an answer still marked streaming on the
      // server fetches itself again until it is not).
      if (messageId || stopped) await refreshMessages();
      await maybeTitle();
      await refreshContextUsage();
    }
  }

  composer.addEventListener("submit", function (event) {
    event.preventDefault();
    const text = input.value.trim();
    if (!text || controller) return;
    const body = new FormData(composer);
    input.value = "";
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
    if (replaced) {
      while (replaced.nextElementSibling) replaced.nextElementSibling.remove();
      replaced.remove();
    }
    streamTurn(form, question ? question.value.trim() : "", body);
  });

  // Copy a whole answer's Markdown.
  document.addEventListener("click", async function (event) {
    const button = event.target.closest ? event.target.closest(".copy-answer") : null;
    if (!button) return;
    const source = document.querySelector(button.dataset.copyFrom);
    try {
      await navigator.clipboard.writeText(source ? source.content.textContent : "");
      button.textContent = "Copied";
    } catch (error) {
      button.textContent = "Copy failed";
    }
    setTimeout(function () { button.textContent = "Copy"; }, 1500);
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
  stop.addEventListener("click", function () {
    stopped = true;
    fetch(composer.dataset.stopUrl, { method: "POST", headers: { "X-BooChat-Stream": "1", "X-CSRFToken": csrf } });
  });

  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) composer.requestSubmit();
  });
})();
