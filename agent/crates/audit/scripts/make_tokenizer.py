#!/usr/bin/env python3
"""Writes a tiny local Hugging Face tokenizer (word level, trained on genai-bench's
own sonnet.txt) so genai-bench runs offline: it insists on --model-tokenizer."""
import os
import sys

from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast
import genai_bench.data

out = sys.argv[1]
sonnet = os.path.join(os.path.dirname(genai_bench.data.__file__), "sonnet.txt")
tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
tok.pre_tokenizer = pre_tokenizers.Whitespace()
tok.train([sonnet], trainers.WordLevelTrainer(special_tokens=["[UNK]"]))
PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(out)
print(f"tokenizer written to {out}")
