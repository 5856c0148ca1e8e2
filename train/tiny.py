"""Tiny causal language models built locally, for smoke tests, benchmarks of the tooling and CI: a byte-level
BPE tokenizer trained on the given texts and a small GPT-2 with random weights, optionally trained for a few
steps. Nothing is downloaded."""

from __future__ import annotations

from pathlib import Path


def build_tiny_gpt2(folder: str | Path, tokenizer_texts: list[str], train_texts: list[str] | None = None,
                    vocab_size: int = 1000, steps: int = 150, seed: int = 0, chat_template: str | None = None,
                    context: int = 512) -> Path:
    """Save a 2-layer, 64-wide GPT-2 and its tokenizer to `folder`; with `train_texts`, first train it for
    `steps` steps of next-token prediction on them (blocks of 128 tokens, AdamW, CPU is enough); with
    `chat_template` (Jinja), the tokenizer gets it; `context` is the number of positions."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from train.tokenizer import train_bpe_tokenizer

    fast = train_bpe_tokenizer(tokenizer_texts, vocab_size)
    if chat_template:
        fast.chat_template = chat_template
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(fast), n_positions=context, n_embd=64, n_layer=2, n_head=2,
                                       bos_token_id=fast.eos_token_id, eos_token_id=fast.eos_token_id))
    if train_texts:
        ids = torch.tensor(fast("\n\n".join(train_texts))["input_ids"])
        blocks = ids[: len(ids) // 128 * 128].view(-1, 128)
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
        model.train()
        for step in range(steps):
            batch = blocks[(step * 8) % len(blocks) :][:8]
            model(input_ids=batch, labels=batch).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        model.eval()
    folder = Path(folder)
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder
