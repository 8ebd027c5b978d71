"""The hall data the queue service ships with (DESIGN §4 "queue").

`categories.json`, `catalog.json` and `windows.json` are written by `generate.py` in this folder;
edit the tables there and regenerate rather than editing the JSON by hand:

    python services/queue/src/goldenkey/queue/data/generate.py
"""
