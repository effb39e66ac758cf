// Reading an answer's SSE stream into the page, shared by the chat and the arena. The host's text is
// only ever set as text; the HTML shown is the server's, sanitized as the saved answer is: its finished
// blocks as they come (`event: block`), and the saved answer when the stream ends.
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
    // The rendered blocks go before `text`, which holds the tail not rendered yet (one text node).
    const content = element("div", "content markdown");
    const text = element("div", "streaming-text");
    text.append(document.createTextNode(""));
    content.append(text);
    const meta = element("footer", "message-meta");
    article.append(loading, details, content, meta);
    container.append(article);
    return { article, details, reasoning: details.querySelector(".reasoning-text"), content, text, loading, meta };
  }

  // Finished blocks, rendered by the server: they take the place of the first `length` characters
  // (UTF-16 units, as JavaScript counts) of the text shown.
  function showBlocks(bubble, html, length) {
    bubble.text.insertAdjacentHTML("beforebegin", html);
    bubble.text.firstChild.deleteData(0, length);
  }

  function clearContent(bubble) {
    while (bubble.text.previousSibling) bubble.text.previousSibling.remove();
    bubble.text.firstChild.data = "";
  }

  // One SSE event. `place` (optional) follows BooChat's own lines: `id:` (the reader's place, sent back
  // as Last-Event-ID on a reconnect), `event: block` (finished blocks, rendered), `event: snapshot`
  // (the whole text so far and its finished blocks, when only the saved text can be read) and
  // `event: end` (the answer is saved: its state and error).
  function handleEvent(block, bubble, place) {
    let kind = "";
    const lines = [];
    for (const line of block.split(/\r?\n/)) {
      if (line === "id" || line.startsWith("id:")) {
        if (place) place.lastId = line.slice(3).trim() || null;
      } else if (line.startsWith("event:")) {
        kind = line.slice(6).trim();
      } else if (line.startsWith("data:")) {
        lines.push(line.slice(5).trimStart());
      }
    }
    const data = lines.join("\n");
    if (kind === "tool") {  // a tool call's step (static/js/tools.js)
      try { if (window.BooChatTools) window.BooChatTools.show(bubble, JSON.parse(data)); } catch (e) { /* not JSON */ }
      return;
    }
    if (kind === "end" || kind === "snapshot" || kind === "block") {
      let value;
      try { value = JSON.parse(data); } catch (e) { return; }
      if (kind === "end") {
        if (place) place.end = value;
      } else if (kind === "block") {
        showBlocks(bubble, value.html, value.length);
      } else {
        if (window.BooChatTools) window.BooChatTools.showRounds(bubble, value.tool_rounds || []);
        clearContent(bubble);
        bubble.text.firstChild.data = value.content || "";
        showBlocks(bubble, value.html || "", value.length || 0);
        bubble.reasoning.textContent = value.reasoning || "";
        bubble.details.hidden = !value.reasoning;
      }
      return;
    }
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
        bubble.text.firstChild.appendData(delta.content);
      }
    }
    if (chunk.timings && chunk.timings.predicted_per_second) {
      bubble.meta.textContent = chunk.timings.predicted_per_second.toFixed(1) + " tok/s";
    }
  }

  async function readStream(response, bubble, place) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let match;
      while ((match = /\r?\n\r?\n/.exec(buffer))) {
        handleEvent(buffer.slice(0, match.index), bubble, place);
        buffer = buffer.slice(match.index + match[0].length);
      }
    }
  }

  function clearBubble(bubble) {
    clearContent(bubble);
    bubble.reasoning.textContent = "";
    bubble.details.hidden = true;
    bubble.loading.textContent = "";
    bubble.loading.hidden = true;
    bubble.article.querySelectorAll(".message-error, .tool-round").forEach((node) => node.remove());
  }

  // Follow an answer being written (`url`: its stream) into `bubble` until it ends, reconnecting by
  // itself after a network drop: from `place.lastId` on (nothing lost, nothing repeated), or from
  // the start into an emptied bubble. Resolves with the end ({state, error}), or null if the answer
  // is gone or the follow was aborted.
  async function follow(url, bubble, place, signal) {
    let wait = 500;
    while (!place.end) {
      try {
        const headers = {};
        if (place.lastId) headers["Last-Event-ID"] = place.lastId;
        else clearBubble(bubble);
        const response = await fetch(url, { headers, signal });
        if (response.status === 400 || response.status === 404) return null;
        if (response.ok) {
          await readStream(response, bubble, place);
          wait = 500;
        }
      } catch (error) {
        if (error.name === "AbortError") return null;
      }
      if (!place.end) {
        await new Promise((resolve) => setTimeout(resolve, wait));
        wait = Math.min(wait * 2, 5000);
      }
    }
    return place.end;
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
    return node;
  }

  window.BooChatStream = { element, answerBubble, handleEvent, readStream, follow, errorMessage, swapIn };
})();
