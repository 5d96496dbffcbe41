"""Command line: ``molgan prepare | train | sample | evaluate``.

The library logs; this module prints. Progress bars and messages go to stderr, results to files
or stdout. Exit codes: 0 success; 2 a failure caused by the input (a bad or unreadable file, an
impossible flag value, an output that cannot be written, a missing device: one line naming it,
no traceback unless ``-v``), checked before any long work starts; 1 an internal error (with its
traceback); 130 interrupted (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from molgan.files import atomic_output, check_output, write_text_atomic

if TYPE_CHECKING:
    import torch

    from molgan.threads import ThreadPolicy

log = logging.getLogger("molgan")


class UserError(Exception):
    """An error caused by the user's input; printed as one line."""


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors in one line (``molgan CMD: error: ... (see --help)``)."""

    def error(self, message: str) -> Any:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_data_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default="qm9",
                        help="'qm9' (embedded, default), 'moses' (MOSES's train split; needs "
                             "the molsets wheel's data) or a .smi/.txt/.csv/.sdf file")
    parser.add_argument("--smiles-column", default=None,
                        help="CSV column with SMILES (default: the first of SMILES/smiles/...)")
    parser.add_argument("--max-atoms", type=_positive_int, default=None,
                        help="node slots N; larger molecules are skipped (default: from the data)")
    parser.add_argument("--atoms", default=None,
                        help="comma-separated allowed atom tokens, e.g. C,N,O,F,N+,O- "
                             "(default: every token in the data)")
    parser.add_argument("--min-atom-count", type=_positive_int, default=1,
                        help="learned atom tokens must occur at least this often")
    parser.add_argument("--cache-dir", default=None,
                        help="featurization cache (default: $MOLGAN_CACHE or ~/.cache/molgan)")
    parser.add_argument("--workers", type=_positive_int, default=None,
                        help="processes for RDKit work (default: all usable CPUs)")


def _positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    """argparse type: a finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with all subcommands."""
    parser = _Parser(
        prog="molgan", description="MolGAN-style molecular graph GAN (WGAN-GP).")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    prepare = sub.add_parser("prepare", help="read, featurize and cache a dataset; report it")
    _add_data_args(prepare)
    prepare.add_argument("--json", default=None, help="write the report as JSON to this file")
    prepare.add_argument("--skipped-csv", default=None,
                         help="write skipped rows with reasons here (default: next to --json)")
    prepare.add_argument("--no-roundtrip", action="store_true",
                         help="skip the decode check (roundtrip_exact)")
    prepare.set_defaults(handler=run_prepare)

    from molgan.config import PART_TITLES, PARTS
    from molgan.critic import CriticConfig
    from molgan.generator import GeneratorConfig
    from molgan.options import add_dataclass_flags
    from molgan.recipes import recipe_names

    train = sub.add_parser("train", help="train a generator and critic (WGAN-GP)",
                           description="Train on QM9 or your own molecules. Defaults < "
                           "--recipe < --config < flags; the defaults shown are the default "
                           "recipe's.")
    train.add_argument("--recipe", default=None, metavar="NAME",
                       help=f"a shipped recipe: {', '.join(recipe_names())}. 'default' is "
                            "molgan's own, 'molgan' De Cao & Kipf's WGAN-GP settings, "
                            "'pretrained-NAME' the recipe of the shipped model NAME "
                            "(default: default)")
    train.add_argument("--config", default=None,
                       help="JSON or TOML file of config fields (over the recipe)")
    train.add_argument("--out", default="runs/molgan", help="run directory (default: runs/molgan)")
    train.add_argument("--resume", action="store_true",
                       help="continue from OUT/ckpt.pt (budget fields may be raised)")
    train.add_argument("--cache-dir", default=None, help="featurization cache directory")
    train.add_argument("--workers", type=_positive_int, default=None,
                       help="processes for RDKit work (default: the usable CPUs)")
    train.add_argument("--threads", type=_positive_int, default=None,
                       help="torch CPU threads, fixed (default on a CPU: as many as the cores "
                            "other processes leave free, re-chosen after 5 s, then every 20 s; "
                            "OMP_NUM_THREADS also fixes them)")
    for part, cls in PARTS.items():
        add_dataclass_flags(train.add_argument_group(PART_TITLES[part]), cls)
    add_dataclass_flags(train.add_argument_group(PART_TITLES["generator"]), GeneratorConfig)
    add_dataclass_flags(train.add_argument_group(PART_TITLES["critic"]), CriticConfig)
    train.set_defaults(handler=run_train)

    sample = sub.add_parser("sample", help="draw molecules from a trained generator")
    sample.add_argument("run", nargs="?", default=None, help="run directory or ckpt.pt")
    sample.add_argument("--pretrained", default=None, metavar="NAME",
                        help="use a model shipped with the package instead (qm9, moses)")
    sample.add_argument("-n", "--num-samples", type=_positive_int, default=10_000,
                        help="samples (10000)")
    sample.add_argument("--seed", type=int, default=0, help="sampling seed (0)")
    sample.add_argument("-o", "--output", required=True,
                        help="output .smi (invalid = empty line), .csv (smiles,valid) or .sdf")
    sample.add_argument("--valid-only", action="store_true", help="drop invalid samples")
    sample.add_argument("--image", default=None, help="PNG grid of sampled molecules")
    sample.add_argument("--decode", default=None, choices=("argmax", "sample"),
                        help="argmax, or sample a categorical per node/pair "
                             "(default: what the model was trained with)")
    sample.add_argument("--temperature", type=_positive_float, default=None,
                        help="with --decode sample: draw from softmax(logits / T); below 1 "
                             "nearer the argmax, above 1 more spread (default: the model's "
                             "sample_temperature, else 1)")
    sample.add_argument("--valence-draw", default=None, choices=("true", "false"),
                        help="with --decode sample: draw the bonds within the atoms' valences "
                             "(default: as the model was trained, its valence_draw)")
    sample.add_argument("--weights", default="average", choices=("average", "live"),
                        help="the generator's moving-average weights when the run kept them "
                             "(train --generator-ema), else its last weights (average); or "
                             "the last weights of training (live)")
    sample.add_argument("--device", default="auto", help="auto, cpu or cuda")
    sample.add_argument("--batch-size", type=_positive_int, default=4096,  # = SAMPLE_BATCH
                        help="generator batch size (the samples of a seed depend on it)")
    sample.add_argument("--workers", type=_positive_int, default=None,
                        help="processes for decoding")
    sample.set_defaults(handler=run_sample)

    evaluate = sub.add_parser("evaluate", help="metrics of a SMILES sample file")
    evaluate.add_argument("samples", help=".smi/.txt, .csv or .sdf; empty rows count as invalid")
    evaluate.add_argument("--train", default="qm9",
                          help="reference dataset: qm9 or a file (split as molgan train does), "
                               "or moses (its own splits; adds the MOSES metrics)")
    evaluate.add_argument("--smiles-column", default=None, help="SMILES column of a CSV")
    evaluate.add_argument("--split-seed", type=int, default=0, help="split seed (0)")
    evaluate.add_argument("--whole", action="store_true",
                          help="no split: the whole --train set is both train and test")
    evaluate.add_argument("--test-ids", default=None,
                          help="JSON file of test-set ids (e.g. the GDSS/MoFlow QM9 split)")
    evaluate.add_argument("--test-ids-offset", type=int, default=0,
                          help="added to each id (1 for GDSS's 0-based QM9 row ids)")
    evaluate.add_argument("--no-fcd", action="store_true", help="skip FCD (ChemNet)")
    evaluate.add_argument("--no-properties", action="store_true", help="skip property metrics")
    evaluate.add_argument("--moses-metrics", action="store_true",
                          help="add the MOSES metrics (SNN, Frag, Scaf, IntDiv, Filters) against "
                               "any reference; always on with --train moses")
    evaluate.add_argument("--json", default=None, help="write all metrics as JSON here")
    evaluate.add_argument("--plots", default=None, help="directory for property histograms")
    evaluate.add_argument("--cache-dir", default=None, help="cache directory")
    evaluate.set_defaults(handler=run_evaluate)

    score = sub.add_parser("score", help="score molecules with a trained critic")
    score.add_argument("model", help="run directory, ckpt.pt, 'pretrained' (the shipped QM9 "
                       "model) or 'pretrained:NAME' (qm9, moses)")
    score.add_argument("input", help=".smi/.txt, .csv or .sdf of molecules")
    score.add_argument("-o", "--output", required=True, help="CSV: index,smiles,score,reason")
    score.add_argument("--smiles-column", default=None, help="SMILES column of a CSV input")
    score.add_argument("--device", default="cpu", help="cpu or cuda")
    score.add_argument("--batch-size", type=_positive_int, default=4096,
                       help="molecules per batch")
    score.set_defaults(handler=run_score)
    return parser


def _progress_bar(total: int | None, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="mol", file=sys.stderr, dynamic_ncols=True,
                disable=None, leave=False)


def run_prepare(args: argparse.Namespace) -> int:
    """``molgan prepare``: featurize and cache, then report counts and the round trip."""
    from molgan.prepare import copy_skipped, format_report, prepare
    from molgan.vocab import parse_atom_symbol

    for symbol in (args.atoms.split(",") if args.atoms else []):
        parse_atom_symbol(symbol)  # ValueError naming a token that is not an atom
    skipped_csv = args.skipped_csv
    if skipped_csv is None and args.json:
        skipped_csv = str(Path(args.json).with_suffix("")) + "-skipped.csv"
    check_output(args.json, "--json", inputs=[args.data])
    check_output(skipped_csv, "--skipped-csv", inputs=[args.data, args.json])

    report = prepare(
        source=args.data,
        smiles_column=args.smiles_column,
        max_atoms=args.max_atoms,
        atoms=args.atoms.split(",") if args.atoms else None,
        min_atom_count=args.min_atom_count,
        cache_dir=args.cache_dir,
        workers=args.workers,
        roundtrip=not args.no_roundtrip,
        progress_bar=_progress_bar,
    )
    if skipped_csv:
        copy_skipped(report, skipped_csv)
        report["skipped_csv"] = skipped_csv
    if args.json:
        write_text_atomic(args.json, json.dumps(report, indent=2) + "\n")
    print(format_report(report))
    return 0


#: Fields that ``--resume`` may change; the rest define the run.
RESUMABLE = ("steps", "epochs", "device", "log_every", "eval_every", "eval_samples", "ckpt_every",
             "keep_every", "max_seconds")
#: Namespace entries of ``molgan train`` that are not config fields.
_NOT_FIELDS = ("command", "handler", "out", "resume", "config", "recipe", "cache_dir",
               "workers", "verbose", "threads")


def _run_config(args: argparse.Namespace) -> Any:
    """Defaults < ``--recipe`` < ``--config`` file < flags; with ``--resume``, the
    checkpoint's config < the flags that RESUMABLE allows."""
    from molgan.checkpoint import CheckpointError, bundle_contents, load_checkpoint
    from molgan.config import RunConfig
    from molgan.options import read_config_file
    from molgan.recipes import recipe_fields

    given = {k: v for k, v in vars(args).items() if k not in _NOT_FIELDS}
    try:
        if args.resume:
            if args.recipe or args.config:
                raise UserError("--resume continues the run's own config; --recipe and "
                                "--config cannot change it")
            bundle = load_checkpoint(Path(args.out) / "ckpt.pt")
            with bundle_contents(Path(args.out) / "ckpt.pt"):
                flat = RunConfig.from_dict(bundle["config"]).to_flat()
            changed = sorted(k for k, v in given.items()
                             if k not in RESUMABLE and flat.get(k) != v)
            if changed:
                raise UserError(f"--resume cannot change {', '.join(changed)} (only "
                                f"{', '.join(RESUMABLE)}); start a new --out instead")
        else:
            flat = recipe_fields(args.recipe or "default")
            if args.config:
                flat.update(read_config_file(args.config))
        flat.update(given)
        return RunConfig.from_flat(flat)
    except (CheckpointError, ValueError, TypeError) as exc:
        raise UserError(str(exc)) from None


def _cpu_threads(count: int | None) -> str:
    return f"{count} CPU thread{'' if count == 1 else 's'}"


def _thread_policy(args: argparse.Namespace, device: torch.device) -> ThreadPolicy | None:
    """The started :class:`molgan.threads.ThreadPolicy` of a CPU run, or None where the
    threads are fixed (``--threads``, ``OMP_NUM_THREADS``), the run is not on a CPU, or the
    system gives no CPU times to measure (not Linux)."""
    import os

    from molgan.threads import ThreadPolicy

    if args.threads or "OMP_NUM_THREADS" in os.environ or device.type != "cpu" \
            or not ThreadPolicy.available():
        return None
    policy = ThreadPolicy()
    policy.start()
    log.info("%s: other processes keep %.1f of %d cores busy (--threads fixes the count)",
             _cpu_threads(policy.threads), policy.others_busy, len(policy.cpus))
    return policy


def run_train(args: argparse.Namespace) -> int:
    """``molgan train``: featurize (cached), train, checkpoint, plot."""
    from tqdm.auto import tqdm

    from molgan.dataset import load_dataset
    from molgan.train import Trainer, TrainingDiverged

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    config = _run_config(args)
    tc = config.train
    if not args.resume and (Path(args.out) / "ckpt.pt").exists():
        raise UserError(f"{args.out} already holds a run; pass --resume or choose another --out")
    run = tc.run
    from molgan.device import native_bf16, resolve_device

    try:  # before any featurization
        resolve_device(run.device)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    check_output(args.out, "--out", folder=True)
    data = load_dataset(run.data, smiles_column=run.smiles_column, max_atoms=run.max_atoms,
                        atoms=run.atoms, cache_dir=args.cache_dir, workers=args.workers)
    try:
        trainer = Trainer(config, data, args.out)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if args.resume:
        try:
            trainer.resume()
        except ValueError as exc:
            raise UserError(str(exc)) from None
    main_rank = trainer.dist.is_main
    if main_rank:
        skipped = data.report.get("skipped") or {}
        log.info("training on %s: %d molecules%s (train split %d), %s, device %s, %d -> %d "
                 "steps%s", run.data, len(data),
                 f" ({', '.join(f'{k} {v}' for k, v in skipped.items())} skipped)"
                 if skipped else "", trainer.x_idx.shape[0], data.vocab, trainer.device,
                 trainer.step, trainer.total_steps,
                 f", {trainer.dist.world_size} processes" if trainer.dist.enabled else "")
        if tc.run.precision == "bf16" and not native_bf16(trainer.device):
            log.warning("--precision bf16: this %s has no native bf16 (AVX512-BF16 or AMX), "
                        "so torch emulates it, several times slower than fp32; "
                        "--precision fp32 is faster here", trainer.device.type.upper())
        if tc.penalties.feature_penalty > 0 and trainer.critic.num_batch_features == 0:
            log.info("--feature-penalty %g has no effect: this critic has no batch features "
                     "(--minibatch-distance false)", tc.penalties.feature_penalty)
    threads = _thread_policy(args, trainer.device)
    bar = tqdm(total=trainer.total_steps, initial=trainer.step, desc="train", unit="step",
               file=sys.stderr, dynamic_ncols=True, disable=None if main_rank else True)

    def on_step(step: int, postfix: dict[str, Any]) -> None:
        if threads is not None and threads.update() is not None:
            log.info("%s from step %d: other processes keep %.1f of %d cores busy",
                     _cpu_threads(threads.threads), step, threads.others_busy, len(threads.cpus))
        bar.update(step - bar.n)
        if postfix:
            bar.set_postfix({k: f"{v:.3g}" for k, v in postfix.items()}, refresh=False)

    try:
        result = trainer.fit(on_step)
    except TrainingDiverged as exc:
        raise UserError(str(exc)) from None
    finally:
        bar.close()
    last = result.last_record
    summary = ", ".join(f"{k} {last[k]:.3f}" for k in ("validity", "uniqueness", "novelty")
                        if k in last)
    if result.status == "interrupted":
        if main_rank:
            print(f"interrupted at step {result.step}; checkpoint {result.checkpoint}; "
                  f"continue with --resume", file=sys.stderr)
        return 130
    if trainer.dist.enabled:
        import torch.distributed as dist

        dist.destroy_process_group()
    if not main_rank:
        return 0
    print(f"trained {result.step} steps -> {result.checkpoint}" + (f" ({summary})" if summary
                                                                   else ""))
    return 0


def run_sample(args: argparse.Namespace) -> int:
    """``molgan sample``: exactly n rows (or only the valid ones with --valid-only)."""
    from molgan.sample import SAMPLE_SUFFIXES, Sampler, write_samples

    from molgan.checkpoint import pretrained_path

    if (args.run is None) == (args.pretrained is None):
        raise UserError("give a run directory / checkpoint or --pretrained NAME (not both)")
    check_output(args.output, "-o", suffixes=SAMPLE_SUFFIXES)
    check_output(args.image, "--image", suffixes=(".png",), inputs=[args.output])
    source = pretrained_path(args.pretrained) if args.pretrained else args.run
    try:
        sampler = Sampler.from_checkpoint(source, device=None if args.device == "auto"
                                          else args.device, weights=args.weights,
                                          batch_size=args.batch_size,
                                          decode=args.decode, temperature=args.temperature,
                                          valence_draw=(None if args.valence_draw is None
                                                        else args.valence_draw == "true"))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    start = time.perf_counter()
    result = sampler.sample(args.num_samples, seed=args.seed, workers=args.workers)
    seconds = time.perf_counter() - start
    written = write_samples(result.smiles, args.output, valid_only=args.valid_only)
    n_valid = sum(1 for s in result.smiles if s)
    print(f"{len(result.smiles):,} samples ({n_valid:,} valid, "
          f"{len({s for s in result.smiles if s}):,} unique) in {seconds:.2f} s "
          f"-> {args.output} ({written:,} rows)")
    if args.image and n_valid == 0:
        print(f"molgan sample: no valid molecule to draw; {args.image} not written",
              file=sys.stderr)
    elif args.image:
        from molgan.plots import draw_molecule_grid

        draw_molecule_grid(result.smiles, args.image)
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    """``molgan evaluate``: print a table, write JSON and plots."""
    from molgan.evaluate import evaluate, format_table, load_reference, read_samples

    check_output(args.json, "--json", inputs=[args.samples, args.train])
    check_output(args.plots, "--plots", folder=True)
    samples = read_samples(args.samples, args.smiles_column)
    reference = load_reference(args.train, split_seed=args.split_seed, test_ids=args.test_ids,
                               test_ids_offset=args.test_ids_offset, whole=args.whole,
                               cache_dir=args.cache_dir)
    tables: dict[str, Any] = {}
    result = evaluate(samples, reference, fcd=not args.no_fcd,
                      properties=not args.no_properties or bool(args.plots), tables=tables,
                      moses=True if args.moses_metrics else None)
    result["samples_file"] = str(args.samples)
    print(format_table(result))
    if args.json:
        write_text_atomic(args.json, json.dumps(result, indent=2) + "\n")
    if args.plots and tables:
        from molgan.plots import plot_property_histograms

        path = plot_property_histograms(tables["samples"], tables["reference"],
                                        Path(args.plots) / "properties.png",
                                        title=f"{args.samples} vs {args.train} test split")
        print(f"plots -> {path}", file=sys.stderr)
    return 0


def run_score(args: argparse.Namespace) -> int:
    """``molgan score``: one CSV row per input molecule, NaN score with a reason if unscorable."""
    import csv

    from molgan.checkpoint import model_path
    from molgan.critic import Critic
    from molgan.evaluate import read_samples

    from molgan.device import resolve_device

    check_output(args.output, "-o", suffixes=(".csv",), inputs=[args.input])
    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    critic = Critic.from_checkpoint(model_path(args.model), device=device)
    rows = read_samples(args.input, args.smiles_column)
    scored = 0
    # every row is written to a temporary file, renamed onto the output once complete
    with atomic_output(args.output) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["index", "smiles", "score", "reason"])
        for start in range(0, len(rows), args.batch_size):
            chunk = rows[start : start + args.batch_size]
            scores, reasons = critic.score(chunk, return_reasons=True)
            for i, (smiles, value, reason) in enumerate(zip(chunk, scores.tolist(), reasons)):
                writer.writerow([start + i, smiles or "", "" if math.isnan(value)
                                 else f"{value:.6f}", reason or ""])
                scored += reason is None
    print(f"scored {scored:,} of {len(rows):,} molecules -> {args.output}")
    return 0


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``molgan`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(message)s", stream=sys.stderr)
    from molgan.checkpoint import CheckpointError
    from molgan.sources import DataError

    start = time.perf_counter()
    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread:  # a killed job cleans up as after Ctrl-C
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        code = int(args.handler(args))
    except (DataError, CheckpointError, UserError, OSError, ValueError) as exc:
        # user-caused failures (bad files, values, paths, devices): one line; -v adds the trace
        if args.verbose:
            import traceback

            traceback.print_exc()
        message = " ".join(str(exc).split()) or type(exc).__name__  # one line, always
        print(f"molgan {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = (" (finished featurization chunks are kept: run it again to resume)"
                if args.command in ("prepare", "train") else "")
        print(f"molgan {args.command}: interrupted{hint}", file=sys.stderr)
        return 130
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
    log.debug("%s took %.1f s", args.command, time.perf_counter() - start)
    return code


if __name__ == "__main__":
    sys.exit(main())
