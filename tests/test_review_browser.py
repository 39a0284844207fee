"""The review page in a real browser (headless Chromium, driven by Playwright), by keyboard:
a whole session of 20 items with a reload in the middle, moving back and forth, a note, the
mouse, undo and redo; the store then holds exactly the answers the keys gave, and the
paper's Table 2 from people is what those answers make. Model text that looks like HTML is
shown as text and runs nothing; the page logs no error, breaks no policy and asks nothing
of any other address; a store that cannot be written is said on the page, not hidden, and so
is an app that was stopped; leaving with answers not yet saved asks first. A long output is
read by keys, and every control is in reach on a small screen."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from browsers import chromium, wait_until
from review_runs import (
    draw,
    fake_run,
    first_in_sample,
    in_sample,
    ratings_of,
    session,
    set_output,
    stored_reviews,
)

from selfinstruct.paper import ALL_THREE, QUESTIONS, RATINGS
from selfinstruct.reviewing.server import ReviewServer, start_server
from selfinstruct.run.open import viewed
from selfinstruct.stages import review
from selfinstruct.store.run_store import RunStore

pytestmark = pytest.mark.slow

SAMPLE = 20
TITLE = "selfinstruct review"
HOSTILE = (
    "<img src=x onerror=\"document.title='pwned'\">\n"
    "  <script>document.title='pwned'</script>\n"
    "\tkept  as   typed <b>&amp;</b>"
)
# What the reviewer answers, item by item: the three questions' keys and the rating's.
PLAN = [
    ("yyy", "a"), ("yyn", "c"), ("nyn", "d"), ("yny", "b"), ("yyy", "b"),
    ("nnn", "d"), ("yyy", "a"), ("yyn", "c"), ("yny", "b"), ("yyy", "a"),
    ("nyy", "d"), ("yyy", "a"), ("yyn", "c"), ("yyy", "b"), ("ynn", "c"),
    ("yyy", "a"), ("nny", "d"), ("yyy", "a"), ("yny", "b"), ("yyn", "c"),
]  # fmt: skip
# The second and third items' outputs: longer than their box (each starts at its top).
LONG = "\n".join(f"{n:03} " + "a long line of model output, " * 5 for n in range(120))
SCROLLED = 3  # sample positions 1..SCROLLED-1 have the long output
NOTE = "Needs a source. Typed keys y n j k u stay in the note."
NOTED = 4  # the item given the note


LAPTOP = (1366, 768)
SMALL = (800, 600)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fake run whose first sampled instance's output is HTML that would run script, and
    whose next two have a long output."""
    found = fake_run(tmp_path_factory.mktemp("review") / "run")
    set_output(found, first_in_sample(found), HOSTILE)
    for position in range(1, SCROLLED):
        set_output(found, in_sample(found, position), LONG)
    assert len(draw(found, SAMPLE)) == SAMPLE
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as found:
        yield found


@contextmanager
def serving(run: Path, reviewer: str) -> Iterator[ReviewServer]:
    """A server of the reviewer's session (an answer waits 0.2 s for the run's lock)."""
    with start_server(session(run, reviewer, patience=0.2)).serving() as server:
        yield server


class Reviewing:
    """The review page open in a laptop-sized tab, with what it logged and requested."""

    def __init__(self, browser: Any, server: ReviewServer, size: tuple[int, int] = LAPTOP) -> None:
        self.server = server
        self.page = browser.new_page(viewport={"width": size[0], "height": size[1]})
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.page.on(
            "console", lambda m: m.type in ("error", "warning") and self.errors.append(m.text)
        )
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("dialog", self._dialog)
        self.page.goto(server.url)
        self.ready()

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.type)
        dialog.dismiss()  # a beforeunload dialog: stay on the page

    def ready(self) -> None:
        wait_until(self.page, "document.body.dataset.ready")
        assert self.data("ready") == "1"

    def data(self, key: str) -> str | None:
        return self.page.evaluate(f"document.body.dataset.{key}")

    def keys(self, *names: str) -> None:
        for name in names:
            self.page.keyboard.press(name)

    def settled(self) -> None:
        """Every answer given has been answered by the server, and stored."""
        wait_until(
            self.page,
            "document.body.dataset.pending === '0' && document.body.dataset.status === 'saved'",
        )

    def text(self, selector: str) -> str:
        return self.page.text_content(selector) or ""

    def pressed(self, field: str) -> list[str]:
        """The values shown as chosen for a question or the rating."""
        return self.page.eval_on_selector_all(
            f".question[data-field={field}] button[aria-pressed=true]",
            "buttons => buttons.map(b => b.dataset.value)",
        )


def answer_item(review: Reviewing, index: int, ids: list[str]) -> None:
    """Answer item `index` by keys as planned; the page then shows the next item."""
    answers, rating = PLAN[index]
    assert review.data("item") == ids[index]
    assert review.data("cursor") == "instruction"
    review.keys(*answers, rating)
    review.settled()
    assert review.data("item") == ids[min(index + 1, len(ids) - 1)]


def expected_ratings(ids: list[str]) -> dict[str, tuple[dict[str, bool], str, str]]:
    return {
        item: (
            {q: key == "y" for q, key in zip(QUESTIONS, answers, strict=True)},
            rating.upper(),
            NOTE if index == NOTED else "",
        )
        for index, (item, (answers, rating)) in enumerate(zip(ids, PLAN, strict=True))
    }


def check_hostile_text(review: Reviewing) -> None:
    """The first item's output is shown as the characters it is, whitespace kept."""
    assert review.text("#output") == HOSTILE
    assert review.page.eval_on_selector("#output", "n => n.children.length") == 0
    assert review.page.query_selector("img, body script:not([src])") is None
    shown = review.page.eval_on_selector("#output", "n => getComputedStyle(n).whiteSpace")
    assert shown == "pre-wrap"
    assert review.page.title() == TITLE


def check_fits_the_screen(review: Reviewing) -> None:
    """On a 1366x768 laptop the whole page is in view: the questions, the note and the
    buttons need no scrolling (a long item scrolls in its own column)."""
    page = review.page
    assert page.evaluate("document.documentElement.scrollHeight") <= 768
    for selector in ("#questions", "#note", "#next", "footer.keys"):
        box = page.eval_on_selector(selector, "n => n.getBoundingClientRect().toJSON()")
        assert box["bottom"] <= 768 and box["right"] <= 1366, selector


def test_a_whole_session_by_keyboard(browser: Any, run: Path) -> None:
    ids = [item.instance for item in session(run, "tester").items]
    labels = {item.instance: item.is_classification for item in session(run, "tester").items}
    assert first_in_sample(run) == ids[0]
    with serving(run, "tester") as server:
        review = Reviewing(browser, server)
        page = review.page
        assert review.data("item") == ids[0] and review.text("#position") == "Item 1 of 20"
        check_hostile_text(review)
        check_fits_the_screen(review)
        review.keys("?")
        assert page.is_visible("#help") and "Undo your last answer" in review.text("#help")
        review.keys("Escape")
        assert not page.is_visible("#help")
        # The first items: by keys, with a second thought, the mouse and a note.
        answer_item(review, 0, ids)
        review.keys("n", "1")  # a second thought on item 2's first question
        assert review.data("cursor") == "instruction"
        answer_item(review, 1, ids)
        for field, key in zip(QUESTIONS, PLAN[2][0], strict=True):  # item 3 by mouse
            page.click(f".question[data-field={field}] button[data-value={key == 'y'}]".lower())
        page.click(f".question[data-field=rating] button[data-value={PLAN[2][1].upper()}]")
        review.settled()
        assert review.data("item") == ids[3]
        answer_item(review, 3, ids)
        review.keys("m")
        page.keyboard.type(NOTE)
        assert review.data("item") == ids[NOTED] and review.data("cursor") == "instruction"
        review.keys("Escape")
        assert page.evaluate("document.activeElement.id") != "note"
        review.settled()
        assert ratings_of(run, "tester")[ids[NOTED]].note == NOTE
        for index in range(NOTED, 10):
            answer_item(review, index, ids)
        assert review.text("#progress-text") == "10 / 20 complete"
        # Two answers of item 11, then the page is reloaded: it resumes there.
        review.keys(*PLAN[10][0][:2])
        review.settled()
        page.reload()
        review.ready()
        assert review.data("item") == ids[10] and review.data("cursor") == "output"
        assert review.pressed("instruction") == ["false"] and review.pressed("input") == ["true"]
        assert review.text("#progress-text") == "10 / 20 complete"
        # Back and forth.
        review.keys("k")
        assert review.data("item") == ids[9] and review.pressed("rating") == ["A"]
        review.keys("[", "ArrowRight", "]")
        assert review.data("item") == ids[10]
        review.keys(PLAN[10][0][2], PLAN[10][1])
        review.settled()
        for index in range(11, 15):
            answer_item(review, index, ids)
        # Undo the last answer (item 15's rating): the page goes back to it; then redo it.
        before = ratings_of(run, "tester")
        review.keys("u")
        review.settled()
        after = ratings_of(run, "tester")
        assert after[ids[14]].rating is None and not after[ids[14]].complete
        assert after[ids[14]].answers == before[ids[14]].answers
        assert {i: r for i, r in after.items() if i != ids[14]} == {
            i: r for i, r in before.items() if i != ids[14]
        }
        assert review.data("item") == ids[14] and review.data("cursor") == "rating"
        assert review.pressed("rating") == [] and "Undone" in review.text("#message")
        assert review.text("#progress-text") == "14 / 20 complete"
        review.keys(PLAN[14][1])
        review.settled()
        assert review.data("item") == ids[15]
        for index in range(15, SAMPLE):
            answer_item(review, index, ids)
        done = f"All {SAMPLE} items rated — you can close this tab; the numbers are in "
        done += "selfinstruct report / run.json"
        assert page.is_visible("#done") and review.text("#done") == done
        # Ctrl+Z takes the last rating back, the letter gives it again.
        review.keys("Control+z")
        review.settled()
        assert ratings_of(run, "tester")[ids[-1]].rating is None
        assert not page.is_visible("#done") and review.data("cursor") == "rating"
        review.keys(PLAN[-1][1])
        review.settled()
        assert page.is_visible("#done") and review.text("#progress-text") == "20 / 20 complete"
        page.reload()  # all rated: the page opens on the last item
        review.ready()
        assert review.data("item") == ids[-1] and page.is_visible("#done")
        # Nothing logged, nothing asked elsewhere, nothing run from the text.
        assert review.errors == [] and review.dialogs == []
        assert review.requests and all(url.startswith(server.url) for url in review.requests)
        assert page.title() == TITLE
        page.close()
    check_stored(run, ids, labels)


def check_stored(run: Path, ids: list[str], labels: dict[str, bool]) -> None:
    """The store holds what the keys said, and Table 2 from people is made of it."""
    expected = expected_ratings(ids)
    stored = ratings_of(run, "tester")
    assert sorted(stored) == sorted(ids)
    for item, (answers, rating, note) in expected.items():
        assert (stored[item].answers, stored[item].rating, stored[item].note) == (
            answers,
            rating,
            note,
        ), item
    with viewed(run, quiet=True) as ctx:
        numbers = review.numbers(ctx)[review.KEY]
    assert numbers["rated_items"] == SAMPLE
    groups = numbers["table2"]["groups"]
    for group, members in (
        ("all", ids),
        ("classification", [i for i in ids if labels[i]]),
        ("non-classification", [i for i in ids if not labels[i]]),
    ):
        rows: dict[str, list[bool]] = {q: [expected[i][0][q] for i in members] for q in QUESTIONS}
        rows[ALL_THREE] = [all(expected[i][0].values()) for i in members]
        for letter in RATINGS:
            rows[f"rating {letter}"] = [expected[i][1] == letter for i in members]
        for row, answers in rows.items():
            share = groups[group][row]
            assert (share["yes"], share["n"]) == (sum(answers), len(answers)), (group, row)
            if answers:
                assert share["percent"] == round(100 * sum(answers) / len(answers), 1)


def test_a_store_that_cannot_be_written_is_said_on_the_page(browser: Any, run: Path) -> None:
    with serving(run, "grace") as server:
        review = Reviewing(browser, server)
        before = stored_reviews(run)
        with RunStore.open(run):  # another command holds the run's lock
            review.keys("y")
            wait_until(review.page, "document.body.dataset.status === 'error'")
            shown = review.text("#status")
            assert "Not saved (503)" in shown and "in use by another selfinstruct" in shown
            assert review.page.get_attribute("#status", "role") == "alert"
        # The page shows what is stored: the first question unanswered, and goes on.
        wait_until(review.page, "document.body.dataset.cursor === 'instruction'")
        assert review.pressed("instruction") == []
        assert stored_reviews(run) == before
        review.keys("y")
        review.settled()
        assert ratings_of(run, "grace")[review.data("item") or ""].answers["instruction"]
        # The browser reports the refused request itself; nothing else went wrong.
        assert [e for e in review.errors if "status of 503" not in e] == []
        review.page.close()


def scroll_top(review: Reviewing, selector: str) -> float:
    return review.page.eval_on_selector(selector, "n => n.scrollTop")


def test_a_long_output_is_read_by_keys_from_its_top(browser: Any, run: Path) -> None:
    """Space and PageDown scroll the output box down, Shift+Space and PageUp up, the arrows
    a little, Home and End to its ends; the next item's text starts at its top."""
    ids = [item.instance for item in session(run, "ken").items]
    with serving(run, "ken") as server:
        review = Reviewing(browser, server)
        assert "Space" in review.text("footer.keys") and "PageDown" in review.text("#help")
        review.keys("j")
        assert review.data("item") == ids[1]
        assert review.page.eval_on_selector("#output", "n => n.scrollHeight > 3 * n.clientHeight")
        end = review.page.eval_on_selector("#output", "n => n.scrollHeight - n.clientHeight")
        assert scroll_top(review, "#output") == 0
        review.keys("Space")
        page = scroll_top(review, "#output")
        assert page > 100
        review.keys("PageDown")
        assert scroll_top(review, "#output") == pytest.approx(2 * page, abs=2)
        review.keys("Shift+Space")
        assert scroll_top(review, "#output") == pytest.approx(page, abs=2)
        review.keys("PageUp")
        assert scroll_top(review, "#output") == 0
        review.keys("ArrowDown")
        assert 0 < scroll_top(review, "#output") < page
        review.keys("ArrowUp", "End")
        assert scroll_top(review, "#output") == pytest.approx(end, abs=1)
        review.keys("Home")
        assert scroll_top(review, "#output") == 0
        # Scrolled down (by keys, or the wheel: the pane too), the next item starts at its
        # top, and so does this one when it is shown again.
        review.keys("End")
        review.page.eval_on_selector("#item", "n => { n.scrollTop = n.scrollHeight; }")
        review.keys("j")
        assert review.data("item") == ids[2]
        assert scroll_top(review, "#output") == 0 and scroll_top(review, "#item") == 0
        review.page.eval_on_selector("#output", "n => { n.scrollTop = 500; }")
        review.keys("k")
        assert review.data("item") == ids[1] and scroll_top(review, "#output") == 0
        # The keys answered nothing.
        assert review.data("cursor") == "instruction" and review.data("pending") == "0"
        assert ratings_of(run, "ken") == {}
        assert review.errors == [] and review.dialogs == []
        review.page.close()


def test_leaving_with_answers_not_yet_saved_asks_first(browser: Any, run: Path) -> None:
    """While answers wait for the server (it waits for the run's lock), the status counts
    them and leaving the page asks first (headless Chromium runs no beforeunload on
    page.close(), so the page is left by reloading it); once they are saved it just goes."""
    item = session(run, "mia").items[0].instance
    with start_server(session(run, "mia", patience=30)).serving() as server:
        review = Reviewing(browser, server)
        page = review.page
        with RunStore.open(run):  # another command holds the run's lock for a while
            review.keys("y", "n")
            wait_until(page, "document.body.dataset.pending === '2'")
            assert review.text("#status") == "Saving 2…"
            with page.expect_event("dialog", timeout=10_000):
                page.evaluate("setTimeout(() => location.reload(), 0)")
            assert review.dialogs == ["beforeunload"]  # dismissed: the page stays
        review.settled()
        stored = ratings_of(run, "mia")[item].answers
        assert stored == {"instruction": True, "input": False, "output": None}
        page.reload()
        review.ready()
        assert review.data("cursor") == "output" and review.dialogs == ["beforeunload"]
        assert review.errors == []
        page.close()


def test_a_stopped_app_is_said_and_nothing_shown_as_saved(browser: Any, run: Path) -> None:
    """An answer the app never received (it was stopped) is not shown as given, and the
    status says what happened and what to do, until an answer is saved again."""
    item = session(run, "liam").items[0].instance
    with serving(run, "liam") as server:
        review = Reviewing(browser, server)
        page = review.page
        review.keys("y")
        review.settled()
        server.shutdown()  # as a kill would: nothing answers at its address
        review.keys("y")
        wait_until(
            page,
            "document.body.dataset.status === 'error' && document.body.dataset.pending === '0'",
        )
        shown = review.text("#status")
        assert "cannot reach the review app" in shown and "selfinstruct review again" in shown
        assert "the address it prints" in shown and "are the ones stored" not in shown
        assert page.get_attribute("#status", "role") == "alert"
        assert review.pressed("instruction") == ["true"] and review.pressed("input") == []
        assert review.data("cursor") == "input"
        review.keys("n", "n")  # still not saved, still said
        wait_until(page, "document.body.dataset.pending === '0'")
        assert review.data("status") == "error" and "cannot reach" in review.text("#status")
        assert review.pressed("input") == [] and review.pressed("output") == []
        stored = ratings_of(run, "liam")[item].answers
        assert stored == {"instruction": True, "input": None, "output": None}
        # The browser reports the refused connections itself; nothing else went wrong.
        assert [e for e in review.errors if "ERR_CONNECTION_REFUSED" not in e] == []
        page.close()


def test_every_control_is_in_reach_on_a_small_screen(browser: Any, run: Path) -> None:
    """At 800x600 each button and the note can be scrolled to and is not under the footer
    or anything else (the questions' panel scrolls on its own)."""
    with serving(run, "nina") as server:
        review = Reviewing(browser, server, SMALL)
        page = review.page
        assert page.evaluate("document.documentElement.scrollHeight") <= SMALL[1]
        controls = page.query_selector_all("header button, main button, main textarea")
        assert len(controls) == 1 + 6 + 4 + 1 + 3
        for control in controls:
            control.scroll_into_view_if_needed()
            assert control.evaluate(IN_REACH), control.evaluate("n => n.outerHTML")
        review.keys("m")  # the note by its key: in view
        assert page.evaluate("document.activeElement.id") == "note"
        assert page.eval_on_selector("#note", IN_REACH)
        review.keys("Escape")
        assert review.errors == []
        page.close()


# A node wholly in the window, and the one found at its middle (nothing on top of it).
IN_REACH = """n => {
  const box = n.getBoundingClientRect();
  const inside = box.top >= 0 && box.left >= 0 && box.bottom <= innerHeight
    && box.right <= innerWidth && box.height > 20;
  const found = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
  return inside && n.contains(found);
}"""
