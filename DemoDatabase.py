"""A small procedural multitrack database in the folder layouts of DSD100, MedleyDB, CCMixter and iKala.

The demo lets the whole experiment run anywhere without downloads, through exactly the code
path of the paper experiment (44.1 kHz stereo files, resampling, down-mixing, stem sums,
channel splits). Every song is synthesised with numpy/scipy from a seed:

- a sung-like voice: harmonic partials of a pitch contour with portamento and vibrato,
  coloured by vowel formants, shaped into phrases with rests and breaths;
- an accompaniment in the same key and tempo: bass line, chords (piano-like plucks,
  guitar-like strums or synthesizer pads), an optional arpeggio, drums made of filtered
  noise and pitched decays.

Voice and accompaniment instruments are panned differently, so the two channels differ and
the down-mix matters. All audio is 44.1 kHz (``sample_rate``) stereo: 32-bit float WAV wherever
files must add up exactly, 16-bit PCM for iKala (as in the real distribution).

Generation is idempotent: a marker file ``demo_database.json`` in the target folder records the
parameters and is marked complete only after the last audio file has been written (atomically);
a later call with the same parameters returns at once.

Command line: ``python DemoDatabase.py TARGET_DIR [--seed N]`` prints the four database roots.
"""

import argparse
import dataclasses
import functools
import json
import logging
import os
import shutil
import sys

import numpy as np
import scipy.signal
from tqdm import tqdm

import Utils

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1  # bump whenever the generated audio or layout changes
MARKER_NAME = "demo_database.json"
DATABASE_NAMES = ("DSD100", "MedleyDB", "CCMixter", "iKala")

SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
# Chord roots of four-bar loops as 0-based scale degrees (chords are stacked scale thirds).
PROGRESSIONS = {"major": ((0, 4, 5, 3), (5, 3, 0, 4), (0, 5, 3, 4), (0, 3, 0, 4)),
                "minor": ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 5, 3, 4))}
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
# MIDI ranges of the melody's centre per singer (female around E4-B4, male an octave lower).
SINGER_CENTRES = {"female singer": (64, 71), "male singer": (52, 59)}

# Invented names, alphabetical so that folder order follows the generation order.
ARTISTS = ("Ada Brenner", "Bruno Castell", "Clara Denholm", "Dario Ellis", "Edda Farrow",
           "Felix Garner", "Greta Holm", "Hugo Ingram", "Iris Jansen", "Jonas Keller",
           "Kira Lund", "Leo Marsh", "Mira Novak", "Nils Oberg", "Olga Pratt", "Paul Quist")
TITLE_ADJECTIVES = ("Silver", "Quiet", "Golden", "Hollow", "Paper", "Velvet", "Distant",
                    "Electric", "Winter", "Crimson", "Gentle", "Northern")
TITLE_NOUNS = ("Morning", "Harbour", "Lanterns", "River", "Echoes", "Garden", "Satellite",
               "Window", "Tide", "Meadow", "Signal", "Streets")
IKALA_FIRST_ID = 10161


@dataclasses.dataclass(frozen=True)
class SongPlan:
    """Key, tempo, chords and length shared by all parts of one song.

    Attributes:
        sample_rate: Hz.
        num_samples: song length in samples.
        tempo_bpm: beats per minute (four beats per bar).
        tonic: pitch class of the key's tonic (0 = C).
        scale: semitone offsets of the scale degrees from the tonic.
        progression: chord root of each bar of the loop, as 0-based scale degrees.
    """

    sample_rate: int
    num_samples: int
    tempo_bpm: float
    tonic: int
    scale: tuple
    progression: tuple

    @property
    def beat_seconds(self):
        return 60.0 / self.tempo_bpm

    @property
    def bar_seconds(self):
        return 4 * self.beat_seconds

    @property
    def num_bars(self):
        return int(np.ceil(self.num_samples / self.sample_rate / self.bar_seconds))

    def degree_to_pitch_class(self, degree):
        """Pitch class (0-11) of a 0-based scale degree (any integer)."""
        return (self.tonic + self.scale[degree % len(self.scale)]) % 12

    def chord_pitch_classes(self, bar):
        """Pitch classes (root, third, fifth) of the chord in ``bar``."""
        root = self.progression[bar % len(self.progression)]
        return tuple(self.degree_to_pitch_class(root + step) for step in (0, 2, 4))

    def scale_pitches(self, low, high):
        """MIDI pitches of the key's scale in [low, high], ascending."""
        pitch_classes = {self.degree_to_pitch_class(d) for d in range(len(self.scale))}
        return [p for p in range(low, high + 1) if p % 12 in pitch_classes]


@dataclasses.dataclass(frozen=True)
class Note:
    """One melody note. Times in seconds, pitch in (fractional) MIDI, velocity in (0, 1]."""

    start: float
    duration: float
    midi: float
    vowel: str = "a"
    velocity: float = 1.0
    legato: bool = True  # glide into the next note without a gap
    phrase: int = 0


@dataclasses.dataclass(frozen=True)
class Stem:
    """One rendered track: ``audio`` [samples, 2] float64, ``instrument`` a MedleyDB label."""

    name: str
    instrument: str
    audio: np.ndarray
    is_voice: bool


# ----------------------------------------------------------------------------------------
# Signal helpers
# ----------------------------------------------------------------------------------------

def midi_to_hz(midi):
    """Frequency in Hz of (fractional) MIDI pitch numbers (69 = A4 = 440 Hz)."""
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


def smooth(signal, seconds, sample_rate):
    """One-pole low-pass of a control signal [samples] with time constant ``seconds``.

    Starts settled at ``signal[0]`` so that there is no ramp from zero at the beginning.
    """
    coefficient = 1.0 - np.exp(-1.0 / (seconds * sample_rate))
    b, a = [coefficient], [1.0, coefficient - 1.0]
    initial = scipy.signal.lfilter_zi(b, a) * signal[0]
    return scipy.signal.lfilter(b, a, signal, zi=initial)[0]


def pan(mono, position):
    """Constant-power panning of ``mono`` [samples] to stereo [samples, 2].

    ``position`` in [-1, 1]: -1 is hard left, 0 centre, 1 hard right.
    """
    angle = (position + 1.0) * np.pi / 4.0
    return np.stack([np.cos(angle) * mono, np.sin(angle) * mono], axis=1)


def add_at(buffer, start, segment):
    """Add ``segment`` into ``buffer`` (same trailing shape) from sample ``start``, cut at the end."""
    if start >= len(buffer):
        return
    length = min(len(segment), len(buffer) - start)
    buffer[start:start + length] += segment[:length]


def band_noise(rng, num_samples, sample_rate, low_hz=None, high_hz=None):
    """Gaussian noise [samples] filtered by a 4th-order Butterworth band/high/low pass (Hz)."""
    noise = rng.standard_normal(num_samples)
    nyquist_limit = 0.45 * sample_rate
    if low_hz is not None and high_hz is not None:
        sos = scipy.signal.butter(2, [low_hz, min(high_hz, nyquist_limit)], btype="bandpass",
                                  fs=sample_rate, output="sos")
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
def decaying_tone(frequency, seconds, sample_rate, *, num_partials=8, tilt=1.0, decay_seconds=1.0,
                  attack_seconds=0.003, release_seconds=0.03, inharmonicity=0.0, max_frequency=10000.0):
    """A plucked/struck harmonic tone [samples] at ``sample_rate`` Hz: ``seconds`` plus a release.

    Partial k (all starting in sine phase) has amplitude k^-tilt and decays exponentially,
    higher partials faster (time constant ``decay_seconds / sqrt(k)``); ``inharmonicity``
    stretches partials like a stiff string. The tone is cut after ``seconds`` (at most four
    time constants, -35 dB) with a cosine release of ``release_seconds``.
    """
    seconds = min(seconds, 4.0 * decay_seconds)
    num_samples = int((seconds + release_seconds) * sample_rate)
    t = _time_axis(num_samples, sample_rate)
    k = np.arange(1, num_partials + 1, dtype=np.float32)[:, None]
    partial_hz = frequency * k * np.sqrt(1.0 + inharmonicity * k ** 2)
    amplitudes = k ** -tilt * (partial_hz < min(max_frequency, 0.45 * sample_rate))
    envelopes = np.exp(t * (-np.sqrt(k) / decay_seconds))
    tone = np.sum(amplitudes * envelopes * np.sin((2 * np.pi * partial_hz) * t), axis=0)
    return _read_only((tone * _attack_release(num_samples, sample_rate, attack_seconds, release_seconds))
                      .astype(np.float32))


@functools.lru_cache(maxsize=32)
def sustained_tone(frequency, seconds, sample_rate, *, num_partials=6, tilt=1.5, detune_cents=7.0,
                   attack_seconds=0.2, release_seconds=0.3, max_frequency=8000.0):
    """A pad-like tone [samples] at ``sample_rate`` Hz: two detuned harmonic oscillators.

    Lasts ``seconds`` plus ``release_seconds`` (cosine release) after a linear attack;
    partial k has amplitude k^-tilt.
    """
    num_samples = int((seconds + release_seconds) * sample_rate)
    t = _time_axis(num_samples, sample_rate)
    k = np.arange(1, num_partials + 1, dtype=np.float32)[:, None]
    tone = np.zeros(num_samples, dtype=np.float32)
    for cents in (-detune_cents / 2, detune_cents / 2):
        partial_hz = frequency * 2.0 ** (cents / 1200.0) * k
        amplitudes = k ** -tilt * (partial_hz < min(max_frequency, 0.45 * sample_rate))
        tone += np.sum(amplitudes * np.sin((2 * np.pi * partial_hz) * t), axis=0)
    return _read_only((tone * _attack_release(num_samples, sample_rate, attack_seconds, release_seconds))
                      .astype(np.float32))


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
    gain[num_samples - release:] *= 0.5 * (1 + np.cos(np.linspace(0, np.pi, release)))
    return gain


# ----------------------------------------------------------------------------------------
# Song plan and melody
# ----------------------------------------------------------------------------------------

def draw_song_plan(rng, seconds, sample_rate):
    """Random key, scale, tempo and chord loop for a song of ``seconds`` at ``sample_rate`` Hz."""
    mode = str(rng.choice(sorted(SCALES)))
    progressions = PROGRESSIONS[mode]
    return SongPlan(sample_rate=sample_rate,
                    num_samples=int(round(seconds * sample_rate)),
                    tempo_bpm=float(rng.uniform(84, 128)),
                    tonic=int(rng.integers(12)),
                    scale=SCALES[mode],
                    progression=progressions[int(rng.integers(len(progressions)))])


def compose_melody(plan, rng, centre_midi, span=8):
    """A melody in the song's scale around ``centre_midi`` (+-``span`` semitones).

    Phrases of 3-8 beats separated by rests of 1.5-4 beats (plus a rest before the first
    phrase and one of at least 0.6 s after the last), note lengths of 1/2 to 2 beats, a random walk over the scale
    that prefers chord tones on strong beats. Returns a list of :class:`Note` (seconds).
    """
    beat = plan.beat_seconds
    total_beats = plan.num_samples / plan.sample_rate / beat
    pitches = plan.scale_pitches(centre_midi - span, centre_midi + span)
    index = len(pitches) // 2
    position = min(float(rng.choice([1.0, 2.0, 3.0, 4.0])), 0.25 * total_beats)
    last_beat = total_beats - max(0.75, 0.6 / beat)
    notes, phrase = [], 0
    while last_beat - position >= 1.0:
        phrase_end = min(position + float(rng.choice([3.0, 4.0, 6.0, 8.0])), last_beat)
        while phrase_end - position >= 0.25:
            duration = min(float(rng.choice([0.5, 1.0, 1.0, 1.5, 2.0])), phrase_end - position)
            index = int(np.clip(index + rng.choice([-2, -1, -1, 0, 1, 1, 2, 3, -3]), 0, len(pitches) - 1))
            if position % 2 == 0 and rng.random() < 0.6:
                index = _nearest_chord_tone(pitches, index, plan.chord_pitch_classes(int(position // 4)))
            notes.append(Note(start=position * beat, duration=duration * beat, midi=float(pitches[index]),
                              vowel=str(rng.choice(sorted(VOWEL_FORMANTS))),
                              velocity=float(rng.uniform(0.7, 1.0)), legato=bool(rng.random() < 0.7),
                              phrase=phrase))
            position += duration
        position += float(rng.choice([1.5, 2.0, 3.0, 4.0]))
        phrase += 1
    return notes


def _nearest_chord_tone(pitches, index, chord_pitch_classes):
    """Index into ``pitches`` of the chord tone closest to ``pitches[index]`` (itself if none)."""
    candidates = [i for i, p in enumerate(pitches) if p % 12 in chord_pitch_classes]
    return min(candidates, key=lambda i: abs(i - index)) if candidates else index


def harmony_line(notes, plan, every_other_phrase=True):
    """Backing-vocal notes a diatonic third above ``notes`` on "oo"/"ah", on every other phrase."""
    pitches = plan.scale_pitches(0, 127)
    harmony = []
    for note in notes:
        if every_other_phrase and note.phrase % 2 == 0:
            continue
        upper = pitches[min(pitches.index(int(note.midi)) + 2, len(pitches) - 1)]
        harmony.append(dataclasses.replace(note, midi=float(upper), vowel="u" if note.phrase % 4 == 1 else "a",
                                           velocity=0.8 * note.velocity))
    return harmony


# ----------------------------------------------------------------------------------------
# Voice
# ----------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class VoiceStyle:
    """Timbre and expression of a singer (all drawn per song)."""

    formant_scale: float      # 1.0 for male, ~1.15 for female formant frequencies
    vibrato_hz: float         # vibrato rate
    vibrato_cents: float      # vibrato depth (peak deviation)
    glide_seconds: float      # portamento time constant between notes
    tilt: float               # source spectral slope: partial k has amplitude k^-tilt
    breathiness: float        # level of breath noise relative to the voiced peak


def draw_voice_style(rng, singer):
    """Random :class:`VoiceStyle` for a ``"female singer"`` or ``"male singer"``."""
    return VoiceStyle(formant_scale=float(rng.uniform(1.1, 1.2)) if singer == "female singer" else 1.0,
                      vibrato_hz=float(rng.uniform(5.0, 6.5)),
                      vibrato_cents=float(rng.uniform(20.0, 60.0)),
                      glide_seconds=float(rng.uniform(0.025, 0.06)),
                      tilt=float(rng.uniform(0.9, 1.3)),
                      breathiness=float(rng.uniform(0.03, 0.07)))


def render_voice(notes, plan, style, rng, num_partials=24, max_frequency=8000.0, hop=64):
    """Sung-like voice [samples] (mono, ``plan.sample_rate`` Hz) singing ``notes``.

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
    partial_amplitudes = _partial_amplitudes(f0[control], formants, style.tilt, sample_rate, num_partials,
                                             max_frequency)
    voiced = _harmonic_sum(phase, partial_amplitudes, hop)
    amplitude = _voice_amplitude(notes, note_index, sample_rate)
    voiced *= amplitude / max(np.max(np.abs(voiced * amplitude)), 1e-9)
    return voiced + style.breathiness * _breath_noise(notes, amplitude, rng, num_samples, sample_rate)


def _note_index_per_sample(notes, num_samples, sample_rate):
    """Index of the sounding note per sample [samples] (int), -1 in rests."""
    index = np.full(num_samples, -1, dtype=np.int64)
    for i, note in enumerate(notes):
        index[int(note.start * sample_rate):int((note.start + note.duration) * sample_rate)] = i
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
    for note, onset in zip(notes, onsets):
        if rng.random() < 0.25:  # scoop: start a semitone low and slide up
            target[onset:onset + int(0.08 * sample_rate)] -= 1.0
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
    return (np.stack([smooth(row[held], glide, frame_rate) for row in frequencies]),
            np.stack([smooth(row[held], glide, frame_rate) for row in gains]))


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
    return k ** -tilt * _formant_gain(partial_hz, formants) * (partial_hz < limit)


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
            gate[max(0, end - int(0.04 * sample_rate)):end] = 0.0
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
            envelope[end - length:end] += 0.6 * np.hanning(length)
    return noise * envelope


# ----------------------------------------------------------------------------------------
# Accompaniment
# ----------------------------------------------------------------------------------------

def render_bass(plan, rng):
    """Bass line [samples] (mono): chord roots (sometimes fifths) in a per-song eighth-note pattern."""
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
            tone = decaying_tone(float(midi_to_hz(midi)), 0.9 * (next_step - step) * eighth, plan.sample_rate,
                                 num_partials=8, tilt=1.4, decay_seconds=decay, attack_seconds=0.005)
            start = int((bar * plan.bar_seconds + step * eighth) * plan.sample_rate)
            add_at(bass, start, float(rng.uniform(0.8, 1.0)) * tone)
    return bass


def render_chords(plan, rng, kind):
    """Chord track [samples, 2] in close position (G3..F#4) for ``kind``.

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
        return decaying_tone(frequency, seconds, sample_rate, num_partials=10, tilt=0.9,
                             decay_seconds=0.7, inharmonicity=1e-4)
    return decaying_tone(frequency, seconds, sample_rate, num_partials=8, tilt=1.2,
                         decay_seconds=1.2, inharmonicity=4e-4)


def render_arpeggio(plan, rng):
    """Synthesizer arpeggio [samples] (mono): chord tones an octave up, in eighth notes."""
    arpeggio = np.zeros(plan.num_samples)
    eighth = plan.beat_seconds / 2
    order = (0, 1, 2, 1) if rng.random() < 0.5 else (0, 1, 2, 3)
    for bar in range(plan.num_bars):
        chord = [67 + (pc - 67) % 12 for pc in plan.chord_pitch_classes(bar)]
        chord.append(chord[0] + 12)
        for step in range(8):
            midi = chord[order[step % len(order)]]
            tone = decaying_tone(float(midi_to_hz(midi)), 0.9 * eighth, plan.sample_rate,
                                 num_partials=5, tilt=1.0, decay_seconds=0.25)
            add_at(arpeggio, int((bar * plan.bar_seconds + step * eighth) * plan.sample_rate), tone)
    return arpeggio


def make_drum_kit(sample_rate, rng):
    """One-shot drum sounds (mono, peak 1) at ``sample_rate`` Hz: kick, snare, closed and open hi-hat.

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


def render_drums(plan, rng):
    """Drum track [samples, 2] on a 16-step grid per bar.

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


# ----------------------------------------------------------------------------------------
# Arrangement
# ----------------------------------------------------------------------------------------

def render_song(plan, rng, *, singer=None, backing_vocals=False, chords="piano", arpeggio=False,
                lead_instrument=False):
    """All stems of one song, mixed to plausible relative levels.

    Args:
        plan: the song's :class:`SongPlan`.
        rng: ``np.random.Generator`` for every random choice of the song.
        singer: ``"female singer"``, ``"male singer"`` or None (instrumental).
        backing_vocals: add a harmony voice (MedleyDB label ``"vocalists"``).
        chords: chord instrument, see :func:`render_chords`.
        arpeggio: add a synthesizer arpeggio.
        lead_instrument: add an instrumental melody (``"clean electric guitar"``).

    Returns:
        List of :class:`Stem` with audio [samples, 2] at ``plan.sample_rate`` Hz, not yet
        peak-normalised (see :func:`peak_normalise`).
    """
    stems = [Stem("bass", "electric bass", pan(render_bass(plan, rng), float(rng.uniform(-0.05, 0.05))), False),
             Stem("drums", "drum set", render_drums(plan, rng), False),
             Stem("chords", chords, render_chords(plan, rng, chords), False)]
    side = float(rng.choice([-1.0, 1.0]))
    if arpeggio:
        stems.append(Stem("arpeggio", "synthesizer", pan(render_arpeggio(plan, rng), -0.5 * side), False))
    if lead_instrument:
        notes = compose_melody(plan, rng, centre_midi=int(rng.integers(64, 72)))
        lead = np.zeros(plan.num_samples)
        for note in notes:
            tone = decaying_tone(float(midi_to_hz(note.midi)), note.duration, plan.sample_rate,
                                 num_partials=10, tilt=1.1, decay_seconds=0.8)
            add_at(lead, int(note.start * plan.sample_rate), note.velocity * tone)
        stems.append(Stem("lead", "clean electric guitar", pan(lead, 0.3 * side), False))
    if singer is not None:
        centre = int(rng.integers(*SINGER_CENTRES[singer]))
        notes = compose_melody(plan, rng, centre_midi=centre)
        voice = render_voice(notes, plan, draw_voice_style(rng, singer), rng)
        stems.append(Stem("vocals", singer, pan(voice, side * float(rng.uniform(0.08, 0.3))), True))
        if backing_vocals:
            backing = render_voice(harmony_line(notes, plan), plan, draw_voice_style(rng, singer), rng)
            stems.append(Stem("backing vocals", "vocalists", pan(backing, -0.4 * side), True))
    return _set_levels(stems, rng)


def _set_levels(stems, rng):
    """Scale each stem to a typical level relative to the others (RMS in dB, +-1.5 dB random)
    and fade the last 2000 samples out, so songs end without a click."""
    levels_db = {"vocals": 0.0, "backing vocals": -9.0, "bass": -4.0, "drums": -3.0, "chords": -7.0,
                 "arpeggio": -12.0, "lead": -3.0}
    leveled = []
    for stem in stems:
        rms = np.sqrt(np.mean(np.square(stem.audio)))
        audio = stem.audio * (10 ** ((levels_db[stem.name] + rng.uniform(-1.5, 1.5)) / 20) / max(rms, 1e-9))
        fade = min(2000, len(audio))
        audio[len(audio) - fade:] *= np.linspace(1.0, 0.0, fade)[:, None]
        leveled.append(dataclasses.replace(stem, audio=audio))
    return leveled


def peak_normalise(tracks, peak):
    """Scale all ``tracks`` (arrays of one shape) by one factor so that neither any track nor
    their sum exceeds ``peak``; returns float32 copies (sums still hold up to rounding)."""
    loudest = max([np.max(np.abs(sum(tracks)))] + [np.max(np.abs(t)) for t in tracks])
    gain = peak / max(loudest, 1e-9)
    return [(t * gain).astype(np.float32) for t in tracks]


def mix(tracks):
    """Sum of float32 ``tracks``, computed in float64 and rounded once to float32."""
    return np.sum([t.astype(np.float64) for t in tracks], axis=0).astype(np.float32)


def _song_rng(seed, database, index):
    """Independent generator per (seed, database, song index): changing counts keeps other songs."""
    return np.random.default_rng([seed, DATABASE_NAMES.index(database), index])


def _song_seconds(rng, song_seconds):
    """Length of one song: ``song_seconds`` +-25 %."""
    return song_seconds * float(rng.uniform(0.75, 1.25))


def song_names(seed, database, count):
    """``count`` (artist, title) pairs for ``database``: artists run alphabetically with the song
    index (so folder order is generation order, for up to 16 songs), titles are distinct within
    the database."""
    combinations = np.random.default_rng([seed, DATABASE_NAMES.index(database)]).permutation(
        len(TITLE_ADJECTIVES) * len(TITLE_NOUNS))
    names = []
    for index in range(count):
        artist = ARTISTS[index % len(ARTISTS)] + ("" if index < len(ARTISTS) else f" {index // len(ARTISTS) + 1}")
        adjective, noun = divmod(int(combinations[index % len(combinations)]), len(TITLE_NOUNS))
        names.append((artist, f"{TITLE_ADJECTIVES[adjective]} {TITLE_NOUNS[noun]}"))
    return names


# ----------------------------------------------------------------------------------------
# Layout writers
# ----------------------------------------------------------------------------------------

def write_dsd100_song(root, split, number, artist, title, rng, seconds, sample_rate):
    """Write one DSD100 song (float WAV, mixture = bass + drums + other + vocals).

    Files: ``<root>/Mixtures/<split>/<NNN - Artist - Title>/mixture.wav`` and
    ``<root>/Sources/<split>/<same>/{bass,drums,other,vocals}.wav``, stereo at ``sample_rate``.
    """
    name = f"{number:03d} - {artist} - {title}"
    plan = draw_song_plan(rng, _song_seconds(rng, seconds), sample_rate)
    stems = render_song(plan, rng, singer=str(rng.choice(sorted(SINGER_CENTRES))),
                        chords=str(rng.choice(["piano", "acoustic guitar", "synthesizer"])),
                        arpeggio=bool(rng.random() < 0.5))
    groups = {"bass": ["bass"], "drums": ["drums"], "other": ["chords", "arpeggio"], "vocals": ["vocals"]}
    tracks = [sum(s.audio for s in stems if s.name in members) for members in groups.values()]
    tracks = peak_normalise(tracks, float(rng.uniform(0.6, 0.95)))
    for source, audio in zip(groups, tracks):
        Utils.atomic_write_audio(os.path.join(root, "Sources", split, name, source + ".wav"), audio, sample_rate)
    Utils.atomic_write_audio(os.path.join(root, "Mixtures", split, name, "mixture.wav"), mix(tracks), sample_rate)


def write_medleydb_song(root, index, artist, title, rng, seconds, sample_rate, instrumental):
    """Write one MedleyDB multitrack: ``<root>/Audio/<Name>/<Name>_MIX.wav`` (= sum of stems),
    ``<Name>_STEMS/<Name>_STEM_NN.wav`` (float WAV, stereo) and ``<Name>_METADATA.yaml``.

    Vocal songs have a lead singer ("female singer"/"male singer"); song 0 also has backing
    vocals ("vocalists"). Instrumental songs carry a guitar melody instead and no singer.
    """
    name = artist.replace(" ", "") + "_" + title.replace(" ", "")
    plan = draw_song_plan(rng, _song_seconds(rng, seconds), sample_rate)
    singer = None if instrumental else str(rng.choice(sorted(SINGER_CENTRES)))
    stems = render_song(plan, rng, singer=singer, backing_vocals=index == 0 and not instrumental,
                        chords=str(rng.choice(["piano", "acoustic guitar", "synthesizer"])),
                        arpeggio=bool(rng.random() < 0.5), lead_instrument=instrumental)
    tracks = peak_normalise([s.audio for s in stems], float(rng.uniform(0.6, 0.95)))
    folder = os.path.join(root, "Audio", name)
    stem_files = [f"{name}_STEM_{i:02d}.wav" for i in range(1, len(stems) + 1)]
    for filename, audio in zip(stem_files, tracks):
        Utils.atomic_write_audio(os.path.join(folder, f"{name}_STEMS", filename), audio, sample_rate)
    Utils.atomic_write_audio(os.path.join(folder, f"{name}_MIX.wav"), mix(tracks), sample_rate)
    metadata = medleydb_metadata(name, artist, title, stems, stem_files, instrumental)
    with Utils.atomic_write(os.path.join(folder, f"{name}_METADATA.yaml"), "w", encoding="utf-8") as handle:
        handle.write(metadata)


def medleydb_metadata(name, artist, title, stems, stem_files, instrumental):
    """Text of a ``<Name>_METADATA.yaml`` in the style of MedleyDB v1.

    As in the real files, ``has_bleed``/``instrumental`` are unquoted ``yes``/``no`` (which
    YAML 1.1 loaders such as PyYAML read as booleans) and ``component`` is ``melody``,
    ``bass`` or ``''``.
    """
    lines = ["album: Demo Sessions", f"artist: {artist}", f"composer: {artist}", "excerpt: no",
             "genre: Pop", "has_bleed: no", f"instrumental: {'yes' if instrumental else 'no'}",
             f"mix_filename: {name}_MIX.wav", "origin: DemoDatabase.py", "producer: DemoDatabase.py",
             f"stem_dir: {name}_STEMS", "stems:"]
    for i, (stem, filename) in enumerate(zip(stems, stem_files), start=1):
        component = "melody" if stem.name in ("vocals", "lead") else "bass" if stem.name == "bass" else "''"
        lines += [f"  S{i:02d}:", f"    component: {component}", f"    filename: {filename}",
                  f"    instrument: {stem.instrument}"]
    lines += [f"title: {title}", "version: '1.2'", "website: none"]
    return "\n".join(lines) + "\n"


def write_ccmixter_song(root, artist, title, rng, seconds, sample_rate):
    """Write one CCMixter song: ``<root>/<Artist_-_Title>/mix.wav`` = ``source-01.wav``
    (instrumental) + ``source-02.wav`` (voice), float WAV stereo at ``sample_rate``."""
    name = artist.replace(" ", "_") + "_-_" + title.replace(" ", "_")
    plan = draw_song_plan(rng, _song_seconds(rng, seconds), sample_rate)
    stems = render_song(plan, rng, singer=str(rng.choice(sorted(SINGER_CENTRES))),
                        chords=str(rng.choice(["piano", "acoustic guitar", "synthesizer"])),
                        arpeggio=bool(rng.random() < 0.5))
    accompaniment = sum(s.audio for s in stems if not s.is_voice)
    voice = sum(s.audio for s in stems if s.is_voice)
    accompaniment, voice = peak_normalise([accompaniment, voice], float(rng.uniform(0.6, 0.95)))
    folder = os.path.join(root, name)
    Utils.atomic_write_audio(os.path.join(folder, "source-01.wav"), accompaniment, sample_rate)
    Utils.atomic_write_audio(os.path.join(folder, "source-02.wav"), voice, sample_rate)
    Utils.atomic_write_audio(os.path.join(folder, "mix.wav"), mix([accompaniment, voice]), sample_rate)


def ikala_clip_name(index):
    """File name of iKala clip ``index``, e.g. ``10161_chorus.wav`` (ids ascend with the index)."""
    return f"{IKALA_FIRST_ID + 3 * index}_{'chorus' if index % 2 == 0 else 'verse'}.wav"


def write_ikala_clip(root, index, rng, seconds, sample_rate):
    """Write one iKala clip ``<root>/Wavfile/<id>_<section>.wav``: 16-bit PCM stereo with the
    accompaniment (mono down-mix) on the left channel and the voice on the right."""
    plan = draw_song_plan(rng, seconds, sample_rate)
    stems = render_song(plan, rng, singer=str(rng.choice(sorted(SINGER_CENTRES))),
                        chords=str(rng.choice(["piano", "acoustic guitar", "synthesizer"])),
                        arpeggio=bool(rng.random() < 0.5))
    accompaniment = sum(s.audio for s in stems if not s.is_voice).mean(axis=1)
    voice = sum(s.audio for s in stems if s.is_voice).mean(axis=1)
    channels = peak_normalise([accompaniment, voice], float(rng.uniform(0.6, 0.95)))
    Utils.atomic_write_audio(os.path.join(root, "Wavfile", ikala_clip_name(index)), np.stack(channels, axis=1),
                             sample_rate, subtype="PCM_16")


# ----------------------------------------------------------------------------------------
# Whole database
# ----------------------------------------------------------------------------------------

def generate_demo_database(target_dir, seed=0, *, dsd_songs_per_split=4, medleydb_songs=4, ccmixter_songs=3,
                           ikala_clips=3, song_seconds=16.0, ikala_clip_seconds=10.0, sample_rate=44100):
    """Generate the demo database into ``target_dir`` (once) and return its four roots.

    Layouts (all audio stereo at ``sample_rate`` Hz):

    - ``DSD100/``: ``Mixtures/{Dev,Test}/<NNN - Artist - Title>/mixture.wav`` and
      ``Sources/{Dev,Test}/<same>/{bass,drums,other,vocals}.wav`` (float WAV, mixture = sum).
    - ``MedleyDB/``: ``Audio/<Name>/<Name>_MIX.wav``, ``<Name>_STEMS/<Name>_STEM_NN.wav``,
      ``<Name>_METADATA.yaml`` (float WAV, MIX = sum of stems); the last song is instrumental.
    - ``CCMixter/``: ``<Artist_-_Title>/{mix,source-01,source-02}.wav`` (float WAV,
      mix = instrumental source-01 + voice source-02).
    - ``iKala/``: ``Wavfile/<id>_{chorus,verse}.wav`` (16-bit PCM, left = accompaniment,
      right = voice).

    Args:
        target_dir: folder to generate into; created if missing. It must not already hold
            database folders that this function did not create.
        seed: non-negative integer; the same seed and parameters give identical files.
        dsd_songs_per_split: DSD100 songs in each of Dev and Test.
        medleydb_songs, ccmixter_songs, ikala_clips: number of songs/clips.
        song_seconds: mean song length in seconds (each song varies by +-25 %).
        ikala_clip_seconds: length of each iKala clip in seconds.
        sample_rate: Hz of every file.

    Returns:
        ``{"DSD100": root, "MedleyDB": root, "CCMixter": root, "iKala": root}``, absolute
        paths ``<target_dir>/<name>``.

    Raises:
        ValueError: a count, length, seed or sample rate is out of range.
        FileExistsError: ``target_dir`` holds one of the database folders but no marker of
            this generator (it would be overwritten).
    """
    parameters = _validated_parameters(seed, dsd_songs_per_split, medleydb_songs, ccmixter_songs, ikala_clips,
                                       song_seconds, ikala_clip_seconds, sample_rate)
    target_dir = os.path.abspath(target_dir)
    roots = {name: os.path.join(target_dir, name) for name in DATABASE_NAMES}
    marker_path = os.path.join(target_dir, MARKER_NAME)
    marker = _read_marker(marker_path)
    if marker == _marker(parameters, complete=True):
        logger.debug("Demo database in %s is up to date", target_dir)
        return roots
    if marker is None:
        _refuse_foreign_folders(roots, marker_path)
    logger.info("Generating the demo database into %s (seed %d)", target_dir, seed)
    Utils.atomic_write_json(marker_path, _marker(parameters, complete=False))
    for root in roots.values():
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(root)
    _write_all_songs(roots, parameters)
    Utils.atomic_write_json(marker_path, _marker(parameters, complete=True))
    return roots


def _validated_parameters(seed, dsd_songs_per_split, medleydb_songs, ccmixter_songs, ikala_clips,
                          song_seconds, ikala_clip_seconds, sample_rate):
    """The generation parameters as a JSON-ready dict; ValueError naming any bad one."""
    counts = {"dsd_songs_per_split": dsd_songs_per_split, "medleydb_songs": medleydb_songs,
              "ccmixter_songs": ccmixter_songs, "ikala_clips": ikala_clips}
    for key, value in {"seed": seed, **counts, "sample_rate": sample_rate}.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"Demo database setting {key}={value!r} must be an integer")
    if seed < 0:
        raise ValueError(f"Demo database seed={seed} must be a non-negative integer")
    for key, value in counts.items():
        if value < 1:
            raise ValueError(f"Demo database setting {key}={value} must be at least 1 so that every "
                             f"partition of the experiment gets songs")
    for key, value in {"song_seconds": song_seconds, "ikala_clip_seconds": ikala_clip_seconds}.items():
        if not 3.0 <= float(value) <= 600.0:
            raise ValueError(f"Demo database setting {key}={value} must be between 3 and 600 seconds "
                             f"(shorter songs leave no room for a sung phrase)")
    if not 16000 <= sample_rate <= 192000:
        raise ValueError(f"Demo database sample_rate={sample_rate} must be between 16000 and 192000 Hz")
    return {"seed": int(seed), **{k: int(v) for k, v in counts.items()}, "song_seconds": float(song_seconds),
            "ikala_clip_seconds": float(ikala_clip_seconds), "sample_rate": int(sample_rate)}


def _marker(parameters, complete):
    return {"format_version": FORMAT_VERSION, "parameters": parameters, "complete": complete}


def _read_marker(path):
    """The marker dict, or None if missing; an unreadable marker counts as an incomplete run."""
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {"complete": False}


def _refuse_foreign_folders(roots, marker_path):
    """Raise if a database folder exists (non-empty) without this generator's marker."""
    for root in roots.values():
        if os.path.isdir(root) and os.listdir(root):
            raise FileExistsError(
                f"{root} exists but {marker_path} does not, so it was not made by the demo generator and "
                f"would be overwritten; pass an empty or new target folder instead")


def _write_all_songs(roots, parameters):
    """Render and write every song of the four databases (progress bar on a terminal)."""
    seed, sample_rate, seconds = parameters["seed"], parameters["sample_rate"], parameters["song_seconds"]
    jobs = []
    per_split = parameters["dsd_songs_per_split"]
    for number, (artist, title) in enumerate(song_names(seed, "DSD100", 2 * per_split), start=1):
        split = "Dev" if number <= per_split else "Test"
        jobs.append(functools.partial(write_dsd100_song, roots["DSD100"], split, number, artist, title,
                                      _song_rng(seed, "DSD100", number), seconds, sample_rate))
    count = parameters["medleydb_songs"]
    for index, (artist, title) in enumerate(song_names(seed, "MedleyDB", count)):
        jobs.append(functools.partial(write_medleydb_song, roots["MedleyDB"], index, artist, title,
                                      _song_rng(seed, "MedleyDB", index), seconds, sample_rate,
                                      instrumental=index == count - 1))
    for index, (artist, title) in enumerate(song_names(seed, "CCMixter", parameters["ccmixter_songs"])):
        jobs.append(functools.partial(write_ccmixter_song, roots["CCMixter"], artist, title,
                                      _song_rng(seed, "CCMixter", index), seconds, sample_rate))
    for index in range(parameters["ikala_clips"]):
        jobs.append(functools.partial(write_ikala_clip, roots["iKala"], index, _song_rng(seed, "iKala", index),
                                      parameters["ikala_clip_seconds"], sample_rate))
    for job in tqdm(jobs, desc="demo database", unit="song", disable=None, leave=False):
        job()


def main(argv=None):
    """Command line: generate the demo database into TARGET_DIR and print the four roots."""
    parser = argparse.ArgumentParser(description="Generate the procedural demo multitrack database "
                                                 "(DSD100, MedleyDB, CCMixter and iKala layouts).")
    parser.add_argument("target_dir", metavar="TARGET_DIR", help="folder to generate into")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--song-seconds", type=float, default=16.0, help="mean song length (default 16)")
    args = parser.parse_args(argv)
    Utils.setup_logging()
    try:
        roots = generate_demo_database(args.target_dir, seed=args.seed, song_seconds=args.song_seconds)
    except (ValueError, FileExistsError) as error:
        parser.exit(2, f"error: {error}\n")
    for name, root in roots.items():
        print(f"{name}: {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
