"""`0 = the prepared size` settings resolve from what preprocess recorded, not from `prepare.size`."""
import json

import pytest

from dermsynth.config import prepared_size
from dermsynth.errors import UserError


def test_the_recorded_size_wins_over_the_params(tmp_path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"size": 96, "hair_removal": True}))
    assert prepared_size(tmp_path) == 96


def test_a_missing_or_broken_record_names_the_file_and_the_fix(tmp_path) -> None:
    with pytest.raises(UserError, match=r"config\.json: missing.*dvc repro preprocess"):
        prepared_size(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"hair_removal": True}))
    with pytest.raises(UserError, match=r"config\.json: no integer 'size'"):
        prepared_size(tmp_path)
