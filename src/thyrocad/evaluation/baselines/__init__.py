"""Classical observers that a nuclear-medicine physician would recognise: the thyroid-bed uptake
ratio (`uptake_ratio`), with scores of whole cohorts cached (`scores`)."""
