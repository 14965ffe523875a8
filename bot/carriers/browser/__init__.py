"""The browser softphone as a carrier: the owner calls the bot from /phone (phone.py)."""
