"""cloudedge.paper holds numbers transcribed from the paper: check them against its text."""
import re
from pathlib import Path

import pytest

from cloudedge import paper

PAPER = Path(__file__).resolve().parents[2] / "shared" / "paper" / "000_2da51440b25e40d2.txt"


@pytest.fixture(scope="module")
def text():
    if not PAPER.exists():
        pytest.skip(f"paper text not available at {PAPER}")
    return PAPER.read_text(encoding="utf-8", errors="replace")


def table_rows(text, caption_start, caption_end):
    """{model: [numbers]} from the extracted table, where each number stands on its own line."""
    block = text[text.index(caption_start):text.index(caption_end)]
    rows, current = {}, None
    for line in block.splitlines():
        line = line.strip()
        if re.fullmatch(r"EdgeCNN[01]-\d+", line):
            current = rows.setdefault(line, [])
        elif current is not None and re.fullmatch(r"\d+\.\d+", line) and len(current) < 10:
            current.append(float(line))
    return rows


def test_table2_matches_the_paper(text):
    rows = table_rows(text, "TABLE 2", "TABLE 3")
    assert {k: tuple(v) for k, v in rows.items()} == paper.TABLE2_MNIST


def test_table3_matches_the_paper(text):
    rows = table_rows(text, "TABLE 3", "Fig. 8. Accuracy")
    assert {k: tuple(v) for k, v in rows.items()} == paper.TABLE3_FASHION


def test_quoted_percentages_appear_in_the_paper(text):
    quoted = [*paper.CLOUD_ACCURACY.values(), *paper.FASHION_FULL.values(),
              *paper.TRAINING_TIME_REDUCTION.values(), *paper.RESPONSE_TIME_REDUCTION.values(),
              paper.INFERENCE_TIME_REDUCTION, *paper.FIG11_EDGE3_VS.values()]
    for value in quoted:
        assert f"{value:.2f}" in text, value
