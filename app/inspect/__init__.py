"""The Inspect feature: per-token entropy pages, their JSON twins and the policy preview."""
