"""Command line interface: predict, evaluate, camera-shift, serve, train, cv, source-holdout and ensembles."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from eyescreen.errors import EyescreenError

logger = logging.getLogger(__name__)

TRAIN_EXTRA_HINT = 'training needs the [train] extra: pip install -e ".[train]" torch==2.13.0'


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eyescreen",
        description="Sort colour fundus photographs into normal, cataract, glaucoma or retina disease. "
        "Research software, not a medical device.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    predict = commands.add_parser("predict", help="classify image files")
    predict.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="image files to classify")
    predict.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    predict.add_argument("--model", type=Path, help="folder with model.onnx and model_card.json (default: bundled model)")

    evaluate = commands.add_parser("evaluate", help="score the ONNX model on a labelled folder")
    evaluate.add_argument("data_dir", type=Path, metavar="DATA_DIR", help="manifest.csv folder or one sub-folder per class")
    evaluate.add_argument("--model", type=Path, help="folder with model.onnx and model_card.json (default: bundled model)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("--manifest", type=Path, help="manifest CSV to use instead of DATA_DIR/manifest.csv; its paths are relative to DATA_DIR")

    shift = commands.add_parser("camera-shift", help="check that predictions survive colour, blur and resolution changes")
    shift.add_argument("data_dir", type=Path, metavar="DATA_DIR", help="manifest.csv folder or one sub-folder per class")
    shift.add_argument("--model", type=Path, help="folder with model.onnx and model_card.json (default: bundled model)")
    shift.add_argument("--manifest", type=Path, help="manifest CSV to use instead of DATA_DIR/manifest.csv")
    shift.add_argument("--json", action="store_true", help="print one JSON object")

    serve = commands.add_parser("serve", help="start the web app and JSON API")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1, or 0.0.0.0 when $PORT is set)")
    serve.add_argument("--port", type=int, help="port to listen on (default $PORT, else 8000)")

    train = commands.add_parser("train", help="train a model and export it to ONNX (needs the [train] extra)")
    train.add_argument("data_dir", type=Path, metavar="DATA_DIR", help="manifest.csv folder or one sub-folder per class")
    train.add_argument("--out", type=Path, required=True, help="run folder for model.onnx, the card, plots and checkpoints")
    train.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    train.add_argument("--cv-report", type=Path, help="cv.json from `eyescreen cv`, copied into the model card")
    train.add_argument("--name", default="eyescreen-fundus4", help="model name in the card and the API")
    train.add_argument("--version", help="model version in the card and the API (default: today's date)")
    _add_training_options(train, val_fraction=0.15)

    cv = commands.add_parser("cv", help="patient-grouped K-fold cross-validation (needs the [train] extra)")
    cv.add_argument("data_dir", type=Path, metavar="DATA_DIR", help="manifest.csv folder or one sub-folder per class")
    cv.add_argument("--out", type=Path, required=True, help="report folder; a rerun resumes the folds not yet written")
    cv.add_argument("--folds", type=int, default=5, help="number of folds (default 5)")
    cv.add_argument("--fold", type=int, action="append", dest="only_folds", help="run only this fold (repeatable)")
    cv.add_argument("--no-baselines", action="store_true", help="skip the image-statistics and linear-probe baselines")
    _add_training_options(cv, val_fraction=0.0)

    holdout = commands.add_parser(
        "source-holdout",
        help="train without one source of a class, test on that source; once per such source (needs the [train] extra)",
    )
    holdout.add_argument("data_dir", type=Path, metavar="DATA_DIR", help="folder with manifest.csv (sources come from it)")
    holdout.add_argument("--out", type=Path, required=True, help="report folder; a rerun skips the sources already done")
    holdout.add_argument(
        "--source", action="append", dest="only_sources", help="hold out only this source (repeatable); default every source"
    )
    _add_training_options(holdout, val_fraction=0.0)

    ensemble = commands.add_parser(
        "ensemble", help="merge exported models into one model that averages their logits (needs the [train] extra)"
    )
    ensemble.add_argument(
        "members", nargs="+", type=Path, metavar="MODEL_DIR", help="two or more folders with model.onnx and model_card.json"
    )
    ensemble.add_argument("--out", type=Path, required=True, help="folder for the merged model.onnx and its card")
    ensemble.add_argument("--cv-report", type=Path, help="cv.json from `eyescreen ensemble-cv`, copied into the model card")
    ensemble.add_argument("--name", default="eyescreen-fundus4", help="model name in the card and the API")
    ensemble.add_argument("--version", help="model version in the card and the API (default: today's date)")

    _add_report_ensemble_parser(
        commands,
        "ensemble-cv",
        help_text="cross-validate an ensemble from the out-of-fold predictions of `eyescreen cv` reports (needs the [train] extra)",
        description=(
            "Score the ensemble of several `eyescreen cv` reports without training: for each fold, average the members' "
            "logits photo by photo, then write the same report with its own temperature and referral threshold. "
            "The reports must come from the same --folds and --seed. A fold missing from any report is skipped."
        ),
        reports_help="two or more `eyescreen cv` folders with the same folds",
    )
    _add_report_ensemble_parser(
        commands,
        "ensemble-holdout",
        help_text="leave-one-source-out of an ensemble, from the predictions of `eyescreen source-holdout` reports (needs the [train] extra)",
        description=(
            "Score the ensemble of several `eyescreen source-holdout` reports without training: for each held-out source, "
            "average the members' logits photo by photo and write the same report. Each report needs "
            "without-SOURCE/predictions.csv, which `eyescreen source-holdout` writes (reports of older versions lack it). "
            "A source missing from any report is skipped."
        ),
        reports_help="two or more `eyescreen source-holdout` folders",
    )
    return parser


def _add_report_ensemble_parser(
    commands: argparse._SubParsersAction, name: str, *, help_text: str, description: str, reports_help: str
) -> None:
    """Add a subcommand that averages the predictions of report folders into a report in --out."""
    parser = commands.add_parser(name, help=help_text, description=description)
    parser.add_argument("reports", nargs="+", type=Path, metavar="REPORT_DIR", help=reports_help)
    parser.add_argument("--out", type=Path, required=True, help="report folder for the ensemble")


def _add_training_options(parser: argparse.ArgumentParser, *, val_fraction: float) -> None:
    parser.add_argument("--epochs", type=int, default=12, help="training epochs (default 12)")
    parser.add_argument("--image-size", type=int, default=256, help="model input size in pixels (default 256)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per step (default 32)")
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="peak AdamW learning rate (default 0.001)")
    parser.add_argument("--frozen-blocks", type=int, default=3, help="MBConv blocks kept at ImageNet weights (default 3)")
    parser.add_argument(
        "--architecture",
        default="efficientnet-lite0",
        choices=["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"],
        help="network; each needs its weight package (default efficientnet-lite0)",
    )
    parser.add_argument(
        "--fov-mask-radius",
        type=float,
        default=0.9,
        help="black out the photo outside this share of the field of view's radius; 0 keeps the rim (default 0.9)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed for splits, order and augmentation (default 0)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for PyTorch (default 2)")
    parser.add_argument("--no-augment", action="store_true", help="train without augmentation")
    parser.add_argument("--camera-jitter", action="store_true", help="train with wider colour, sharpness and compression changes")
    parser.add_argument(
        "--amplitude-mix",
        type=float,
        default=0.0,
        help="share of training photos that take part of another photo's Fourier amplitude, "
        "so that a camera's colour, sharpness and noise stop marking a class (default 0)",
    )
    parser.add_argument(
        "--sensor-noise",
        type=float,
        default=8.0,
        help="add Gaussian noise to half of the training photos, with a standard deviation drawn "
        "up to this many grey levels (default 8; 0 turns it off)",
    )
    parser.add_argument(
        "--channel-gain",
        type=float,
        default=0.15,
        metavar="GAIN",
        help="multiply R, G and B of half of the training photos by factors drawn from "
        "1 - GAIN to 1 + GAIN, as other white balances would (default 0.15; 0 turns it off)",
    )
    parser.add_argument(
        "--jpeg-quality",
        type=int,
        default=30,
        metavar="QUALITY",
        help="recompress half of the training photos as JPEG at a quality drawn from QUALITY to 95 "
        "(default 30; 0 turns it off)",
    )
    parser.add_argument("--local-contrast", action="store_true", help="subtract a blurred copy of each photo inside the network")
    parser.add_argument(
        "--colour-balance", action="store_true", help="give each photo the same mean colour inside the network (removes colour casts)"
    )
    parser.add_argument("--no-flip-test", action="store_true", help="predict without averaging over the mirrored photo")
    parser.add_argument(
        "--disc-crop-size",
        type=int,
        default=0,
        help="add a branch that sees a close-up of the optic disc at this size in pixels (default 0: no branch)",
    )
    parser.add_argument(
        "--disc-crop-fraction",
        type=float,
        default=0.3,
        help="side of the optic-disc close-up as a share of the photo's side (default 0.3)",
    )
    parser.add_argument(
        "--whole-image-size",
        type=int,
        default=0,
        help="with the disc branch, down-scale the whole photo to this size (default: the input size)",
    )
    parser.add_argument("--cache-dir", type=Path, help="preprocessed image cache (default ~/.cache/eyescreen/preprocessed)")
    if val_fraction:
        parser.add_argument(
            "--val-fraction",
            type=float,
            default=val_fraction,
            help=f"share of patients held out for validation; 0 trains on everything (default {val_fraction})",
        )


def _train_config(arguments: argparse.Namespace):  # type: ignore[no-untyped-def]
    from eyescreen.training.config import TrainConfig

    return TrainConfig(
        epochs=arguments.epochs,
        image_size=arguments.image_size,
        batch_size=arguments.batch_size,
        learning_rate=arguments.learning_rate,
        frozen_blocks=arguments.frozen_blocks,
        architecture=arguments.architecture,
        fov_mask_radius=arguments.fov_mask_radius,
        seed=arguments.seed,
        threads=arguments.threads,
        augment=not arguments.no_augment,
        test_time_flip=not arguments.no_flip_test,
        local_contrast=arguments.local_contrast,
        colour_balance=arguments.colour_balance,
        camera_jitter=arguments.camera_jitter,
        amplitude_mix=arguments.amplitude_mix,
        sensor_noise=arguments.sensor_noise,
        channel_gain=arguments.channel_gain,
        jpeg_quality=arguments.jpeg_quality,
        disc_crop_size=arguments.disc_crop_size,
        disc_crop_fraction=arguments.disc_crop_fraction,
        whole_image_size=arguments.whole_image_size,
        val_fraction=getattr(arguments, "val_fraction", 0.0),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return the exit status."""
    arguments = build_parser().parse_args(argv)

    # predict and evaluate print their results, so only warnings and errors go to stderr.
    # Training, cross-validation and the server log their progress.
    quiet = arguments.command in ("predict", "evaluate")
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        if arguments.command == "predict":
            return _predict(arguments)
        if arguments.command == "evaluate":
            return _evaluate(arguments)
        if arguments.command == "camera-shift":
            return _camera_shift(arguments)
        if arguments.command == "serve":
            return _serve(arguments)
        if arguments.command in ("train", "cv", "source-holdout"):
            return _train_or_cv(arguments)
        if arguments.command in ("ensemble", "ensemble-cv", "ensemble-holdout"):
            return _ensemble(arguments)
    except EyescreenError as error:
        print(f"eyescreen: error: {error}", file=sys.stderr)
        return 2
    return 2


def _predict(arguments: argparse.Namespace) -> int:
    from eyescreen.inference.predict import predict_image_bytes
    from eyescreen.inference.session import ModelSession
    from eyescreen.settings import Settings

    settings = Settings.from_env()
    model = ModelSession.from_dir(arguments.model or settings.model_dir, threads=settings.inference_threads)
    results: list[dict[str, object]] = []
    failures = 0
    for path in arguments.images:
        try:
            prediction = predict_image_bytes(model, path.read_bytes(), max_pixels=settings.max_pixels)
        except (EyescreenError, OSError) as error:
            # One bad file gets one line; the other files are still classified.
            reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
            print(f"eyescreen: error: {path}: {reason}", file=sys.stderr)
            failures += 1
            continue
        results.append({"file": str(path), **prediction.to_dict()})

    if arguments.json:
        print(json.dumps(results, indent=2, ensure_ascii=False))
    else:
        print(_prediction_table(results, model.classes))
    return 1 if failures else 0


def _prediction_table(results: list[dict[str, object]], classes: tuple[str, ...]) -> str:
    width = max([len("file"), *(len(str(result["file"])) for result in results)])
    header = f"{'file':<{width}}  {'label':<15}{'status':<10}" + "".join(f"{name:>16}" for name in classes)
    rows = [header]
    for result in results:
        probabilities = result["probabilities"]
        assert isinstance(probabilities, dict)
        rows.append(
            f"{str(result['file']):<{width}}  {str(result['label']):<15}{str(result['status']):<10}"
            + "".join(f"{probabilities[name]:>16.3f}" for name in classes)
        )
    return "\n".join(rows)


def _evaluate(arguments: argparse.Namespace) -> int:
    from eyescreen.evaluation.card import json_safe
    from eyescreen.evaluation.report import evaluate_folder, format_evaluation
    from eyescreen.inference.session import ModelSession
    from eyescreen.settings import Settings

    settings = Settings.from_env()
    model = ModelSession.from_dir(arguments.model or settings.model_dir, threads=settings.inference_threads)
    result = evaluate_folder(model, arguments.data_dir, manifest=arguments.manifest)
    print(json.dumps(json_safe(result), indent=2, allow_nan=False) if arguments.json else format_evaluation(result))
    return 0


def _camera_shift(arguments: argparse.Namespace) -> int:
    from eyescreen.evaluation.camera_shift import camera_shift_test
    from eyescreen.inference.session import ModelSession
    from eyescreen.settings import Settings

    settings = Settings.from_env()
    model = ModelSession.from_dir(arguments.model or settings.model_dir, threads=settings.inference_threads)
    result = camera_shift_test(model, arguments.data_dir, manifest=arguments.manifest)
    if arguments.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"model {result['model']['name']} {result['model']['version']}, {result['n']} photos")
    print(f"{'change':<40}{'class unchanged':>16}")
    for name, share in result["unchanged"].items():
        print(f"{name:<40}{share:>16.3f}")
    return 0


def _serve(arguments: argparse.Namespace) -> int:
    import uvicorn

    from eyescreen.settings import Settings
    from eyescreen.web.app import create_app

    settings = Settings.from_env()
    host, port = settings.bind_address(arguments.host, arguments.port)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
    return 0


def _train_or_cv(arguments: argparse.Namespace) -> int:
    try:
        from eyescreen.training.cv import run_cross_validation
        from eyescreen.training.run import run_training
        from eyescreen.training.source_holdout import run_source_holdout
    except ImportError as error:
        print(f"eyescreen: error: {TRAIN_EXTRA_HINT} ({error})", file=sys.stderr)
        return 2

    # TrainConfig checks its settings, so an invalid option fails here, before preprocessing.
    config = _train_config(arguments)

    if arguments.command == "source-holdout":
        run_source_holdout(
            arguments.data_dir, arguments.out, config, cache_dir=arguments.cache_dir, only_sources=arguments.only_sources
        )
        print(f"source hold-out report in {arguments.out / 'report.md'}")
        return 0
    if arguments.command == "train":
        card = run_training(
            arguments.data_dir,
            arguments.out,
            config,
            cache_dir=arguments.cache_dir,
            resume=arguments.resume,
            cv_report=arguments.cv_report,
            name=arguments.name,
            version=arguments.version,
        )
        print(f"model written to {arguments.out / 'model.onnx'} in {card['training_seconds'] / 60:.1f} minutes")
        if "validation" in card:
            validation = card["validation"]
            print(
                f"validation: accuracy {validation['accuracy']:.3f}, balanced accuracy "
                f"{validation['balanced_accuracy']:.3f}, macro AUC {validation['macro_auc']:.3f} (n={validation['n']})"
            )
        return 0

    summary = run_cross_validation(
        arguments.data_dir,
        arguments.out,
        config,
        folds=arguments.folds,
        only_folds=arguments.only_folds,
        cache_dir=arguments.cache_dir,
        with_baselines=not arguments.no_baselines,
    )
    report = arguments.out / "report.md"
    if summary is None:
        print(f"some folds are still to run; partial report in {report}. Run the same command again to continue.")
        return 0
    print(
        f"{arguments.folds}-fold cross-validation: balanced accuracy {summary['balanced_accuracy']['mean']:.3f} "
        f"± {summary['balanced_accuracy']['sd']:.3f}, macro AUC {summary['macro_auc']['mean']:.3f} "
        f"± {summary['macro_auc']['sd']:.3f}; report in {report}"
    )
    return 0


def _ensemble(arguments: argparse.Namespace) -> int:
    try:
        from eyescreen.training.ensemble import average_holdouts, average_reports, merge_models
    except ImportError as error:
        print(f"eyescreen: error: {TRAIN_EXTRA_HINT} ({error})", file=sys.stderr)
        return 2

    if arguments.command == "ensemble-holdout":
        summary = average_holdouts(arguments.reports, arguments.out)
        for holdout in summary["holdouts"]:
            found = ", ".join(f"{label} {row['sensitivity']:.3f}" for label, row in holdout["classes"].items())
            print(f"without {holdout['held_out_source']}: sensitivity {found}")
        print(f"source hold-out report in {arguments.out / 'report.md'}")
        return 0

    if arguments.command == "ensemble-cv":
        summary = average_reports(arguments.reports, arguments.out)
        report = arguments.out / "report.md"
        if summary is None:
            print(f"some folds are not done in every report; partial report in {report}")
            return 0
        print(
            f"ensemble of {len(arguments.reports)}: balanced accuracy {summary['balanced_accuracy']['mean']:.3f} "
            f"± {summary['balanced_accuracy']['sd']:.3f}, macro AUC {summary['macro_auc']['mean']:.3f} "
            f"± {summary['macro_auc']['sd']:.3f}; report in {report}"
        )
        return 0

    card = merge_models(arguments.members, arguments.out, name=arguments.name, version=arguments.version, cv_report=arguments.cv_report)
    print(f"ensemble of {len(card['members'])} written to {arguments.out / 'model.onnx'}")
    return 0
