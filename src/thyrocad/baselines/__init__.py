"""Classical observers that a nuclear-medicine physician would recognise (no learning)."""

from thyrocad.baselines.uptake_ratio import UptakeRatioObserver, uptake_ratio

__all__ = ["UptakeRatioObserver", "uptake_ratio"]
