"""SegLab's command line: `python -m seg train | eval | ceiling | weights | list`.

    python -m seg list
    python -m seg train fcn8s --steps 3000 --crop 160
    python -m seg eval fcn8s --scenes 256
    python -m seg ceiling --strides 32 16 8 4
    python -m seg weights status
    python -m seg weights download deeplabv3_resnet50
"""

from __future__ import annotations

import argparse
import shlex
import sys


def _train(args) -> int:
    from seg.train import train_segmenter

    command = "python -m seg " + " ".join(shlex.quote(a) for a in args.argv)
    segmenter, evaluation = train_segmenter(
        args.name, steps=args.steps, crop=args.crop, batch_size=args.batch_size, lr=args.lr,
        seed=args.seed, device=args.device, out_dir=args.out, eval_scenes=args.eval_scenes,
        progress=not args.quiet, command=command)
    card = segmenter.card
    print(f"{args.name}: trained {card['training']['steps']} steps in "
          f"{card['training']['seconds']:.0f} s on {card['training']['device']}; "
          f"{card['file_bytes'] / 1e6:.2f} MB, {card['num_params']:,} parameters")
    print(evaluation.table())
    return 0


def _eval(args) -> int:
    from seg import models
    from seg.train import evaluate

    for name in args.names:
        segmenter = models.load(name, device=args.device, weights_dir=args.weights)
        evaluation = evaluate(segmenter, num_scenes=args.scenes, size=args.size, first=args.first)
        card = segmenter.card.get("evaluation", {})
        print(f"== {name} (weights: {segmenter.source}, {segmenter.num_parameters:,} params)")
        print(evaluation.table())
        if card:
            # Printed with 3 decimals: a difference that rounds to zero reads "+0.000",
            # not "-0.000".
            change = round(evaluation.miou - card["miou"], 3) + 0.0
            print(f"model card: mIoU {card['miou']:.3f} on {card['num_scenes']} scenes; "
                  f"measured now {evaluation.miou:.3f} ({change:+.3f})")
    return 0


def _ceiling(args) -> int:
    from seg.train import ceiling_table

    print(ceiling_table(args.strides, num_scenes=args.scenes, size=args.size))
    return 0


def _weights(args) -> int:
    from seg.models import pretrained

    if args.action == "status":
        print(f"torch hub cache: {pretrained.cache_path(pretrained.names()[0]).parent}")
        print(f"{'name':<32}{'task':<16}{'cached':<8}{'MB':>8}{'download MB':>13}")
        for row in pretrained.status():
            size = f"{row.size_mb:.1f}" if row.size_mb else "-"
            print(f"{row.name:<32}{row.task:<16}{'yes' if row.cached else 'no':<8}{size:>8}"
                  f"{row.download_mb:>13.1f}")
        return 0
    names = args.names or pretrained.names()
    failed = 0
    for name in names:
        if pretrained.is_cached(name):
            print(f"{name}: already cached")
            continue
        try:
            from tqdm import tqdm

            with tqdm(unit="B", unit_scale=True, desc=name, file=sys.stderr) as bar:
                def progress(done, total, bar=bar):
                    bar.total = total or None
                    bar.n = done
                    bar.refresh()

                path = pretrained.download(name, progress=progress)
            print(f"{name}: saved to {path}")
        except pretrained.WeightsUnavailable as error:
            print(f"{name}: {error}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def _list(args) -> int:
    from seg import models

    for task in ("segmentation", "classification"):
        print(f"{task}:")
        for name in models.list_models(task=task):
            e = models.entry(name)
            print(f"  {name:<32}{e.family:<13}{e.title}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m seg", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a SegLab segmenter and write weights/NAME.pt + .json")
    p.add_argument("name")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--crop", "--size", dest="crop", type=int, default=160,
                   help="side of the square training crops cut from 256×256 scenes")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--out", default=None, help="folder for the checkpoint (default: weights/)")
    p.add_argument("--eval-scenes", type=int, default=256)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(run=_train)

    p = sub.add_parser("eval", help="mIoU, per-class IoU, accuracy and latency on held-out scenes")
    p.add_argument("names", nargs="+")
    p.add_argument("--scenes", type=int, default=256)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--first", type=int, default=0, help="first held-out scene index")
    p.add_argument("--device", default=None)
    p.add_argument("--weights", default=None, help="folder of checkpoints (default: weights/)")
    p.set_defaults(run=_eval)

    p = sub.add_parser("ceiling", help="mIoU of a perfect score map at each output stride "
                                       "on the held-out scenes: the most a network can reach")
    p.add_argument("--strides", type=int, nargs="+", default=[32, 16, 8, 4, 2])
    p.add_argument("--scenes", type=int, default=256)
    p.add_argument("--size", type=int, default=256)
    p.set_defaults(run=_ceiling)

    p = sub.add_parser("weights", help="torchvision weights: status | download [NAME ...]")
    p.add_argument("action", choices=("status", "download"))
    p.add_argument("names", nargs="*")
    p.set_defaults(run=_weights)

    p = sub.add_parser("list", help="every registered network")
    p.set_defaults(run=_list)

    args = parser.parse_args(argv)
    args.argv = argv
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
