"""Instrument and voice synthesis for the demo database, with numpy and scipy only.

- a sung-like voice: harmonic partials of a pitch contour with portamento and vibrato,
  coloured by vowel formants, shaped into phrases with rests and breaths;
- an accompaniment: bass line, chords (piano-like plucks, guitar-like strums or synthesizer
  pads), an optional arpeggio, drums made of filtered noise and pitched decays.

Every renderer takes a song plan (DemoSongs.SongPlan) and a numpy Generator and returns
float64 audio at the plan's sample rate.
"""

import functools
from typing import Dict, Optional, Protocol, Tuple, Union, overload

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
    t = time_axis(num_samples, sample_rate)
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
    t = time_axis(num_samples, sample_rate)
    k = np.arange(1, num_partials + 1, dtype=np.float32)[:, None]
    tone = np.zeros(num_samples, dtype=np.float32)
    for cents in (-detune_cents / 2, detune_cents / 2):
        partial_hz = frequency * 2.0 ** (cents / 1200.0) * k
        amplitudes = k**-tilt * (partial_hz < min(max_frequency, 0.45 * sample_rate))
        tone += np.sum(amplitudes * np.sin((2 * np.pi * partial_hz) * t), axis=0)
    return _read_only(
        (tone * _attack_release(num_samples, sample_rate, attack_seconds, release_seconds)).astype(np.float32)
    )


def time_axis(num_samples: int, sample_rate: float) -> np.ndarray:
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
