"""The demo database's singing voices: a sung melody with glides, scoops, vibrato, vowel
formants and breath, rendered with numpy (see DemoSongs.py for the melodies, DemoSynthesis.py
for the instruments and the shared synthesis helpers).
"""

import dataclasses
from typing import Sequence, Tuple

import numpy as np

from databases.DemoSynthesis import (
    FORMANT_BANDWIDTHS_HZ,
    VOWEL_FORMANTS,
    MelodyNote,
    SongTiming,
    band_noise,
    midi_to_hz,
    smooth,
    time_axis,
)


@dataclasses.dataclass(frozen=True)
class VoiceStyle:
    """Timbre and expression of a singer (all drawn per song)."""

    formant_scale: float  # 1.0 for male, ~1.15 for female formant frequencies
    vibrato_hz: float  # vibrato rate
    vibrato_cents: float  # vibrato depth (peak deviation)
    glide_seconds: float  # portamento time constant between notes
    tilt: float  # source spectral slope: partial k has amplitude k^-tilt
    breathiness: float  # level of breath noise relative to the voiced peak


def draw_voice_style(
    rng: np.random.Generator,
    singer: str,
    vibrato_cents: Tuple[float, float] = (20.0, 60.0),
    breathiness: Tuple[float, float] = (0.03, 0.07),
) -> VoiceStyle:
    """Random :class:`VoiceStyle` for a ``"female singer"`` or ``"male singer"``; vibrato depth
    (cents) and breathiness are drawn uniformly from the given ``(low, high)`` ranges."""
    return VoiceStyle(
        formant_scale=float(rng.uniform(1.1, 1.2)) if singer == "female singer" else 1.0,
        vibrato_hz=float(rng.uniform(5.0, 6.5)),
        vibrato_cents=float(rng.uniform(*vibrato_cents)),
        glide_seconds=float(rng.uniform(0.025, 0.06)),
        tilt=float(rng.uniform(0.9, 1.3)),
        breathiness=float(rng.uniform(*breathiness)),
    )


def render_voice(
    notes: Sequence[MelodyNote],
    plan: SongTiming,
    style: VoiceStyle,
    rng: np.random.Generator,
    num_partials: int = 24,
    max_frequency: float = 8000.0,
    hop: int = 64,
) -> np.ndarray:
    """Sung-like voice [samples] (mono, float64, ``plan.sample_rate`` Hz) singing ``notes``.

    Harmonic partials of a continuous pitch contour (portamento, occasional scoops, vibrato
    that sets in after each onset, small jitter), shaped by the vowel formants of each note
    (interpolated between notes), silent in the rests except for an inhale before each
    phrase and a little aspiration noise while singing. Peak about 1. Partial amplitudes
    are computed once per block of ``hop`` samples; partials above ``max_frequency`` Hz are muted.
    """
    sample_rate, num_samples = plan.sample_rate, plan.num_samples
    if not notes:
        return np.zeros(num_samples)
    note_index = _note_index_per_sample(notes, num_samples, sample_rate)
    held = _hold_previous(note_index)
    f0 = midi_to_hz(_pitch_contour(notes, held, plan, style, rng))
    cycles = np.cumsum(f0) / sample_rate
    phase = (2 * np.pi) * (cycles - np.floor(cycles)).astype(np.float32)  # wrapped to [0, 2 pi)
    # Partial amplitudes change slowly: compute them once per block of `hop` samples.
    control = np.minimum(np.arange(-(-num_samples // hop)) * hop + hop // 2, num_samples - 1)
    formants = _formant_tracks(notes, held[control], style.formant_scale, sample_rate / hop)
    partial_amplitudes = _partial_amplitudes(
        f0[control], formants, style.tilt, sample_rate, num_partials, max_frequency
    )
    voiced = _harmonic_sum(phase, partial_amplitudes, hop)
    amplitude = _voice_amplitude(notes, note_index, sample_rate)
    voiced *= amplitude / max(np.max(np.abs(voiced * amplitude)), 1e-9)
    return voiced + style.breathiness * _breath_noise(notes, amplitude, rng, num_samples, sample_rate)


def _note_index_per_sample(notes, num_samples, sample_rate):
    """Index of the sounding note per sample [samples] (int), -1 in rests."""
    index = np.full(num_samples, -1, dtype=np.int64)
    for i, note in enumerate(notes):
        index[int(note.start * sample_rate) : int((note.start + note.duration) * sample_rate)] = i
    return index


def _hold_previous(note_index):
    """Replace -1 (rests) by the previous note's index (the first note's before it)."""
    positions = np.where(note_index >= 0, np.arange(len(note_index)), 0)
    positions = np.maximum.accumulate(positions)
    held = note_index[positions]
    return np.where(held >= 0, held, note_index[note_index >= 0][0])


def _pitch_contour(notes, held, plan, style, rng):
    """Fractional MIDI pitch per sample [samples]: glides, scoops, vibrato and jitter."""
    sample_rate, num_samples = plan.sample_rate, len(held)
    target = np.array([note.midi for note in notes])[held]
    onsets = np.array([int(note.start * sample_rate) for note in notes])
    for onset in onsets:
        if rng.random() < 0.25:  # scoop: start a semitone low and slide up
            target[onset : onset + int(0.08 * sample_rate)] -= 1.0
    pitch = smooth(smooth(target, style.glide_seconds, sample_rate), style.glide_seconds, sample_rate)
    seconds_into_note = (np.arange(num_samples) - onsets[held]) / sample_rate
    vibrato_depth = style.vibrato_cents / 100.0 * np.clip((seconds_into_note - 0.15) / 0.35, 0.0, 1.0)
    t = time_axis(num_samples, sample_rate)
    vibrato = vibrato_depth * np.sin((2 * np.pi * style.vibrato_hz) * t + rng.uniform(0, 2 * np.pi))
    jitter = smooth(rng.standard_normal(num_samples), 0.05, sample_rate)
    jitter *= 0.04 / max(np.std(jitter), 1e-12)  # about 4 cents of slow random drift
    return pitch + vibrato + jitter


def _formant_tracks(notes, held, formant_scale, frame_rate):
    """Formant centre frequencies [3, frames] (Hz) and gains [3, frames], glided between vowels.

    ``held`` [frames] is the note index of each control frame, ``frame_rate`` frames per second.
    """
    frequencies = np.array([VOWEL_FORMANTS[note.vowel][0] for note in notes]).T * formant_scale
    gains = np.array([VOWEL_FORMANTS[note.vowel][1] for note in notes]).T
    glide = 0.04
    return (
        np.stack([smooth(row[held], glide, frame_rate) for row in frequencies]),
        np.stack([smooth(row[held], glide, frame_rate) for row in gains]),
    )


def _formant_gain(frequency, formants):
    """Spectral envelope at ``frequency`` (Hz, [..., frames], broadcast against the formant tracks).

    Sum of single-resonance magnitudes 1/sqrt(1 + ((f - F)/(B/2))^2) plus a small floor.
    """
    centres, gains = formants
    envelope = np.full(np.shape(frequency), 0.02)
    for centre, gain, bandwidth in zip(centres, gains, FORMANT_BANDWIDTHS_HZ):
        envelope += gain / np.sqrt(1.0 + ((frequency - centre) / (bandwidth / 2)) ** 2)
    return envelope


def _partial_amplitudes(f0, formants, tilt, sample_rate, num_partials, max_frequency):
    """Amplitudes [partials, frames] of partials k = 1..num_partials of ``f0`` [frames] (Hz).

    k^-tilt times the formant envelope at k * f0; zero above ``max_frequency`` or near Nyquist.
    """
    limit = min(max_frequency, 0.45 * sample_rate)
    partial_hz = np.arange(1, num_partials + 1)[:, None] * f0
    k = np.arange(1, num_partials + 1)[:, None]
    return k**-tilt * _formant_gain(partial_hz, formants) * (partial_hz < limit)


def _harmonic_sum(phase, partial_amplitudes, hop):
    """Sum over k of amplitude_k * sin(k * ``phase``) [samples].

    ``partial_amplitudes`` [partials, frames] hold one value per block of ``hop`` samples
    (slow enough that holding it over a block is inaudible). e^(i k phase) is built by
    repeated multiplication with e^(i phase), much cheaper than a sine per partial and
    accurate enough in single precision for a few dozen partials.
    """
    num_samples = len(phase)
    num_frames = partial_amplitudes.shape[1]
    padded_phase = np.zeros(num_frames * hop, dtype=np.float32)
    padded_phase[:num_samples] = phase
    rotor = (np.cos(padded_phase) + 1j * np.sin(padded_phase)).astype(np.complex64).reshape(num_frames, hop)
    partial = np.ones_like(rotor)
    voiced = np.zeros((num_frames, hop), dtype=np.float32)
    for amplitude in partial_amplitudes.astype(np.float32):
        partial *= rotor
        voiced += amplitude[:, None] * partial.imag
    return voiced.ravel()[:num_samples].astype(np.float64)


def _voice_amplitude(notes, note_index, sample_rate):
    """Loudness envelope [samples]: note velocities, short gaps after detached notes, smooth edges."""
    gate = np.where(note_index >= 0, np.array([note.velocity for note in notes])[note_index], 0.0)
    for i, note in enumerate(notes):
        next_is_adjacent = i + 1 < len(notes) and notes[i + 1].phrase == note.phrase
        if not note.legato and next_is_adjacent:
            end = int((note.start + note.duration) * sample_rate)
            gate[max(0, end - int(0.04 * sample_rate)) : end] = 0.0
    return smooth(smooth(gate, 0.02, sample_rate), 0.02, sample_rate)


def _breath_noise(notes, amplitude, rng, num_samples, sample_rate):
    """Breath noise [samples]: an inhale (~0.25 s) before each phrase plus soft aspiration."""
    noise = band_noise(rng, num_samples, sample_rate, low_hz=700.0, high_hz=6000.0)
    noise /= max(np.std(noise), 1e-9)
    envelope = 0.2 * amplitude
    phrase_starts = [note.start for i, note in enumerate(notes) if i == 0 or notes[i - 1].phrase != note.phrase]
    for start in phrase_starts:
        length = int(rng.uniform(0.2, 0.35) * sample_rate)
        end = int((start - 0.05) * sample_rate)
        if end - length > 0:
            envelope[end - length : end] += 0.6 * np.hanning(length)
    return noise * envelope
