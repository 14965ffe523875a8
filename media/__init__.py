"""Pure, synchronous audio: G.711 mu-law, WAV, resampling, 20 ms framing, VAD.

Nothing in this package imports asyncio or does I/O beyond bytes in, bytes out.
"""
