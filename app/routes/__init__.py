"""Route modules: one per page family, each with a `setup(app, settings)`."""
