"""Rendering of arena episodes: camera images from a state (`camera`) and the MP4 (`video`)."""
