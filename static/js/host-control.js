// htmx leaves 4xx and 5xx answers unswapped; a host panel's refusal (an unknown model, too many
// loads waiting) is the panel itself saying why, so it is shown like any other answer.
(function () {
  "use strict";
  document.body.addEventListener("htmx:beforeSwap", function (event) {
    const target = event.detail.target;
    const type = event.detail.xhr.getResponseHeader("Content-Type") || "";
    if (target && target.classList.contains("host-panel") && event.detail.xhr.status >= 400 && type.startsWith("text/html")) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
})();
