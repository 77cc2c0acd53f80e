"""Song composition for the demo database: key, tempo and chords, the melody, the arrangement
of voice and accompaniment stems, and the invented artist and song names.
"""

import dataclasses
from typing import List, Optional, Sequence, Tuple

import numpy as np

from databases.DemoSynthesis import (
    VOWEL_FORMANTS,
    add_at,
    decaying_tone,
    midi_to_hz,
    pan,
    render_arpeggio,
    render_bass,
    render_chords,
    render_drums,
    sustained_tone,
)
from databases.DemoVoice import draw_voice_style, render_voice

DATABASE_NAMES = ("DSD100", "MedleyDB", "CCMixter", "iKala")
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
# Chord roots of four-bar loops as 0-based scale degrees (chords are stacked scale thirds).
PROGRESSIONS = {
    "major": ((0, 4, 5, 3), (5, 3, 0, 4), (0, 5, 3, 4), (0, 3, 0, 4)),
    "minor": ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 5, 3, 4)),
}
# Invented names, alphabetical so that folder order follows the generation order.
ARTISTS = (
    "Ada Brenner",
    "Bruno Castell",
    "Clara Denholm",
    "Dario Ellis",
    "Edda Farrow",
    "Felix Garner",
    "Greta Holm",
    "Hugo Ingram",
    "Iris Jansen",
    "Jonas Keller",
    "Kira Lund",
    "Leo Marsh",
    "Mira Novak",
    "Nils Oberg",
    "Olga Pratt",
    "Paul Quist",
)
TITLE_ADJECTIVES = (
    "Silver",
    "Quiet",
    "Golden",
    "Hollow",
    "Paper",
    "Velvet",
    "Distant",
    "Electric",
    "Winter",
    "Crimson",
    "Gentle",
    "Northern",
)
TITLE_NOUNS = (
    "Morning",
    "Harbour",
    "Lanterns",
    "River",
    "Echoes",
    "Garden",
    "Satellite",
    "Window",
    "Tide",
    "Meadow",
    "Signal",
    "Streets",
)


@dataclasses.dataclass(frozen=True)
class Family:
    """The singers, instruments and mixing habits of one demo database: its domain.

    As DSD100 differs from MedleyDB, CCMixter and iKala in the paper's experiment, each demo
    database draws its songs from a family of its own, so that a model trained on the paired
    songs meets voices and instruments on the other databases that it has not heard.
    Ranges are ``(low, high)`` of a uniform draw per song.

    Attributes:
        singers: MIDI range of the melody's centre per singer label (MedleyDB labels).
        vibrato_cents: vibrato depth; breathiness: breath noise level (see ``VoiceStyle``).
        tempo_bpm: tempo range.
        chords: chord instruments to draw from (see ``DemoSynthesis.render_chords``).
        arpeggio_probability: chance of a synthesizer arpeggio.
        lead: instrumental melody in the singer's register, ``"clean electric guitar"``
            (plucked) or ``"synthesizer lead"`` (sustained); None for none.
        lead_probability: chance of that lead melody in a sung song.
        voice_level_db: level of the voice relative to the usual mix balance, dB.
    """

    singers: dict
    vibrato_cents: tuple
    breathiness: tuple
    tempo_bpm: tuple
    chords: tuple
    arpeggio_probability: float
    lead: Optional[str]
    lead_probability: float
    voice_level_db: tuple


FAMILIES = {
    # The paired set: male singers in a low register, piano or guitar chords, no lead melody.
    "DSD100": Family(
        singers={"male singer": (48, 55)},
        vibrato_cents=(15.0, 35.0),
        breathiness=(0.02, 0.04),
        tempo_bpm=(84.0, 110.0),
        chords=("piano", "acoustic guitar"),
        arpeggio_probability=0.0,
        lead=None,
        lead_probability=0.0,
        voice_level_db=(-1.0, 1.0),
    ),
    # A band: female singers, guitar strums with a guitar counter-melody, the voice further back.
    "MedleyDB": Family(
        singers={"female singer": (64, 71)},
        vibrato_cents=(30.0, 60.0),
        breathiness=(0.04, 0.07),
        tempo_bpm=(96.0, 128.0),
        chords=("acoustic guitar", "synthesizer"),
        arpeggio_probability=0.3,
        lead="clean electric guitar",
        lead_probability=0.6,
        voice_level_db=(-4.0, -1.0),
    ),
    # Electronic remixes: high, breathy voices over synthesizer pads, arpeggios and leads, voice upfront.
    "CCMixter": Family(
        singers={"female singer": (67, 74), "male singer": (57, 64)},
        vibrato_cents=(40.0, 70.0),
        breathiness=(0.06, 0.1),
        tempo_bpm=(110.0, 130.0),
        chords=("synthesizer",),
        arpeggio_probability=1.0,
        lead="synthesizer lead",
        lead_probability=0.5,
        voice_level_db=(0.0, 3.0),
    ),
    # Karaoke ballads: high voices with a wide vibrato, piano or pads, a sustained lead now and then.
    "iKala": Family(
        singers={"female singer": (65, 72), "male singer": (55, 62)},
        vibrato_cents=(50.0, 80.0),
        breathiness=(0.03, 0.06),
        tempo_bpm=(70.0, 96.0),
        chords=("piano", "synthesizer"),
        arpeggio_probability=0.5,
        lead="synthesizer lead",
        lead_probability=0.4,
        voice_level_db=(-1.0, 2.0),
    ),
}


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
    def beat_seconds(self) -> float:
        """Length of one beat in seconds."""
        return 60.0 / self.tempo_bpm

    @property
    def bar_seconds(self) -> float:
        """Length of one bar (four beats) in seconds."""
        return 4 * self.beat_seconds

    @property
    def num_bars(self) -> int:
        """Bars needed to cover the song (the last one may be cut short)."""
        return int(np.ceil(self.num_samples / self.sample_rate / self.bar_seconds))

    def degree_to_pitch_class(self, degree: int) -> int:
        """Pitch class (0-11) of a 0-based scale degree (any integer)."""
        return (self.tonic + self.scale[degree % len(self.scale)]) % 12

    def chord_pitch_classes(self, bar: int) -> Tuple[int, ...]:
        """Pitch classes (root, third, fifth) of the chord in ``bar``."""
        root = self.progression[bar % len(self.progression)]
        return tuple(self.degree_to_pitch_class(root + step) for step in (0, 2, 4))

    def scale_pitches(self, low: int, high: int) -> List[int]:
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


def draw_song_plan(
    rng: np.random.Generator, seconds: float, sample_rate: int, tempo_bpm: Tuple[float, float] = (84.0, 128.0)
) -> SongPlan:
    """Random key, scale, tempo (in the ``tempo_bpm`` range) and chord loop for a song of
    ``seconds`` at ``sample_rate`` Hz."""
    mode = str(rng.choice(sorted(SCALES)))
    progressions = PROGRESSIONS[mode]
    return SongPlan(
        sample_rate=sample_rate,
        num_samples=int(round(seconds * sample_rate)),
        tempo_bpm=float(rng.uniform(*tempo_bpm)),
        tonic=int(rng.integers(12)),
        scale=SCALES[mode],
        progression=progressions[int(rng.integers(len(progressions)))],
    )


def compose_melody(plan: SongPlan, rng: np.random.Generator, centre_midi: int, span: int = 8) -> List[Note]:
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
            notes.append(
                Note(
                    start=position * beat,
                    duration=duration * beat,
                    midi=float(pitches[index]),
                    vowel=str(rng.choice(sorted(VOWEL_FORMANTS))),
                    velocity=float(rng.uniform(0.7, 1.0)),
                    legato=bool(rng.random() < 0.7),
                    phrase=phrase,
                )
            )
            position += duration
        position += float(rng.choice([1.5, 2.0, 3.0, 4.0]))
        phrase += 1
    return notes


def _nearest_chord_tone(pitches, index, chord_pitch_classes):
    """Index into ``pitches`` of the chord tone closest to ``pitches[index]`` (itself if none)."""
    candidates = [i for i, p in enumerate(pitches) if p % 12 in chord_pitch_classes]
    return min(candidates, key=lambda i: abs(i - index)) if candidates else index


def harmony_line(notes: Sequence[Note], plan: SongPlan, every_other_phrase: bool = True) -> List[Note]:
    """Backing-vocal notes a diatonic third above ``notes`` on "oo"/"ah", on every other phrase."""
    pitches = plan.scale_pitches(0, 127)
    harmony = []
    for note in notes:
        if every_other_phrase and note.phrase % 2 == 0:
            continue
        upper = pitches[min(pitches.index(int(note.midi)) + 2, len(pitches) - 1)]
        harmony.append(
            dataclasses.replace(
                note, midi=float(upper), vowel="u" if note.phrase % 4 == 1 else "a", velocity=0.8 * note.velocity
            )
        )
    return harmony


def render_song(
    plan: SongPlan,
    rng: np.random.Generator,
    family: Family,
    *,
    backing_vocals: bool = False,
    instrumental: bool = False,
) -> List[Stem]:
    """All stems of one song of ``family``, mixed to plausible relative levels.

    Args:
        plan: the song's :class:`SongPlan` (draw it with the family's tempo range).
        rng: ``np.random.Generator`` for every random choice of the song.
        family: the database's :class:`Family` (singers, instruments, voice level).
        backing_vocals: add a harmony voice (MedleyDB label ``"vocalists"``).
        instrumental: no singer; the family's lead instrument (or a guitar) plays the melody.

    Returns:
        List of :class:`Stem` with audio [samples, 2] at ``plan.sample_rate`` Hz, not yet
        peak-normalised (see :func:`peak_normalise`).
    """
    chords = str(rng.choice(family.chords))
    stems = [
        Stem("bass", "electric bass", pan(render_bass(plan, rng), float(rng.uniform(-0.05, 0.05))), False),
        Stem("drums", "drum set", render_drums(plan, rng), False),
        Stem("chords", chords, render_chords(plan, rng, chords), False),
    ]
    side = float(rng.choice([-1.0, 1.0]))
    if rng.random() < family.arpeggio_probability:
        stems.append(Stem("arpeggio", "synthesizer", pan(render_arpeggio(plan, rng), -0.5 * side), False))
    singer = None if instrumental else str(rng.choice(sorted(family.singers)))
    centre = int(rng.integers(*family.singers[singer])) if singer else int(rng.integers(64, 72))
    lead = (family.lead or "clean electric guitar") if instrumental else family.lead
    if lead is not None and (instrumental or rng.random() < family.lead_probability):
        # A counter-melody in the singer's register: what a model that has only heard the
        # paired family's arrangements (no lead instrument) tends to take for the voice.
        notes = compose_melody(plan, rng, centre_midi=centre + (0 if instrumental else 3))
        stems.append(Stem("lead", lead, pan(render_lead(notes, plan, lead), 0.3 * side), False))
    if singer is not None:
        notes = compose_melody(plan, rng, centre_midi=centre)
        style = draw_voice_style(rng, singer, family.vibrato_cents, family.breathiness)
        voice = render_voice(notes, plan, style, rng)
        stems.append(Stem("vocals", singer, pan(voice, side * float(rng.uniform(0.08, 0.3))), True))
        if backing_vocals:
            style = draw_voice_style(rng, singer, family.vibrato_cents, family.breathiness)
            backing = render_voice(harmony_line(notes, plan), plan, style, rng)
            stems.append(Stem("backing vocals", "vocalists", pan(backing, -0.4 * side), True))
    voice_db = float(rng.uniform(*family.voice_level_db))
    return _set_levels(stems, rng, voice_db, lead_db=-3.0 if instrumental else -7.0)


def render_lead(notes: Sequence[Note], plan: SongPlan, instrument: str) -> np.ndarray:
    """An instrumental melody [samples] (mono, float64, ``plan.sample_rate`` Hz) playing ``notes``:
    ``"clean electric guitar"`` (plucked, decaying partials) or ``"synthesizer lead"`` (two detuned
    sustained oscillators)."""
    lead = np.zeros(plan.num_samples)
    for note in notes:
        frequency = float(midi_to_hz(note.midi))
        if instrument == "synthesizer lead":
            tone = sustained_tone(
                frequency,
                note.duration,
                plan.sample_rate,
                num_partials=10,
                tilt=1.0,
                detune_cents=10.0,
                attack_seconds=0.03,
                release_seconds=0.08,
            )
        else:
            tone = decaying_tone(
                frequency, note.duration, plan.sample_rate, num_partials=10, tilt=1.1, decay_seconds=0.8
            )
        add_at(lead, int(note.start * plan.sample_rate), note.velocity * tone)
    return lead


def _set_levels(stems, rng, voice_db, lead_db):
    """Scale each stem to a typical level relative to the others (RMS in dB, +-1.5 dB random;
    the voices ``voice_db`` and a lead instrument ``lead_db``) and fade the last 2000 samples
    out, so songs end without a click."""
    levels_db = {
        "vocals": voice_db,
        "backing vocals": voice_db - 9.0,
        "bass": -4.0,
        "drums": -3.0,
        "chords": -7.0,
        "arpeggio": -12.0,
        "lead": lead_db,
    }
    leveled = []
    for stem in stems:
        rms = np.sqrt(np.mean(np.square(stem.audio)))
        audio = stem.audio * (10 ** ((levels_db[stem.name] + rng.uniform(-1.5, 1.5)) / 20) / max(rms, 1e-9))
        fade = min(2000, len(audio))
        audio[len(audio) - fade :] *= np.linspace(1.0, 0.0, fade)[:, None]
        leveled.append(dataclasses.replace(stem, audio=audio))
    return leveled


def peak_normalise(tracks: Sequence[np.ndarray], peak: float) -> List[np.ndarray]:
    """Scale all ``tracks`` (arrays of one shape) by one factor so that neither any track nor
    their sum exceeds ``peak``; returns float32 copies (sums still hold up to rounding)."""
    loudest = max([np.max(np.abs(sum(tracks)))] + [np.max(np.abs(t)) for t in tracks])
    gain = peak / max(loudest, 1e-9)
    return [(t * gain).astype(np.float32) for t in tracks]


def mix(tracks: Sequence[np.ndarray]) -> np.ndarray:
    """Sum of float32 ``tracks``, computed in float64 and rounded once to float32."""
    return np.sum([t.astype(np.float64) for t in tracks], axis=0).astype(np.float32)


def song_rng(seed: int, database: str, index: int) -> np.random.Generator:
    """Independent generator per (seed, database, song index): changing counts keeps other songs."""
    return np.random.default_rng([seed, DATABASE_NAMES.index(database), index])


def song_seconds(rng: np.random.Generator, song_seconds: float) -> float:
    """Length of one song: ``song_seconds`` +-25 %."""
    return song_seconds * float(rng.uniform(0.75, 1.25))


def song_names(seed: int, database: str, count: int) -> List[Tuple[str, str]]:
    """``count`` (artist, title) pairs for ``database``: artists run alphabetically with the song
    index (so folder order is generation order, for up to 16 songs), titles are distinct within
    the database."""
    combinations = np.random.default_rng([seed, DATABASE_NAMES.index(database)]).permutation(
        len(TITLE_ADJECTIVES) * len(TITLE_NOUNS)
    )
    names = []
    for index in range(count):
        artist = ARTISTS[index % len(ARTISTS)] + ("" if index < len(ARTISTS) else f" {index // len(ARTISTS) + 1}")
        adjective, noun = divmod(int(combinations[index % len(combinations)]), len(TITLE_NOUNS))
        names.append((artist, f"{TITLE_ADJECTIVES[adjective]} {TITLE_NOUNS[noun]}"))
    return names
