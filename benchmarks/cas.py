"""Classification Accuracy Score (Ravuri & Vinyals 2019): how well a classifier trained only on
generated digits reads real ones.

    python benchmarks/cas.py                     # 2,000 per digit from each shipped generator
    python benchmarks/cas.py --models GAN --per-digit 500
    python benchmarks/cas.py --quick             # a smoke test: 20 per digit, 1 epoch
    python benchmarks/cas.py --models diffusion --weights-dir runs/mine   # a run of your own
    python benchmarks/cas.py --models diffusion --guidance 1 --autoguidance 1   # unguided
    python benchmarks/cas.py --models diffusion --teacher   # the full sampler, not the distilled one

For each generator in --weights-dir (default weights/) it draws --per-digit digits of each
class (seed --seed), trains the project's CNN (train_classifier.build_classifier, its optimizer
and schedule) on them alone, and tests it on the 10,000 real MNIST test digits. The reference is the same CNN, trained the
same way on the same number of real training digits. A generator whose digits look real and
vary as real ones do scores close to the reference. The table is printed, and with
--save each generator's record (in that folder) gets its row under metrics.cas. The diffusion
sampler flags (--guidance, --steps, ...) are train_diffusion.py's; a CAS at other settings is
printed, not saved.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import analyze  # noqa: E402
import train_diffusion  # noqa: E402  (TensorFlow loads later, inside it)

# -- training (the same for every training set) --------------------------------------------
PER_DIGIT = 2000
EPOCHS = 10
BATCH_SIZE = 128
SEED = 0


def train_and_test(images, labels, test_images, test_labels, epochs, augment, seed):
    """Test accuracy of a fresh CNN trained on (images, labels) with the project's recipe."""
    import keras

    import train_classifier

    keras.utils.set_random_seed(seed)  # every training set starts from the same seed (main printed it)
    model, batches = train_classifier.prepare_training("cnn", images, labels, BATCH_SIZE, epochs, augment, seed)
    model.fit(batches, epochs=epochs, shuffle=False, verbose=2)  # the dataset shuffles itself
    return analyze.accuracy(test_labels, analyze.classify(model, test_images).argmax(1))


def trained_generators(weights_dir, models=None):
    """The generator modules with weights in weights_dir (only those named in --models if given);
    one line naming the scripts that train them if there are none."""
    chosen = [m for m in analyze.generator_modules(only_trained=True, weights_dir=weights_dir)
              if not models or m.MODEL_NAME in models]
    if not chosen:
        raise analyze.DataError(f"no trained generator{' of ' + ', '.join(models) if models else ''} in "
                                f"{analyze.display_path(weights_dir)}; train one (train_diffusion.py, train_gan.py)")
    return chosen


def real_subset(images, labels, per_digit, seed):
    import numpy as np

    picks = analyze.pick_per_digit(labels, per_digit, np.random.default_rng(seed))
    return images[picks], labels[picks]


def print_and_save(rows, args, changed, num_test):
    """The table (the real-digit reference first) and, with --save, each generator's row in
    its record (a record there must be: it is what says how the weights were made)."""
    reference = rows[0][2]  # rows: (name, module, accuracy, sampler)
    print(f"\nCNN trained on {args.per_digit * analyze.NUM_CLASSES:,} digits ({args.per_digit} per digit), "
          f"{args.epochs} epochs{', augmented' if args.augment else ''}, seed {args.seed}"
          f"{''.join(f', diffusion {k} {v}' for k, v in changed.items())}; "
          f"tested on {num_test:,} real test digits")
    print("| trained on | test accuracy (CAS) | vs real |")
    print("|---|---|---|")
    for name, module, acc, _ in rows:
        print(f"| {name} | {acc:.2%} | {100 * (acc - reference):+.2f} points |")
    for name, module, acc, sampler in rows:
        if args.save and module is not None:
            weights = getattr(sampler, "weights", args.weights_dir / module.WEIGHT_FILES[0])
            record = analyze.read_record(weights)
            if record is None:
                raise analyze.DataError(f"{analyze.display_path(analyze.record_path(weights))}: no record to "
                                        "save the score in")
            record.setdefault("metrics", {})["cas"] = {
                "accuracy": round(acc, 5), "real_reference": round(reference, 5), "per_digit": args.per_digit,
                "epochs": args.epochs, "augment": args.augment, "seed": args.seed,
                **analyze.how_measured(module, args.precision, draw=sampler)}
            analyze.write_json_atomic(record, analyze.record_path(weights))
            print(f"saved {name}'s score in {analyze.display_path(analyze.record_path(weights))}")


def main():
    parser = argparse.ArgumentParser(description="Classification Accuracy Score of the trained generators.",
                                     allow_abbrev=False, formatter_class=analyze.HelpFormatter)
    parser.add_argument("--per-digit", type=int, default=PER_DIGIT, help="training digits per class and set")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="CNN training epochs, every set alike")
    parser.add_argument("--augment", action="store_true",
                        help="train with the classifier's augmentation (off: the digits alone are judged)")
    parser.add_argument("--models", nargs="+", choices=[m.MODEL_NAME for m in analyze.generator_modules()],
                        help="only these generators (default: every one with weights in --weights-dir)")
    analyze.add_precision_flag(parser)
    parser.add_argument("--weights-dir", type=Path, default=analyze.WEIGHTS_DIR,
                        help="the folder holding the generators' weights")
    parser.add_argument("--seed", type=analyze.seed_argument, default=SEED, help="random seed for sampling and training")
    train_diffusion.add_sampler_arguments(parser)  # the diffusion model's; the GAN has none
    parser.add_argument("--save", action="store_true", help="store each generator's row in its weights record")
    parser.add_argument("--quick", action="store_true", help="20 per digit and 1 epoch: checks the plumbing")
    args = parser.parse_args()
    if args.quick:
        args.per_digit, args.epochs = 20, 1
    if args.per_digit < 1 or args.epochs < 1:
        parser.error("--per-digit and --epochs must be at least 1")
    if args.quick and args.save and args.weights_dir.resolve() == analyze.WEIGHTS_DIR:
        parser.error("--quick only checks the plumbing: its figures would replace the shipped records' "
                     "(drop --save, or point --weights-dir elsewhere)")
    train_diffusion.check_sampler_arguments(parser, args)
    diffusion_settings = train_diffusion.sampler_settings(args)
    distilled = train_diffusion.has_distilled(args.weights_dir) and not args.teacher
    defaults = train_diffusion.DISTILLED_DEFAULTS if distilled else train_diffusion.SAMPLER_DEFAULTS
    changed = {flag: value for flag, value in diffusion_settings.items()
               if value is not None and value != defaults[flag]}
    if changed and args.save:
        parser.error("--save stores figures of the default sampler settings; drop the sampler flags or --save")

    try:
        analyze.set_seed(args.seed)
        train_images, train_labels = analyze.load_digits_csv(analyze.TRAIN_CSV)
        test_images, test_labels = analyze.load_digits_csv(analyze.TEST_CSV)
        generators = trained_generators(args.weights_dir, args.models)
        # Every sampler loads before any training, so a missing or broken file fails at once.
        which = {"autoguidance": diffusion_settings["autoguidance"], "teacher": args.teacher}
        samplers = [module.load_sampler(args.weights_dir, args.precision, **(which if module.MODEL_NAME == "diffusion" else {}))
                    for module in generators]
        rows = []
        images, labels = real_subset(train_images, train_labels, args.per_digit, args.seed)
        rows.append(("real training digits", None,
                     train_and_test(images, labels, test_images, test_labels, args.epochs, args.augment, args.seed),
                     None))
        for module, sampler in zip(generators, samplers):
            labels = analyze.requested_labels(None, args.per_digit)
            start = time.perf_counter()
            images = sampler(labels, args.seed, progress=True, **(diffusion_settings if module.MODEL_NAME == "diffusion" else {}))
            print(f"{module.MODEL_NAME}: drew {len(images):,} digits in {time.perf_counter() - start:.0f} s")
            rows.append((module.MODEL_NAME, module,
                         train_and_test(images, labels, test_images, test_labels, args.epochs, args.augment,
                                        args.seed), sampler))
        print_and_save(rows, args, changed, len(test_labels))
    except analyze.DataError as exc:
        analyze.fail(exc)

if __name__ == "__main__":
    main()
