// Reading an answer's SSE stream into the page, shared by the chat and the arena. Text is only
// ever set with textContent; the saved, sanitized HTML replaces it when the stream ends.
(function () {
  "use strict";

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text) node.textContent = text;
    return node;
  }

  // An answer's parts: llama-swap loading status, reasoning (collapsed), content, figures.
  function answerBubble(container, id) {
    const article = element("article", "message assistant state-streaming");
    article.setAttribute("aria-busy", "true");  // read once complete, not chunk by chunk (the saved answer replaces it)
    if (id) article.id = "message-" + id;
    const details = element("details", "reasoning");
    details.hidden = true;
    details.append(element("summary", "", "Reasoning"), element("div", "reasoning-text"));
    const loading = element("p", "loading-status");
    loading.hidden = true;
    const content = element("div", "content streaming-text");
    const meta = element("footer", "message-meta");
    article.append(loading, details, content, meta);
    container.append(article);
    return { article, details, reasoning: details.querySelector(".reasoning-text"), content, loading, meta };
  }

  function handleEvent(block, bubble) {
    const data = block.split(/\r?\n/).filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
    if (!data || data === "[DONE]") return;
    let chunk;
    try { chunk = JSON.parse(data); } catch (e) { return; }
    if (chunk.error) {
      const message = typeof chunk.error === "string" ? chunk.error : (chunk.error.message || "The host reported an error.");
      bubble.article.append(element("p", "message-error", message));
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

  async function readStream(response, bubble) {
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
  }

  async function errorMessage(response) {
    try { return (await response.json()).error || response.statusText; } catch (e) { return response.status + " " + response.statusText; }
  }

  // Replace `target` with the server's rendering of it (the saved, sanitized answer). Plain fetch:
  // several columns swap at once, and htmx would queue or drop requests from the same source.
  async function swapIn(url, target) {
    const response = await fetch(url, { headers: { "HX-Request": "true" } });
    if (!response.ok || !target) return;
    const template = document.createElement("template");
    template.innerHTML = (await response.text()).trim();
    const node = template.content.firstElementChild;
    if (!node) return;
    target.replaceWith(node);
    if (window.htmx) window.htmx.process(node);
  }

  window.BooChatStream = { element, answerBubble, handleEvent, readStream, errorMessage, swapIn };
})();
