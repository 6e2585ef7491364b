"""Backup, restore and disaster-recovery drills: the code behind runbooks/ (DESIGN.md §8)."""
