import json

import pytest
import torch

from accel.calibration import grammar as g
from accel.calibration.model import ShapesTextEncoder, clause_ids

TWO = ("a small red triangle at the top left and a large blue circle at the bottom right on a white background",
       "a small red triangle at the top left and a small green cross at the bottom right on a black background")


def test_clause_ids_split_object_phrases_and_background():
    ids = torch.tensor(g.tokenize([TWO[0], ""]))
    seg = clause_ids(ids)
    words = ["<bos>", *TWO[0].split()]
    first, second, background = words.index("and"), words.index("on"), len(words)
    assert seg[0, :first].tolist() == [0] * first
    assert seg[0, first:second].tolist() == [1] * (second - first)
    assert seg[0, second:].tolist() == [2] * (g.MAX_TOKENS - second)  # padding continues the background clause
    assert background < g.MAX_TOKENS and seg[1].tolist() == [0] * g.MAX_TOKENS  # unconditional: one clause


def test_clause_attention_keeps_each_object_phrase_to_itself():
    torch.manual_seed(0)
    enc = ShapesTextEncoder(dim=16, layers=2, heads=2, attention="clause").eval()
    with torch.no_grad():
        h = enc.encode(list(TWO))
    first = TWO[0].split().index("and") + 1  # BOS + the first object's words
    assert torch.equal(h[0, :first], h[1, :first])  # the second object and background never reach the first
    assert not torch.equal(h[0, first:], h[1, first:])
    full = ShapesTextEncoder(dim=16, layers=2, heads=2, attention="full").eval()
    full.load_state_dict(enc.state_dict())
    with torch.no_grad():
        hf = full.encode(list(TWO))
    assert not torch.equal(hf[0, :first], hf[1, :first])


def test_attention_is_saved_and_old_encoders_load_as_full(tmp_path):
    enc = ShapesTextEncoder(dim=16, layers=1, heads=2, attention="clause")
    enc.save(tmp_path / "clause")
    assert ShapesTextEncoder.load(tmp_path / "clause").attention == "clause"
    enc.save(tmp_path / "old")
    cfg = json.loads((tmp_path / "old" / "config.json").read_text())
    del cfg["attention"]  # written before the option existed
    (tmp_path / "old" / "config.json").write_text(json.dumps(cfg))
    assert ShapesTextEncoder.load(tmp_path / "old").attention == "full"


def test_unknown_attention_is_refused():
    with pytest.raises(ValueError, match="clause"):
        ShapesTextEncoder(dim=16, layers=1, heads=2, attention="local")
    enc = ShapesTextEncoder(dim=16, layers=1, heads=2)
    with pytest.raises(ValueError, match="full"):
        enc.set_attention("causal")
    assert enc.attention == "clause"
