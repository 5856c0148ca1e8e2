"""Byte-level BPE tokenizers trained on the fly with `tokenizers`, for models pretrained from scratch."""

from __future__ import annotations

from collections.abc import Iterable


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int = 32000, mlm: bool = False):
    """A `PreTrainedTokenizerFast` trained on `texts`: byte-level BPE (any text, no unknown characters),
    with `<|endoftext|>` as EOS and pad for causal models, or `[CLS] [SEP] [PAD] [MASK]` for masked-LM ones."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "[CLS]", "[SEP]", "[PAD]", "[MASK]"] if mlm else ["<unk>", "<|endoftext|>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    if mlm:
        cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
                                                           special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
        return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", cls_token="[CLS]", sep_token="[SEP]",
                                       pad_token="[PAD]", mask_token="[MASK]")
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", unk_token="<unk>",
                                   pad_token="<|endoftext|>")
