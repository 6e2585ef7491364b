"""The small website (`acoustid-stack run web`, :5001): status, statistics, API keys.

Server-rendered with Jinja2, no JavaScript. `views` holds the pages, `status` what they
show, `app` the Starlette factory.
"""
