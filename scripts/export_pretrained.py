"""Export a trained run as the model shipped inside the package (inference-only, a few MB).

    python scripts/export_pretrained.py RUN_DIR --eval RUN_DIR/eval.json \
        --command "molgan train ..." --out molgan/pretrained/qm9.pt
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from molgan.checkpoint import export_model, load_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--out", default="molgan/pretrained/qm9.pt")
    parser.add_argument("--command", required=True, help="the exact command that trained it")
    parser.add_argument("--eval", default=None, help="molgan evaluate --json output to attach")
    parser.add_argument("--device", default="cpu", help="device it was trained on")
    args = parser.parse_args()
    bundle = load_checkpoint(args.run)
    note = {"command": args.command, "device": args.device, "steps": int(bundle["step"])}
    if args.eval:
        metrics = json.loads(Path(args.eval).read_text())
        note["metrics"] = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
    export_model(bundle, args.out, note)
    print(f"{args.out}: {Path(args.out).stat().st_size / 1e6:.2f} MB, step {note['steps']}")


if __name__ == "__main__":
    main()
