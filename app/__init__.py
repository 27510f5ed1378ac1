"""EntroDrop Studio's web dashboard (FastAPI + Jinja2 + Plotly) on top of the `entrodrop` library."""
