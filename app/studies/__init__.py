"""Studies in the dashboard: create, list, read, cancel and delete studies; their pages and API."""
