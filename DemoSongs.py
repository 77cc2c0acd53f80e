"""Song composition for the demo database: key, tempo and chords, the melody, the arrangement
of voice and accompaniment stems, and the invented artist and song names.
"""

import dataclasses

import numpy as np

from DemoSynthesis import (VOWEL_FORMANTS, add_at, decaying_tone, draw_voice_style, midi_to_hz, pan, render_arpeggio,
                           render_bass, render_chords, render_drums, render_voice)

DATABASE_NAMES = ("DSD100", "MedleyDB", "CCMixter", "iKala")
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
# Chord roots of four-bar loops as 0-based scale degrees (chords are stacked scale thirds).
PROGRESSIONS = {"major": ((0, 4, 5, 3), (5, 3, 0, 4), (0, 5, 3, 4), (0, 3, 0, 4)),
                "minor": ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 5, 3, 4))}
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


def song_rng(seed, database, index):
    """Independent generator per (seed, database, song index): changing counts keeps other songs."""
    return np.random.default_rng([seed, DATABASE_NAMES.index(database), index])


def song_seconds(rng, song_seconds):
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
