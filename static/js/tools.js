// Tool calls in an answer being written: each `event: tool` of the stream (boochat.chat.tool_loop) is
// a call as it is now, shown as the block chat.html's tool_call partial renders once it is saved. The
// arguments and results are set with textContent only: they are untrusted text, never HTML.
(function () {
  "use strict";

  const { element } = window.BooChatStream;

  function stateText(call) {
    if (call.state === "waiting") return "waits for your approval";
    if (call.state === "running") return "running…";
    if (call.approval === "deny") return "denied";
    return call.is_error ? "error" : "done";
  }

  // The round's holder, before the answer's text; the text written before its first call moves into it.
  function roundOf(bubble, index) {
    let round = bubble.article.querySelector('.tool-round[data-round="' + index + '"]');
    if (round) return round;
    round = element("div", "tool-round");
    round.dataset.round = String(index);
    // The round's text so far, its rendered blocks and the tail not rendered yet (stream.js's `text`).
    const moved = element("div", "content markdown");
    while (bubble.text.previousSibling) moved.prepend(bubble.text.previousSibling);
    if (bubble.text.firstChild.data) moved.append(document.createTextNode(bubble.text.firstChild.data));
    bubble.text.firstChild.data = "";
    if (moved.hasChildNodes()) round.append(moved);
    bubble.article.insertBefore(round, bubble.details);
    return round;
  }

  function approvalForm(bubble, call) {
    const form = element("form", "tool-approval");
    form.method = "post";
    const composer = document.getElementById("composer");
    form.action = composer.dataset.toolDecisionUrl.replace("/0/", "/" + bubble.article.id.replace("message-", "") + "/");
    const id = element("input");
    id.type = "hidden";
    id.name = "call";
    id.value = call.id;
    form.append(id);
    for (const [value, label] of [["run", "Run"], ["always", "Always for this chat"], ["deny", "Deny"]]) {
      const button = element("button", value === "run" ? "primary small" : "small", label);
      button.type = "submit";
      button.name = "choice";
      button.value = value;
      form.append(button);
    }
    return form;
  }

  // Show one call (a new block, or its block replaced); `bubble` is stream.js's answer bubble.
  function show(bubble, data) {
    const call = data.call || {};
    const round = roundOf(bubble, data.round || 0);
    const block = element("details", "tool-call" + (call.is_error ? " tool-error" : ""));
    block.dataset.call = call.id;
    const summary = element("summary");
    summary.append(element("span", "tool-name", call["function"]), " ", element("span", "tool-state", stateText(call)));
    if (call.state === "done" && call.duration_ms !== null && call.duration_ms !== undefined) {
      summary.append(" ", element("span", "tool-duration", call.duration_ms + " ms"));
    }
    block.append(summary, element("pre", "tool-arguments", call.arguments));
    if (call.state === "done") block.append(element("pre", "tool-result", call.result));
    if (call.state === "waiting") {
      block.open = true;
      block.append(approvalForm(bubble, call));
    }
    const old = Array.from(round.querySelectorAll(".tool-call")).find((node) => node.dataset.call === call.id);
    if (old) {
      block.open = block.open || old.open;
      old.replaceWith(block);
    } else {
      round.append(block);
    }
  }

  // The saved rounds of an answer (a snapshot of its saved text), in place of those shown.
  function showRounds(bubble, rounds) {
    bubble.article.querySelectorAll(".tool-round").forEach((node) => node.remove());
    rounds.forEach(function (round, index) {
      while (bubble.text.previousSibling) bubble.text.previousSibling.remove();
      bubble.text.firstChild.data = round.text || "";
      for (const call of round.calls || []) show(bubble, { round: index, call });
    });
    bubble.text.firstChild.data = "";
  }

  // A choice is posted without leaving the page; the stream shows what follows.
  document.addEventListener("submit", function (event) {
    const form = event.target.closest ? event.target.closest(".tool-approval") : null;
    if (!form) return;
    event.preventDefault();
    const body = new FormData(form);
    if (event.submitter) body.set(event.submitter.name, event.submitter.value);
    const token = document.querySelector("input[name=csrfmiddlewaretoken]");
    form.querySelectorAll("button").forEach((button) => { button.disabled = true; });
    fetch(form.action, { method: "POST", body, headers: { "X-BooChat-Stream": "1", "X-CSRFToken": token ? token.value : "" } });
  });

  window.BooChatTools = { show, showRounds };
})();
