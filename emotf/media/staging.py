"""Media on remote storage, decoded locally: `staged(path)` gives a local file for a URL.

PyAV (FFmpeg) and libsndfile open local files only, so a clip whose video or audio lies on
`gs://...` (or any `tf.io.gfile` URL) is copied to a temporary local file for the time it is
decoded and deleted after. Local paths are passed through untouched. Messages about the
temporary copy are put back in terms of the URL with `restore_names`.

A URL that does not exist is the clip's problem (the decoders report it missing, the clip is
skipped); any other storage error (a GCS 503, a timeout) is the storage's: `StagingError`, which
fails the shard (the local build stops, a rerun resumes; Beam retries the bundle) instead of
skipping a clip for good.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from emotf.storage import as_path


class StagingError(RuntimeError):
    """A URL could not be copied for a reason other than its absence (a transient storage
    error): the shard fails rather than the clip being skipped for good."""


@contextlib.contextmanager
def staged(path: str | os.PathLike) -> Iterator[str | os.PathLike]:
    """A local file holding `path`'s bytes for the duration of the block.

    A local `path` is yielded as it is (same object). A URL is copied (`tf.io.gfile.copy`)
    into a fresh temporary folder under its own file name, which is removed on exit; a URL that
    does not exist yields a local path that does not exist either, so the decoders report it
    missing as they would a local file.

    Raises:
        StagingError: the copy failed for another reason than a missing file (one line: the
            URL and the storage error).
    """
    source = as_path(path)
    if source.is_local:
        yield path
        return
    folder = Path(tempfile.mkdtemp(prefix="emotf-stage-"))
    try:
        local = folder / source.name
        _copy(source, local)
        yield str(local)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _copy(source, local: Path) -> None:
    """Copy the URL `source` to `local`; a missing `source` leaves `local` missing."""
    # Lazy: emotf.configs and the records-build workers import this module, and TensorFlow
    # would add seconds to each worker's start (only a URL needs it).
    import tensorflow as tf

    try:
        source.copy(local)
    except (tf.errors.NotFoundError, FileNotFoundError):
        return  # missing: the decoders say so, the clip is skipped
    except (tf.errors.OpError, OSError) as error:
        detail = " ".join(str(error).split()) or "no message"
        raise StagingError(
            f"{source}: cannot copy to a local file ({type(error).__name__}: {detail})"
        ) from None


def restore_names(text: str, names: dict[str, str]) -> str:
    """`text` with each local staged path replaced by the URL it was staged from."""
    for local, url in names.items():
        if local != url:
            text = text.replace(local, url)
    return text
