"""`selfinstruct review`: people rate a sample of a run's instances in a local web app, and
their ratings are exported and imported between machines."""

from __future__ import annotations

import getpass
import signal
import sys
import webbrowser
from pathlib import Path
from types import FrameType
from typing import Any

import click

from selfinstruct.commands.common import handle_errors
from selfinstruct.errors import InputError, RunError

RUN_DIR = click.Path(path_type=Path, file_okay=False)
FILE = click.Path(path_type=Path, dir_okay=False)


def sample_size(value: str | None) -> int | None:
    """--sample N or 'all' (0); None when not given."""
    from selfinstruct.reviewing.sample import ALL

    if value is None:
        return None
    if value.strip().lower() == "all":
        return ALL
    try:
        size = int(value)
    except ValueError:
        raise click.BadParameter("a number of items, or 'all'") from None
    if size < 1:
        raise click.BadParameter("must be at least 1 (or 'all')")
    return size


@click.command()
@click.option("--run", "run_dir", required=True, type=RUN_DIR, help="Run directory to review.")
@click.option(
    "--sample",
    "sample",
    metavar="N|all",
    help="Items in the review sample (default 200, as the paper rated). The sample is drawn "
    "once and stored, so every reviewer sees the same items; without --sample a later "
    "review uses it as it is, and a larger N extends it.",
)
@click.option(
    "--per-task",
    type=click.Choice(["one", "all"]),
    help="Sample one instance per instruction (the default, as the paper did) or all of "
    "them; a stored sample keeps how it was drawn.",
)
@click.option(
    "--reviewer",
    metavar="NAME",
    help="Your name, stored with every rating (default: your user name). With --export: "
    "only this reviewer's ratings.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    help="Port on 127.0.0.1 to serve on (default: a free one).",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the page in your browser.")
@click.option(
    "--export",
    "export_file",
    type=FILE,
    help="Write the run's ratings to FILE (JSON Lines; - for standard output) instead of serving.",
)
@click.option(
    "--import",
    "import_files",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    multiple=True,
    help="Add the ratings in FILE (an --export of a copy of this run; repeatable) instead of "
    "serving. A file of another run, or a bad line, is refused whole.",
)
@handle_errors
def review(
    run_dir: Path,
    sample: str | None,
    per_task: str | None,
    reviewer: str | None,
    port: int,
    open_browser: bool,
    export_file: Path | None,
    import_files: tuple[Path, ...],
) -> None:
    """Rate a sample of a run's instances in your browser, as the paper's expert did: is the
    instruction valid, is the input appropriate, is the output acceptable, and an A-D rating.
    Serves a page on 127.0.0.1 (the printed URL holds its access token); every answer is
    stored in the run as it is given. The numbers (the paper's Table 2 from people, kappa
    between reviewers and between the judge and people) appear in the summary, run.json, the
    report and the dataset card; prepare drops the instances people rejected."""
    if export_file is not None and import_files:
        raise InputError("--export", "give --export or --import, not both")
    serving_only = {
        "--sample": sample is not None,
        "--per-task": per_task is not None,
        "--port": port != 0,
        "--open": open_browser,
    }
    given = [flag for flag, value in serving_only.items() if value]
    if (export_file is not None or import_files) and given:
        raise InputError(given[0], "applies to serving the review page, not to --export/--import")
    if export_file is not None:
        export_ratings(run_dir, export_file, reviewer)
    elif import_files:
        import_ratings(run_dir, import_files)
    else:
        who = default_reviewer() if reviewer is None else reviewer
        serve(run_dir, sample_size(sample), per_task, who, port, open_browser)


def default_reviewer() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in this environment
        return "reviewer"


def serve(
    run_dir: Path,
    size: int | None,
    per_task: str | None,
    reviewer: str,
    port: int,
    open_browser: bool,
) -> None:
    from selfinstruct.reviewing.server import start_server
    from selfinstruct.reviewing.session import ReviewSession, check_reviewer

    check_reviewer(reviewer)
    items = draw(run_dir, size, per_task)
    if size and size < len(items):
        click.echo(
            f"The run's review sample already holds {len(items)} items (a sample never "
            "shrinks, so every reviewer sees the same items); reviewing those."
        )
    session = ReviewSession(run_dir, reviewer, items)
    try:
        server = start_server(session, port)
    except OSError as exc:
        raise RunError(
            f"cannot serve on 127.0.0.1 port {port} ({exc.strerror or exc}); give another "
            "--port, or 0 for a free one"
        ) from None
    state = session.state()["progress"]
    click.echo(
        f"Reviewing {len(items)} items of {run_dir} as {reviewer}: {state['complete']} rated "
        "so far. Keys: y/n answer, a-d rate, j/k next/previous, u undo, ? help. Ctrl+C stops."
    )
    click.echo(f"Review at: {server.url}")
    sys.stdout.flush()
    if open_browser:
        webbrowser.open(server.url)
    signal.signal(signal.SIGTERM, _stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
    click.echo(
        f"[review] stopped: {server.answers} answers stored this session"
        + (f", {server.refused} requests refused" if server.refused else "")
    )
    print_numbers(run_dir)


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def draw(run_dir: Path, size: int | None, per_task: str | None) -> list[Any]:
    """The sample's items with their text (drawn first, or extended to `size`; None: the
    stored sample as it is, else the default size)."""
    from selfinstruct.reviewing.sample import ensure_sample
    from selfinstruct.reviewing.session import sample_items
    from selfinstruct.run.open import viewed
    from selfinstruct.store.run_store import RunStore
    from selfinstruct.views.tasks import parsed_tasks

    with viewed(run_dir, quiet=True) as ctx:
        tasks = parsed_tasks(ctx.store, ctx.config.prompt_style)
        seed = f"{ctx.config.random_seed}"
    if not any(task.instances for task in tasks):
        raise RunError(f"{run_dir} has no instance to review yet: run its instances stage first")
    with RunStore.open(run_dir) as store:
        sample = ensure_sample(store, tasks, size, per_task, seed)
    return sample_items(sample, tasks)


def export_ratings(run_dir: Path, path: Path, reviewer: str | None) -> None:
    from selfinstruct.io.atomic import json_line
    from selfinstruct.reviewing.transfer import export_lines, write_export
    from selfinstruct.run.open import viewed
    from selfinstruct.views.tasks import parsed_tasks

    with viewed(run_dir, quiet=True) as ctx:
        lines = export_lines(ctx.store, parsed_tasks(ctx.store, ctx.config.prompt_style), reviewer)
    if not lines:
        who = f" by {reviewer}" if reviewer else ""
        raise RunError(f"{run_dir} holds no rating{who}; {path} was not written")
    reviewers = sorted({line["reviewer"] for line in lines})
    if str(path) == "-":  # to standard output
        for line in lines:
            click.echo(json_line(line))
        return
    write_export(path, lines)
    click.echo(f"Exported {len(lines)} ratings by {', '.join(reviewers)} to {path}")


def import_ratings(run_dir: Path, paths: tuple[Path, ...]) -> None:
    from selfinstruct.reviewing.transfer import read_imports
    from selfinstruct.run.open import viewed
    from selfinstruct.store.run_store import RunStore
    from selfinstruct.views.tasks import parsed_tasks

    with viewed(run_dir, quiet=True) as ctx:
        ratings = read_imports(
            list(paths), ctx.store, parsed_tasks(ctx.store, ctx.config.prompt_style)
        )
    with RunStore.open(run_dir) as store, store.transaction():
        stored = store.reviews.put(ratings)  # all or nothing
    click.echo(
        f"Imported {stored} ratings from {len(paths)} file(s); "
        f"{len(ratings) - stored} were already here (the same or newer)."
    )
    print_numbers(run_dir)


def print_numbers(run_dir: Path) -> None:
    """People's numbers as they stand (Table 2, kappas), for the terminal, and in run.json
    (rewritten: the ratings changed)."""
    from selfinstruct.run.open import viewed
    from selfinstruct.run.run_file import write_run_file
    from selfinstruct.stages import review

    with viewed(run_dir, quiet=True) as ctx:
        lines = review.summary_lines(review.numbers(ctx))
        write_run_file(ctx)
    for line in lines or ["No complete rating yet."]:
        click.echo(line)
