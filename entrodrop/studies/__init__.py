"""Studies: every variant of a method with every seed, summarised with honest statistics.

A study is a base run config, a list of variants and a list of seeds (:class:`StudyConfig`);
``expand()`` gives one RunConfig per run, :mod:`~entrodrop.studies.local` trains them through
the same entry as ``entrodrop train``, and :mod:`~entrodrop.studies.stats` turns the runs'
outcomes into means with 95% confidence intervals and paired differences.
"""

from entrodrop.studies.config import Comparison, StudyConfig, StudyRun, VariantSpec
from entrodrop.studies.outcomes import OUTCOMES, run_outcomes
from entrodrop.studies.stats import mean_ci, summary, t975

__all__ = [
    "OUTCOMES",
    "Comparison",
    "StudyConfig",
    "StudyRun",
    "VariantSpec",
    "mean_ci",
    "run_outcomes",
    "summary",
    "t975",
]
