// The arena: start every pending column's stream at once, show each as it arrives, swap in the
// saved answers, then ask for the analysis. "Stop all" closes every stream (and so every host's).
(function () {
  "use strict";
  const arena = document.getElementById("arena");
  if (!arena) return;
  const { element, answerBubble, readStream, errorMessage, swapIn } = window.BooChatStream;
  const csrf = document.querySelector("input[name=csrfmiddlewaretoken]").value;
  const stop = document.getElementById("arena-stop");
  const columns = Array.from(arena.querySelectorAll("[data-state=pending]"));
  if (!columns.length) return;
  const controllers = [];

  async function runColumn(column) {
    const body = column.querySelector(".arena-body");
    body.textContent = "";
    const controller = new AbortController();
    controllers.push(controller);
    try {
      const response = await fetch(column.dataset.streamUrl, {
        method: "POST", signal: controller.signal, headers: { "X-BooChat-Stream": "1", "X-CSRFToken": csrf },
      });
      if (!response.ok) {
        body.append(element("p", "message-error", await errorMessage(response)));
        return;
      }
      await readStream(response, answerBubble(body, null));
    } catch (error) {
      if (error.name !== "AbortError") body.append(element("p", "message-error", "Connection lost: " + error.message));
    }
  }

  stop.hidden = false;
  stop.addEventListener("click", () => controllers.forEach((c) => c.abort()));
  Promise.allSettled(columns.map(runColumn)).then(async function () {
    stop.hidden = true;
    await Promise.allSettled(columns.map((column) => swapIn(column.dataset.answerUrl, column)));
    await htmx.ajax("POST", arena.dataset.analyzeUrl, { target: "#analysis", swap: "outerHTML" });
  });
})();
