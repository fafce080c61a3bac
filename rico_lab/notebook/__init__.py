"""The notebook side: the voice client widget, the ``%%role`` magic, cell timing, the bundle."""
