"""Export a trained run as the model shipped inside the package (inference-only, a few MB).

    python scripts/export_pretrained.py RUN_DIR --eval RUN_DIR/eval.json \
        --command "molgan train ..." --out molgan/pretrained/qm9.pt \
        [--critic-from molgan/pretrained/qm9.pt] [--sample-temperature T] [--average-only]

``--critic-from`` ships the critic (weights, config and its note; ``--critic-note`` says why)
of another run or exported model beside this run's generator when the run's own critic is a
poor pipeline scorer (docs/benchmarks.md, "The shipped critics"). ``--sample-temperature`` sets
the temperature ``molgan sample`` draws at by default for a model trained with
``--decode sample`` (chosen on a sampling seed other than the reported one).
``--average-only`` ships the moving average of the generator's weights as its only weights,
which halves the generator's share of the file; sampling uses the average either way, and
``weights='live'`` then gives the average too.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from molgan.checkpoint import export_model, load_checkpoint


def add_missing_reference(bundle: dict) -> None:
    """A minibatch-distance run from before critics stored their reference set: add the set
    the trainer would have stored (same seeded rows of the same training split)."""
    import torch

    from molgan.dataset import load_dataset
    from molgan.config import RunConfig
    from molgan.train import reference_rows

    config = RunConfig.from_dict(bundle["config"])
    if not config.critic.minibatch_distance or "reference_x" in bundle["critic"]:
        return
    run = config.train.run
    data = load_dataset(run.data, smiles_column=run.smiles_column, max_atoms=run.max_atoms,
                        atoms=run.atoms)
    train = data.subset(data.split_indices(seed=run.split_seed)["train"])
    rows = reference_rows(len(train), config.critic.reference_size, run.seed)
    bundle["critic"]["reference_x"] = torch.from_numpy(train.x_idx[rows])
    bundle["critic"]["reference_adj"] = torch.from_numpy(train.adj_idx[rows])
    bundle["critic_config"]["reference_size"] = config.critic.reference_size
    print(f"added the reference set ({len(rows)} training graphs) the trainer now stores")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--out", default="molgan/pretrained/qm9.pt")
    parser.add_argument("--command", required=True, help="the exact command that trained it")
    parser.add_argument("--eval", default=None, help="molgan evaluate --json output to attach")
    parser.add_argument("--device", default="cpu", help="device it was trained on")
    parser.add_argument("--critic-from", default=None,
                        help="run dir, checkpoint or exported model whose critic to ship")
    parser.add_argument("--sample-temperature", type=float, default=None,
                        help="default sampling temperature of a decode=sample model")
    parser.add_argument("--critic-note", default=None,
                        help="why this critic ships (with --critic-from), kept in the note")
    parser.add_argument("--average-only", action="store_true",
                        help="ship only the moving average of the generator's weights")
    args = parser.parse_args()
    bundle = load_checkpoint(args.run)
    add_missing_reference(bundle)
    note = {"command": args.command, "device": args.device, "steps": int(bundle["step"])}
    if args.sample_temperature is not None:
        if bundle["config"]["train"].get("decode") != "sample":
            raise SystemExit("--sample-temperature needs a model trained with --decode sample")
        bundle["config"]["train"]["sample_temperature"] = args.sample_temperature
        note["sample_temperature"] = args.sample_temperature
    if args.average_only:
        if "generator_ema" not in bundle:
            raise SystemExit("--average-only needs a run that kept a moving average")
        bundle["generator"] = bundle.pop("generator_ema")
        note["generator_weights"] = "the moving average of the run's generator weights only"
    if args.eval:
        metrics = json.loads(Path(args.eval).read_text())
        note["metrics"] = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
    if args.critic_from:
        donor = load_checkpoint(args.critic_from)
        bundle["critic"], bundle["critic_config"] = donor["critic"], donor["critic_config"]
        donor_note = donor.get("note", {})
        for key in ("critic", "critic_note_from"):
            if key in donor_note:
                note[key] = donor_note[key]
        note.setdefault("critic_note_from", {"path": str(args.critic_from),
                                             "steps": int(donor["step"])})
        if args.critic_note:
            note["critic"] = args.critic_note
    export_model(bundle, args.out, note)
    print(f"{args.out}: {Path(args.out).stat().st_size / 1e6:.2f} MB, step {note['steps']}")


if __name__ == "__main__":
    main()
