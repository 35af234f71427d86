"""Learner-needs models on SYNTHETIC learners: Spark MLlib random forests against the Keras multi-label network.

Every learner is SYNTHETIC (`urbanlab.data.learners`, every row `synthetic=True`). The learners are written as
department-partitioned parquet, read with Spark, turned into features (`learner_features`), split by district (a hash
of `ubigeo`, a quarter of the districts held out), and each model is trained on the training districts and scored on
the held-out ones. The Keras network trains on a pandas sample of the training features (`--sample`).

Printed: metrics per label and model (accuracy, precision, recall, F1, Brier) on the test districts, the Keras
network's reliability tables, the share of districts whose true count of learners in need lies in the 90% interval,
and the seconds of each step. The labels carry 3% random flips, so about 0.97 is the best accuracy any model can reach.

    .venv/bin/python benchmarks/learner_needs.py
    .venv/bin/python benchmarks/learner_needs.py --learners 1000000 --sample 200000
"""

from __future__ import annotations
import argparse, shutil, tempfile, time
from pathlib import Path
from urbanlab.spark import spark_session
from urbanlab.data.learners import calibrate, load_inputs, write_learners
from urbanlab.models.learner_needs import (
    LABELS,
    check_features,
    compare_models,
    district_needs,
    fit_forests,
    KerasLearnerNeeds,
    learner_features,
    reliability_table,
    sample_features,
    score_forests,
    score_learners,
    split_by_district,
)


def main(learners: int, sample: int, master: str | None):
    T, tmp = {}, Path(tempfile.mkdtemp())
    try:
        t = time.time()
        spark = spark_session(master)
        inputs = load_inputs()
        write_learners(tmp / "learners", inputs, total=learners, seed=0, model=calibrate(inputs), progress=False)
        T[f"write {learners:,} SYNTHETIC learners"] = time.time() - t
        t = time.time()
        feats = learner_features(spark.read.parquet(str(tmp / "learners")), spark.createDataFrame(inputs)).cache()
        check_features(feats)
        train, test = split_by_district(feats, 0.25)
        ntr, nte = train.count(), test.count()
        T["features and split"] = time.time() - t
        t = time.time()
        forests = fit_forests(train)
        T["random forests: fit (3 x 20 trees, depth 6)"] = time.time() - t
        t = time.time()
        rf = score_forests(test, forests).toPandas()
        T["random forests: score test"] = time.time() - t
        t = time.time()
        nn = KerasLearnerNeeds().fit(sample_features(train, sample))
        T["keras: sample and fit"] = time.time() - t
        t = time.time()
        nnt = score_learners(test, nn).toPandas()
        T["keras: score test (mapInPandas)"] = time.time() - t
        t = time.time()
        dn = district_needs(score_learners(feats, nn))
        T["keras: score all, district sums"] = time.time() - t
        both = rf.merge(nnt[["learner_id"] + [f"nn_{l}" for l in LABELS]], on="learner_id")
        print(
            f"SYNTHETIC learners: {learners:,}; train {ntr:,}, test {nte:,} (held-out districts); "
            f"Keras sample {nn.n_train_:,}, {nn.epochs_run_} epochs"
        )
        print(compare_models(both).round(4).to_string(index=False))
        for l in LABELS:
            print(
                f"\nreliability, keras, {l} (SYNTHETIC)\n"
                + reliability_table(both[l], both[f"nn_{l}"]).round(3).to_string(index=False)
            )
        obs = feats.groupBy("ubigeo").sum(*LABELS).toPandas().set_index("ubigeo").sort_index()
        d = dn.set_index("ubigeo").sort_index()
        for l in LABELS:
            inside = ((d[f"lower_{l}"] <= obs[f"sum({l})"]) & (obs[f"sum({l})"] <= d[f"upper_{l}"])).mean()
            print(f"{l}: true count inside the 90% interval in {inside:.1%} of {len(d)} districts (SYNTHETIC)")
        for k, v in T.items():
            print(f"{k}: {v:.1f} s")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    a = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    a.add_argument("--learners", type=int, default=200_000, help="SYNTHETIC learners to draw over Peru's districts")
    a.add_argument("--sample", type=int, default=100_000, help="training rows for the Keras network")
    a.add_argument("--master", default=None, help="Spark master (default: urbanlab's)")
    main(**vars(a.parse_args()))
