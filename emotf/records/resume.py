"""Resuming a records build: which shards of OUT are done, and whether OUT may be resumed.

A shard is done when its sidecar exists, plans the same clips, was built with the same settings
(hash) and its bytes match the checksum the sidecar recorded. OUT may be resumed only when
every sidecar and the manifest were written with the same settings and record schema, and it
holds no shard of another plan; otherwise the build is refused with how to proceed. OUT may
be local or a URL (`emotf.storage`).
"""

from __future__ import annotations

from emotf import keys
from emotf.records import manifest as records_manifest
from emotf.records.folder import RecordsFolder
from emotf.storage import StoragePath, read_json


def _json_or_none(path: StoragePath) -> dict | None:
    try:
        return read_json(path)
    except (OSError, ValueError):
        return None


def read_sidecar(out, shard: dict) -> dict | None:
    """A shard's sidecar, None when missing or unreadable."""
    return _json_or_none(RecordsFolder(out).sidecar_path(shard["name"]))


def shard_state(out, shard: dict, settings_hash: str) -> str | None:
    """None when the shard is complete and intact; else why it must be (re)built ("" when it
    was simply never finished)."""
    side = read_sidecar(out, shard)
    if side is None:
        return ""
    if side.get("planned") != [t.clip_id for t in shard["clips"]]:
        return "plans other clips"
    if side.get("settings_hash") != settings_hash or "entry" not in side:
        return "built with other settings"
    return records_manifest.shard_problem(
        RecordsFolder(out).shard_path(shard["name"]), side["entry"]
    )


def clear_temporary(out) -> int:
    """Delete the temporary files an interrupted build left (`RecordsFolder.temporaries`)."""
    doomed = RecordsFolder(out).temporaries()
    for path in doomed:
        path.unlink(missing_ok=True)
    return len(doomed)


def clear_outputs(out) -> int:
    """Delete the folder's shards, sidecars, temporary files and manifest (--overwrite)."""
    removed = clear_temporary(out)
    doomed = RecordsFolder(out).build_outputs()
    for path in doomed:
        path.unlink()
    return removed + len(doomed)


def check_out_dir(out, shards: list[dict], settings: dict) -> None:
    """Refuse to mix into OUT shards of another plan (clips, seed, shard size), of other
    settings that change record content, or of another record schema."""
    how = (
        "Use a new --out, or rerun with --overwrite to rebuild this folder from scratch with "
        "the new settings"
    )
    folder = RecordsFolder(out)
    out = folder.path
    manifest_path = folder.manifest_path
    old = _json_or_none(manifest_path)
    sides = []
    for sidecar in folder.sidecars():
        side = _json_or_none(sidecar)
        if side is not None:  # a garbled sidecar: its shard is rebuilt
            sides.append((sidecar, side))
    for sidecar, side in sides:
        version = side.get("schema_version")
        if version != keys.SCHEMA_VERSION:
            raise FileExistsError(
                f"{sidecar}: written for record schema version {version}; this emotf writes "
                f"{keys.SCHEMA_VERSION}. {how}."
            )
    recorded = [(str(manifest_path), old.get("settings"))] if old and "settings" in old else []
    recorded += [(str(sidecar), side.get("settings")) for sidecar, side in sides]
    for where, previous in recorded:
        if previous is None:
            raise FileExistsError(
                f"{where}: written by an older emotf-build-records that did not "
                f"record its settings. {how}."
            )
        changes = records_manifest.settings_changes(previous, settings)
        if changes:
            raise FileExistsError(
                f"{out} was built with other settings that change the records ({where}): "
                f"{'; '.join(changes)}. {how}."
            )
    names = {s["name"] for s in shards}
    for stem, path in folder.plan_files():
        if stem not in names:
            raise FileExistsError(
                f"{out} holds {path.name}, which this build's plan does not contain (another "
                f"clip set, --fold-seed or --clips-per-shard?). {how}."
            )
    for shard in shards:
        side = read_sidecar(out, shard)
        if side is not None and side.get("planned") != [t.clip_id for t in shard["clips"]]:
            raise FileExistsError(
                f"{folder.sidecar_path(shard['name'])} plans other clips than this build. {how}."
            )
