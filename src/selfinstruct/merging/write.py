"""Writing the merged run's store: a run store like any other, as if one bootstrap had produced
the instructions in merge order, plus where each came from.

- settings, fingerprints, model and versions: the first run's in merge order (the merge
  refuses runs whose ROUGE-L rule or seeds differ); `num_instructions` is the merged count,
  so `selfinstruct run --out MERGED` generates no instruction unless asked for more;
- bootstrap: every run's batches in merge order, each a batch of the merged run with its
  requests at the same places (see order.py), so a bootstrap extending the merged run starts
  after them. Each request keeps its outcome; a request its run had sent but not judged yet
  when it reached its target is recorded as `unjudged`. Candidates keep their run's decision
  when their run dropped them, and get the merge's (`kept`, `duplicate`, `rouge`) otherwise.
  Prompt sources name the seeds and the merged ids of the machine instructions shown (those
  the merge dropped are left out);
- a kept instruction brings its label, instances answer, instance records, and every
  stage's records about its instances (judgments of every judge, input-first labels...)
  and people's ratings of them (each run's review sample stays with it); the responses
  all these refer to are copied (a cache key two runs used for different answers gets the
  second run's id appended). A versioned stage's version (a judge's id)
  covers its run's random seed: each run's current version that differs from the first
  run's only in that seed has its records stored as the merged run's current version's;
- every run's recorded stage runs (time, requests, tokens), so totals cover all machines;
- `merge_runs` and `merge_sources`: each instruction's run and its id there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

from selfinstruct.engine.stage import Stage, version_id
from selfinstruct.merging.decide import Decision, MergePlan
from selfinstruct.merging.order import Slot
from selfinstruct.merging.source import SourceRun
from selfinstruct.stages import registry
from selfinstruct.store.records import RecordTable
from selfinstruct.store.run_store import RunStore
from selfinstruct.store.schema import now

UNJUDGED = "unjudged"  # a request its run sent but had not judged when it reached its target
COPIED_META = ("fingerprints", "model_file", "versions")


class MergedStore:
    def __init__(self, store: RunStore, plan: MergePlan) -> None:
        self.store = store
        self.plan = plan
        self.keys: list[dict[str, str]] = [{} for _ in plan.runs]  # per run: renamed keys

    def write(self, manifest: dict[str, Any]) -> None:
        """Everything, in one transaction."""
        with self.store.transaction():
            self._meta(manifest)
            for position, run in enumerate(self.plan.runs):
                path = str(run.path.resolve())
                self.store.merges.put_run(position, run.run_id, run.name, path)
                self._copy_responses(position, run)
            for slot, decisions in self.plan.slots:
                self._bootstrap(slot, decisions)
            for position, run in enumerate(self.plan.runs):
                self._records(position, run)
                for row in run.ctx.store.stage_runs.rows():
                    self.store.stage_runs.put_row(row)

    def _meta(self, manifest: dict[str, Any]) -> None:
        first = self.plan.runs[0].ctx.store
        config = dict(first.get_meta("config"))
        config["num_instructions"] = self.plan.instructions
        self.store.set_meta("config", config)
        for key in COPIED_META:
            self.store.set_meta(key, first.get_meta(key))
        self.store.set_meta("created_at", now())
        self.store.set_meta("merge", manifest)
        self.store.seeds.save(self.plan.runs[0].ctx.seeds)

    def _key(self, position: int, key: str) -> str:
        return self.keys[position].get(key, key)

    def _copy_responses(self, position: int, run: SourceRun) -> None:
        """The responses the run's merged records refer to; a key already used for another
        answer is renamed."""
        needed = sorted(set(self._needed_keys(position, run)) - {""})
        for row in run.ctx.store.responses.rows(needed):
            key, text, finish = row[0], row[3], row[4]
            found = self.store.responses.get(key)
            if found is None:
                self.store.responses.put_row(row)
            elif (found.text, found.finish_reason) != (text, finish):
                renamed = f"{key}:{run.run_id}"
                self.keys[position][key] = renamed
                self.store.responses.put_row((renamed, *row[1:]))

    def _needed_keys(self, position: int, run: SourceRun) -> Iterator[str]:
        store = run.ctx.store
        yield from run.request_keys.values()
        ids = self._ids(position)
        yield from (key for i, (_, _, key) in store.labels.rows().items() if i in ids)
        yield from (key for i, (_, _, key) in store.instances.raw().items() if i in ids)
        for table in _tables():
            rows = store.records.rows(table)
            yield from (row[table.key_index] for row in rows if row[0] in ids)

    def _ids(self, position: int) -> dict[int, int]:
        """The run's merged instructions: id there -> id here."""
        return {
            source: merged for (run, source), merged in self.plan.ids.items() if run == position
        }

    def _bootstrap(self, slot: Slot, decisions: list[Decision]) -> None:
        """One run's batch as a batch of the merged run: its requests, their prompt sources,
        its candidates and the instructions kept."""
        run = self.plan.runs[slot.run]
        size = run.batch_size
        judged = {d.candidate.request_idx for d in decisions}
        for request_idx in range(slot.batch * size, (slot.batch + 1) * size):
            merged_idx = slot.request(request_idx, size)
            key, outcome = _request(run, request_idx, judged)
            self.store.pool.complete_request(
                merged_idx, slot.merged_batch, self._key(slot.run, key), outcome
            )
            found = run.sources.get(request_idx)
            seeds = found.seed_ids if found else ()
            machine = found.machine_ids if found else ()
            shown = [
                self.plan.ids[(slot.run, m)] for m in machine if (slot.run, m) in self.plan.ids
            ]
            self.store.pool.put_prompt_sources(merged_idx, seeds, shown)
        for decision in decisions:
            candidate = decision.candidate
            merged_idx = slot.request(candidate.request_idx, size)
            self.store.pool.put_candidate(
                merged_idx, candidate.piece_idx, candidate.text, decision.decision
            )
            if decision.row is not None and candidate.row is not None:
                key = self._key(slot.run, decision.row.response_key)
                self.store.pool.put_instruction(dataclasses.replace(decision.row, response_key=key))
                self.store.merges.put_source(decision.row.id, slot.run, candidate.row.id)

    def _versions(self, position: int, run: SourceRun, stage: Stage) -> dict[str, str]:
        """The run's current version of a versioned stage as the merged run's, when the two
        differ only in the random seed (a version covers the run's seed; its records are the
        same judge's)."""
        ours = self.plan.runs[0].fingerprints.get(stage.name)
        theirs = run.fingerprints.get(stage.name)
        if position == 0 or not ours or not theirs or _unseeded(ours) != _unseeded(theirs):
            return {}
        target = version_id(ours)
        if stage.table is None or target in run.ctx.store.records.versions(stage.table):
            return {}
        return {version_id(theirs): target}

    def _records(self, position: int, run: SourceRun) -> None:
        """What follows each kept instruction: label, instances answer and records,
        judgments, input-first labels, people's ratings."""
        store = run.ctx.store
        ids = self._ids(position)
        labels, raw = store.labels.rows(), store.instances.raw()
        parsed, unparsed = store.instances.parsed(), set(store.instances.unparsed())
        for source, merged in sorted(ids.items(), key=lambda item: item[1]):
            if source in labels:
                answer, is_clf, key = labels[source]
                self.store.labels.put(merged, answer, is_clf, self._key(position, key))
            if source in raw:
                text, finish, key = raw[source]
                self.store.instances.put(merged, text, finish, self._key(position, key))
                if source not in unparsed:  # else parsed when the merged run is opened
                    pairs = [(r.input, r.output) for r in parsed.get(source, [])]
                    self.store.instances.put_parsed(merged, pairs)
        for stage in registry.STAGES:
            if stage.table is not None:
                self._stage_records(position, run, stage, ids)
        self._reviews(run, ids)

    def _reviews(self, run: SourceRun, ids: dict[int, int]) -> None:
        """People's ratings of the merged instructions' instances, under their ids here (the
        text they rate is the same; each run's review sample stays with it)."""
        found = []
        for rating in run.ctx.store.reviews.ratings():
            instruction_id, _, position = rating.instance.partition(".")
            if int(instruction_id) in ids:
                instance = f"{ids[int(instruction_id)]}.{position}"
                found.append(dataclasses.replace(rating, instance=instance))
        if found:
            self.store.reviews.put(found)

    def _stage_records(
        self, position: int, run: SourceRun, stage: Stage, ids: dict[int, int]
    ) -> None:
        """A stage's records about the merged instructions' instances, with their ids, cache
        keys and (for a versioned stage) versions as the merged run has them."""
        table = stage.table
        assert table is not None
        versions = self._versions(position, run, stage) if table.version else {}
        for row in run.ctx.store.records.rows(table):
            if row[0] not in ids:
                continue
            found = [ids[row[0]], *row[1:]]
            found[table.key_index] = self._key(position, row[table.key_index])
            if table.version:
                found[2] = versions.get(row[2], row[2])
            self.store.records.put_row(table, found)


def _request(run: SourceRun, request_idx: int, judged: set[int]) -> tuple[str, str]:
    """A request's cache key and outcome: as its run recorded them; a request its run had
    not finished is `ok` when some of its candidates were judged, else `unjudged`."""
    if request_idx in run.requests:
        _, key, outcome = run.requests[request_idx]
        return key, outcome
    return run.request_keys.get(request_idx, ""), "ok" if request_idx in judged else UNJUDGED


def _tables() -> list[RecordTable]:
    return [stage.table for stage in registry.STAGES if stage.table is not None]


def _unseeded(fingerprint: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in fingerprint.items() if key != "random_seed"}
