"""``python -m alpaca_feed serve …``: run the local Alpaca feed from the command line."""

from alpaca_feed.cli import feed_app

if __name__ == "__main__":
    feed_app(prog_name="python -m alpaca_feed")
