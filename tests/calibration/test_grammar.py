import pytest

from accel.calibration import grammar as g
from accel.errors import PromptError


def test_prompt_round_trip():
    scene = g.Scene((g.SceneObject(2, 0, 0, 0), g.SceneObject(0, 2, 1, 3)), 0)
    prompt = g.scene_to_prompt(scene)
    assert prompt == ("a small red triangle at the top left and a large blue circle at the bottom right "
                      "on a white background")
    assert g.parse_prompt(prompt) == scene
    assert g.parse_prompt("A large cyan cross in the center, on a gray background.") == g.Scene(
        (g.SceneObject(3, 5, 1, 4),), 2)


def test_unknown_word_names_word_and_vocabulary():
    with pytest.raises(PromptError) as err:
        g.tokenize(["a small red hexagon at the top left on a white background"])
    msg = str(err.value)
    assert "'hexagon'" in msg and "triangle" in msg and "README" in msg


@pytest.mark.parametrize("prompt", ["", "   ", "."])
def test_empty_prompt(prompt):
    with pytest.raises(PromptError, match="empty prompt"):
        g.check_prompt(prompt)


def test_non_string_and_too_long():
    with pytest.raises(PromptError):
        g.check_prompt(None)
    with pytest.raises(PromptError, match="at most"):
        g.check_prompt(" ".join(["red"] * 30))


def test_known_words_in_wrong_order_fail_parsing_but_tokenize():
    prompt = "red a small triangle at the top left on a white background"
    assert len(g.tokenize([prompt])[0]) == g.MAX_TOKENS
    with pytest.raises(PromptError):
        g.parse_prompt(prompt)


def test_tokenize_layout():
    ids = g.tokenize(["a small red circle in the center on a black background", ""])
    assert ids[0][0] == g.BOS_ID and ids[0][1] == g.TOKEN_IDS["a"] and ids[0][-1] == g.PAD_ID
    assert ids[1] == [g.PAD_ID] * g.MAX_TOKENS
