"""``python -m deploy.alpaca_feed serve …``: run the local Alpaca feed from the command line."""

from deploy.alpaca_feed.cli import feed_app

if __name__ == "__main__":
    feed_app(prog_name="python -m deploy.alpaca_feed")
