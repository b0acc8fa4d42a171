"""What a clean Kaggle "Digit Recognizer" submission scores: Kaggle's layout made from MNIST's
training digits, a classifier trained on its train.csv alone, scored on digits it never saw.

    python benchmarks/kaggle_holdout.py --write runs/kaggle     # train.csv, test.csv, answers.csv
    python train_classifier.py --csv runs/kaggle/train.csv --weights runs/kaggle/classifier.weights.h5 --test-csv ''
    python analyze_classifier.py --weights runs/kaggle/classifier.weights.h5 --csv runs/kaggle/test.csv \\
        --predictions runs/kaggle/submission.csv
    python benchmarks/kaggle_holdout.py --score runs/kaggle     # submission.csv against answers.csv

Kaggle's 42,000 training and 28,000 test digits are MNIST's. Here MNIST's 60,000 training
digits are shuffled (--seed) and cut into 42,000 for train.csv (label + 784 pixels) and the
other 18,000 for test.csv (the 784 pixels alone, as Kaggle's), their labels kept aside in
answers.csv (ImageId,Label).
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import analyze  # noqa: E402

TRAIN_DIGITS = 42_000
SEED = 0


def write_split(folder, seed):
    with np.load(analyze.BUNDLE) as bundle:
        images, labels = bundle["x_train"], bundle["y_train"]
    order = np.random.default_rng(seed).permutation(len(labels))
    train, held_out = order[:TRAIN_DIGITS], order[TRAIN_DIGITS:]
    folder.mkdir(parents=True, exist_ok=True)
    analyze.write_csv(folder / "train.csv", images[train], labels[train])
    header = ",".join(f"pixel{i}" for i in range(analyze.NUM_PIXELS))
    np.savetxt(folder / "test.csv", images[held_out].reshape(len(held_out), -1), fmt="%d", delimiter=",",
               header=header, comments="")
    np.savetxt(folder / "answers.csv", np.stack([np.arange(1, len(held_out) + 1), labels[held_out]], 1),
               fmt="%d", delimiter=",", header="ImageId,Label", comments="")
    print(f"wrote {folder}/train.csv ({len(train):,} digits), test.csv ({len(held_out):,}, pixels only) "
          f"and answers.csv (shuffled with seed {seed})")


def score(folder):
    import pandas as pd

    try:
        submitted = pd.read_csv(folder / "submission.csv")
        answers = pd.read_csv(folder / "answers.csv")
    except (OSError, ValueError) as exc:
        raise analyze.DataError(f"cannot read the submission or the answers in {folder} ({exc})") from None
    merged = answers.merge(submitted, on="ImageId", how="left", suffixes=("", "_submitted"))
    correct = int((merged["Label"] == merged["Label_submitted"]).sum())
    print(f"{correct:,} of {len(answers):,} held-out digits right: {correct / len(answers):.2%}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False,
                                     formatter_class=analyze.HelpFormatter)
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", type=Path, metavar="FOLDER", help="write the split into FOLDER")
    action.add_argument("--score", type=Path, metavar="FOLDER", help="score FOLDER/submission.csv")
    parser.add_argument("--seed", type=analyze.seed_argument, default=SEED,
                        help="with --write: the shuffle that picks the held-out digits")
    args = parser.parse_args()
    try:
        write_split(args.write, args.seed) if args.write else score(args.score)
    except analyze.DataError as exc:
        analyze.fail(exc)


if __name__ == "__main__":
    main()
