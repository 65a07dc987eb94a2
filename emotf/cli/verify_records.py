"""`emotf-verify-records DIR`: is a records folder complete and intact?

    emotf-verify-records records/

Checks the folder against its manifest.json (written last by emotf-build-records): every listed
shard present with its size, SHA-256 and record count; no unlisted shard; sidecars of this
record schema; no live build holding the folder. Exit status 0 when intact, 1 otherwise, with
one line per bad file. Rerunning the build with the same arguments rebuilds only the bad shards.
An intact folder's summary names its corpus, classes and folds (the manifest's `corpus`; CREMA-D
for folders built before corpora existed).
The folder may be local or a URL (`gs://...`, through tf.io.gfile).
"""

from __future__ import annotations

import sys
import time

from emotf.cli import Parser, command
from emotf.corpora.info import CorpusInfo
from emotf.records.folder import RecordsFolder
from emotf.records.manifest import read_manifest, verify_records


@command("emotf-verify-records")
def main(argv=None) -> int:
    p = Parser(prog="emotf-verify-records", description=__doc__.split("\n")[0])
    p.add_argument(
        "records", help="records folder written by emotf-build-records (local or a URL: gs://...)"
    )
    args = p.parse_args(argv)
    start = time.perf_counter()
    problems = verify_records(args.records)
    seconds = time.perf_counter() - start
    for problem in problems:
        print(f"BAD {problem}")
    if problems:
        folder = RecordsFolder(args.records)
        unusable = [p for p in problems if p.file in (str(folder.path), str(folder.manifest_path))]
        if unusable:  # no manifest to check shards against: its problem is the one line
            print(f"emotf-verify-records: error: {unusable[0]}", file=sys.stderr)
        else:
            print(
                f"emotf-verify-records: {args.records}: {len(problems)} problem(s); rerun "
                f"emotf-build-records with the same arguments to rebuild the bad shards",
                file=sys.stderr,
            )
        return 1
    manifest = read_manifest(args.records)  # its structure checked by verify_records
    shards = manifest["shards"]
    info = CorpusInfo.of(manifest)  # checked by read_manifest; CREMA-D when absent
    print(
        f"emotf-verify-records: {args.records}: intact ({len(shards)} shards, "
        f"{sum(s['clips'] for s in shards)} clips, "
        f"{sum(s['bytes'] for s in shards) / 1e6:.1f} MB checked in {seconds:.2f} s)"
    )
    print(
        f"emotf-verify-records: {args.records}: corpus {info.name}, {info.num_folds} folds, "
        f"{info.num_classes} classes: {', '.join(info.class_codes)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
