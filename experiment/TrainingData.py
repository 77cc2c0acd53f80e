"""What a training phase reads: the configured dataset, the batch generators of a phase, and
the whole-song validation loss and TensorBoard clips.
"""

import contextlib
import os
from typing import Optional, Sequence

import numpy as np

from pipeline import BatchGenerators
import Datasets
from databases import DatasetXML
from databases import DemoDatabase
import Input
from evaluation import Separation
from Models.Unet import shapes_for_config as network_shapes

# As the reference: *every* unpaired excerpt gets a random gain, the unpaired mixtures as well
# as the real solo sources. The separator's estimates come from the scaled mixtures, so their
# level matches the real excerpts'; with only one side scaled, a critic can win on loudness.
UNPAIRED_GAIN = (0.2, 1.2)


def load_dataset(dataset_xmls, dataset_roots, cache_dir, dataset_pkl, partition_config,
                 custom_dataset, use_demo, demo_database, unpaired_folders: Optional[dict] = None,
                 sources: Sequence[str] = ("accompaniment", "voice"), need_unpaired: bool = False) -> dict:
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
    dataset = Datasets.get_dataset(xml_paths=xmls, dataset_roots=roots, cache_dir=cache_dir,
                                   pkl_path=dataset_pkl, custom_dataset=custom_dataset,
                                   unpaired_folders=unpaired_folders, sources=tuple(sources), **partition_config)
    if need_unpaired:
        Datasets.check_unpaired_lists(dataset)
    return dataset


def reader_settings(model_config):
    """The batch generators' keyword arguments that come straight from ``model_config``."""
    keys = ("batch_size", "expected_sr", "mono_downmix", "num_fft", "num_hop", "duration",
            "cache_size", "num_workers", "min_replacement_rate")
    return {key: model_config[key] for key in keys}


@contextlib.contextmanager
def batch_generators(dataset, model_config, semi_supervised, seed, magnitudes=None):
    """Start the batch generators of a phase; stop them (and their processes) on exit.

    ``seed``: an int or a sequence of ints (``[seed, step]`` when a phase starts or resumes at
    ``step``), the entropy of every reader's random stream.
    ``magnitudes``: optional ``AudioCache.MagnitudeStore`` of the training files.
    ``model_config["scale_unpaired_mixtures"]`` (default True, the reference) gives the unpaired
    mixtures the same random gain as the solo sources; False leaves them at gain 1 (the
    deviation that let a critic win on loudness, kept for the ablation in bench/semisup_gain.py).

    Yields:
        ``(paired, unpaired_mixtures, unpaired_sources)``: the paired generator for
        train_sup, and for the semi-supervised phase the unpaired mixture generator and
        one real-source generator per source (``None`` and ``[]`` when supervised).
    """
    input_shape, output_shape = network_shapes(model_config)
    settings = dict(reader_settings(model_config), magnitudes=magnitudes)
    seeds = np.random.SeedSequence(seed).generate_state(2 + len(model_config["sources"]))
    with contextlib.ExitStack() as stack:
        paired = stack.enter_context(BatchGenerators.PairedBatchGenerator(
            dataset["train_sup"], input_shape, output_shape, seed=int(seeds[0]), **settings))
        mixtures, sources = None, []
        if semi_supervised:
            mixture_list, *source_lists = dataset["train_unsup"]
            context = (input_shape[1] - output_shape[1]) // 2
            mixture_gain = UNPAIRED_GAIN if model_config.get("scale_unpaired_mixtures", True) else None
            mixtures = stack.enter_context(BatchGenerators.SingleSourceBatchGenerator(
                mixture_list, input_shape, context_frames=context, random_gain=mixture_gain, seed=int(seeds[1]),
                **settings))
            for index, samples in enumerate(source_lists):
                sources.append(stack.enter_context(BatchGenerators.SingleSourceBatchGenerator(
                    samples, output_shape, context_frames=0, random_gain=UNPAIRED_GAIN,
                    seed=int(seeds[2 + index]), **settings)))
        yield paired, mixtures, sources


def partition_loss(session, graph, songs, model_config):
    """The supervised loss averaged over all non-overlapping excerpts of ``songs``.

    Only the frames inside the songs count (as in the reference): the zero padding of a song's
    last excerpt is left out, and every real frame weighs the same, whatever its batch.
    """
    input_shape, output_shape = network_shapes(model_config)
    settings = {key: model_config[key] for key in ("batch_size", "expected_sr", "mono_downmix",
                                                   "num_fft", "num_hop")}
    total, count = 0.0, 0
    for batch, valid_frames in BatchGenerators.validation_batches(songs, input_shape, output_shape, **settings):
        frames = int(valid_frames.sum())
        total += float(session.run(graph.validation_loss, graph.feed_validation(batch, valid_frames))) * frames
        count += frames
    if count == 0:
        raise ValueError("The partition has no audio to compute a loss on.")
    return total / count


def validation_clips(session, graph, song, model_config, seconds=10.0):
    """Separate the first ``seconds`` of one validation song for TensorBoard audio.

    Returns:
        dict ``tag -> audio [samples]`` at ``expected_sr``: the mixture, the estimates and the
        true sources.
    """
    sr = model_config["expected_sr"]
    mixture = Input.read_audio(song[0].path, sr, model_config["mono_downmix"], offset=0.0, duration=seconds)
    audios = [mixture] + [np.zeros_like(mixture) if Input.is_silent(sample) else
                          Input.read_audio(sample.path, sr, model_config["mono_downmix"], offset=0.0,
                                           duration=seconds)
                          for sample in song[1:]]

    def predict(batch):
        return session.run(graph.inference_outputs, {graph.inference_input: batch})

    estimates = Separation.separate_audio(mixture, predict, model_config)
    clips = {"mixture": mixture}
    for name, audio in zip(model_config["sources"], audios[1:]):
        clips[f"{name}/estimate"] = estimates[name]
        clips[f"{name}/true"] = audio
    return clips
