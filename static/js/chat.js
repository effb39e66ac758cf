// The chat composer: POSTs with `X-BooChat-Stream: 1` and shows the relayed stream as it arrives
// (stream.js reads it), then swaps in the saved answer, asks for a title and refreshes context use.
(function () {
  "use strict";
  const composer = document.getElementById("composer");
  if (!composer) return;
  const input = document.getElementById("composer-input");
  const send = document.getElementById("send-button");
  const stop = document.getElementById("stop-button");
  const status = document.getElementById("stream-status");
  const messages = document.getElementById("messages");
  const csrf = composer.querySelector("input[name=csrfmiddlewaretoken]").value;
  let controller = null;
  let stopped = false;

  const { element, answerBubble, readStream, errorMessage, swapIn } = window.BooChatStream;

  function messageUrl(id) {
    return composer.dataset.messageUrl.replace(/0$/, String(id));
  }

  // The footer a saved answer has ("qwen3-8b · sam-desktop"), for an answer the host refused.
  function modelFooter() {
    const id = composer.dataset.model || "";
    const slash = id.indexOf("/");
    return element("footer", "message-meta", slash < 0 ? id : id.slice(slash + 1) + " · " + id.slice(0, slash));
  }

  async function showSaved(id) {
    if (id) await swapIn(messageUrl(id), document.getElementById("message-" + id));
  }

  // Stopped before the host answered: the page has no answer id yet, so it takes the conversation as
  // the server saved it (an answer still marked streaming there fetches itself again until it is not).
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

  composer.addEventListener("submit", async function (event) {
    event.preventDefault();
    const text = input.value.trim();
    if (!text || controller) return;
    const body = new FormData(composer);
    const placeholder = document.getElementById("no-messages");
    if (placeholder) placeholder.remove();
    const question = element("article", "message user");
    question.append(element("div", "content", text));
    if (window.BooChatAttachments) window.BooChatAttachments.sent(question);  // its files, sent in `body`
    messages.append(question);
    input.value = "";
    controller = new AbortController();
    send.disabled = true;
    stop.hidden = false;
    status.textContent = "Waiting for the host…";
    let messageId = null;
    stopped = false;
    try {
      const response = await fetch(composer.action, {
        method: "POST", body, signal: controller.signal,
        headers: { "X-BooChat-Stream": "1", "X-CSRFToken": csrf },
      });
      if (!response.ok) {
        const failed = element("article", "message assistant state-failed");
        failed.append(element("p", "message-error", await errorMessage(response)), modelFooter());
        messages.append(failed);
        return;
      }
      messageId = response.headers.get("X-BooChat-Message");
      const bubble = answerBubble(messages, messageId);
      status.textContent = "Streaming from " + (response.headers.get("X-BooChat-Provider") || "the host") + "…";
      await readStream(response, bubble);
    } catch (error) {
      if (error.name !== "AbortError") {
        messages.append(element("p", "message-error", "The connection to BooChat was lost: " + error.message));
      }
    } finally {
      controller = null;
      send.disabled = false;
      stop.hidden = true;
      status.textContent = "";
      if (messageId) await showSaved(messageId);
      else if (stopped) await refreshMessages();
      await maybeTitle();
      await refreshContextUsage();
    }
  });

  stop.addEventListener("click", function () {
    stopped = true;
    if (controller) controller.abort();
  });

  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) composer.requestSubmit();
  });
})();
