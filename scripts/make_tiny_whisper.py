"""Build the tiny random-weight Whisper used by the faster-whisper tests: `fixtures/models/whisper-tiny-random/`.

Nothing is downloaded. The model is built from scratch, offline and reproducibly:

1. A byte-level BPE tokenizer (GPT-2 style, as Whisper's) is trained with the `tokenizers` library on the small
   English corpus below, then Whisper's special tokens are appended in Whisper's order:
   `<|endoftext|>`, `<|startoftranscript|>`, the 99 language tokens `<|en|>` ... `<|su|>`, `<|translate|>`,
   `<|transcribe|>`, `<|startoflm|>`, `<|startofprev|>`, `<|nocaptions|>`, `<|notimestamps|>`, then the 1501
   timestamp tokens `<|0.00|>` ... `<|30.00|>`. faster-whisper looks these up by name (`faster_whisper/tokenizer.py`)
   and takes `timestamp_begin = <|notimestamps|> + 1`, so the order matters.
2. A `transformers.WhisperForConditionalGeneration` with a small `WhisperConfig` (d_model 64, 2+2 layers, 4 heads,
   80 mel bins, vocabulary = the tokenizer's) is initialised with `torch.manual_seed(SEED)`.
   With fewer than 51865 tokens CTranslate2 treats it as an English-only model (like `tiny.en`).
3. It is saved with a generation config and a tokenizer, then converted with
   `ctranslate2.converters.TransformersConverter` (float32 weights, about 2 MB), copying `tokenizer.json` and a
   hand-written `preprocessor_config.json` (Whisper's 80-mel feature extractor settings) into the output.

The result loads through the real path, `faster_whisper.WhisperModel(dir, local_files_only=True)`.
Its text output is nonsense (random weights): tests use it for the streaming policy, timing, lifecycle,
concurrency and failure paths, never for accuracy.

Build-only requirements (never runtime dependencies of the server): torch (CPU), transformers, plus what the
server already has (ctranslate2, tokenizers, numpy). In this repository:

    .venv/bin/pip install torch==2.13.0                 # CPU wheel from /opt/wheels
    .venv/bin/pip install --no-deps transformers==5.23.0
    .venv/bin/pip install 'regex>=2025.10.22' 'safetensors>=0.8.0' typer

Usage:

    .venv/bin/python scripts/make_tiny_whisper.py [--out fixtures/models/whisper-tiny-random] [--check]

`--check` rebuilds into a temporary directory and exits non-zero if the result differs from `--out` byte for byte.
"""

from __future__ import annotations

import argparse
import filecmp
import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path

SEED = 1234
BPE_VOCAB_SIZE = 640  # 256 byte symbols + merges
D_MODEL = 64
LAYERS = 2
HEADS = 4
FFN = 256
N_MELS = 80
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "fixtures" / "models" / "whisper-tiny-random"

# Whisper's language tokens, in the order of openai/whisper's tokenizer.LANGUAGES (99 before large-v3).
LANGUAGES = (
    "en zh de es ru ko fr ja pt tr pl ca nl ar sv it id hi fi vi he uk el ms cs ro da hu ta no th ur hr bg lt la mi "
    "ml cy sk te fa lv bn sr az sl kn et mk br eu is hy ne mn bs kk sq sw gl mr pa si km sn yo so af oc ka be tg sd "
    "gu am yi lo uz fo ht ps tk nn mt sa lb my bo tl mg as tt haw ln ha ba jw su"
).split()
SPECIALS_BEFORE_LANGS = ["<|endoftext|>", "<|startoftranscript|>"]
SPECIALS_AFTER_LANGS = [
    "<|translate|>",
    "<|transcribe|>",
    "<|startoflm|>",
    "<|startofprev|>",
    "<|nocaptions|>",
    "<|notimestamps|>",
]
TIMESTAMPS = [f"<|{i * 0.02:.2f}|>" for i in range(1501)]

CORPUS = """\
Hello, how can I help you today? I would like to book a table for two at seven o'clock.
The weather is lovely this morning, so we walked along the river and talked about the garden.
Please call me back when you get this message. My number is five five five, one two three four.
She had never seen so many cards on one table; the king of hearts was missing, and nobody knew why.
Go forward ten meters, then turn left at the second door and wait for the signal.
It was a bright cold day in April, and the clocks were striking thirteen.
Can you repeat that? I didn't quite catch the last part of what you said.
The quick brown fox jumps over the lazy dog while the farmer counts his sheep.
Elinor, this eldest daughter, whose advice was so effectual, possessed a strength of understanding.
Yes. No. Maybe later. Thank you very much! Goodbye, and have a nice evening.
What time does the next train leave for the city, and how much is a return ticket?
We are testing a streaming speech recogniser with words, numbers like 42 and 2024, and punctuation.
"""


def _check_languages() -> None:
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    assert len(LANGUAGES) == 99 and len(set(LANGUAGES)) == 99, len(LANGUAGES)
    unknown = set(LANGUAGES) - set(_LANGUAGE_CODES)
    assert not unknown, unknown


def build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_VOCAB_SIZE,
        min_frequency=1,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
        show_progress=False,
    )
    lines = [line for line in CORPUS.splitlines() if line.strip()]
    tok.train_from_iterator(lines * 4, trainer=trainer)
    n_bpe = tok.get_vocab_size()
    specials = SPECIALS_BEFORE_LANGS + [f"<|{code}|>" for code in LANGUAGES] + SPECIALS_AFTER_LANGS
    added = tok.add_special_tokens(specials)
    assert added == len(specials)
    from tokenizers import AddedToken

    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in TIMESTAMPS])
    # Whisper's order, contiguous after the BPE vocabulary.
    assert tok.token_to_id("<|endoftext|>") == n_bpe
    assert tok.token_to_id("<|notimestamps|>") + 1 == tok.token_to_id("<|0.00|>")
    assert tok.token_to_id("<|30.00|>") == tok.get_vocab_size() - 1
    return tok


def preprocessor_config() -> dict:
    return {
        "chunk_length": 30,
        "feature_extractor_type": "WhisperFeatureExtractor",
        "feature_size": N_MELS,
        "hop_length": 160,
        "n_fft": 400,
        "n_samples": 480000,
        "nb_max_frames": 3000,
        "padding_side": "right",
        "padding_value": 0.0,
        "processor_class": "WhisperProcessor",
        "return_attention_mask": False,
        "sampling_rate": 16000,
    }


def build(out: Path) -> None:
    import ctranslate2
    import torch
    from transformers import GenerationConfig, PreTrainedTokenizerFast, WhisperConfig, WhisperForConditionalGeneration

    _check_languages()
    tok = build_tokenizer()
    vocab_size = tok.get_vocab_size()
    eot = tok.token_to_id("<|endoftext|>")
    sot = tok.token_to_id("<|startoftranscript|>")
    no_ts = tok.token_to_id("<|notimestamps|>")
    space = tok.token_to_id("Ġ")

    config = WhisperConfig(
        vocab_size=vocab_size,
        num_mel_bins=N_MELS,
        d_model=D_MODEL,
        encoder_layers=LAYERS,
        encoder_attention_heads=HEADS,
        decoder_layers=LAYERS,
        decoder_attention_heads=HEADS,
        encoder_ffn_dim=FFN,
        decoder_ffn_dim=FFN,
        max_source_positions=1500,
        max_target_positions=448,
        pad_token_id=eot,
        bos_token_id=eot,
        eos_token_id=eot,
        decoder_start_token_id=sot,
        suppress_tokens=[],
        begin_suppress_tokens=[space, eot],
    )
    torch.manual_seed(SEED)
    model = WhisperForConditionalGeneration(config).eval()

    gen = GenerationConfig(
        decoder_start_token_id=sot,
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
        max_length=448,
        suppress_tokens=[],
        begin_suppress_tokens=[space, eot],
        no_timestamps_token_id=no_ts,
        is_multilingual=False,
        lang_to_id={f"<|{code}|>": tok.token_to_id(f"<|{code}|>") for code in LANGUAGES},
        task_to_id={"transcribe": tok.token_to_id("<|transcribe|>"), "translate": tok.token_to_id("<|translate|>")},
        alignment_heads=[[LAYERS - 1, h] for h in range(HEADS)],
    )
    model.generation_config = gen

    with tempfile.TemporaryDirectory(prefix="tiny-whisper-hf-") as tmp:
        hf_dir = Path(tmp) / "hf"
        model.save_pretrained(hf_dir)
        fast = PreTrainedTokenizerFast(
            tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>"
        )
        fast.save_pretrained(hf_dir)
        tok.save(str(hf_dir / "tokenizer.json"))  # the plain tokenizers file faster-whisper reads
        (hf_dir / "preprocessor_config.json").write_text(json.dumps(preprocessor_config(), indent=2) + "\n")

        converter = ctranslate2.converters.TransformersConverter(
            str(hf_dir), copy_files=["tokenizer.json", "preprocessor_config.json"]
        )
        if out.exists():
            shutil.rmtree(out)
        converter.convert(str(out), quantization="float32", force=True)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--check", action="store_true", help="rebuild in a temp dir and compare with --out")
    args = parser.parse_args(argv)
    if args.check:
        with tempfile.TemporaryDirectory(prefix="tiny-whisper-check-") as tmp:
            fresh = Path(tmp) / "model"
            build(fresh)
            names = sorted(p.name for p in fresh.iterdir())
            match, mismatch, errors = filecmp.cmpfiles(fresh, args.out, names, shallow=False)
            for name in names:
                print(f"{name}: {'same' if name in match else 'DIFFERENT'}")
            return 0 if not mismatch and not errors else 1
    build(args.out)
    for p in sorted(args.out.iterdir()):
        print(f"{p.name:28s} {p.stat().st_size:>10d}  {_digest(p)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
