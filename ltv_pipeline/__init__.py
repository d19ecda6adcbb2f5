"""ltv_pipeline: customer lifetime value forecasts as an orchestrated asset graph."""

import os

# LightGBM's OpenMP threads (GNU libgomp) spin-wait ~300k iterations between parallel regions
# by default. On a busy machine that spinning steals the cores the other thread needs: with
# three other busy processes on this 2-core machine a 150-round booster took 9.5 s instead of
# 1.6 s, and an `ltv predict` at 100k users 2,364 s under load ~5 instead of 210 s on a quiet
# machine. A short spin costs nothing when the machine is quiet (1.61 vs 1.59 s) and cuts the
# loaded case to 5.9 s. libgomp reads the variable when LightGBM loads it, so it is set here,
# before any module of this package imports lightgbm; a user's own OpenMP settings win.
if "GOMP_SPINCOUNT" not in os.environ and "OMP_WAIT_POLICY" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = "1000"
