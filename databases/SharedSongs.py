"""Songs that occur in more than one partition: found by name and kept in one partition only.

The paper's databases overlap: MUSDB18 (and MUSDB18-HQ) holds 46 MedleyDB songs, so with
``supervised_database=MUSDB18`` and MedleyDB among the unsupervised databases the same music
would be in ``train_sup`` and in ``valid``/``test``; and iKala's chorus and verse clips of one
song lie side by side in its track list, so a split point can fall between them.

Identity of a song (:func:`song_identity`):

- an iKala clip ``<id>_chorus`` / ``<id>_verse``: its song id (``ikala:<id>``), so the clips of
  one song are one song;
- any other song: its name ("Artist - Title", the XML's artist and title) folded to lowercase
  letters and digits, accents removed, so ``MusicDelta_80sRock`` in MedleyDB (artist "Music
  Delta", title "80s Rock") and ``Music Delta - 80s Rock`` in MUSDB18 are one song;
- a sample without a song name: its file path.

Names are enough for the known overlaps; an audio fingerprint would cost a decode of every song
and is left out.

Rules (:func:`keep_each_song_in_one_partition`), for each song found in more than one place:

1. The song stays in the first of its partitions in the order ``train_sup``, ``test``,
   ``valid``, ``train_unsup``: the paired training set wins; then the evaluation partitions
   keep their songs, so that a benchmark's test set (MUSDB18's 50 songs) stays whole and
   comparable with published results; the unpaired training data, the cheapest to lose, gives
   way. A song is thus never in a training and an evaluation partition, nor in both ``valid``
   and ``test``.
2. Its entries elsewhere that come from the *same database* as the kept one are different audio
   of the song (iKala's other clip): they are **moved** into the kept partition.
3. Entries from *another database* are the same music again: they are **dropped**, also when they
   sit in the kept partition itself (the first one in partition order stays).

Every move and drop is logged and returned as a :class:`SharedSongDecision`.
"""

import dataclasses
import logging
import re
import unicodedata
from typing import Dict, List, Tuple

from Sample import Sample

LOGGER = logging.getLogger(__name__)

PARTITION_PRIORITY = ("train_sup", "test", "valid", "train_unsup")
PARTITION_KEYS = ("train_sup", "train_unsup", "valid", "test")
# Part of dataset.pkl's fingerprint: a dataset built under other rules is rebuilt.
RULES_VERSION = 1
_IKALA_CLIP = re.compile(r"^(\d+)_(chorus|verse)$", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class SharedSongDecision:
    """What happened to one entry of a song found in more than one place."""

    identity: str
    song: str
    database: str
    action: str  # "moved" or "dropped"
    source_partition: str
    kept_partition: str
    kept_database: str

    def describe(self) -> str:
        """One log line, e.g. "'A - B' (MedleyDB) is also in train_sup (MUSDB18): dropped from test"."""
        where = ("moved from {0} to {1}" if self.action == "moved" else "dropped from {0}").format(
            self.source_partition, self.kept_partition
        )
        return f"{self.song!r} ({self.database}) is also in {self.kept_partition} ({self.kept_database}): {where}"


def song_identity(sample: Sample) -> str:
    """The key under which two samples count as the same song (see the module docstring)."""
    name = sample.song.strip()
    if not name:
        return f"path:{sample.path}"
    clip = _IKALA_CLIP.match(name)
    if sample.database == "iKala" and clip:
        return f"ikala:{clip.group(1)}"
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    folded = re.sub(r"[^a-z0-9]+", "", ascii_name.lower())
    return f"song:{folded}" if folded else f"path:{sample.path}"


def keep_each_song_in_one_partition(dataset: dict) -> Tuple[dict, List[SharedSongDecision]]:
    """Apply the module's rules to a dataset dict built by ``Datasets.partition_dataset``.

    Args:
        dataset: dict with ``train_sup``, ``valid``, ``test`` (lists of ``(mixture, *sources)``
            Samples) and ``train_unsup`` (one list per role whose i-th items are one song, None
            for a source the song lacks, as ``partition_dataset`` builds them).

    Returns:
        ``(new dataset, decisions)``: the dataset with moved entries appended to the partition
        they moved to (order otherwise unchanged), and one decision per moved or dropped entry.
        The input is not modified.
    """
    entries = _entries(dataset)
    groups: Dict[str, List[int]] = {}
    for position, (_, triple) in enumerate(entries):
        groups.setdefault(song_identity(triple[0]), []).append(position)
    new_partition = {position: partition for position, (partition, _) in enumerate(entries)}
    decisions = []
    for identity, positions in groups.items():
        if len(positions) < 2:
            continue
        kept_partition, kept_triple = entries[positions[0]]  # entries are in partition priority order
        kept_database = kept_triple[0].database
        for position in positions[1:]:
            partition, triple = entries[position]
            same_database = triple[0].database == kept_database and triple[0].path != kept_triple[0].path
            if same_database and partition == kept_partition:
                continue  # another clip of the song in the same partition: nothing is shared
            action = "moved" if same_database else "dropped"
            new_partition[position] = kept_partition if same_database else None
            decisions.append(
                SharedSongDecision(
                    identity=identity,
                    song=triple[0].song or triple[0].path,
                    database=triple[0].database,
                    action=action,
                    source_partition=partition,
                    kept_partition=kept_partition,
                    kept_database=kept_database,
                )
            )
    for decision in decisions:
        LOGGER.info("Shared song: %s", decision.describe())
    if decisions:
        moved = sum(decision.action == "moved" for decision in decisions)
        LOGGER.warning(
            "%d song(s) were found in more than one partition: %d entries moved, %d dropped so that "
            "each song is in one partition only (SharedSongs.py; details at INFO level)",
            len({decision.identity for decision in decisions}),
            moved,
            len(decisions) - moved,
        )
    return _rebuild(entries, new_partition, len(dataset["train_unsup"])), decisions


def _entries(dataset):
    """``[(partition, triple)]`` in partition priority order (unpaired lists zipped by index)."""
    unpaired = dataset["train_unsup"]
    if len({len(samples) for samples in unpaired}) > 1:
        raise ValueError(
            "train_unsup's lists have different lengths; shared songs can only be resolved "
            "for a dataset built by Datasets.partition_dataset"
        )
    triples = {
        "train_sup": dataset["train_sup"],
        "train_unsup": list(zip(*unpaired)),
        "valid": dataset["valid"],
        "test": dataset["test"],
    }
    return [(partition, tuple(triple)) for partition in PARTITION_PRIORITY for triple in triples[partition]]


def _rebuild(entries, new_partition, unpaired_lists):
    """The dataset dict from entries and their (possibly changed, None = dropped) partitions:
    entries that stayed keep their order; moved ones follow them."""
    partitions = {partition: [] for partition in PARTITION_PRIORITY}
    for stayed in (True, False):
        for position, (partition, triple) in enumerate(entries):
            target = new_partition[position]
            if target is not None and (target == partition) == stayed:
                partitions[target].append(triple)
    unpaired = partitions.pop("train_unsup")
    dataset = {key: partitions[key] for key in ("train_sup", "valid", "test")}
    dataset["train_unsup"] = (
        [list(samples) for samples in zip(*unpaired)] if unpaired else [[] for _ in range(unpaired_lists)]
    )
    return {key: dataset[key] for key in PARTITION_KEYS}
