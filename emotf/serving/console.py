"""What `emotf-predict` prints on standard output: a table per video (`format_table`), or one
JSON document for all of them (`to_json`, `--json`).
"""

from __future__ import annotations

import json

from emotf.serving.outputs import document

__all__ = ["format_table", "to_json"]


def format_table(results: list[dict]) -> str:
    """Human-readable (`emotf-predict` without `--json`): one block per file with the label, a
    probability table (one row per class code of the model, most probable first) and, for
    several windows, one line per window."""
    lines = []
    for result in results:
        if "error" in result:
            lines.append(f"{result['file']}\n  ERROR: {result['error']}")
            continue
        head = f"{result['file']}  ({result['duration_s']:.2f} s"
        head += f", audio {result['audio']})" if result.get("audio") else ", audio from the video)"
        lines.append(head)
        timeline = result.get("timeline") or []
        faces = result.get("faces") or []
        what = f"mean of {len(timeline)} windows" if len(timeline) > 1 else "whole clip"
        if faces:
            main = next(f for f in faces if f["face_id"] == result["face_id"])
            what = f"face {main['face_id']}, mean of its {main['windows']} windows"
        lines.append(f"  label: {result['label_code']} ({result['label_name']}; {what})")
        width = max(map(len, result["probabilities"]), default=0)
        for code, p in sorted(result["probabilities"].items(), key=lambda kv: -kv[1]):
            bar = "#" * round(p * 40)
            lines.append(f"    {code:<{width}}  {p:6.3f}  {bar}")
        for face in faces:
            label = (
                f"{face['label_code']} ({face['label_name']})"
                if face["label_code"]
                else "no window scored"
            )
            lines.append(
                f"  face {face['face_id']}: {label}; {face['windows']} windows scored, "
                f"{face['skipped']} skipped, {face['first_s']:.2f}-{face['last_s']:.2f} s"
            )
        if len(timeline) > 1:
            for w in timeline:
                what = (
                    f"{w['label']} {w['probabilities'][w['label']]:.3f}"
                    if w["label"]
                    else f"skipped: {w['skipped']}"
                )
                who = (
                    ""
                    if not faces
                    else ("no face  " if w.get("face_id") is None else f"face {w['face_id']:<3d} ")
                )
                lines.append(f"    {w['start']:8.2f}-{w['end']:<8.2f} {who}{what}")
        for note in result.get("notes", []):
            lines.append(f"  note: {note}")
    return "\n".join(lines)


def to_json(results: list[dict]) -> str:
    """One JSON document for all inputs (`--json`): a list of `document` objects."""
    return json.dumps([document(r) for r in results], indent=2)
