"""`selfinstruct merge`: runs made independently (on several machines, each against its own
server, e.g. as array jobs of a scheduler) combined into one run directory, under the exact
ROUGE-L rule over their union, each instruction's source run kept.

The order, which decides what is kept (see order.py and select.py):
1. Runs are sorted by (random seed, creation time, run id), whatever order they are given in.
2. Round k takes bootstrap batch k of each run that has one, runs in that order; within a
   batch, the run's own order (its instruction ids).
3. The pool starts with the seed instructions (the seeds bootstrap prompts with: all of them,
   or the classification ones with `classification_only`), in seed file order. Each of the
   runs' instructions, in that order, is dropped as `duplicate` when its text equals a pool
   item's, else as `rouge` when its ROUGE-L F-measure (rouge_score's, bit for bit) against
   some pool item is above `rouge_threshold`; otherwise it is kept and joins the pool.
   A kept instruction records the top `most_similar` pool items (ties in pool order) and
   the mean score over the pool, as bootstrap does.

What a run dropped itself stays dropped. Runs must share their seed set and the rule's
settings (see checks.py); the merged run is written by write.py and reported by manifest.py.
"""

from selfinstruct.merging.merge import MergeResult, merge_runs, prepare_merged

__all__ = ["MergeResult", "merge_runs", "prepare_merged"]
