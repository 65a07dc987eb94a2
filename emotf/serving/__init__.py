"""Serving: SavedModel and LiteRT export, serving metadata, prediction on videos and live
streams, and the timeline of a prediction."""
