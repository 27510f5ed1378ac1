"""Placeholder: filled in by its issue."""

from fastapi import FastAPI

from app.settings import Settings


def setup(app: FastAPI, settings: Settings) -> None:
    """Register this module's routes and services."""
