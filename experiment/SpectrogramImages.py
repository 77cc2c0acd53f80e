"""Spectrogram pictures for TensorBoard: magnitudes in dB on one fixed scale, coloured, low frequencies at the bottom.

A picture is one or more panels stacked top to bottom (e.g. a source's estimate above its true
spectrogram, time aligned), each ``[freqs, frames]`` magnitude spectrogram drawn as follows:

- the magnitudes (linear, of the project's unnormalised Hann-window STFT) in dB relative to
  :func:`reference_magnitude`, the peak a full-scale sine reaches: 0 dB is a full-scale
  sine, and a sine 20 dB quieter sits 20 dB lower;
- the fixed range :data:`DB_RANGE` (-80 to 0 dB), the same for every picture and step, so a
  colour means the same level everywhere; louder values take the top colour, quieter ones
  the bottom colour;
- the colour map :data:`COLOUR_MAP` (matplotlib's ``magma``: black for silence, through
  purple and red, to pale yellow for the loudest);
- low frequencies at the bottom, time running left to right;
- frames and bins repeated (nearest neighbour) so a panel is about :data:`PANEL_SIZE` pixels
  wide and high: the paper's 66 x 258 output becomes 264 x 258;
- a white line :data:`SEPARATOR` pixels wide between panels, and at the right of each panel a
  strip with the colour scale itself (-80 dB at its bottom, 0 dB at its top).

Stacked rather than side by side, every picture has the same width, so TensorBoard, which fits
pictures to its cards' width, shows them all at one scale.
"""

import functools
import io
from typing import Sequence, Tuple

import numpy as np

DB_RANGE = (-80.0, 0.0)  # dB relative to reference_magnitude(num_fft)
COLOUR_MAP = "magma"
PANEL_SIZE = 256  # pixels a panel's width and height are scaled towards (whole repeats only)
SEPARATOR = 2  # pixels of white between panels and before the colour scales
SCALE_WIDTH = 8  # pixels of the colour-scale strip
WHITE = np.array([255, 255, 255], np.uint8)


def reference_magnitude(num_fft: int) -> float:
    """0 dB of the pictures: the STFT peak magnitude of a full-scale sine, ``num_fft / 4``.

    A periodic Hann window of ``num_fft`` samples sums to ``num_fft / 2``; a sine of amplitude
    1 puts half of that into its bin (128 for the paper's 512).
    """
    return num_fft / 4.0


@functools.lru_cache(maxsize=None)
def colour_table() -> np.ndarray:
    """uint8 ``[256, 3]`` RGB: :data:`COLOUR_MAP` from the bottom (index 0) to the top of :data:`DB_RANGE`."""
    import matplotlib

    rgba = matplotlib.colormaps[COLOUR_MAP](np.linspace(0.0, 1.0, 256))
    table = np.round(rgba[:, :3] * 255).astype(np.uint8)
    table.setflags(write=False)
    return table


def to_db(magnitudes: np.ndarray, reference: float) -> np.ndarray:
    """Linear magnitudes (any shape) in dB relative to ``reference``, float32, clipped to :data:`DB_RANGE`.

    Zero and negative values (an estimate is ``exp(y) - 1`` of the network output, which can
    dip below 0) take the bottom of the range.
    """
    low, high = DB_RANGE
    floor = reference * 10.0 ** (low / 20.0)
    magnitudes = np.maximum(np.asarray(magnitudes, np.float64), floor)
    return np.clip(20.0 * np.log10(magnitudes / reference), low, high).astype(np.float32)


def scale_factors(shape: Tuple[int, int]) -> Tuple[int, int]:
    """Whole-number repeats ``(per bin, per frame)`` that bring a ``(freqs, frames)`` panel near :data:`PANEL_SIZE`."""
    return tuple(max(1, int(round(PANEL_SIZE / max(size, 1)))) for size in shape)


def render_panel(magnitudes: np.ndarray, reference: float) -> np.ndarray:
    """One spectrogram as a picture.

    Args:
        magnitudes: linear magnitudes ``[freqs, frames]`` (row 0 = 0 Hz).
        reference: the magnitude drawn as 0 dB (:func:`reference_magnitude`).

    Returns:
        uint8 RGB ``[freqs * a, frames * b, 3]`` with ``(a, b) = scale_factors(...)``, the
        lowest frequency in the bottom rows.
    """
    magnitudes = np.asarray(magnitudes)
    if magnitudes.ndim != 2:
        raise ValueError(f"render_panel: expected magnitudes [freqs, frames], got shape {magnitudes.shape}")
    low, high = DB_RANGE
    levels = (to_db(magnitudes, reference) - low) / (high - low)  # 0 .. 1
    indices = np.round(levels * 255).astype(np.intp)[::-1]  # row 0 of the picture = highest bin
    rows, columns = scale_factors(magnitudes.shape)
    return colour_table()[np.repeat(np.repeat(indices, rows, axis=0), columns, axis=1)]


def colour_scale(height: int) -> np.ndarray:
    """uint8 RGB ``[height, SCALE_WIDTH, 3]``: the colour map, bottom of :data:`DB_RANGE` at the bottom."""
    indices = np.round(np.linspace(255, 0, height)).astype(np.intp)
    return np.repeat(colour_table()[indices][:, np.newaxis, :], SCALE_WIDTH, axis=1)


def picture(spectrograms: Sequence[np.ndarray], reference: float) -> np.ndarray:
    """Panels stacked top to bottom with white lines between them, each with the colour scale at its right.

    Args:
        spectrograms: linear magnitudes ``[freqs, frames]`` each, all of one shape (top to bottom).
        reference: the magnitude drawn as 0 dB (:func:`reference_magnitude`).

    Returns:
        uint8 RGB ``[H, W, 3]``: ``H = n * freqs * a + (n - 1) * SEPARATOR``,
        ``W = frames * b + SEPARATOR + SCALE_WIDTH`` (``a, b``: :func:`scale_factors`).
    """
    if not spectrograms:
        raise ValueError("picture: no spectrogram to draw")
    if len({np.shape(spectrogram) for spectrogram in spectrograms}) != 1:
        raise ValueError(f"picture: the panels differ in shape: {[np.shape(s) for s in spectrograms]}")
    rows = []
    for spectrogram in spectrograms:
        panel = render_panel(spectrogram, reference)
        height, width = panel.shape[:2]
        line = np.broadcast_to(WHITE, (height, SEPARATOR, 3))
        rows.append(np.concatenate([panel, line, colour_scale(height)], axis=1))
    between = np.broadcast_to(WHITE, (SEPARATOR, rows[0].shape[1], 3))
    parts = [rows[0]]
    for row in rows[1:]:
        parts += [between, row]
    return np.ascontiguousarray(np.concatenate(parts, axis=0))


def encode_png(image: np.ndarray) -> bytes:
    """PNG file contents of a uint8 RGB picture ``[H, W, 3]`` (Pillow, which matplotlib depends on)."""
    from PIL import Image

    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"encode_png: expected uint8 [H, W, 3], got {image.dtype} {image.shape}")
    buffer = io.BytesIO()
    Image.fromarray(image, "RGB").save(buffer, format="PNG")
    return buffer.getvalue()
