"""The synthetic talking-face generator: speech, face motion and ground truth from a seed.

- :mod:`.corpus`: Mandarin sentences with emotion-prefixed ids, balanced draws per actor.
- :mod:`.speech`: eSpeak NG through ctypes: 16 kHz speech with phoneme timings.
- :mod:`.actors`: identities, voices and speaking styles; ages and genders as in the paper.
- :mod:`.motion`: visemes with coarticulation, prosody-driven brows, blinks, head motion.
- :mod:`.takes`: :func:`synthesize_take` and :func:`iter_takes` (in memory), :func:`write_take`,
  :func:`generate_takes` (on disk).
- :mod:`.cli`: ``mmface4d synth``.

Importing this package is light (standard library only); its names, numpy, the face model, scipy
and eSpeak NG load on use.
"""

import importlib

# Names load on first use, so that every `mmface4d` call (which imports the `cli` submodule, and
# therefore this package) stays on the standard library.
_EXPORTS = {
    "EMOTIONS": "corpus",
    "Sentence": "corpus",
    "draw_sentences": "corpus",
    "mandarin_corpus": "corpus",
    "GENERATOR_VERSION": "takes",
    "SyntheticTake": "takes",
    "generate_takes": "takes",
    "iter_takes": "takes",
    "synthesize_take": "takes",
    "write_take": "takes",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        module = importlib.import_module(f"mmface4d_datasets.synthetic.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'mmface4d_datasets.synthetic' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
