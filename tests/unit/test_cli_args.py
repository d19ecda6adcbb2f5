"""Argument errors exit 2 with a message naming the option and the bad value."""

from __future__ import annotations

import pytest

from ltv_pipeline.cli import main


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["demo", "--as-of", "2025-13-01"], "--as-of: '2025-13-01' is not a date in YYYY-MM-DD form"),
        (["demo", "--horizon-days", "0"], "--horizon-days: '0' must be greater than 0"),
        (["demo", "--horizon-days", "ninety"], "--horizon-days: 'ninety' is not a whole number"),
        (["demo", "--source", "/no/such/dir"], "neither 'cdnow', 'synthetic' nor an existing directory"),
        (["generate", "--users", "-5", "--seed", "1", "--out", "x"], "--users: '-5' must be greater than 0"),
        (["generate", "--users", "5", "--out", "x"], "the following arguments are required: --seed"),
        (["generate", "--users", "5", "--seed", "1", "--out", "x", "--drift-at", "soon"], "--drift-at: 'soon'"),
        (["score", "--from", "2025-02-07", "--to", "2025-02-01"], "--from 2025-02-07 is after --to 2025-02-01"),
        (["predict", "--transactions", "/no/file.csv", "--cutoff", "2025-01-01",
          "--horizon-days", "90", "--out", "o.csv"], "'/no/file.csv': no such file"),
        (["score-user", " "], "USER_ID is empty"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(argv, needle, capsys):
    with pytest.raises(SystemExit) as exc:
        code = main(argv)
        raise SystemExit(code)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert needle in err
    assert "Traceback" not in err


def test_predict_output_extension_is_checked(tmp_path, capsys):
    tx = tmp_path / "t.csv"
    tx.write_text("user_id,ts,amount\n1,2025-01-01,3\n")
    with pytest.raises(SystemExit) as exc:
        main(["predict", "--transactions", str(tx), "--cutoff", "2025-01-01",
              "--horizon-days", "30", "--out", str(tmp_path / "out.xlsx")])
    assert exc.value.code == 2
    assert "the extension must be .parquet or .csv" in capsys.readouterr().err
