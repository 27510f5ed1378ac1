"""The runs feature: the new-run form, the job runner, run storage and the runs pages."""
