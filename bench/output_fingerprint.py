"""SHA-256 of every table the lenses, `profile` and `attribute` write, on fixed seeds: a refactor that must not
change any output prints the same lines before and after.

    python bench/output_fingerprint.py [--out FOLDER]

One thread (so reductions run in one order), a resnet8 and its plain twin trained 30 steps on the embedded shapes
at 16 px, seed 0; then `lesion`, `paths`, `landscape` (1-D and 2-D), `profile` on 16 held-out images and
`attribute` (saliency, Integrated Gradients, Grad-CAM) on 4, all through the CLI. Prints one line per CSV, npz or
JSON file (tables, saved results, figures as plotly JSON; not run.json, which holds times): its path under --out,
with the run id replaced by the model name (in the contents too: labels name their run;
the seconds a result records set to 0), and its hash. HTML is left out: it embeds plotly's random div ids.
"""

import argparse
import hashlib
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from resnet_explorer.cli import main as cli  # noqa: E402


def run(argv: list[str]) -> None:
    code = cli(argv)
    if code != 0:
        raise SystemExit(f"{' '.join(argv[:2])} exited {code}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", help="keep the outputs here (default: a temporary folder)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.out or tmp)
        runs = base / "runs"
        for plain in ([], ["--plain"]):
            run(["train", "--model", "resnet8", *plain, "--steps", "30", "--batch-size", "32", "--train-size", "512",
                 "--test-size", "256", "--image-size", "16", "--seed", "0", "--probe-every", "10", "--device", "cpu",
                 "--runs", str(runs)])
        residual = sorted(p for p in runs.iterdir() if "resnet8" in p.name)[0]
        run(["lesion", str(residual), "--twin", "--images", "64", "--draws", "2", "--format", "json",
             "--out", str(base / "lesion")])
        run(["paths", str(residual), "--images", "16", "--draws", "2", "--format", "json", "--out", str(base / "paths")])
        run(["landscape", str(residual), "--twin", "--dims", "1", "--grid", "5", "--images", "32", "--format", "json",
             "--out", str(base / "landscape1")])
        run(["landscape", str(residual), "--dims", "2", "--grid", "3", "--images", "32", "--format", "json",
             "--out", str(base / "landscape2")])
        run(["profile", str(residual), "--samples", "16", "--device", "cpu", "--format", "json",
             "--out", str(base / "profile")])
        run(["attribute", str(residual), "--methods", "saliency,integrated_gradients,gradcam", "--samples", "4",
             "--steps", "8", "--no-sanity", "--out", str(base / "attribute")])
        ids = {p.name: ("plain8" if "plain" in p.name else "resnet8") for p in runs.iterdir()}
        for file in sorted(base.rglob("*")):
            if file.suffix not in (".csv", ".npz", ".json") or file.is_relative_to(runs) and "explain" not in file.parts:
                continue
            name = str(file.relative_to(base))
            for run_id, model in ids.items():
                name = name.replace(run_id, model).replace(run_id[-4:], model)
            name = re.sub(r"\d{8}-\d{6}", "ID", name)
            data = file.read_bytes()
            for run_id, model in ids.items():  # labels name their run
                data = data.replace(run_id.encode(), model.encode()).replace(run_id[-4:].encode(), model.encode())
            data = re.sub(rb'"seconds": [0-9.e-]+', b'"seconds": 0', data)  # a time measured, not a result
            print(f"{hashlib.sha256(data).hexdigest()[:16]}  {name}")


if __name__ == "__main__":
    main()
