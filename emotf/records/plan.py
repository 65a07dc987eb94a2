"""The plan of a records build: which clip goes into which shard, with which record labels.

`make_plan(config)` opens the corpus (`emotf.corpora.registry.open_corpus(config.corpus,
config.data_dir, **config.corpus_options())`: CREMA-D, RAVDESS or a CSV corpus), takes each
clip's fold from it, and cuts the clips, sorted by fold then clip id, into shards of
`clips_per_shard` named for the corpus's folds (`RecordsFolder.shard_name`). It is a pure
function of the corpus's clip list, its options and the shard size. The files the corpus passed
over go into the manifest's `skipped` list with their reasons; a folder that does not match the
corpus's layout raises `CorpusError` (one line naming what was expected).

What each record says about its clip (`emotf.records.clip_worker.ClipLabels`):

    label      index of the clip's class in the corpus's class order (`CorpusInfo.class_codes`)
    emotion    the class code (CREMA-D `ANG`; RAVDESS `angry`; csv the label as written)
    actor_id   CREMA-D and RAVDESS: the actor number; csv: 1 + the speaker's index in sorted
               speaker order (the manifest's `speakers` lists them, sorted)
    sentence   CREMA-D's sentence code; RAVDESS's statement (`kids`, `dogs`); csv a `sentence`
               column, else ""
    intensity  the corpus's intensity group (CREMA-D `LO`..`XX`; RAVDESS `normal`, `strong`;
               csv an `intensity` column), else ""
    fold       the corpus's fold of the clip's speaker
"""

from __future__ import annotations

from dataclasses import dataclass

from emotf.corpora.base import Clip, Corpus
from emotf.corpora.cremad_corpus import AUDIO_DIR, AUDIO_EXT
from emotf.corpora.cremad_corpus import NAME as CREMAD
from emotf.corpora.info import CorpusInfo
from emotf.corpora.registry import corpus_info, open_corpus
from emotf.corpora.table import NAME as CSV
from emotf.records.clip_worker import ClipLabels, ClipTask
from emotf.records.config import BuildConfig, clip_settings
from emotf.records.folder import RecordsFolder
from emotf.storage import as_path


@dataclass(frozen=True)
class BuildPlan:
    """A build's plan.

    Attributes:
        shards: in write order, each {"name", "fold", "clips": [ClipTask, ...]}.
        skipped: the files (or CSV rows) the corpus passed over: [{"path", "reason"[, "row"]}].
        info: the corpus's `CorpusInfo` (into the manifest's `corpus`).
        speakers: speaker -> fold of the corpus's speakers, sorted by speaker.
    """

    shards: list[dict]
    skipped: list[dict]
    info: CorpusInfo
    speakers: dict[str, int]


def actor_ids(corpus: Corpus) -> dict[str, int]:
    """Speaker -> the record's `actor_id`: the actor number (CREMA-D, RAVDESS), or for a csv
    corpus 1 + the speaker's index in sorted order."""
    if corpus.name == CSV:
        return {speaker: i + 1 for i, speaker in enumerate(corpus.speakers)}
    return {speaker: int(speaker) for speaker in corpus.speakers}


def clip_labels(corpus: Corpus, clip: Clip, actor_id: int) -> ClipLabels:
    """The record labels of one clip of `corpus` (module docstring)."""
    groups = clip.groups
    return ClipLabels(
        actor_id=actor_id,
        sentence=groups.get("sentence") or groups.get("statement") or "",
        emotion=clip.label,
        label=corpus.label_index(clip),
        intensity=groups.get("intensity", ""),
    )


def _audio(corpus: Corpus, clip: Clip) -> str | None:
    """The task's audio: the clip's own; for CREMA-D always its WAV's path (a missing WAV is
    reported by the worker, which then reads the FLV's track: the records before corpora)."""
    if clip.audio is None and corpus.name == CREMAD:
        return str(as_path(corpus.root) / AUDIO_DIR / f"{clip.clip_id}{AUDIO_EXT}")
    return clip.audio


def make_plan(config: BuildConfig) -> BuildPlan:
    """The plan of a build (module docstring). Deterministic for a given corpus and config.

    Raises:
        emotf.corpora.base.CorpusError: `config.data_dir` does not match the corpus's layout,
            holds no usable clip, or a corpus option does not fit it (one line).
    """
    corpus = open_corpus(config.corpus, config.data_dir, **config.corpus_options())
    info = corpus_info(corpus)
    settings = clip_settings(config)  # one object, carried by every task to its worker
    ids = actor_ids(corpus)
    clips = sorted(corpus.clips, key=lambda c: c.clip_id)
    if config.limit is not None:
        clips = clips[: config.limit]
    clips.sort(key=lambda c: (corpus.fold_of(c), c.clip_id))
    shards: list[dict] = []
    for fold in range(info.num_folds):
        in_fold = [c for c in clips if corpus.fold_of(c) == fold]
        for index, start in enumerate(range(0, len(in_fold), config.clips_per_shard)):
            tasks = [
                ClipTask(
                    clip_id=clip.clip_id,
                    fold=fold,
                    video=clip.video,
                    audio=_audio(corpus, clip),
                    settings=settings,
                    verify_media=config.checks_media,
                    labels=clip_labels(corpus, clip, ids[clip.speaker]),
                    corpus=corpus.name,
                )
                for clip in in_fold[start : start + config.clips_per_shard]
            ]
            name = RecordsFolder.shard_name(fold, index, info.num_folds)
            shards.append({"name": name, "fold": fold, "clips": tasks})
    speakers = {s: corpus.speaker_folds[s] for s in corpus.speakers}
    return BuildPlan(shards, corpus.skipped_dicts(), info, speakers)
