"""What a training phase reads: the configured dataset (:func:`load_dataset`), the
:class:`TrainingData` the phases train on (partitions plus the spectrogram store that feeds
their batch generators), and the whole-song validation loss and TensorBoard clips.
"""

import contextlib
import os
from typing import TYPE_CHECKING, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

import Datasets
import Input
from common.Config import ModelConfig, Signal
from databases import DatasetDicts, DatasetXML, DemoDatabase
from evaluation import Separation
from pipeline import AudioCache, BatchGenerators

if TYPE_CHECKING:  # TensorFlow is imported by the trainer, through TensorFlowSetup
    import tensorflow as tf

    from Models.TrainingGraph import TrainingGraph

# As the reference: *every* unpaired excerpt gets a random gain, the unpaired mixtures as well
# as the real solo sources. The separator's estimates come from the scaled mixtures, so their
# level matches the real excerpts'; with only one side scaled, a critic can win on loudness.
UNPAIRED_GAIN = (0.2, 1.2)
TRAINING_PARTITIONS = ("train_sup", "train_unsup")


def load_dataset(
    dataset_xmls: Mapping[str, str],
    dataset_roots: Mapping[str, Optional[str]],
    cache_dir: str,
    dataset_pkl: str,
    partition_config: Mapping,
    custom_dataset: Optional[str],
    use_demo: bool,
    demo_database: Mapping,
    unpaired_folders: Optional[Mapping[str, Sequence[str]]] = None,
    sources: Sequence[str] = ("accompaniment", "voice"),
    need_unpaired: bool = False,
) -> dict:
    """The dataset dictionary (train_sup, train_unsup, valid, test) for this configuration.

    With ``use_demo`` the demo database is generated once into ``<cache_dir>/demo`` and its
    roots replace ``dataset_roots``; XMLs for it are written into that folder too, so the
    shipped placeholder XMLs stay untouched. ``unpaired_folders`` (list name -> folders) adds
    plain folders of audio to train_unsup (databases/PlainFolders.py), checked against the
    model's ``sources``. ``need_unpaired``: raise before training unless every unpaired list
    holds a file (the semi-supervised phase needs them all).
    """
    xmls, roots = dict(dataset_xmls), dict(dataset_roots)
    if use_demo:
        demo_dir = os.path.join(cache_dir, "demo")
        roots = DemoDatabase.generate_demo_database(os.path.join(demo_dir, "audio"), **demo_database)
        xmls = {name: os.path.join(demo_dir, name + ".xml") for name in roots}
        for name, xml_path in xmls.items():
            if not os.path.exists(xml_path):
                DatasetXML.write_empty_xml(xml_path, name)
        dataset_pkl = os.path.join(demo_dir, "dataset.pkl")
    dataset = Datasets.get_dataset(
        xml_paths=xmls,
        dataset_roots=roots,
        cache_dir=cache_dir,
        pkl_path=dataset_pkl,
        custom_dataset=custom_dataset,
        unpaired_folders=unpaired_folders,
        sources=tuple(sources),
        **partition_config,
    )
    if need_unpaired:
        DatasetDicts.check_unpaired_lists(dataset)
    return dataset


class TrainingData:
    """The partitions a run trains, validates and tests on, and what feeds its batch generators.

    Args:
        dataset: ``{"train_sup", "train_unsup", "valid", "test"}`` as ``Datasets.get_dataset``
            returns it (typically at the model's rate, see :meth:`prepare`).
        magnitudes: optional ``AudioCache.MagnitudeStore`` of the training partitions' files;
            the batch generators then copy sections of their spectrograms instead of doing STFTs.
    """

    def __init__(self, dataset: Mapping, magnitudes: Optional[AudioCache.MagnitudeStore] = None):
        self.dataset = dataset
        self.magnitudes = magnitudes

    @classmethod
    def prepare(
        cls, dataset: Mapping, cache_dir: str, signal: Signal, spectrogram_cache: bool = True
    ) -> "TrainingData":
        """Copies of every file at the model's rate (once, into ``<cache_dir>/model_rate``) and, with
        ``spectrogram_cache``, the training files' magnitude spectrograms (``<cache_dir>/magnitudes``)."""
        # Reader processes then read audio at the model's rate instead of resampling every section.
        dataset = AudioCache.model_rate_dataset(dataset, cache_dir, signal.expected_sr, signal.mono_downmix)
        magnitudes = None
        if spectrogram_cache:
            magnitudes = AudioCache.magnitude_store(
                {key: dataset[key] for key in TRAINING_PARTITIONS},
                cache_dir,
                signal.expected_sr,
                signal.num_fft,
                signal.num_hop,
            )
        return cls(dataset, magnitudes)

    def __getitem__(self, partition: str):
        """The songs of a partition, e.g. ``data["valid"]``."""
        return self.dataset[partition]

    @contextlib.contextmanager
    def batch_generators(
        self, config: ModelConfig, semi_supervised: bool, seed: Sequence[int]
    ) -> Iterator[
        Tuple[
            BatchGenerators.PairedBatchGenerator,
            Optional[BatchGenerators.SingleSourceBatchGenerator],
            List[BatchGenerators.SingleSourceBatchGenerator],
        ]
    ]:
        """Start the batch generators of a phase; stop them (and their processes) on exit.

        ``seed``: an int or a sequence of ints (``[seed, step]`` when a phase starts or resumes at
        ``step``), the entropy of every reader's random stream. ``config.training.scale_unpaired_mixtures``
        (True, the reference) gives the unpaired mixtures the same random gain as the solo
        sources; False leaves them at gain 1 (the deviation that let a critic win on loudness,
        kept for the ablation in bench/semisup_gain.py).

        Yields:
            ``(paired, unpaired_mixtures, unpaired_sources)``: the paired generator for
            train_sup, and for the semi-supervised phase the unpaired mixture generator and
            one real-source generator per source (``None`` and ``[]`` when supervised).
        """
        network = config.network
        settings = dict(
            _signal_settings(config),
            duration=config.pipeline.duration,
            cache_size=config.pipeline.cache_size,
            num_workers=config.pipeline.num_workers,
            min_replacement_rate=config.pipeline.min_replacement_rate,
            magnitudes=self.magnitudes,
        )
        seeds = np.random.SeedSequence(seed).generate_state(2 + len(network.sources))
        with contextlib.ExitStack() as stack:
            paired = stack.enter_context(
                BatchGenerators.PairedBatchGenerator(
                    self.dataset["train_sup"], network.input_shape, network.output_shape, seed=int(seeds[0]), **settings
                )
            )
            mixtures, sources = None, []
            if semi_supervised:
                mixture_list, *source_lists = self.dataset["train_unsup"]
                mixture_gain = UNPAIRED_GAIN if config.training.scale_unpaired_mixtures else None
                mixtures = stack.enter_context(
                    BatchGenerators.SingleSourceBatchGenerator(
                        mixture_list,
                        network.input_shape,
                        context_frames=network.context_frames,
                        random_gain=mixture_gain,
                        seed=int(seeds[1]),
                        **settings,
                    )
                )
                for index, samples in enumerate(source_lists):
                    sources.append(
                        stack.enter_context(
                            BatchGenerators.SingleSourceBatchGenerator(
                                samples,
                                network.output_shape,
                                context_frames=0,
                                random_gain=UNPAIRED_GAIN,
                                seed=int(seeds[2 + index]),
                                **settings,
                            )
                        )
                    )
            yield paired, mixtures, sources


def _signal_settings(config: ModelConfig) -> dict:
    """The batch generators' batch size and signal keyword arguments."""
    signal = config.signal
    return dict(
        batch_size=config.training.batch_size,
        expected_sr=signal.expected_sr,
        mono_downmix=signal.mono_downmix,
        num_fft=signal.num_fft,
        num_hop=signal.num_hop,
    )


def partition_loss(
    session: "tf.compat.v1.Session", graph: "TrainingGraph", songs: Sequence, config: ModelConfig
) -> float:
    """The supervised loss averaged over all non-overlapping excerpts of ``songs``.

    Only the frames inside the songs count, and every real frame weighs the same, whatever its
    batch. Unlike the reference, which drops each song's partial last excerpt, that excerpt is
    kept with its zero padding masked out (docs/training.md, "The validation loss").
    """
    network = config.network
    total, count = 0.0, 0
    for batch, valid_frames in BatchGenerators.validation_batches(
        songs, network.input_shape, network.output_shape, **_signal_settings(config)
    ):
        frames = int(valid_frames.sum())
        total += float(session.run(graph.validation_loss, graph.feed_validation(batch, valid_frames))) * frames
        count += frames
    if count == 0:
        raise ValueError("The partition has no audio to compute a loss on.")
    return total / count


def validation_clips(
    session: "tf.compat.v1.Session", graph: "TrainingGraph", song: Sequence, config: ModelConfig, seconds: float = 10.0
) -> Dict[str, np.ndarray]:
    """Separate the first ``seconds`` of one validation song for TensorBoard audio.

    Returns:
        dict ``tag -> audio [samples]`` at ``expected_sr``: the mixture, the estimates and the
        true sources.
    """
    sr, mono = config.signal.expected_sr, config.signal.mono_downmix
    mixture = Input.read_audio(song[0].path, sr, mono, offset=0.0, duration=seconds)
    audios = [mixture] + [
        np.zeros_like(mixture)
        if Input.is_silent(sample)
        else Input.read_audio(sample.path, sr, mono, offset=0.0, duration=seconds)
        for sample in song[1:]
    ]

    def predict(batch):
        return session.run(graph.inference_outputs, {graph.inference_input: batch})

    estimates = Separation.separate_audio(mixture, predict, config)
    clips = {"mixture": mixture}
    for name, audio in zip(config.network.sources, audios[1:]):
        clips[f"{name}/estimate"] = estimates[name]
        clips[f"{name}/true"] = audio
    return clips
