"""HTTP routes of the service: health, models (registry), live sessions."""
