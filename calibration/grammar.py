"""The prompt grammar of the shapes world: its attributes, its closed vocabulary, and prompt <-> scene.

A prompt describes one or two objects and the background::

    a small red triangle at the top left on a white background
    a large blue circle in the center on a gray background
    a small red triangle at the top left and a large green cross at the bottom right on a black background

Two-object scenes use two different corner positions (never the center), so objects never overlap.
Words are lower-case; case, commas and a final full stop are ignored. Anything else raises accel.PromptError.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from accel.errors import PromptError

SHAPES = ("circle", "square", "triangle", "cross")
COLOURS = ("red", "green", "blue", "yellow", "purple", "cyan")
SIZES = ("small", "large")
POSITIONS = ("top left", "top right", "bottom left", "bottom right", "center")
BACKGROUNDS = ("white", "black", "gray")
CORNERS = POSITIONS[:4]  # the positions a two-object scene may use

ATTRIBUTES = ("shape", "colour", "size", "position", "background")

_POSITION_PHRASE = {p: ("in the center" if p == "center" else f"at the {p}") for p in POSITIONS}
_STRUCTURE_WORDS = ("a", "at", "the", "in", "on", "and", "background")
_POSITION_WORDS = ("top", "bottom", "left", "right", "center")

VOCABULARY: tuple[str, ...] = tuple(
    dict.fromkeys(_STRUCTURE_WORDS + SIZES + COLOURS + SHAPES + _POSITION_WORDS + BACKGROUNDS)
)
# Token ids: 0 is padding (and the whole unconditional prompt), 1 starts every prompt, words follow.
PAD_ID, BOS_ID = 0, 1
TOKEN_IDS = {w: i + 2 for i, w in enumerate(VOCABULARY)}
MAX_TOKENS = 24  # BOS + the longest two-object prompt (21 words) + room

DOCS_HINT = "the grammar is documented in accel/calibration/README.md (module accel.calibration.grammar)"


@dataclass(frozen=True)
class SceneObject:
    """One drawn object. Fields are indices into SHAPES, COLOURS, SIZES and POSITIONS."""

    shape: int
    colour: int
    size: int
    position: int


@dataclass(frozen=True)
class Scene:
    """A whole scene: one or two objects on a background (index into BACKGROUNDS)."""

    objects: tuple[SceneObject, ...]
    background: int


def object_phrase(obj: SceneObject) -> str:
    """'a small red triangle at the top left'."""
    return (
        f"a {SIZES[obj.size]} {COLOURS[obj.colour]} {SHAPES[obj.shape]} "
        f"{_POSITION_PHRASE[POSITIONS[obj.position]]}"
    )


def scene_to_prompt(scene: Scene) -> str:
    """The canonical English prompt of a scene."""
    objects = " and ".join(object_phrase(o) for o in scene.objects)
    return f"{objects} on a {BACKGROUNDS[scene.background]} background"


def words_of(prompt: str) -> list[str]:
    """Lower-case words of a prompt, with commas and a final full stop removed."""
    if not isinstance(prompt, str):
        raise PromptError(f"a prompt must be a string, got {type(prompt).__name__}")
    text = prompt.strip().lower().replace(",", " ")
    text = re.sub(r"\.\s*$", "", text)
    return text.split()


def check_prompt(prompt: str) -> list[str]:
    """The prompt's words, or PromptError naming the first word outside the vocabulary."""
    words = words_of(prompt)
    if not words:
        raise PromptError(
            f"empty prompt {prompt!r}: the embedded shapes model needs a description such as "
            f"'a small red triangle at the top left on a white background'; {DOCS_HINT}"
        )
    for w in words:
        if w not in TOKEN_IDS:
            raise PromptError(
                f"the word {w!r} in prompt {prompt!r} is outside the shapes grammar; "
                f"known words: {', '.join(VOCABULARY)}; {DOCS_HINT}"
            )
    if len(words) + 1 > MAX_TOKENS:
        raise PromptError(
            f"prompt {prompt!r} has {len(words)} words; the shapes grammar allows at most {MAX_TOKENS - 1}"
        )
    return words


def tokenize(prompts: list[str]) -> list[list[int]]:
    """Token ids (BOS + words, padded to MAX_TOKENS) of each prompt; '' is the unconditional prompt."""
    out = []
    for p in prompts:
        ids = [PAD_ID] * MAX_TOKENS
        if p != "":
            ids[0] = BOS_ID
            for i, w in enumerate(check_prompt(p)):
                ids[i + 1] = TOKEN_IDS[w]
        out.append(ids)
    return out


_OBJECT_RE = re.compile(
    r"a (?P<size>\w+) (?P<colour>\w+) (?P<shape>\w+) (?:at the (?P<pos>top left|top right|bottom left|bottom right)"
    r"|in the (?P<center>center))"
)


def parse_prompt(prompt: str) -> Scene:
    """The scene a prompt describes; PromptError if the words are known but do not follow the grammar."""
    text = " ".join(check_prompt(prompt))
    m = re.fullmatch(r"(?P<objs>.+) on a (?P<bg>\w+) background", text)
    if not m or m.group("bg") not in BACKGROUNDS:
        raise PromptError(f"prompt {prompt!r} does not end with 'on a <colour> background'; {DOCS_HINT}")
    objects = []
    for part in m.group("objs").split(" and "):
        om = _OBJECT_RE.fullmatch(part)
        if not om or om["size"] not in SIZES or om["colour"] not in COLOURS or om["shape"] not in SHAPES:
            raise PromptError(
                f"{part!r} in prompt {prompt!r} is not 'a <size> <colour> <shape> at the <position>'; {DOCS_HINT}"
            )
        pos = om["pos"] or om["center"]
        objects.append(
            SceneObject(SHAPES.index(om["shape"]), COLOURS.index(om["colour"]), SIZES.index(om["size"]),
                        POSITIONS.index(pos))
        )
    if len(objects) > 2 or len({o.position for o in objects}) != len(objects):
        raise PromptError(f"prompt {prompt!r}: at most two objects, at different positions; {DOCS_HINT}")
    return Scene(tuple(objects), BACKGROUNDS.index(m.group("bg")))
