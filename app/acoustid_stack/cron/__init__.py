"""Leader-elected periodic jobs (`acoustid-stack run cron`).

Any number of cron processes may run; one holds a PostgreSQL session advisory lock and runs
the jobs of `jobs.jobs_for`, the others wait to take over (`leader`).
"""
