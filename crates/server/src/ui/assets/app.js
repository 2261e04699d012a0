// The admin UI's only script (served from /admin/app.js; the CSP allows no inline script).
// Progressive enhancement only: every page works without it.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // Copy buttons: <button data-copy="input-id">.
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.addEventListener("click", async () => {
      const field = document.getElementById(button.dataset.copy);
      if (!field) return;
      field.select();
      let copied = false;
      try {
        await navigator.clipboard.writeText(field.value);
        copied = true;
      } catch (_) {
        copied = document.execCommand && document.execCommand("copy");
      }
      button.textContent = copied ? "Copied" : "Press Ctrl+C";
      setTimeout(() => { button.textContent = "Copy"; }, 2000);
    });
  }
  // File fields: highlight while a file is dragged over; show progress while a form uploads.
  for (const input of document.querySelectorAll("input[type=file].drop")) {
    for (const [event, on] of [["dragenter", true], ["dragover", true], ["dragleave", false], ["drop", false]]) {
      input.addEventListener(event, () => input.classList.toggle("dragging", on));
    }
  }
  for (const form of document.querySelectorAll("form[enctype='multipart/form-data']")) {
    form.addEventListener("submit", () => {
      const button = form.querySelector("button[type=submit]");
      if (button) { button.disabled = true; button.textContent = "Uploading..."; }
      const bar = document.createElement("progress");
      bar.setAttribute("aria-label", "Uploading");
      form.appendChild(bar);
    });
  }
});
