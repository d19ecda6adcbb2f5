"""LightGBM family: learns signal, validates on the newest cutoff only, robust on degenerate data."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest

from ltv_pipeline.lib import gbm, intervals

CUTOFFS = ["2024-01-31", "2024-04-30", "2024-07-31", "2024-10-31"]
FEATURES, CATEGORICAL = ["x1", "x2", "noise"], ["channel"]


def make_frame(n_per: int, cutoffs: list[str], seed: int = 0) -> pd.DataFrame:
    """Zero-inflated, heavy-tailed value: x1 and channel drive whether a customer buys, x2 and
    channel how much (lognormal, sigma 0.8); noise carries nothing; btyd_hint is a feature the
    hybrid member gets (a noisy copy of the buying propensity); expected is E[value | x], the
    oracle forecast (never a feature)."""
    rng = np.random.default_rng(seed)
    parts = []
    for d in cutoffs:
        x1, x2, noise = rng.normal(size=(3, n_per))
        channel = rng.choice(["web", "app", "store", "marketplace"], size=n_per)
        eff = np.select([channel == "app", channel == "store"], [0.8, -0.5], 0.0)
        logit = -1.0 + 1.2 * x1 + eff
        buys = rng.uniform(size=n_per) < 1 / (1 + np.exp(-logit))
        mu = 3 + 0.6 * x2 + 0.3 * eff
        value = np.where(buys, rng.lognormal(mu, 0.8), 0.0)
        parts.append(pd.DataFrame({
            "user_id": [f"u{i}" for i in range(n_per)], "cutoff_date": pd.Timestamp(d),
            "x1": x1, "x2": x2, "noise": noise, "channel": channel,
            "btyd_hint": logit + rng.normal(scale=0.5, size=n_per), "value": value,
            "expected": np.exp(mu + 0.8**2 / 2) / (1 + np.exp(-logit))}))
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def train() -> pd.DataFrame:
    return make_frame(1500, CUTOFFS)


@pytest.fixture(scope="module")
def family(train) -> dict[str, gbm.GBMModel]:
    return gbm.train_family(train, FEATURES, CATEGORICAL, hybrid_features=["btyd_hint"], seed=0)


@pytest.fixture(scope="module")
def held_out() -> pd.DataFrame:
    return make_frame(3000, ["2025-01-31"], seed=99)


def spearman(a, b) -> float:
    return float(pd.Series(np.asarray(a)).corr(pd.Series(np.asarray(b)), method="spearman"))


def test_members_learn_signal_on_a_held_out_cutoff(family, held_out):
    pred = gbm.predict(family, held_out)
    y = held_out["value"]
    random = np.random.default_rng(1).uniform(size=len(y))
    assert abs(spearman(random, y)) < 0.1
    for member in ("tweedie", "l2", "two_part", "quantile_p90", "hybrid"):
        assert spearman(pred[f"pred_{member}"], y) > 0.35, member
    assert spearman(held_out["expected"], y) > 0.35  # the ceiling: the oracle is not far above
    # Totals against the oracle's (the labels' own total is noisier: heavy tail).
    for member in ("tweedie", "two_part", "hybrid", "l2"):
        assert pred[f"pred_{member}"].sum() == pytest.approx(held_out["expected"].sum(), rel=0.15), member
    assert list(pred["predicted_value"]) == list(pred["pred_tweedie"])
    assert set(pred["model"]) == {"tweedie"}
    assert list(pred[["user_id", "cutoff_date"]].itertuples(index=False)) == \
        list(held_out[["user_id", "cutoff_date"]].itertuples(index=False))


def test_training_never_uses_the_validation_cutoff(family, train):
    newest = train["cutoff_date"] == train["cutoff_date"].max()
    for model in family.values():
        assert model.validation_cutoff == "2024-10-31"
        assert model.training_cutoffs == CUTOFFS[:-1]
        assert (model.n_train_rows, model.n_valid_rows) == (int((~newest).sum()), int(newest.sum()))
    tweedie = family["tweedie"].parts["main"]
    assert tweedie.early_stopped and 0 < tweedie.best_iteration < gbm.MAX_ROUNDS
    assert tweedie.booster.current_iteration() == tweedie.best_iteration  # trimmed to the best
    assert tweedie.best_score is not None


def test_validation_labels_change_only_when_boosting_stops(train):
    newest = train["cutoff_date"] == train["cutoff_date"].max()
    noisy = train.copy()
    noisy.loc[newest, "value"] = np.random.default_rng(5).permutation(noisy.loc[newest, "value"].to_numpy())
    a = gbm.train_family(train, FEATURES, CATEGORICAL, members=["l2"])["l2"]
    b = gbm.train_family(noisy, FEATURES, CATEGORICAL, members=["l2"])["l2"]
    ia, ib = a.best_iteration["main"], b.best_iteration["main"]
    assert ib < ia  # shuffled validation labels carry no signal: boosting stops sooner
    X = a.matrix(train)
    # The trees both runs share are identical: validation rows never enter the fit.
    np.testing.assert_array_equal(a.parts["main"].booster.predict(X, num_iteration=ib),
                                  b.parts["main"].booster.predict(X, num_iteration=ib))


def test_quantile_interval_is_ordered_and_covers_most_labels(family, held_out):
    pred = gbm.predict(family, held_out)
    assert (pred["p10"] <= pred["p90"]).all()
    assert (pred["p10"] >= 0).all()
    y = held_out["value"].to_numpy()
    coverage = float(np.mean((y >= pred["p10"]) & (y <= pred["p90"])))
    assert 0.6 <= coverage <= 0.95
    assert pred["p90"].mean() > pred["pred_tweedie"].mean() > pred["p10"].mean()
    # Crossed quantile members (here: swapped on purpose) still give p10 <= p90.
    crossed = gbm.predict({"tweedie": family["tweedie"], "quantile_p10": family["quantile_p90"],
                           "quantile_p90": family["quantile_p10"]}, held_out)
    assert (crossed["pred_quantile_p10"] > crossed["pred_quantile_p90"]).any()
    assert (crossed["p10"] <= crossed["p90"]).all()
    np.testing.assert_array_equal(crossed["p90"], pred["p90"])


def test_quantile_members_are_mapped_on_the_validation_cutoff_only(family, train, held_out):
    """Each quantile member's forecast is lib/intervals' map of its booster's output, the map
    fitted on the validation cutoff (its labels, its alpha); other members have none."""
    newest = train[train["cutoff_date"] == train["cutoff_date"].max()]
    for member, alpha in (("quantile_p10", 0.1), ("quantile_p90", 0.9)):
        model = family[member]
        raw_valid = model.parts["main"].output(model.matrix(newest))
        expected = intervals.fit_quantile_map(raw_valid, newest["value"].to_numpy(), alpha)
        assert model.quantile_map == expected
        assert model.summary()["quantile_map"] == expected
        raw = model.parts["main"].output(model.matrix(held_out))
        np.testing.assert_allclose(model.predict(held_out),
                                   np.clip(intervals.apply_quantile_map(raw, expected), 0, None))
    assert family["quantile_p90"].quantile_map is not None  # 1,500 validation rows: 10 bins
    assert "calibrated on the validation cutoff" in family["quantile_p90"].notes[-1]
    assert all(family[m].quantile_map is None for m in ("tweedie", "l2", "two_part", "hybrid"))


def test_two_part_is_finite_and_non_negative(family, held_out):
    model = family["two_part"]
    pred = model.predict(held_out)
    assert np.isfinite(pred).all() and (pred >= 0).all()
    assert set(model.parts) == {"classifier", "regressor"}
    assert set(model.best_iteration) == {"classifier", "regressor"}


@pytest.mark.parametrize(("member", "factor"), [("two_part", "smearing"), ("tweedie", "calibration")])
def test_back_transform_factors_bring_held_out_totals_closer(family, held_out, member, factor):
    # two_part: Duan's smearing undoes exp(E[log]) < E[exp]. tweedie (power 1.3): its fit
    # forecasts heavy-tailed totals low (by 7-20% on this generator, any seed).
    model = family[member]
    assert getattr(model, factor) > 1.05
    plain = pickle.loads(pickle.dumps(model))
    setattr(plain, factor, 1.0)
    truth = held_out["expected"].sum()
    assert abs(model.predict(held_out).sum() - truth) < abs(plain.predict(held_out).sum() - truth)


def test_calibrated_tweedie_matches_the_training_total(family, train):
    assert family["tweedie"].predict(train).sum() == pytest.approx(train["value"].sum(), rel=1e-9)
    assert family["l2"].calibration == 1.0  # only the log-link mean members are calibrated


def test_all_zero_labels_do_not_crash_and_say_why(train):
    zeros = train.assign(value=0.0)
    family = gbm.train_family(zeros, FEATURES, CATEGORICAL)
    pred = gbm.predict(family, zeros)
    value_cols = ["predicted_value", "p10", "p90", *[f"pred_{m}" for m in family]]
    assert (pred[value_cols].to_numpy() == 0.0).all()
    for model in family.values():
        assert any("nothing to learn" in n for n in model.notes), model.member


def test_tiny_data_trains_with_fixed_rounds_and_a_note():
    tiny = make_frame(25, CUTOFFS[:2], seed=3)  # 50 rows, 25 of them in the validation cutoff
    family = gbm.train_family(tiny, FEATURES, CATEGORICAL)
    assert set(family) == set(gbm.MEMBERS) - {"hybrid"}
    pred = gbm.predict(family, tiny)
    assert np.isfinite(pred.drop(columns=["user_id", "cutoff_date", "model"]).to_numpy()).all()
    assert any("no early stopping" in n and "25 row(s)" in n for n in family["tweedie"].notes)
    assert family["tweedie"].parts["main"].params["min_data_in_leaf"] == 3
    assert family["tweedie"].best_iteration["main"] == gbm.FALLBACK_ROUNDS


def test_one_cutoff_or_no_positive_validation_label_falls_back_to_fixed_rounds(train):
    one = gbm.train_family(train[train["cutoff_date"] == train["cutoff_date"].min()], FEATURES,
                           CATEGORICAL, members=["tweedie"], fallback_rounds=40)["tweedie"]
    assert one.validation_cutoff is None and one.best_iteration["main"] == 40
    assert any("no validation cutoff" in n for n in one.notes)
    newest = train["cutoff_date"] == train["cutoff_date"].max()
    dry = gbm.train_family(train.assign(value=train["value"].where(~newest, 0.0)), FEATURES,
                           CATEGORICAL, members=["tweedie"], fallback_rounds=40)["tweedie"]
    assert any("no positive label" in n for n in dry.notes) and dry.best_iteration["main"] == 40


def test_constant_features_predict_the_mean_with_a_note(train):
    flat = train.assign(x1=1.0, x2=1.0, noise=1.0, channel="web")
    model = gbm.train_family(flat, FEATURES, CATEGORICAL, members=["tweedie"])["tweedie"]
    pred = model.predict(flat)
    newest = flat["cutoff_date"] == flat["cutoff_date"].max()
    assert np.ptp(pred) == 0.0
    booster_out = model.parts["main"].output(model.matrix(flat.head(1)))[0]
    assert booster_out == pytest.approx(flat.loc[~newest, "value"].mean(), rel=1e-6)
    # Calibrated over training and validation rows, the constant forecast is their mean.
    assert pred[0] == pytest.approx(flat["value"].mean(), rel=1e-6)
    assert any("no split improves the fit" in n for n in model.notes)


def test_unseen_categories_score_as_missing_and_category_lists_are_fixed(family, held_out):
    model = family["tweedie"]
    assert model.categories == {"channel": ["app", "marketplace", "store", "web"]}
    rows = held_out.head(4)
    unseen = rows.assign(channel="fax")
    missing = rows.assign(channel=None)
    assert model.matrix(unseen)["channel"].isna().all()
    np.testing.assert_array_equal(model.predict(unseen), model.predict(missing))
    assert np.isfinite(model.predict(unseen)).all()
    # A caller's own category dtype (other levels, other order) scores like plain strings.
    recoded = rows.assign(channel=pd.Categorical(rows["channel"], categories=["web", "store", "app",
                                                                               "marketplace", "x"]))
    np.testing.assert_array_equal(model.predict(recoded), model.predict(rows))


def test_contributions_sum_to_the_raw_score(family, held_out):
    rows = held_out.head(50)
    for member, part in (("tweedie", "main"), ("two_part", "classifier"), ("two_part", "regressor")):
        model = family[member]
        C = gbm.contribution_matrix(model, rows, part)
        assert list(C.columns) == [*model.features, "bias"]
        raw = model.parts[part].booster.predict(model.matrix(rows), raw_score=True)
        np.testing.assert_allclose(C.sum(axis=1), raw, rtol=1e-9, atol=1e-9)
    tweedie = family["tweedie"]
    np.testing.assert_allclose(np.exp(gbm.contribution_matrix(tweedie, rows).sum(axis=1))
                               * tweedie.calibration, tweedie.predict(rows), rtol=1e-9)  # log link
    out = gbm.contributions(tweedie, rows, top_k=2)
    assert list(out.columns) == ["user_id", "cutoff_date", "top_features", "bias", "raw_score"]
    first = out["top_features"].iloc[0].split("; ")
    assert len(first) == 2 and all(f.split(":")[0] in tweedie.features for f in first)
    assert all(f.split(":")[1][0] in "+-" for f in first)


def test_pickle_round_trip_gives_identical_predictions(family, held_out):
    again = pickle.loads(pickle.dumps(family))
    pd.testing.assert_frame_equal(gbm.predict(again, held_out), gbm.predict(family, held_out))
    assert again["two_part"].best_iteration == family["two_part"].best_iteration
    assert again["hybrid"].features == [*FEATURES, *CATEGORICAL, "btyd_hint"]
    assert again["tweedie"].training_cutoffs == family["tweedie"].training_cutoffs


def test_summary_is_json_for_manifests(family):
    summary = json.loads(json.dumps(family["two_part"].summary()))
    assert summary["best_iteration"] == family["two_part"].best_iteration
    assert summary["params"]["classifier"]["objective"] == "binary"
    assert summary["validation_cutoff"] == "2024-10-31" and summary["categorical"] == {"channel": 4}
    assert summary["smearing"] == family["two_part"].smearing and summary["notes"]


def test_max_rows_keeps_the_newest_cutoffs_whole_and_is_order_independent(train, held_out):
    kw = {"members": ["l2"], "max_rows": 4000}
    model = gbm.train_family(train, FEATURES, CATEGORICAL, **kw)["l2"]
    # 4500 training rows: the validation cutoff (not counted) and the two newest training
    # cutoffs (3000) whole; 1000 of the oldest cutoff's 1500 rows fill the budget.
    assert model.n_valid_rows == 1500
    assert 3900 < model.n_train_rows < 4100
    assert any("max_rows 4000" in n for n in model.notes)
    shuffled = gbm.train_family(train.sample(frac=1.0, random_state=7), FEATURES, CATEGORICAL, **kw)["l2"]
    np.testing.assert_array_equal(shuffled.predict(held_out), model.predict(held_out))
    other_seed = gbm.train_family(train, FEATURES, CATEGORICAL, seed=1, **kw)["l2"]
    assert not np.array_equal(other_seed.predict(held_out), model.predict(held_out))


def test_bound_keys_keeps_the_rows_train_family_keeps(train):
    from ltv_pipeline.lib import gbm_fit

    keys, notes = gbm_fit.bound_keys(train[["user_id", "cutoff_date"]], max_rows=4000)
    assert 3900 < len(keys) - 1500 < 4100 and any("max_rows 4000" in n for n in notes)
    fetched = train.loc[keys.index]  # only these rows' features are fetched
    kw = {"members": ["l2"], "max_rows": 4000}
    full = gbm.train_family(train, FEATURES, CATEGORICAL, **kw)["l2"]
    bounded = gbm.train_family(fetched, FEATURES, CATEGORICAL, **kw)["l2"]
    assert bounded.n_train_rows == full.n_train_rows
    np.testing.assert_array_equal(bounded.predict(train), full.predict(train))
    same, none = gbm_fit.bound_keys(train[["user_id", "cutoff_date"]], max_rows=10**6)
    assert len(same) == len(train) and none == []


def test_importance_ranks_signal_above_noise(family):
    imp = gbm.importance(family)
    assert {"member", "part", "feature", "gain", "split", "gain_share"} <= set(imp.columns)
    assert set(imp["member"]) == set(family)
    tw = imp[imp["member"] == "tweedie"].set_index("feature")["gain"]
    assert tw["x1"] > tw["noise"] and tw["x2"] > tw["noise"]
    hy = imp[imp["member"] == "hybrid"].set_index("feature")["gain"]
    assert hy["btyd_hint"] > hy["noise"]


def test_bad_inputs_raise_actionable_errors(train):
    with pytest.raises(ValueError, match="lacks column"):
        gbm.train_family(train, [*FEATURES, "absent"], CATEGORICAL)
    with pytest.raises(ValueError, match="null or infinite"):
        gbm.train_family(train.assign(value=np.nan), FEATURES, CATEGORICAL)
    with pytest.raises(ValueError, match="list it in categorical"):
        gbm.train_family(train, [*FEATURES, "channel"], [], members=["l2"])
    with pytest.raises(ValueError, match="hybrid needs hybrid_features"):
        gbm.train_family(train, FEATURES, CATEGORICAL, members=["hybrid"])
    model = gbm.train_family(train.assign(value=train["value"] - 1.0), FEATURES, CATEGORICAL,
                             members=["l2"], fallback_rounds=5, max_rounds=5)["l2"]
    assert any("negative label(s)" in n for n in model.notes)
    with pytest.raises(ValueError, match="lacks feature column"):
        model.predict(train.drop(columns=["x2"]))


@pytest.mark.parametrize("member", ["quantile_p10", "two_part", "l1"])
def test_members_sharing_the_family_bins_train_as_they_would_alone(family, train, held_out, member):
    """The members on the family's rows share one binned Dataset (lib/gbm_fit._Bins), each with
    its own label; the two-part regressor (positive rows only) bins its own. A member trained
    after others predicts exactly what it predicts when it is trained alone."""
    alone = gbm.train_family(train, FEATURES, CATEGORICAL, members=[member])[member]
    shared = family[member]
    for name, part in shared.parts.items():
        assert part.best_iteration == alone.parts[name].best_iteration
    np.testing.assert_array_equal(gbm.predict({member: shared}, held_out)[f"pred_{member}"],
                                  gbm.predict({member: alone}, held_out)[f"pred_{member}"])
