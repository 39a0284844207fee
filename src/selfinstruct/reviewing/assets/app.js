"use strict";
// The review page: one reviewer rates the run's sampled instances, keyboard first. Every
// answer is posted as it is given (the server commits it to the run store) and the page
// never keeps anything the server does not have: on load it reads api/state and resumes at
// the first item not yet complete. An answer is shown at once; one the server did not take is
// taken back (the page then shows what the server last said it stored), and leaving the page
// while answers are still on their way asks first. The items are model output: every text is
// set with textContent, never parsed as HTML.
(function () {
  const QUESTIONS = ["instruction", "input", "output"];
  const STEPS = [...QUESTIONS, "rating"];
  const $ = (id) => document.getElementById(id);
  const body = document.body;
  const note = $("note");

  // ratings: what is shown; stored: what the server last said it stored (answers go to it
  // one after another, in the order given: undo follows the order the server received them).
  const state = { items: [], ratings: {}, stored: {}, index: 0, cursor: 0, ready: false, pending: 0, error: "", shown: -1 };
  let queue = Promise.resolve();
  const UNREACHABLE = "cannot reach the review app (was it stopped?). Run selfinstruct review " +
    "again and open the address it prints: it resumes where your saved answers end.";
  const LINE = 40; // pixels an arrow key scrolls

  // -- talking to the server ------------------------------------------------------------
  // A request the server refused (status), or that reached no server at all (unreachable).
  class Failure extends Error {
    constructor(status, why) {
      super(status === null ? why : `(${status}) ${why}`);
      this.unreachable = status === null;
    }
  }

  async function call(method, path, payload) {
    // keepalive: an answer already on its way is still delivered if the tab is closed.
    const options = { method, cache: "no-store", credentials: "same-origin", keepalive: method === "POST" };
    if (payload !== undefined) {
      options.headers = { "Content-Type": "application/json" };
      options.body = JSON.stringify(payload);
    }
    let response;
    try {
      response = await fetch(path, options);
    } catch (err) {
      throw new Failure(null, UNREACHABLE);
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
      state.error = err.unreachable
        ? `${what}: ${err.message}`
        : `${what} ${err.message} — the answers shown are the ones stored.`;
      showStatus();
      resync();
    };
  }

  // After a failure: show what the store holds (once the queue has drained): as the server
  // says it now, or, when it cannot be asked, as it last said it.
  function resync() {
    queue = queue.then(() => call("GET", "api/state")).then((data) => {
      state.stored = data.ratings;
    }, () => undefined).then(() => {
      if (state.pending === 0) {
        state.ratings = structuredClone(state.stored);
        state.cursor = firstOpen(ratingOf(current().id));
        render();
      }
    });
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
      state.stored[result.id] = result.rating;
      if (state.pending === 0) state.ratings[result.id] = structuredClone(result.rating);
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
      state.stored[result.id] = result.rating;
      state.ratings[result.id] = structuredClone(result.rating);
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

  // -- reading a long item by keys ------------------------------------------------------------
  // Down scrolls the first text box (instruction, input, output) with more below, brought
  // into view; when none has, the item's pane. Up is the same from the last box upwards.
  const TEXTS = ["instruction", "input", "output"];

  function scrollItem(down, by) {
    const pane = $("item");
    const boxes = TEXTS.map($).filter((node) => node.scrollHeight - node.clientHeight > 1);
    if (!down) boxes.reverse();
    const room = (node) => (down ? node.scrollHeight - node.clientHeight - node.scrollTop > 1 : node.scrollTop > 0);
    const target = boxes.find(room) || pane;
    const step = by === "page" ? Math.max(target.clientHeight * 0.85, LINE) : LINE;
    target.scrollBy(0, down ? step : -step);
    if (target !== pane) target.scrollIntoView({ block: "nearest" });
  }

  // Home / End: every box and the pane to its top or end.
  function scrollItemTo(end) {
    for (const node of [...TEXTS.map($), $("item")]) node.scrollTop = end ? node.scrollHeight : 0;
  }

  const SCROLL_KEYS = {
    " ": (shift) => scrollItem(!shift, "page"),
    PageDown: () => scrollItem(true, "page"), PageUp: () => scrollItem(false, "page"),
    ArrowDown: () => scrollItem(true, "line"), ArrowUp: () => scrollItem(false, "line"),
    End: () => scrollItemTo(true), Home: () => scrollItemTo(false),
  };

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
    if (Object.hasOwn(SCROLL_KEYS, key)) {
      event.preventDefault(); // also keeps Space from pressing a button clicked before
      SCROLL_KEYS[key](event.shiftKey);
      return;
    }
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
      status.textContent = `Saving ${state.pending}…`;
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
    if (state.shown !== state.index) { // another item: its text from the top
      for (const node of [$("item"), ...TEXTS.map($)]) node.scrollTop = 0;
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
    state.stored = data.ratings;
    state.ratings = structuredClone(data.ratings);
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

  // Leaving while answers are on their way (or a note is being written) asks first: those
  // not yet sent would be lost.
  function onLeave(event) {
    if (document.activeElement === note) saveNote();
    if (state.pending === 0) return;
    event.preventDefault();
    event.returnValue = "";
  }

  document.addEventListener("keydown", onKey);
  window.addEventListener("beforeunload", onLeave);
  $("questions").addEventListener("click", onQuestionClick);
  $("prev").addEventListener("click", () => go(state.index - 1));
  $("next").addEventListener("click", () => go(state.index + 1));
  $("undo").addEventListener("click", undo);
  $("help-button").addEventListener("click", () => toggleHelp());
  note.addEventListener("blur", saveNote);
  load();
})();
