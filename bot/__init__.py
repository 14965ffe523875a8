"""phonebot: the engine."""

import os

# One BLAS thread: the bot's matrix products are small (a sentence against a few thousand
# vectors) and many calls run at once; a second BLAS thread only spins after each product,
# which doubled the CPU an utterance costs. Set before numpy loads; an operator's own setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
