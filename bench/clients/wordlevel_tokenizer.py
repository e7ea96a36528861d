"""Writes a tokenizer for AIPerf that tokenizes trickle's simulated model
exactly: one token per word of its fixed sentence (bench/run.py --scenario
llm-clients). AIPerf needs a local tokenizer to run offline.

    python wordlevel_tokenizer.py DIR
"""

import json
import os
import sys

from tokenizers import Tokenizer, decoders, models, pre_tokenizers

# trickle's simulated model says word i % 32 of this sentence (src/llm/model.rs).
SENTENCE = ("the stream of tokens flows from a simulated model to every client at its own pace and "
            "each word arrives when it is ready so that latency shows in what users see")


def main(out):
    vocab = {"[UNK]": 0}
    for word in SENTENCE.split():
        vocab.setdefault(word, len(vocab))
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    os.makedirs(out, exist_ok=True)
    tokenizer.save(os.path.join(out, "tokenizer.json"))
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "[UNK]",
                   "model_max_length": 1_000_000}, f)


if __name__ == "__main__":
    main(sys.argv[1])
