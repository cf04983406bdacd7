"""Loads exported files with Hugging Face `datasets` and hands them to TRL's SFTTrainer and
DPOTrainer (a tiny random model, a word-level tokenizer with a chat template, one CPU
step each), so every check TRL applies to the rows runs. Kept out of the pytest process:
torch and the embedded store do not share one.

Usage: trainer_check.py KIND=FILE[,FILE...] ... with KIND sft, dpo or prompt-completion
"""

from __future__ import annotations

import sys
import tempfile

from datasets import load_dataset
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast
from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer
from trl.data_utils import is_conversational, maybe_apply_chat_template

TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def tokenizer() -> PreTrainedTokenizerFast:
    words = Tokenizer(models.WordLevel({"[UNK]": 0, "[PAD]": 1, "[EOS]": 2}, unk_token="[UNK]"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=words, unk_token="[UNK]", pad_token="[PAD]", eos_token="[EOS]"
    )
    tok.chat_template = TEMPLATE
    return tok


def model() -> GPT2LMHeadModel:
    config = GPT2Config(
        vocab_size=8, n_positions=256, n_embd=8, n_layer=1, n_head=1, bos_token_id=2, eos_token_id=2
    )
    return GPT2LMHeadModel(config)


def main(kind: str, files: list[str]) -> None:
    tok = tokenizer()
    data = load_dataset("json", data_files=files, split="train")
    assert len(data) > 0
    for row in data:
        rendered = maybe_apply_chat_template(row, tok)
        assert all(isinstance(v, str) for v in rendered.values()), rendered
    out = tempfile.mkdtemp()
    common = {
        "output_dir": out,
        "report_to": [],
        "max_steps": 1,
        "use_cpu": True,
        "bf16": False,
        "save_strategy": "no",
        "per_device_train_batch_size": 2,
    }
    trainer: SFTTrainer | DPOTrainer
    if kind == "dpo":
        trainer = DPOTrainer(
            model=model(),
            ref_model=model(),
            args=DPOConfig(**common),
            train_dataset=data,
            processing_class=tok,
        )
    else:
        assert all(is_conversational(row) for row in data)
        if kind == "prompt-completion":
            data = data.select_columns(["prompt", "completion"])
        trainer = SFTTrainer(
            model=model(), args=SFTConfig(**common), train_dataset=data, processing_class=tok
        )
    trainer.train()
    print(f"ok {kind} {len(data)} rows")


if __name__ == "__main__":
    for job in sys.argv[1:]:
        kind, _, names = job.partition("=")
        main(kind, names.split(","))
