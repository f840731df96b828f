"""The evidence web page: a small, read-only, closed-by-default site over the evidence store.

`passwords` is plain hashlib and safe to import anywhere (the hash form it shares with the
config is `reporter.config.passwordhash`); `app` brings in Starlette and uvicorn and is imported
only where the page is served.
"""
