"""The synthetic talking-face generator: speech, face motion and ground truth from a seed.

- :mod:`.corpus`: Mandarin sentences with emotion-prefixed ids, balanced draws per actor.
- :mod:`.speech`: eSpeak NG through ctypes: 16 kHz speech with phoneme timings.
- :mod:`.actors`: identities, voices and speaking styles; ages and genders as in the paper.
- :mod:`.motion`: visemes with coarticulation, prosody-driven brows, blinks, head motion.
- :mod:`.takes`: :func:`synthesize_take` and :func:`iter_takes` (in memory), :func:`write_take`,
  :func:`generate_takes` (on disk).
- :mod:`.cli`: ``mmface4d synth``.

Importing this package is light (numpy only); the face model, scipy and eSpeak NG load on use.
"""

from mmface4d_datasets.synthetic.corpus import EMOTIONS, Sentence, draw_sentences, mandarin_corpus
from mmface4d_datasets.synthetic.takes import (
    GENERATOR_VERSION,
    SyntheticTake,
    generate_takes,
    iter_takes,
    synthesize_take,
    write_take,
)

__all__ = [
    "EMOTIONS",
    "GENERATOR_VERSION",
    "Sentence",
    "SyntheticTake",
    "draw_sentences",
    "generate_takes",
    "iter_takes",
    "mandarin_corpus",
    "synthesize_take",
    "write_take",
]
