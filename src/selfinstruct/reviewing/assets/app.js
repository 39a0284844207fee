"use strict";
// The review page: one reviewer rates the run's sampled instances, keyboard first. Every
// answer is posted as it is given (the server commits it to the run store) and the page
// never keeps anything the server does not have: on load it reads api/state and resumes at
// the first item not yet complete. The items are model output: every text is set with
// textContent, never parsed as HTML.
(function () {
  const QUESTIONS = ["instruction", "input", "output"];
  const STEPS = [...QUESTIONS, "rating"];
  const $ = (id) => document.getElementById(id);
  const body = document.body;
  const note = $("note");

  const state = { items: [], ratings: {}, index: 0, cursor: 0, ready: false, pending: 0, error: "", shown: -1 };
  let queue = Promise.resolve(); // requests go one after another, in the order given

  // -- talking to the server ------------------------------------------------------------
  class Failure extends Error {
    constructor(status, why) { super(`(${status}) ${why}`); }
  }

  async function call(method, path, payload) {
    const options = { method, cache: "no-store", credentials: "same-origin" };
    if (payload !== undefined) {
      options.headers = { "Content-Type": "application/json" };
      options.body = JSON.stringify(payload);
    }
    let response;
    try {
      response = await fetch(path, options);
    } catch (err) {
      throw new Failure("no answer", "the review server is not answering: is selfinstruct review still running?");
    }
    let data = null;
    try { data = await response.json(); } catch (err) { data = null; }
    if (!response.ok) {
      const why = data && typeof data.error === "string" ? data.error : response.statusText;
      throw new Failure(response.status, why);
    }
    return data;
  }

  // Queue one POST after those already given; the status line shows what is pending.
  function send(path, payload) {
    state.pending += 1;
    showStatus();
    const done = queue.then(() => call("POST", path, payload));
    queue = done.catch(() => undefined);
    return done.finally(() => {
      state.pending -= 1;
      showStatus();
    });
  }

  function failed(what) {
    return (err) => {
      state.error = `${what} ${err.message} — the answers shown are the ones stored.`;
      showStatus();
      resync();
    };
  }

  // After a failure: show what the store holds (once the queue has drained).
  function resync() {
    queue = queue.then(() => call("GET", "api/state")).then((data) => {
      if (state.pending === 0) {
        state.ratings = data.ratings;
        state.cursor = firstOpen(ratingOf(current().id));
        render();
      }
    }).catch(() => undefined);
  }

  // -- the answers ------------------------------------------------------------------------
  const current = () => state.items[state.index];
  const ratingOf = (id) => state.ratings[id] || {};
  const answered = (value) => value !== null && value !== undefined;
  const isComplete = (rating) => STEPS.every((step) => answered(rating[step]));
  const completeCount = () => state.items.filter((item) => isComplete(ratingOf(item.id))).length;

  function firstOpen(rating) {
    const open = STEPS.findIndex((step) => !answered(rating[step]));
    return open < 0 ? 0 : open;
  }

  function firstIncomplete() {
    const found = state.items.findIndex((item) => !isComplete(ratingOf(item.id)));
    return found < 0 ? state.items.length - 1 : found;
  }

  // Set one answer of the current item here at once, and post it.
  function give(field, value) {
    const id = current().id;
    state.ratings[id] = Object.assign({}, ratingOf(id), { [field]: value });
    message("");
    send("api/answer", { id, field, value }).then((result) => {
      state.error = "";
      if (state.pending === 0) state.ratings[result.id] = result.rating;
      showStatus();
      render();
    }).catch(failed("Not saved"));
  }

  function answerQuestion(value) {
    if (state.cursor >= QUESTIONS.length) {
      message("Press a–d for the rating (1–3 go back to a question).");
      return;
    }
    give(QUESTIONS[state.cursor], value);
    state.cursor += 1;
    render();
  }

  function rate(letter) {
    give("rating", letter);
    const rating = ratingOf(current().id);
    if (!isComplete(rating)) {
      state.cursor = firstOpen(rating);
    } else if (state.index + 1 < state.items.length) {
      go(state.index + 1);
      return;
    } else if (completeCount() < state.items.length) {
      go(firstIncomplete());
      return;
    }
    render();
  }

  function saveNote() {
    const item = current();
    if (!item || note.value === (ratingOf(item.id).note || "")) return;
    give("note", note.value);
  }

  function undo() {
    message("");
    send("api/undo", {}).then((result) => {
      state.error = "";
      showStatus();
      if (result.id === null) {
        message("Nothing to undo.");
        return;
      }
      state.ratings[result.id] = result.rating;
      const at = state.items.findIndex((item) => item.id === result.id);
      if (at >= 0) {
        state.index = at;
        state.cursor = firstOpen(result.rating);
        message(`Undone: an answer on item ${at + 1}.`);
      }
      render();
    }).catch(failed("Not undone"));
  }

  // -- moving -----------------------------------------------------------------------------
  function go(index) {
    if (index < 0 || index >= state.items.length) return;
    state.index = index;
    state.cursor = firstOpen(ratingOf(current().id));
    message("");
    render();
  }

  function moveCursor(step) {
    state.cursor = step;
    render();
  }

  function toggleHelp(show) {
    const help = $("help");
    help.hidden = show === undefined ? !help.hidden : !show;
    $("help-button").setAttribute("aria-expanded", String(!help.hidden));
  }

  const KEYS = {
    y: () => answerQuestion(true),
    n: () => answerQuestion(false),
    a: () => rate("A"), b: () => rate("B"), c: () => rate("C"), d: () => rate("D"),
    j: () => go(state.index + 1), ArrowRight: () => go(state.index + 1), "]": () => go(state.index + 1),
    k: () => go(state.index - 1), ArrowLeft: () => go(state.index - 1), "[": () => go(state.index - 1),
    u: undo,
    m: () => note.focus(),
    1: () => moveCursor(0), 2: () => moveCursor(1), 3: () => moveCursor(2), 4: () => moveCursor(3),
    "?": () => toggleHelp(),
    Escape: () => toggleHelp(false),
  };
  const REPEATABLE = new Set(["j", "k", "ArrowRight", "ArrowLeft", "[", "]"]);

  function onKey(event) {
    if (event.target === note) {
      // Typing a note: no shortcut but Escape, which saves it (on blur) and leaves it.
      if (event.key === "Escape") {
        event.preventDefault();
        note.blur();
      }
      return;
    }
    if (!state.ready || !state.items.length || event.isComposing) return;
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    if ((event.ctrlKey || event.metaKey) && key === "z" && !event.altKey && !event.shiftKey) {
      event.preventDefault();
      if (!event.repeat) undo();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const action = KEYS[key];
    if (!action || (event.repeat && !REPEATABLE.has(key))) return;
    event.preventDefault();
    action();
  }

  function onQuestionClick(event) {
    const question = event.target.closest(".question");
    if (!question || !state.items.length) return;
    const step = Number(question.dataset.step);
    const button = event.target.closest("button[data-value]");
    if (!button) {
      moveCursor(step);
      return;
    }
    if (question.dataset.field === "rating") {
      rate(button.dataset.value);
      return;
    }
    give(question.dataset.field, button.dataset.value === "true");
    state.cursor = step + 1;
    render();
  }

  // -- showing ----------------------------------------------------------------------------
  function setText(node, text, empty) {
    node.textContent = text === "" ? empty : text;
    node.classList.toggle("empty", text === "");
  }

  function message(text) {
    $("message").textContent = text;
  }

  function showStatus() {
    const status = $("status");
    let kind = "saved";
    if (state.error) {
      kind = "error";
      status.textContent = state.error;
    } else if (state.pending) {
      kind = "saving";
      status.textContent = "Saving…";
    } else {
      status.textContent = "Saved";
    }
    status.className = `status ${kind}`;
    status.setAttribute("role", kind === "error" ? "alert" : "status");
    body.dataset.status = kind;
    body.dataset.pending = String(state.pending);
  }

  function showProgress() {
    const total = state.items.length;
    const complete = completeCount();
    $("bar").max = Math.max(total, 1);
    $("bar").value = complete;
    $("progress-text").textContent = `${complete} / ${total} complete`;
    const done = $("done");
    done.hidden = !total || complete < total;
    if (!done.hidden) {
      const code = (text) => { const node = document.createElement("code"); node.textContent = text; return node; };
      done.replaceChildren(
        `All ${total} items rated — you can close this tab; the numbers are in `,
        code("selfinstruct report"), " / ", code("run.json"));
    }
  }

  function showAnswers(rating) {
    for (const question of document.querySelectorAll(".question")) {
      const step = Number(question.dataset.step);
      const field = question.dataset.field;
      question.classList.toggle("current", step === state.cursor);
      question.classList.toggle("answered", answered(rating[field]));
      for (const button of question.querySelectorAll("button[data-value]")) {
        const value = field === "rating" ? button.dataset.value : button.dataset.value === "true";
        button.setAttribute("aria-pressed", String(rating[field] === value));
      }
    }
  }

  function render() {
    if (!state.items.length) return;
    const item = current();
    const rating = ratingOf(item.id);
    $("position").textContent = `Item ${state.index + 1} of ${state.items.length}`;
    $("kind").textContent = item.is_classification ? "classification task" : "not a classification task";
    $("kind").classList.toggle("clf", item.is_classification);
    $("item-id").textContent = `instance ${item.id}`;
    setText($("instruction"), item.instruction, "(empty instruction)");
    setText($("input"), item.input, "(no input)");
    setText($("output"), item.output, "(empty output)");
    if (state.shown !== state.index) {
      $("item").scrollTop = 0;
      state.shown = state.index;
    }
    if (document.activeElement !== note) note.value = rating.note || "";
    showAnswers(rating);
    showProgress();
    $("prev").disabled = state.index === 0;
    $("next").disabled = state.index === state.items.length - 1;
    body.dataset.item = item.id;
    body.dataset.index = String(state.index);
    body.dataset.cursor = STEPS[state.cursor];
    body.dataset.complete = String(completeCount());
  }

  async function load() {
    let data;
    try {
      data = await call("GET", "api/state");
    } catch (err) {
      state.error = `Could not load the review: ${err.message}`;
      showStatus();
      body.dataset.ready = "error";
      return;
    }
    state.items = data.items;
    state.ratings = data.ratings;
    $("who").textContent = `${data.reviewer} reviewing ${data.run}`;
    state.ready = true;
    showStatus();
    if (!state.items.length) {
      $("empty").hidden = false;
    } else {
      $("main").hidden = false;
      go(firstIncomplete());
    }
    body.dataset.ready = "1";
  }

  document.addEventListener("keydown", onKey);
  $("questions").addEventListener("click", onQuestionClick);
  $("prev").addEventListener("click", () => go(state.index - 1));
  $("next").addEventListener("click", () => go(state.index + 1));
  $("undo").addEventListener("click", undo);
  $("help-button").addEventListener("click", () => toggleHelp());
  note.addEventListener("blur", saveNote);
  load();
})();
