"""Is run A better than run B on the same clips? (`emotf-evaluate --compare A B`)

Reads the `predictions.csv` that `emotf-evaluate` wrote for each (a run folder, its
`evaluation/` folder or the file itself), keeps the clips both scored, and reports each
accuracy and A minus B with t intervals over actors
(`emotf.evaluation.stats.paired_difference`): e.g. fusion against audio alone, trained on the
same folds. Both files must have the same classes (their `p_<class>` columns); the actor of a
clip is the file's `actor_id` column, else read from its CREMA-D name.
"""

from __future__ import annotations

import numpy as np

from emotf.evaluation.figures import read_predictions
from emotf.evaluation.stats import paired_difference
from emotf.runs.folder import PREDICTIONS_FILE, EvaluationDir, Run
from emotf.storage import StoragePath, as_path


def predictions_file(path) -> StoragePath:
    """`predictions.csv` of a run folder, an evaluation folder, or the file itself (local or a
    `tf.io.gfile` URL)."""
    path = as_path(path)
    for candidate in (path, EvaluationDir(path).predictions, Run(path).evaluation.predictions):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"no {PREDICTIONS_FILE} in {path} (run `emotf-evaluate --run` on it "
        f"first). Received: {str(path)!r}"
    )


def compare_predictions(path_a, path_b, level: float = 0.95) -> dict:
    """A vs B on the clips both predicted; refuses runs whose clips or labels disagree."""
    files = predictions_file(path_a), predictions_file(path_b)
    a, b = (read_predictions(f) for f in files)
    if a["class_codes"] != b["class_codes"]:
        raise ValueError(
            f"{files[0]} and {files[1]} score different classes ({list(a['class_codes'])} and "
            f"{list(b['class_codes'])}): compare runs of the same corpus"
        )
    index_b = {c: i for i, c in enumerate(b["clip_ids"])}
    common = [c for c in a["clip_ids"] if c in index_b]
    if not common:
        raise ValueError(
            f"{files[0]} and {files[1]} share no clip: compare runs evaluated on "
            f"the same test clips"
        )
    index_a = {c: i for i, c in enumerate(a["clip_ids"])}
    rows_a = [index_a[c] for c in common]
    rows_b = [index_b[c] for c in common]
    labels_a, labels_b = a["labels"][rows_a], b["labels"][rows_b]
    if not np.array_equal(labels_a, labels_b):
        raise ValueError(f"{files[0]} and {files[1]} give different labels to the same clips")
    actors_a = a["actor_ids"][rows_a] if a["actor_ids"] is not None else None
    actors_b = b["actor_ids"][rows_b] if b["actor_ids"] is not None else None
    if actors_a is not None and actors_b is not None and not np.array_equal(actors_a, actors_b):
        raise ValueError(f"{files[0]} and {files[1]} give different actors to the same clips")
    actors = actors_a if actors_a is not None else actors_b
    result = paired_difference(
        common,
        a["predicted"][rows_a] == labels_a,
        b["predicted"][rows_b] == labels_b,
        actors=actors,
        level=level,
    )
    return {
        "file_a": str(files[0]),
        "file_b": str(files[1]),
        "only_in_a": len(a["clip_ids"]) - len(common),
        "only_in_b": len(b["clip_ids"]) - len(common),
        **result,
    }
