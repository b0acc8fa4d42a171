"""The local web page (`python analyze.py --serve`): see web/server.py."""
