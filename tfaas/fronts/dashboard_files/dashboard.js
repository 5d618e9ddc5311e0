// tfaas's dashboard: what the server-rendered page gains with JavaScript. It polls GET / as JSON, updates
// each model's figures in place and, where a model's revision changed (a version loading, a model added or
// removed), re-reads the page and swaps in that model's card; it sends the try-it requests, copies the
// clients, uploads and deletes models. Text from the server is only ever set as text (textContent), and the
// admin token stays in its input: it is never stored.
"use strict";

(() => {
  const pollMilliseconds = Number(document.body.dataset.pollSeconds || 3) * 1000;
  const notice = document.getElementById("notice");

  function reveal(root) {
    for (const element of root.querySelectorAll(".needs-js")) element.hidden = false;
  }

  function say(text, failed = false) {
    notice.textContent = text;
    notice.classList.toggle("error", failed);
  }

  function cards(root) {
    return new Map([...root.querySelectorAll("section.model")].map((card) => [card.dataset.model, card]));
  }

  // ---- live updates ----------------------------------------------------------------------------

  async function refresh() {
    let summary;
    try {
      const response = await fetch("/", { headers: { Accept: "application/json" }, cache: "no-store" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      summary = await response.json();
    } catch (error) {
      say(`Lost contact with the server (${error.message}); trying again.`, true);
      return;
    }
    if (notice.textContent.startsWith("Lost contact")) say("");
    const shown = cards(document.getElementById("models"));
    let changed = shown.size !== summary.models.length;
    for (const model of summary.models) {
      const card = shown.get(model.name);
      if (!card || card.dataset.revision !== model.revision) {
        changed = true;
        continue;
      }
      for (const figure of card.querySelectorAll("[data-figure]")) {
        figure.textContent = model.figures_text[figure.dataset.figure] ?? "–";
      }
    }
    const state = document.getElementById("server-state");
    if (changed || state.classList.contains("ready") !== summary.server.ready) await reloadCards();
  }

  async function reloadCards() {
    const response = await fetch("/", { headers: { Accept: "text/html" }, cache: "no-store" });
    if (!response.ok) return;
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    const models = document.getElementById("models");
    const kept = cards(models);
    // NOTE: a card whose revision did not change stays as it is, with what its forms hold.
    const next = [...page.getElementById("models").children].map((fresh) => {
      const old = kept.get(fresh.dataset.model);
      return old && old.dataset.revision === fresh.dataset.revision ? old : document.adoptNode(fresh);
    });
    models.replaceChildren(...next);
    document.getElementById("server-state").replaceWith(document.adoptNode(page.getElementById("server-state")));
    reveal(models);
  }

  async function poll() {
    if (!document.hidden) await refresh();
    setTimeout(poll, pollMilliseconds);
  }

  // ---- try it ------------------------------------------------------------------------------------

  // An answer as the form shows it: a line per key of its object (each value on one line), else as sent.
  function pretty(text) {
    try {
      const answer = JSON.parse(text);
      if (answer === null || typeof answer !== "object" || Array.isArray(answer)) return text;
      const lines = Object.entries(answer).map(([key, value]) => `  ${JSON.stringify(key)}: ${JSON.stringify(value)}`);
      return `{\n${lines.join(",\n")}\n}`;
    } catch {
      return text;
    }
  }

  async function tryIt(form) {
    const output = form.querySelector("output");
    const body = form.elements.body.value;
    output.classList.remove("failed");
    try {
      JSON.parse(body);
    } catch (error) {
      output.classList.add("failed");
      output.textContent = `The request is not JSON: ${error.message}`;
      return;
    }
    output.textContent = "Sending…";
    const started = performance.now();
    try {
      const response = await fetch(form.dataset.path, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body,
      });
      const answer = await response.text();
      const milliseconds = (performance.now() - started).toFixed(1);
      output.classList.toggle("failed", !response.ok);
      output.textContent = `HTTP ${response.status} in ${milliseconds} ms\n${pretty(answer)}`;
    } catch (error) {
      output.classList.add("failed");
      output.textContent = `The request failed: ${error.message}`;
    }
  }

  async function copy(button) {
    const source = document.getElementById(button.dataset.copy);
    const label = button.textContent;
    try {
      await navigator.clipboard.writeText(source.textContent);
      button.textContent = "Copied";
    } catch {
      // NOTE: no clipboard API outside a secure context (plain http to another host): select the text instead.
      getSelection().selectAllChildren(source);
      button.textContent = "Selected: copy it with Ctrl+C";
    }
    setTimeout(() => (button.textContent = label), 2500);
  }

  // ---- uploads and deletes -------------------------------------------------------------------------

  function writeHeaders(headers = {}) {
    const token = document.getElementById("admin-token");
    return token && token.value ? { ...headers, Authorization: `Bearer ${token.value}` } : headers;
  }

  async function send(path, init) {
    try {
      const response = await fetch(path, init);
      const answer = await response.json().catch(() => ({}));
      if (response.ok) return answer;
      say(`HTTP ${response.status}: ${answer.error || response.statusText}`, true);
    } catch (error) {
      say(`The request failed: ${error.message}`, true);
    }
    return null;
  }

  async function upload(form) {
    let init;
    if (form.id === "upload-bundle") {
      const bundle = form.elements.bundle.files[0];
      const gzipped = /\.(tgz|gz)$/i.test(bundle.name);
      const headers = { "Content-Type": "application/octet-stream", ...(gzipped ? { "Content-Encoding": "gzip" } : {}) };
      init = { method: "POST", body: bundle, headers: writeHeaders(headers) };
    } else {
      init = { method: "POST", body: new FormData(form), headers: writeHeaders() };
    }
    say("Uploading…");
    const answer = await send("/upload", init);
    if (answer) {
      say(`Uploaded ${answer.name} as version ${answer.version}: it loads now.`);
      form.reset();
      await refresh();
    }
  }

  async function remove(name) {
    if (!confirm(`Delete the model ${name} and every version of it? This cannot be undone.`)) return;
    const answer = await send(`/delete/${encodeURIComponent(name)}`, { method: "DELETE", headers: writeHeaders() });
    if (answer) {
      say(`Deleted ${name}.`);
      await refresh();
    }
  }

  // ---- wiring ------------------------------------------------------------------------------------

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (form.matches("form.try")) {
      event.preventDefault();
      tryIt(form);
    } else if (form.matches("form.upload")) {
      event.preventDefault();
      upload(form);
    }
  });

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-copy], button[data-delete]");
    if (!button) return;
    if (button.dataset.copy) copy(button);
    else remove(button.dataset.delete);
  });

  reveal(document);
  setTimeout(poll, pollMilliseconds);
})();
