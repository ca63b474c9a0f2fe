"""A tiny random BERT (hidden 32, 2 layers) saved as a local model folder, for tests."""

from __future__ import annotations

from pathlib import Path

_VOCAB = """
steel stainless hex hexagon bolt bolts screw screws nut nuts washer glove gloves nitrile lab latex
pipette tip tips tool tools hand pliers wrench brand category fasteners metal sheet safety red blue
large small pack of box for with and the a in by made ideal
"""
WORDS = tuple(_VOCAB.split())


def tiny_bert(folder: Path, seed: int = 0) -> Path:
    """A random BERT (hidden 32, 2 layers, 2 heads) with a word-level vocab, saved in ``folder``."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    vocab_dir = folder / "vocab"
    vocab_dir.mkdir(parents=True)
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    (vocab_dir / "vocab.txt").write_text("\n".join([*special, *WORDS, ".", ",", ":"]) + "\n")
    tokenizer = BertTokenizerFast.from_pretrained(vocab_dir, local_files_only=True)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=64,
    )
    torch.manual_seed(seed)
    model_dir = folder / "model"
    BertModel(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    return model_dir
