"""`logad console`: a web page for on-call engineers, over serve's alerts and scores topics.

settings.py      ConsoleSettings (flags, LOGAD_* variables, config keys)
store.py         the last N minutes of alerts and scores, bounded, in memory
patterns.py      alerts grouped by pattern; acknowledgements (memory + ack file)
views.py         the JSON the page polls, built from the store (pure)
histogram.py     score distribution bins aligned on the threshold, counts per minute
metrics_scrape.py  serve's /metrics parsed into a snapshot, rates between two
registry_info.py the registry's promotions, rollbacks and decision records
names.py         template texts that name event ids
reader.py        the alerts and scores topics, read with no consumer group
server.py        the aiohttp app and `Console` (start/stop, for the demo to host)
static/          the page: index.html, console.js, console.css, vendored uPlot
"""
