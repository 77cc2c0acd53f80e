"""Instrument and voice synthesis for the demo database, with numpy and scipy only.

- a sung-like voice: harmonic partials of a pitch contour with portamento and vibrato,
  coloured by vowel formants, shaped into phrases with rests and breaths;
- an accompaniment: bass line, chords (piano-like plucks, guitar-like strums or synthesizer
  pads), an optional arpeggio, drums made of filtered noise and pitched decays.

Every renderer takes a song plan (DemoSongs.SongPlan) and a numpy Generator and returns
float64 audio at the plan's sample rate.
"""

import dataclasses
import functools
from typing import Dict, Optional, Protocol, Sequence, Tuple, Union, overload

import numpy as np
import scipy.signal

# Sung vowels: centre frequencies (Hz) and relative gains of the first three formants
# (adult male values; female singers get them scaled up).
VOWEL_FORMANTS = {
    "a": ((800.0, 1150.0, 2800.0), (1.0, 0.5, 0.25)),
    "e": ((400.0, 1700.0, 2600.0), (1.0, 0.4, 0.25)),
    "i": ((290.0, 2200.0, 3000.0), (1.0, 0.25, 0.3)),
    "o": ((450.0, 800.0, 2800.0), (1.0, 0.6, 0.15)),
    "u": ((325.0, 700.0, 2700.0), (1.0, 0.4, 0.1)),
}
FORMANT_BANDWIDTHS_HZ = (90.0, 110.0, 150.0)


class SongTiming(Protocol):
    """What the renderers read of a song plan: ``DemoSongs.SongPlan`` (which imports this module)."""

    @property
    def sample_rate(self) -> int: ...  # Hz
    @property
    def num_samples(self) -> int: ...
    @property
    def beat_seconds(self) -> float: ...
    @property
    def bar_seconds(self) -> float: ...
    @property
    def num_bars(self) -> int: ...
    def chord_pitch_classes(self, bar: int) -> Tuple[int, ...]: ...


class MelodyNote(Protocol):
    """What the voice reads of a note: ``DemoSongs.Note`` (seconds, fractional MIDI, velocity in (0, 1])."""

    @property
    def start(self) -> float: ...
    @property
    def duration(self) -> float: ...
    @property
    def midi(self) -> float: ...
    @property
    def vowel(self) -> str: ...  # a key of VOWEL_FORMANTS
    @property
    def velocity(self) -> float: ...
    @property
    def legato(self) -> bool: ...
    @property
    def phrase(self) -> int: ...


@overload
def midi_to_hz(midi: float) -> np.float64: ...
@overload
def midi_to_hz(midi: np.ndarray) -> np.ndarray: ...
def midi_to_hz(midi: Union[float, np.ndarray]) -> Union[np.float64, np.ndarray]:
    """Frequency in Hz of (fractional) MIDI pitch numbers (69 = A4 = 440 Hz): an np.float64 for a
    number, a float64 array of the same shape for an array."""
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


def smooth(signal: np.ndarray, seconds: float, sample_rate: float) -> np.ndarray:
    """One-pole low-pass of a control signal [samples] at ``sample_rate`` Hz (samples or control
    frames per second) with time constant ``seconds``; returns [samples].

    Starts settled at ``signal[0]`` so that there is no ramp from zero at the beginning.
    """
    coefficient = 1.0 - np.exp(-1.0 / (seconds * sample_rate))
    b, a = [coefficient], [1.0, coefficient - 1.0]
    initial = scipy.signal.lfilter_zi(b, a) * signal[0]
    return scipy.signal.lfilter(b, a, signal, zi=initial)[0]


def pan(mono: np.ndarray, position: float) -> np.ndarray:
    """Constant-power panning of ``mono`` [samples] to stereo [samples, 2].

    ``position`` in [-1, 1]: -1 is hard left, 0 centre, 1 hard right.
    """
    angle = (position + 1.0) * np.pi / 4.0
    return np.stack([np.cos(angle) * mono, np.sin(angle) * mono], axis=1)


def add_at(buffer: np.ndarray, start: int, segment: np.ndarray) -> None:
    """Add ``segment`` into ``buffer`` (same trailing shape) from sample ``start``, cut at the end."""
    if start >= len(buffer):
        return
    length = min(len(segment), len(buffer) - start)
    buffer[start : start + length] += segment[:length]


def band_noise(
    rng: np.random.Generator,
    num_samples: int,
    sample_rate: int,
    low_hz: Optional[float] = None,
    high_hz: Optional[float] = None,
) -> np.ndarray:
    """Gaussian noise [samples] at ``sample_rate`` Hz filtered by a 4th-order Butterworth band/high/low
    pass (Hz); one of ``low_hz`` and ``high_hz`` must be given."""
    noise = rng.standard_normal(num_samples)
    nyquist_limit = 0.45 * sample_rate
    if low_hz is not None and high_hz is not None:
        sos = scipy.signal.butter(
            2, [low_hz, min(high_hz, nyquist_limit)], btype="bandpass", fs=sample_rate, output="sos"
        )
    elif low_hz is not None:
        sos = scipy.signal.butter(4, min(low_hz, nyquist_limit), btype="highpass", fs=sample_rate, output="sos")
    else:
        sos = scipy.signal.butter(4, high_hz, btype="lowpass", fs=sample_rate, output="sos")
    return scipy.signal.sosfilt(sos, noise)


# Tones are pure functions of their arguments and songs repeat the same notes (chord loops,
# bass patterns, arpeggios), so they are memoised; the returned arrays are read-only.
# They are computed in float32, whose sine/exp are several times faster than float64's;
# the phase error stays below a few hundredths of a radian for tones of a few seconds.
@functools.lru_cache(maxsize=128)
def decaying_tone(
    frequency: float,
    seconds: float,
    sample_rate: int,
    *,
    num_partials: int = 8,
    tilt: float = 1.0,
    decay_seconds: float = 1.0,
    attack_seconds: float = 0.003,
    release_seconds: float = 0.03,
    inharmonicity: float = 0.0,
    max_frequency: float = 10000.0,
) -> np.ndarray:
    """A plucked/struck harmonic tone [samples] (float32, read-only) at ``sample_rate`` Hz: ``seconds``
    plus a release; ``frequency`` and ``max_frequency`` in Hz.

    Partial k (all starting in sine phase) has amplitude k^-tilt and decays exponentially,
    higher partials faster (time constant ``decay_seconds / sqrt(k)``); ``inharmonicity``
    stretches partials like a stiff string. The tone is cut after ``seconds`` (at most four
    time constants, -35 dB) with a cosine release of ``release_seconds``.
    """
    seconds = min(seconds, 4.0 * decay_seconds)
    num_samples = int((seconds + release_seconds) * sample_rate)
    t = _time_axis(num_samples, sample_rate)
    k = np.arange(1, num_partials + 1, dtype=np.float32)[:, None]
    partial_hz = frequency * k * np.sqrt(1.0 + inharmonicity * k**2)
    amplitudes = k**-tilt * (partial_hz < min(max_frequency, 0.45 * sample_rate))
    envelopes = np.exp(t * (-np.sqrt(k) / decay_seconds))
    tone = np.sum(amplitudes * envelopes * np.sin((2 * np.pi * partial_hz) * t), axis=0)
    return _read_only(
        (tone * _attack_release(num_samples, sample_rate, attack_seconds, release_seconds)).astype(np.float32)
    )


@functools.lru_cache(maxsize=32)
def sustained_tone(
    frequency: float,
    seconds: float,
    sample_rate: int,
    *,
    num_partials: int = 6,
    tilt: float = 1.5,
    detune_cents: float = 7.0,
    attack_seconds: float = 0.2,
    release_seconds: float = 0.3,
    max_frequency: float = 8000.0,
) -> np.ndarray:
    """A pad-like tone [samples] (float32, read-only) at ``sample_rate`` Hz: two detuned harmonic
    oscillators around ``frequency`` Hz, partials up to ``max_frequency`` Hz.

    Lasts ``seconds`` plus ``release_seconds`` (cosine release) after a linear attack;
    partial k has amplitude k^-tilt.
    """
    num_samples = int((seconds + release_seconds) * sample_rate)
    t = _time_axis(num_samples, sample_rate)
    k = np.arange(1, num_partials + 1, dtype=np.float32)[:, None]
    tone = np.zeros(num_samples, dtype=np.float32)
    for cents in (-detune_cents / 2, detune_cents / 2):
        partial_hz = frequency * 2.0 ** (cents / 1200.0) * k
        amplitudes = k**-tilt * (partial_hz < min(max_frequency, 0.45 * sample_rate))
        tone += np.sum(amplitudes * np.sin((2 * np.pi * partial_hz) * t), axis=0)
    return _read_only(
        (tone * _attack_release(num_samples, sample_rate, attack_seconds, release_seconds)).astype(np.float32)
    )


def _time_axis(num_samples, sample_rate):
    """Sample times in seconds [samples], float32."""
    return np.arange(num_samples, dtype=np.float32) / np.float32(sample_rate)


def _read_only(array):
    array.flags.writeable = False
    return array


def _attack_release(num_samples, sample_rate, attack_seconds, release_seconds):
    """Gain curve [samples]: linear fade-in over the attack, cosine fade-out over the release."""
    gain = np.ones(num_samples)
    attack = min(num_samples, max(1, int(attack_seconds * sample_rate)))
    gain[:attack] = np.linspace(0.0, 1.0, attack)
    release = min(num_samples, max(1, int(release_seconds * sample_rate)))
    gain[num_samples - release :] *= 0.5 * (1 + np.cos(np.linspace(0, np.pi, release)))
    return gain


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
    t = _time_axis(num_samples, sample_rate)
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


def render_bass(plan: SongTiming, rng: np.random.Generator) -> np.ndarray:
    """Bass line [samples] (mono, float64, ``plan.sample_rate`` Hz): chord roots (sometimes fifths)
    in a per-song eighth-note pattern."""
    patterns = ((0, 4), (0, 3, 4, 6), (0, 2, 4, 6), (0, 4, 6), (0, 3, 6))
    pattern = patterns[int(rng.integers(len(patterns)))]
    decay = float(rng.uniform(0.4, 0.9))
    eighth = plan.beat_seconds / 2
    bass = np.zeros(plan.num_samples)
    for bar in range(plan.num_bars):
        root, _, fifth = plan.chord_pitch_classes(bar)
        for i, step in enumerate(pattern):
            next_step = pattern[i + 1] if i + 1 < len(pattern) else 8
            pitch_class = fifth if i > 0 and rng.random() < 0.2 else root
            midi = 36 + (pitch_class - 36) % 12  # C2..B2
            tone = decaying_tone(
                float(midi_to_hz(midi)),
                0.9 * (next_step - step) * eighth,
                plan.sample_rate,
                num_partials=8,
                tilt=1.4,
                decay_seconds=decay,
                attack_seconds=0.005,
            )
            start = int((bar * plan.bar_seconds + step * eighth) * plan.sample_rate)
            add_at(bass, start, float(rng.uniform(0.8, 1.0)) * tone)
    return bass


def render_chords(plan: SongTiming, rng: np.random.Generator, kind: str) -> np.ndarray:
    """Chord track [samples, 2] (float64, ``plan.sample_rate`` Hz) in close position (G3..F#4) for ``kind``.

    ``kind`` is ``"piano"`` (plucks on a per-song rhythm), ``"acoustic guitar"`` (strums with
    the chord tones spread by a few ms) or ``"synthesizer"`` (a pad sustained over each bar).
    Root, third and fifth are panned slightly apart.
    """
    voices = np.zeros((3, plan.num_samples))  # root, third, fifth (panned apart at the end)
    rhythms = ((0,), (0, 4), (0, 3, 6), (0, 2, 4, 6))
    rhythm = (0,) if kind == "synthesizer" else rhythms[int(rng.integers(len(rhythms)))]
    eighth = plan.beat_seconds / 2
    for bar in range(plan.num_bars):
        chord = [55 + (pc - 55) % 12 for pc in plan.chord_pitch_classes(bar)]
        for i, step in enumerate(rhythm):
            length = ((rhythm[i + 1] if i + 1 < len(rhythm) else 8) - step) * eighth
            bar_start = bar * plan.bar_seconds + step * eighth
            for voice_number, midi in enumerate(chord):
                tone = _chord_tone(kind, float(midi_to_hz(midi)), length, plan.sample_rate)
                delay = 0.012 * voice_number if kind == "acoustic guitar" else 0.0
                add_at(voices[voice_number], int((bar_start + delay) * plan.sample_rate), tone)
    return sum(pan(voice, 0.3 * (voice_number - 1)) for voice_number, voice in enumerate(voices))


def _chord_tone(kind, frequency, seconds, sample_rate):
    """One chord note [samples] in the timbre of ``kind`` (see :func:`render_chords`)."""
    if kind == "synthesizer":
        return sustained_tone(frequency, seconds, sample_rate, num_partials=6, tilt=1.6)
    if kind == "acoustic guitar":
        return decaying_tone(
            frequency, seconds, sample_rate, num_partials=10, tilt=0.9, decay_seconds=0.7, inharmonicity=1e-4
        )
    return decaying_tone(
        frequency, seconds, sample_rate, num_partials=8, tilt=1.2, decay_seconds=1.2, inharmonicity=4e-4
    )


def render_arpeggio(plan: SongTiming, rng: np.random.Generator) -> np.ndarray:
    """Synthesizer arpeggio [samples] (mono, float64, ``plan.sample_rate`` Hz): chord tones an octave
    up, in eighth notes."""
    arpeggio = np.zeros(plan.num_samples)
    eighth = plan.beat_seconds / 2
    order = (0, 1, 2, 1) if rng.random() < 0.5 else (0, 1, 2, 3)
    for bar in range(plan.num_bars):
        chord = [67 + (pc - 67) % 12 for pc in plan.chord_pitch_classes(bar)]
        chord.append(chord[0] + 12)
        for step in range(8):
            midi = chord[order[step % len(order)]]
            tone = decaying_tone(
                float(midi_to_hz(midi)), 0.9 * eighth, plan.sample_rate, num_partials=5, tilt=1.0, decay_seconds=0.25
            )
            add_at(arpeggio, int((bar * plan.bar_seconds + step * eighth) * plan.sample_rate), tone)
    return arpeggio


def make_drum_kit(sample_rate: int, rng: np.random.Generator) -> Dict[str, np.ndarray]:
    """One-shot drum sounds (mono [samples], float64, peak 1) at ``sample_rate`` Hz: kick, snare,
    closed and open hi-hat.

    Kick: sine with a falling pitch (150 -> 45 Hz) plus a click; snare: band-passed noise
    plus a 190 Hz body; hi-hats: high-passed noise with short/long decays.
    """

    def seconds(duration):
        return np.arange(int(duration * sample_rate)) / sample_rate

    t = seconds(0.45)
    kick_hz = 45.0 + 105.0 * np.exp(-t / 0.04)
    kick = np.sin(2 * np.pi * np.cumsum(kick_hz) / sample_rate) * np.exp(-t / 0.18)
    kick += 0.3 * rng.standard_normal(len(t)) * np.exp(-t / 0.004)
    t = seconds(0.3)
    snare = band_noise(rng, len(t), sample_rate, low_hz=1000.0, high_hz=7000.0) * np.exp(-t / 0.09)
    snare = snare / np.max(np.abs(snare)) + 0.6 * np.sin(2 * np.pi * 190.0 * t) * np.exp(-t / 0.06)
    t = seconds(0.12)
    closed_hat = band_noise(rng, len(t), sample_rate, low_hz=7000.0) * np.exp(-t / 0.025)
    t = seconds(0.4)
    open_hat = band_noise(rng, len(t), sample_rate, low_hz=7000.0) * np.exp(-t / 0.15)
    kit = {"kick": kick, "snare": snare, "closed_hat": closed_hat, "open_hat": open_hat}
    return {name: sound / np.max(np.abs(sound)) for name, sound in kit.items()}


def render_drums(plan: SongTiming, rng: np.random.Generator) -> np.ndarray:
    """Drum track [samples, 2] (float64, ``plan.sample_rate`` Hz) on a 16-step grid per bar.

    Kick on 1 and 3 (plus a per-song pickup), snare on 2 and 4 with a fill every fourth bar,
    hi-hats on eighths or sixteenths with accents, an open hi-hat at the end of some bars.
    """
    kit = make_drum_kit(plan.sample_rate, rng)
    parts = {name: np.zeros(plan.num_samples) for name in kit}
    sixteenth = plan.beat_seconds / 4
    kick_steps = (0, 8) + ((int(rng.choice([6, 10, 14])),) if rng.random() < 0.7 else ())
    hat_steps = range(0, 16, 1 if rng.random() < 0.4 else 2)
    for bar in range(plan.num_bars):
        hits = [("kick", s, 1.0) for s in kick_steps] + [("snare", s, 0.9) for s in (4, 12)]
        if bar % 4 == 3:
            hits += [("snare", s, 0.5 + 0.1 * (s - 13)) for s in (13, 14, 15)]
        hits += [("closed_hat", s, 0.6 if s % 4 == 0 else 0.35) for s in hat_steps if not (bar % 2 and s == 14)]
        if bar % 2:
            hits.append(("open_hat", 14, 0.4))
        for name, step, velocity in hits:
            start = int((bar * plan.bar_seconds + step * sixteenth) * plan.sample_rate)
            add_at(parts[name], start, velocity * float(rng.uniform(0.85, 1.0)) * kit[name])
    positions = {"kick": 0.0, "snare": -0.1, "closed_hat": 0.35, "open_hat": 0.35}
    return sum(pan(parts[name], positions[name]) for name in parts)
