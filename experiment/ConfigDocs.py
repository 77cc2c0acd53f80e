"""Descriptions of the nested settings for sacred's ``print_config``.

Sacred describes a setting by the comment on the line that assigns it, so the entries of a
dict setting (``model_config.alpha``, ``dataset_roots.DSD100``, ...) get none; this module
supplies them.
"""

from typing import Callable, Dict, Mapping, Optional, Sequence

from sacred.config.config_scope import ConfigScope
from sacred.config.config_summary import ConfigSummary

from common import Config


def nested_descriptions(databases: Sequence[str]) -> Dict[str, str]:
    """``{dotted key: description}`` of the config's nested keys, for print_config."""
    docs = {f"model_config.{key}": doc for key, doc in Config.descriptions().items()}
    for name in databases:
        docs[f"dataset_xmls.{name}"] = f"XML describing {name} (its databaseFolderPath and songs)"
        docs[f"dataset_roots.{name}"] = f"{name}'s folder, instead of the XML's databaseFolderPath (None: the XML's)"
    docs.update(
        {
            # A dict literal over several lines has no line of its own that sacred could read.
            "partition_config": "how the databases are split into train_sup, train_unsup, valid and test",
            "partition_config.supervised_database": "its Training split is train_sup",
            "partition_config.unsupervised_databases": "their songs are split in thirds (train_unsup, valid, test)",
            "partition_config.supervised_valid_songs": "first songs of its Test split go to valid, the rest to test",
            "partition_config.supervised_validation": '"test_songs", or "musdb_valid" (MUSDB18/MUSDB18HQ): '
            "musdb's 14 valid tracks of train",
            "demo_database.song_seconds": "length of each generated demo song (s)",
            "unpaired_folders.mixtures": "folders of songs without stems, added to train_unsup's mixtures",
            "unpaired_folders.accompaniment": "folders of instrumentals, added to train_unsup's accompaniments",
            "unpaired_folders.voice": "folders of a cappella recordings, added to train_unsup's voices",
            "unpaired_folders.drums": "with four_sources: folders of drum recordings, added to train_unsup's drums",
            "unpaired_folders.bass": "with four_sources: folders of bass recordings",
            "unpaired_folders.other": "with four_sources: folders of recordings of other instruments",
        }
    )
    return docs


class DocumentedConfigScope(ConfigScope):
    """A sacred config scope whose nested keys are described too (``print_config``).

    Sacred takes a key's description from the comment on the line that assigns it
    (sacred/config/config_scope.py, ``get_config_comments``: only plain names are assigned,
    so a dict's entries get none); the descriptions of nested keys are added by dotted path.
    """

    def __init__(self, function: Callable, docs: Mapping[str, str]):
        super().__init__(function)
        self.nested_docs = dict(docs)

    def __call__(
        self, fixed: Optional[dict] = None, preset: Optional[dict] = None, fallback: Optional[dict] = None
    ) -> ConfigSummary:
        """The scope's values and descriptions, as sacred's, plus those of the nested keys."""
        summary = super().__call__(fixed, preset, fallback)
        for path, doc in self.nested_docs.items():
            summary.docs.setdefault(path, doc)
        return summary
