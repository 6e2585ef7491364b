"""Drills: inject a fault into a throwaway local stack, follow the runbook, measure RTO and RPO."""
