// Rendered answers: the copy button of each code block (the server renders the button; it works on
// answers swapped in later too, since the listener is on the document).
(function () {
  "use strict";

  // navigator.clipboard exists only in secure contexts (HTTPS, localhost); plain HTTP on a LAN
  // falls back to selecting the text and the older copy command.
  async function copyText(text, code) {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return;
    }
    const range = document.createRange();
    range.selectNodeContents(code);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    const copied = document.execCommand("copy");
    selection.removeAllRanges();
    if (!copied) throw new Error("copy refused");
  }

  document.addEventListener("click", async function (event) {
    const button = event.target.closest("button.copy-code");
    if (!button) return;
    const code = button.closest(".code-block").querySelector("pre code");
    const label = button.textContent;
    try {
      await copyText(code.textContent, code);
      button.textContent = "Copied";
    } catch (error) {
      button.textContent = "Copy failed";
    }
    setTimeout(function () { button.textContent = label; }, 2000);
  });
})();
