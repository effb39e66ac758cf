// Streams an answer into the page: POSTs the composer with `X-BooChat-Stream: 1`, reads the SSE
// bytes the server relays from the host, and shows content, reasoning and llama-swap's loading
// status apart. Text goes in with textContent only; the saved, sanitized HTML replaces it at the end.
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

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text) node.textContent = text;
    return node;
  }

  function messageUrl(id) {
    return composer.dataset.messageUrl.replace(/0$/, String(id));
  }

  function answerBubble(id) {
    const article = element("article", "message assistant state-streaming");
    if (id) article.id = "message-" + id;
    const details = element("details", "reasoning");
    details.hidden = true;
    details.append(element("summary", "", "Reasoning"), element("div", "reasoning-text"));
    const content = element("div", "content streaming-text");
    const loading = element("p", "loading-status");
    loading.hidden = true;
    const meta = element("footer", "message-meta");
    article.append(loading, details, content, meta);
    messages.append(article);
    return { article, details, reasoning: details.querySelector(".reasoning-text"), content, loading, meta };
  }

  function handleEvent(block, bubble) {
    const data = block.split(/\r?\n/).filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
    if (!data || data === "[DONE]") return;
    let chunk;
    try { chunk = JSON.parse(data); } catch (e) { return; }
    if (chunk.error) {
      const error = element("p", "message-error", typeof chunk.error === "string" ? chunk.error : (chunk.error.message || "The host reported an error."));
      bubble.article.append(error);
      return;
    }
    for (const choice of chunk.choices || []) {
      const delta = choice.delta || {};
      if (delta.reasoning_content) {
        if (!("id" in chunk)) {  // llama-swap loading the model: progress, not the model's thought
          bubble.loading.hidden = false;
          bubble.loading.textContent += delta.reasoning_content;
        } else {
          bubble.details.hidden = false;
          bubble.reasoning.textContent += delta.reasoning_content;
        }
      }
      if (delta.content) {
        bubble.loading.hidden = true;
        bubble.content.textContent += delta.content;
      }
    }
    if (chunk.timings && chunk.timings.predicted_per_second) {
      bubble.meta.textContent = chunk.timings.predicted_per_second.toFixed(1) + " tok/s";
    }
  }

  async function showSaved(id) {
    if (!id || !window.htmx) return;
    await htmx.ajax("GET", messageUrl(id), { target: "#message-" + id, swap: "outerHTML" });
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
    messages.append(question);
    input.value = "";
    controller = new AbortController();
    send.disabled = true;
    stop.hidden = false;
    status.textContent = "Waiting for the host…";
    let messageId = null;
    try {
      const response = await fetch(composer.action, {
        method: "POST", body, signal: controller.signal,
        headers: { "X-BooChat-Stream": "1", "X-CSRFToken": csrf },
      });
      if (!response.ok) {
        let message = response.status + " " + response.statusText;
        try { message = (await response.json()).error || message; } catch (e) { /* not JSON */ }
        const failed = element("article", "message assistant state-failed");
        failed.append(element("p", "message-error", message));
        messages.append(failed);
        return;
      }
      messageId = response.headers.get("X-BooChat-Message");
      const bubble = answerBubble(messageId);
      status.textContent = "Streaming from " + (response.headers.get("X-BooChat-Provider") || "the host") + "…";
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let match;
        while ((match = /\r?\n\r?\n/.exec(buffer))) {
          handleEvent(buffer.slice(0, match.index), bubble);
          buffer = buffer.slice(match.index + match[0].length);
        }
      }
    } catch (error) {
      if (error.name !== "AbortError") {
        messages.append(element("p", "message-error", "The connection to BooChat was lost: " + error.message));
      }
    } finally {
      controller = null;
      send.disabled = false;
      stop.hidden = true;
      status.textContent = "";
      await showSaved(messageId);
      await maybeTitle();
      await refreshContextUsage();
    }
  });

  stop.addEventListener("click", function () {
    if (controller) controller.abort();
  });

  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) composer.requestSubmit();
  });
})();
