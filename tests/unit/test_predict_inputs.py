"""`ltv predict` stages its files as a source directory: fx rates come from --fx-rates, else
from an fx_rates file beside --transactions (as `ltv generate` and source directories lay
them out), so multi-currency transactions are not quarantined for want of a rate."""

from ltv_pipeline.cli import build_parser
from ltv_pipeline.commands import _stage_inputs


def parse(*args):
    return build_parser().parse_args(["predict", *args, "--cutoff", "2025-06-30",
                                      "--horizon-days", "90", "--out", "/tmp/x.parquet"])


def test_fx_rates_beside_the_transactions_are_used(ltv_home, tmp_path):
    (tmp_path / "transactions.parquet").write_bytes(b"")
    (tmp_path / "fx_rates.csv").write_text("date,currency,rate_to_base\n")
    staged = _stage_inputs(parse("--transactions", str(tmp_path / "transactions.parquet")))
    assert sorted(p.name for p in staged.iterdir()) == ["fx_rates.csv", "transactions.parquet"]
    assert (staged / "fx_rates.csv").resolve() == (tmp_path / "fx_rates.csv").resolve()


def test_an_explicit_fx_rates_file_wins_and_none_is_staged_without_one(ltv_home, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "transactions.csv").write_text("user_id,ts,amount\n")
    (tmp_path / "a" / "fx_rates.csv").write_text("date,currency,rate_to_base\n")
    (tmp_path / "rates.parquet").write_bytes(b"")
    staged = _stage_inputs(parse("--transactions", str(tmp_path / "a" / "transactions.csv"),
                                 "--fx-rates", str(tmp_path / "rates.parquet")))
    assert (staged / "fx_rates.parquet").resolve() == (tmp_path / "rates.parquet").resolve()
    assert not (staged / "fx_rates.csv").exists()
    (tmp_path / "a" / "fx_rates.csv").unlink()
    staged = _stage_inputs(parse("--transactions", str(tmp_path / "a" / "transactions.csv")))
    assert sorted(p.name for p in staged.iterdir()) == ["transactions.csv"]
