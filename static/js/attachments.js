// Files for the next question: picked, pasted into the message box or dropped on the composer. Each
// is checked by its first bytes (as the server checks it again) and against the limits, so a file
// that cannot go is refused with the reason before anything is sent; images are refused at once
// for a model that takes none. The kept files are the file input's files: the send's FormData
// carries them (static/js/chat.js).
(function () {
  "use strict";
  const box = document.getElementById("attachments");
  const input = document.getElementById("attach-input");
  const composer = document.getElementById("composer");
  if (!box || !input || !composer) return;
  const list = document.getElementById("attach-list");
  const error = document.getElementById("attach-error");
  const textarea = document.getElementById("composer-input");
  const rules = {
    images: box.dataset.images, refusal: box.dataset.refusal, maxCount: Number(box.dataset.maxCount),
    maxImage: Number(box.dataset.maxImageBytes), maxFile: Number(box.dataset.maxFileBytes),
  };
  let kept = [];  // {file, kind, preview}

  function sizeText(bytes) {
    return bytes >= 1048576 ? (bytes / 1048576).toFixed(1) + " MB" : Math.max(1, Math.floor(bytes / 1024)) + " KB";
  }

  function startsWith(head, bytes, offset) {
    return bytes.every(function (b, i) { return head[(offset || 0) + i] === b; });
  }

  async function kindOf(file) {
    const head = new Uint8Array(await file.slice(0, 16).arrayBuffer());
    if (startsWith(head, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]) || startsWith(head, [0xff, 0xd8, 0xff]) ||
        startsWith(head, [0x47, 0x49, 0x46, 0x38]) ||
        (startsWith(head, [0x52, 0x49, 0x46, 0x46]) && startsWith(head, [0x57, 0x45, 0x42, 0x50], 8))) return "image";
    if (startsWith(head, [0x25, 0x50, 0x44, 0x46, 0x2d])) return "pdf";
    const sample = new Uint8Array(await file.slice(0, 65536).arrayBuffer());
    if (!sample.length || sample.includes(0)) return null;
    try {
      new TextDecoder("utf-8", { fatal: true }).decode(sample, { stream: true });
      return "text";
    } catch (e) {
      return null;
    }
  }

  function dataUrl(file) {
    return new Promise(function (resolve) {
      const reader = new FileReader();
      reader.onload = function () { resolve(reader.result); };
      reader.onerror = function () { resolve(null); };
      reader.readAsDataURL(file);
    });
  }

  function showError(message) {
    error.textContent = message || "";
    error.hidden = !message;
  }

  function item(entry, removable) {
    const li = document.createElement("li");
    if (entry.preview) {
      const img = document.createElement("img");
      img.className = "thumbnail";
      img.src = entry.preview;
      img.alt = entry.file.name;
      li.append(img);
    } else {
      const name = document.createElement("span");
      name.className = "file-chip";
      name.textContent = entry.file.name;
      li.append(name);
    }
    if (removable) {
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "remove-file";
      remove.textContent = "×";
      remove.setAttribute("aria-label", "Remove " + entry.file.name);
      remove.addEventListener("click", function () {
        kept = kept.filter(function (other) { return other !== entry; });
        update();
        input.focus();
      });
      li.append(remove);
    }
    return li;
  }

  function update() {
    const transfer = new DataTransfer();
    kept.forEach(function (entry) { transfer.items.add(entry.file); });
    input.files = transfer.files;
    list.replaceChildren.apply(list, kept.map(function (entry) { return item(entry, true); }));
    list.hidden = kept.length === 0;
  }

  async function add(files) {
    const problems = [];
    for (const file of files) {
      if (kept.length >= rules.maxCount) {
        problems.push("At most " + rules.maxCount + " files go with one question.");
        break;
      }
      const kind = await kindOf(file);
      if (!kind) {
        problems.push(file.name + " is not an image (PNG, JPEG, GIF, WebP), a PDF or a text file.");
        continue;
      }
      if (kind === "image" && (rules.images === "no" || rules.images === "unknown")) {
        problems.push(rules.refusal);
        continue;
      }
      const limit = kind === "image" ? rules.maxImage : rules.maxFile;
      if (file.size > limit) {
        problems.push(file.name + " is " + sizeText(file.size) + ": " + (kind === "image" ? "images" : "files") +
                      " are limited to " + sizeText(limit) + ".");
        continue;
      }
      kept.push({ file: file, kind: kind, preview: kind === "image" ? await dataUrl(file) : null });
    }
    update();
    showError(problems.join(" "));
  }

  input.addEventListener("change", function () { add(Array.from(input.files)); });
  if (textarea) {
    textarea.addEventListener("paste", function (event) {
      const files = Array.from((event.clipboardData && event.clipboardData.files) || []);
      if (!files.length) return;
      event.preventDefault();
      add(files);
    });
  }
  composer.addEventListener("dragover", function (event) {
    if (event.dataTransfer && Array.from(event.dataTransfer.types).includes("Files")) {
      event.preventDefault();
      (composer.closest(".composer-card") || composer).classList.add("dropping");
    }
  });
  composer.addEventListener("dragleave", function () { (composer.closest(".composer-card") || composer).classList.remove("dropping"); });
  composer.addEventListener("drop", function (event) {
    (composer.closest(".composer-card") || composer).classList.remove("dropping");
    if (!event.dataTransfer || !event.dataTransfer.files.length) return;
    event.preventDefault();
    add(Array.from(event.dataTransfer.files));
  });

  // The question just sent shows its files, and the composer starts empty again.
  window.BooChatAttachments = {
    sent: function (question) {
      if (kept.length) {
        const shown = document.createElement("ul");
        shown.className = "attachments";
        shown.setAttribute("aria-label", "Attached files");
        kept.forEach(function (entry) { shown.append(item(entry, false)); });
        question.append(shown);
      }
      kept = [];
      update();
      showError("");
    },
  };
})();
