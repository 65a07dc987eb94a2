"""Writing one shard of a records build: its clips' results -> `OUT/<name>.tfrecord` + sidecar.

`write_shard` is the one shard writer of both runners (`emotf.records.build`'s local worker pool
and `emotf.records.beam_build`'s Beam pipeline), so both write the same bytes: the Examples in
plan order to a temporary name (unique per attempt, so a retried Beam bundle never writes into
another attempt's file), renamed into place, then the sidecar (`OUT/<name>.json`, atomically):
a shard is complete iff its sidecar exists. Every file goes through `emotf.storage`
(`tf.io.gfile`), so OUT may be local, `gs://...` or `ram://...`; local shards are fsynced
before the sidecar vouches for them.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable

from emotf import keys
from emotf.media.staging import staged
from emotf.records.clip_worker import ClipResult, ClipTask
from emotf.records.folder import RecordsFolder
from emotf.records.manifest import shard_entry
from emotf.records.media_checks import check_clip
from emotf.storage import write_json


def media_check(task: ClipTask) -> dict:
    """Media check of a clip in this process (for a clip whose worker died before reporting
    one)."""
    try:
        with staged(task.video) as video, staged(task.audio or task.video) as audio:
            return check_clip(task.clip_id, str(video), str(audio))
    except OSError:
        return {"video": "unreadable", "audio": "unreadable"}


def write_shard(
    out,
    shard: dict,
    results: Iterable[ClipResult],
    settings: dict,
    digest: str,
    *,
    verify_media: bool,
    warn: Callable[[str], None] | None = None,
    progress: Callable[[], None] | None = None,
) -> dict:
    """Write one planned shard from its clips' results and return its sidecar.

    Args:
        out: the records folder (local path or URL).
        shard: a `plan_build` shard: {"name", "fold", "clips": [ClipTask, ...]}.
        results: one `ClipResult` per clip of the shard, in plan order (consumed lazily, so a
            result arrives while the previous Example is already written).
        settings, digest: `record_settings` and their `settings_hash` (into the sidecar).
        verify_media: record each clip's media check (`result.media`, else checked here).
        warn: called with one "WARNING ..." line per note and per skipped clip.
        progress: called once per clip.

    Returns:
        the sidecar dict, also written to OUT/<name>.json after the shard is in place.
    """
    # Lazy: the records-build workers import this module and must start without TensorFlow.
    import tensorflow as tf

    folder = RecordsFolder(out)
    tasks = shard["clips"]
    final = folder.shard_path(shard["name"])
    tmp = folder.shard_temporary(shard["name"])
    written: list[dict] = []
    skipped: list[dict] = []
    notes: list[str] = []
    stats: Counter[str] = Counter()
    media: dict[str, dict] = {}
    with tf.io.TFRecordWriter(str(tmp)) as writer:
        for task, result in zip(tasks, results, strict=True):
            if result.clip_id != task.clip_id:
                raise RuntimeError(
                    f"{final}: result of clip {result.clip_id} where the plan has {task.clip_id}"
                )
            for note in result.notes:
                if warn:
                    warn(f"WARNING {note}")
            notes += result.notes
            if verify_media:
                media[task.clip_id] = result.media or media_check(task)
            if result.ok:
                writer.write(result.example)
                written.append(
                    {
                        "clip_id": task.clip_id,
                        "label": task.record_labels().label,
                        "frames": result.num_frames,
                        "samples": result.num_samples,
                    }
                )
                stats.update(result.stats)
            else:
                if warn:
                    warn(f"WARNING {result.path}: {result.reason} -> skipped")
                skipped.append(
                    {"clip_id": task.clip_id, "path": result.path, "reason": result.reason}
                )
            if progress:
                progress()
    if tmp.is_local:
        with open(tmp.local_path(), "rb+") as f:  # on disk before the sidecar vouches for it
            os.fsync(f.fileno())
    tmp.replace(final)
    sidecar = {
        "shard": final.name,
        "fold": shard["fold"],
        "planned": [t.clip_id for t in tasks],
        "written": written,
        "skipped": skipped,
        "notes": notes,
        "detector": dict(stats),
        "schema_version": keys.SCHEMA_VERSION,
        "settings": settings,
        "settings_hash": digest,
        "media_checks": media,
        "entry": shard_entry(final, shard["fold"], len(written)),
    }
    write_json(folder.sidecar_path(shard["name"]), sidecar)
    return sidecar


def sidecar_warnings(sidecar: dict) -> list[str]:
    """The "WARNING ..." lines `write_shard` reports for a shard, from its sidecar (notes first,
    then skips: the order of a shard whose clips are all skipped or noted; the Beam driver prints
    them after the pipeline, since its workers' consoles may be elsewhere)."""
    return [f"WARNING {note}" for note in sidecar.get("notes", [])] + [
        f"WARNING {s['path']}: {s['reason']} -> skipped" for s in sidecar.get("skipped", [])
    ]
