from datetime import date, timedelta

import pytest

from ltv_pipeline.lib.cutoffs import label_observed_by, label_window, plan_cutoffs

AS_OF = date(1998, 6, 30)


def test_label_window_starts_the_day_after_the_cutoff_and_lasts_h_days():
    start, end = label_window(date(2024, 1, 31), 30)
    assert (start, end) == (date(2024, 2, 1), date(2024, 3, 2))
    assert (end - start).days == 30


def test_label_is_observed_only_when_its_last_day_is_on_or_before_as_of():
    assert label_observed_by(date(1998, 4, 1), 90, AS_OF)  # last day 1998-06-30
    assert not label_observed_by(date(1998, 4, 2), 90, AS_OF)


def test_plan_origins_and_training_windows_end_on_or_before_their_horizon():
    plan = plan_cutoffs(AS_OF, 90, n_origins=3, origin_spacing_days=30,
                        n_train_cutoffs=2, train_spacing_days=30)
    assert plan.scoring_date == AS_OF
    assert plan.backtest_origins == (
        AS_OF - timedelta(days=150), AS_OF - timedelta(days=120), AS_OF - timedelta(days=90)
    )
    assert max(plan.backtest_origins) + timedelta(days=90) == AS_OF
    assert plan.train_cutoffs == (AS_OF - timedelta(days=120), AS_OF - timedelta(days=90))
    for origin, trains in plan.origin_train_cutoffs.items():
        assert trains, origin
        assert all(label_observed_by(t, 90, origin) for t in trains)
        assert max(trains) == origin - timedelta(days=90)
    for t in plan.train_cutoffs:
        assert label_observed_by(t, 90, AS_OF)


def test_labels_end_by_the_data_end_when_the_data_stop_before_as_of():
    """A log whose last day is before as_of (a history-only file, a feed a few days behind):
    every label window ends by that day, where the marts count it complete; scoring stays."""
    last = AS_OF - timedelta(days=2)
    plan = plan_cutoffs(AS_OF, 90, observed_until=last)
    assert plan.scoring_date == AS_OF and plan.labels_until == last
    assert max(plan.backtest_origins) == last - timedelta(days=90)
    assert max(plan.train_cutoffs) == last - timedelta(days=90)
    for origin, trains in plan.origin_train_cutoffs.items():
        assert label_observed_by(origin, 90, last) and all(label_observed_by(t, 90, origin) for t in trains)
    # data reaching past as_of change nothing: labels still end by as_of
    later = plan_cutoffs(AS_OF, 90, observed_until=AS_OF + timedelta(days=30))
    assert later == plan_cutoffs(AS_OF, 90) and later.labels_until == AS_OF


def test_all_cutoffs_is_the_sorted_union_of_every_role():
    plan = plan_cutoffs(AS_OF, 90)
    union = {plan.scoring_date, *plan.backtest_origins, *plan.train_cutoffs}
    for trains in plan.origin_train_cutoffs.values():
        union.update(trains)
    assert plan.all_cutoffs == tuple(sorted(union))
    assert len(set(plan.all_cutoffs)) == len(plan.all_cutoffs)


def test_cutoffs_before_data_start_plus_min_history_are_dropped_with_their_origins():
    data_start = date(1997, 1, 1)
    plan = plan_cutoffs(AS_OF, 180, n_origins=3, origin_spacing_days=60,
                        n_train_cutoffs=3, train_spacing_days=30,
                        data_start=data_start, min_history_days=30)
    earliest = data_start + timedelta(days=30)
    assert all(d >= earliest for d in plan.all_cutoffs if d != plan.scoring_date)
    # Origins 1998-01-01, 1997-11-02, 1997-09-03; the last one's third training cutoff
    # (1997-01-06) is before 1997-01-31 and is dropped, the other two stay.
    assert plan.backtest_origins == (date(1997, 9, 3), date(1997, 11, 2), date(1998, 1, 1))
    assert plan.origin_train_cutoffs[date(1997, 9, 3)] == (date(1997, 2, 5), date(1997, 3, 7))
    assert len(plan.origin_train_cutoffs[date(1998, 1, 1)]) == 3
    # A plan whose origins have no history left keeps the scoring date only.
    tight = plan_cutoffs(date(1997, 3, 1), 90, data_start=data_start)
    assert tight.backtest_origins == () and tight.train_cutoffs == ()
    assert tight.all_cutoffs == (date(1997, 3, 1),)


def test_plan_rejects_nonsense_arguments():
    with pytest.raises(ValueError, match="horizon_days"):
        plan_cutoffs(AS_OF, 0)
    with pytest.raises(ValueError, match="origin_spacing_days"):
        plan_cutoffs(AS_OF, 30, origin_spacing_days=0)
    with pytest.raises(ValueError, match="n_origins"):
        plan_cutoffs(AS_OF, 30, n_origins=-1)
