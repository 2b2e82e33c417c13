"""A mix folder on disk: the only code that writes one (`MixWriter`) or reads one (manifest, index, shards).

`datamix build` and `datamix subsample` write through `MixWriter`; `verify`, `show`, `export`, `stats`,
`subsample` and the trainer read through `load_manifest`, `read_index`, `iter_samples` and `shard_paths`.
The files and their order are listed in `layout`; the manifest's schema is `manifest.Manifest`.
"""

from __future__ import annotations

from datamix.mixdir.layout import (CARD, DECONTAMINATION, INDEX, MANIFEST, OPTIONAL_FILES, RECORDED_FILES, REJECTS,
                                   STATS, WORK)
from datamix.mixdir.manifest import FORMAT, SEAL, Manifest, load_manifest, manifest_digest, selection_digest
from datamix.mixdir.reader import iter_members, iter_samples, read_index, shard_paths
from datamix.mixdir.writer import MixWriter

__all__ = ["CARD", "DECONTAMINATION", "FORMAT", "INDEX", "MANIFEST", "OPTIONAL_FILES", "RECORDED_FILES", "REJECTS",
           "SEAL", "STATS", "WORK", "Manifest",
           "MixWriter", "iter_members", "iter_samples", "load_manifest", "manifest_digest", "read_index",
           "selection_digest", "shard_paths"]
