"""Stage cards: reports/model_card.md and reports/data_card.md from params, counts and metrics."""
from pathlib import Path

from dermsynth.cards import data_card, model_card
from stages._common import main


def run(params: dict) -> None:
    rep = Path(params["paths"]["reports"])
    (rep / "model_card.md").write_text(model_card(params, params["train"]["models"], rep, Path("models/classifiers")))
    (rep / "data_card.md").write_text(data_card(params, Path(params["paths"]["synthetic"]), rep))
    print(f"wrote {rep / 'model_card.md'} and {rep / 'data_card.md'}")


if __name__ == "__main__":
    main(run)
