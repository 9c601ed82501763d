"""Turn records into one row per (suite, case, runner): the table printed at the end of a run and
the rows reports are built from."""

from __future__ import annotations

import math

from typing import Any


#: time metrics, where lower is better and a comparison may flag a slowdown
TIME_METRICS = ("epoch_s", "compile_s", "fwd_ms", "fwdbwd_ms")
#: a runner whose test accuracy is further than this below the reference's (same case, same run) is
#: flagged: its speed is then not a like-for-like figure without the reason next to it
ACCURACY_TOLERANCE = 0.02


def time_to_accuracy(record: dict[str, Any], target: float, compile_s: float | None) -> float | None:
    """Seconds of training (compile included) until test accuracy first reaches ``target``."""
    for point in (record.get("extra") or {}).get("curve", []):
        if point["test_acc"] >= target:
            return point["elapsed_s"] + (compile_s or 0.0)
    return None


def _memory(row: dict[str, Any], r: dict[str, Any]) -> None:
    """Collect per-phase memory into ``row["memory"]``: ``{phase: {host_peak_bytes, host_delta_bytes,
    device_peak_bytes}}`` (a ``memory`` record from a phase's own worker gives its device peak)."""
    phases = row.setdefault("memory", {})
    for mem in (r.get("memory"), ((r.get("extra") or {}).get("floor") or {}).get("memory")):
        if mem:
            entry = phases.setdefault(mem["phase"], {})
            entry.update(host_peak_bytes=mem.get("host_peak_bytes"), host_delta_bytes=mem.get("host_delta_bytes"))
            if mem.get("device_peak_bytes") is not None:
                entry["device_peak_bytes"] = mem["device_peak_bytes"]
    if r.get("metric") == "memory" and r.get("status") == "ok":
        phases.setdefault(r["extra"]["phase"], {})["device_peak_bytes"] = r.get("value")


def finite_only(r: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``r`` with every non-finite number (NaN, inf) at its top level and in its ``stats`` replaced by
    None, and the names of those fields: a diverged run's NaN is not a figure to print or rank."""
    bad: list[str] = []

    def clean(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        out = dict(d)
        for k, v in d.items():
            if isinstance(v, float) and not math.isfinite(v):
                out[k] = None
                bad.append(prefix + k)
        return out

    out = clean(r)
    if isinstance(r.get("stats"), dict):
        out["stats"] = clean(r["stats"], "stats.")
    return out, bad


def summary_rows(records: list[dict[str, Any]], target_acc: float = 0.8, run: str = "") -> list[dict[str, Any]]:
    """One row per (suite, case, runner), in first-seen order, with the figures a table shows:
    each time metric's median (and CI, CV, time/floor; per call next to per step for fwd and
    fwd+bwd), accuracy, memory per phase, the accuracy curve, time to ``target_acc``, the ratio
    to the reference, the epoch-vs-step consistency, parity, the device, the adapter's fairness
    record where a record carries one, and the worst status with its reason."""
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in records:
        if r.get("metric") == "nir":  # the NIR check's entries are about other frameworks, not this row
            continue
        r, bad = finite_only(r)
        key = (r.get("suite", ""), r["case"], r["runner"])
        row = rows.setdefault(key, {"run": run, "suite": key[0], "case": key[1], "runner": key[2],
                                    "status": "ok", "reason": "", "framework": r.get("framework"),
                                    "version": r.get("version"), "mode": r.get("mode"),
                                    "dtype": r.get("dtype", "float32"), "shape": r.get("shape") or {}})
        if r.get("precision"):
            row["precision"] = r["precision"]
        load = r.get("load") if isinstance(r.get("load"), dict) else {}
        if load.get("interference") and r.get("metric") != "job":  # a measurement taken beside other load
            row["interference"] = load.get("summary") or "measured under interference"
        for k in ("framework", "version", "mode", "device", "fairness"):
            row[k] = row.get(k) or r.get(k)
        metric = r.get("metric")
        if bad:
            row.setdefault("non_finite", []).extend(f"{metric}.{name}" for name in bad)
        _memory(row, r)
        if metric == "parity":
            row["parity"] = r.get("value") if r["status"] == "ok" else r["status"]
            row["parity_detail"] = r.get("reason", "")
            continue
        if r["status"] != "ok":
            row["status"], row["reason"] = r["status"], r.get("reason", "")
            continue
        if metric in TIME_METRICS:
            stats = r.get("stats") or {}
            if r.get("peak_rss_bytes"):
                row["peak_rss_bytes"] = max(row.get("peak_rss_bytes") or 0, r["peak_rss_bytes"])
            row[metric] = r.get("value")
            row[f"{metric}_ci"] = (stats.get("ci_low"), stats.get("ci_high"))
            row[f"{metric}_cv"] = stats.get("cv")
            row[f"{metric}_n"] = stats.get("n")
            if r.get("floor_ratio") is not None:
                row[f"{metric}_floor"] = r["floor_ratio"]
            if r.get("per_call_ms") is not None:
                row[f"{metric}_per_call"] = r["per_call_ms"]
        shape = r.get("shape") or {}
        if "batch" in shape and "devices" not in row:  # data-parallel cases name their devices
            row.update(devices=shape.get("devices", 1), global_batch=shape["batch"],
                       per_device_batch=shape.get("per_device_batch", shape["batch"]))
        if metric == "epoch_s":
            row["accuracy"] = r.get("accuracy")
            row["epoch_samples"] = (r.get("extra") or {}).get("batches_per_epoch", 0) * shape.get("batch", 0) or None
            row["peak_rss_bytes"] = max(row.get("peak_rss_bytes") or 0, r.get("peak_rss_bytes") or 0) or None
            row["peak_device_bytes"] = r.get("peak_device_bytes")
            row["curve"] = (r.get("extra") or {}).get("curve", [])
            row["step_consistency"] = r.get("step_consistency")
            row["_epoch_record"] = r
        if r.get("parity") and "parity" not in row:
            row["parity"] = r["parity"].get("status")
        _efficiency(row, r)
    for row in rows.values():
        rec = row.pop("_epoch_record", None)
        row["tta_s"] = time_to_accuracy(rec, target_acc, row.get("compile_s")) if rec else None
    out = list(rows.values())
    refs = {(r["suite"], r["case"]): r for r in out if r["runner"] == "reference"}
    for row in out:
        ref = refs.get((row["suite"], row["case"]))
        for metric in ("epoch_s", "fwdbwd_ms"):
            if ref and row.get(metric) and ref.get(metric):
                row[f"{metric}_vs_ref"] = row[metric] / ref[metric]
        if ref and row is not ref and row.get("accuracy") is not None and ref.get("accuracy") is not None:
            row["accuracy_vs_ref"] = row["accuracy"] - ref["accuracy"]
            row["accuracy_flag"] = accuracy_flag(row, ref["accuracy"])
    return out


def _efficiency(row: dict[str, Any], r: dict[str, Any]) -> None:
    """The row's NeuroBench metrics: the trained network's (training records) over the timed one's."""
    eff = r.get("efficiency")
    if not eff or "error" in eff:
        return
    trained = r.get("metric") in ("epoch_s", "test_acc")
    if row.get("efficiency_of") == "trained" and not trained:
        return
    ops = eff["synops"]
    row.update(efficiency_of="trained" if trained else "initial", params=eff["params"],
               footprint_bytes=eff["footprint_bytes"], sparsity=eff["activation_sparsity"],
               sparsity_layers=[la["sparsity"] for la in eff["layers"]],
               synops_dense=ops["dense"], synops_effective=ops["effective_acs"] + ops["effective_macs"],
               synops_acs=ops["effective_acs"], synops_macs=ops["effective_macs"])


def engineering(v: float | None) -> str:
    """``1.23M``-style count."""
    if v is None:
        return "-"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.3g}{unit}"
    return f"{v:.3g}"


def accuracy_flag(row: dict[str, Any], ref_accuracy: float) -> str:
    """Why ``row``'s test accuracy is more than :data:`ACCURACY_TOLERANCE` below the reference's
    ("" when it is not): the gap, and the runner's declared deviations from its parity record,
    which are the explanation to look at first (a different surrogate trains differently)."""
    gap = ref_accuracy - row["accuracy"]
    if gap <= ACCURACY_TOLERANCE:
        return ""
    text = f"test accuracy {100 * gap:.1f} points below the reference's {100 * ref_accuracy:.1f}%"
    if row.get("parity") == "deviates" and row.get("parity_detail"):
        return f"{text}; declared deviations: {row['parity_detail']}"
    return f"{text}; no declared deviation explains it"



def precision_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each runner at a low dtype against its own float32 (empty unless a run holds some): from
    :func:`summary_rows`, a row per (case, runner) at bfloat16 / float16 whose float32 twin (same
    suite, runner and shape: sizes, network, sweep group) is in the run, with speed-ups (float32
    time / this time: above 1 is faster) of the epoch and of fwd+bwd, and the test accuracy change
    in points."""
    def twin_key(r: dict[str, Any]) -> tuple:
        return r["suite"], r["runner"], repr(sorted(r["shape"].items()))

    exact = {twin_key(r): r for r in rows if r.get("dtype") == "float32"}
    out = []
    for r in rows:
        base = exact.get(twin_key(r)) if r.get("dtype", "float32") != "float32" else None
        if base is None:
            continue
        point = {"case": r["case"], "runner": r["runner"], "dtype": r["dtype"], "status": r["status"],
                 "reason": r.get("reason", ""), "parity": r.get("parity"),
                 "compute_dtype": (r.get("precision") or {}).get("compute_dtype"),
                 "epoch_s": r.get("epoch_s"), "epoch_s_fp32": base.get("epoch_s"),
                 "fwdbwd_ms": r.get("fwdbwd_ms"), "fwdbwd_ms_fp32": base.get("fwdbwd_ms"),
                 "accuracy": r.get("accuracy"), "accuracy_fp32": base.get("accuracy")}
        for metric in ("epoch_s", "fwdbwd_ms"):
            if point[metric] and point[f"{metric}_fp32"]:
                point[f"{metric}_speedup"] = point[f"{metric}_fp32"] / point[metric]
        if point["accuracy"] is not None and point["accuracy_fp32"] is not None:
            point["accuracy_change"] = 100 * (point["accuracy"] - point["accuracy_fp32"])
        out.append(point)
    return out


def data_parallel_scaling(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Scaling of data-parallel training, from :func:`summary_rows` (empty unless some row ran on
    more than one device). Per row with an epoch time: training throughput (samples/s), and
    against the one-device row of the same suite and runner

    * at the same global batch (strong scaling): speed-up = one-device epoch time / this epoch
      time, efficiency = speed-up / devices;
    * at the same per-device batch (weak scaling): throughput ratio, efficiency = ratio / devices.
    """
    timed = [r for r in rows if r.get("epoch_s") and r.get("devices")]
    if not any(r["devices"] > 1 for r in timed):
        return []

    def one_device(r: dict[str, Any], key: str) -> dict[str, Any] | None:
        return next((b for b in timed if b["devices"] == 1 and b["suite"] == r["suite"] and
                     b["runner"] == r["runner"] and b[key] == r[key]), None)

    out = []
    for r in sorted(timed, key=lambda r: (r["runner"], r["per_device_batch"], r["devices"])):
        n, throughput = r["devices"], (r.get("epoch_samples") or 0) / r["epoch_s"] or None
        point = {"case": r["case"], "runner": r["runner"], "devices": n, "global_batch": r["global_batch"],
                 "per_device_batch": r["per_device_batch"], "epoch_s": r["epoch_s"], "samples_per_s": throughput,
                 "accuracy": r.get("accuracy")}
        strong, weak = one_device(r, "global_batch"), one_device(r, "per_device_batch")
        if strong:
            point["strong_speedup"] = strong["epoch_s"] / r["epoch_s"]
            point["strong_efficiency"] = point["strong_speedup"] / n
        if weak and throughput and weak.get("epoch_samples"):
            point["weak_ratio"] = throughput / (weak["epoch_samples"] / weak["epoch_s"])
            point["weak_efficiency"] = point["weak_ratio"] / n
        out.append(point)
    return out


def results_table(records: list[dict[str, Any]]):
    """A rich Table of :func:`summary_rows`: epoch time and its ratio to the reference, fwd and
    fwd+bwd per step, fwd+bwd over the GEMM floor, the epoch's time per batch over the fwd+bwd time
    per step ("batch/step", ``!`` where they disagree), accuracy (``!`` more than 2 points below the
    reference's; the reason column then says why), the job's peak RSS, activation sparsity and effective
    synaptic operations per sample (of the trained network where it was trained), parity; the status
    reads ``ok ~`` where a figure was measured while other processes used the CPU (the reason says how
    much), as pyperf warns of an unstable system."""
    from rich.markup import escape
    from rich.table import Table

    table = Table("case", "runner", "status", "compile s", "epoch s", "x ref", "fwd ms", "fwd+bwd ms",
                  "/floor", "batch/step", "test acc", "peak RSS", "sparse", "synops", "parity", "reason",
                  title="results")
    for r in summary_rows(records):
        ratio = f"{r['epoch_s_vs_ref']:.2f}" if r.get("epoch_s_vs_ref") else "-"
        consistency = r.get("step_consistency") or {}
        agree = "-" if not consistency else f"{consistency['ratio']:.2f}" + ("" if consistency["agree"] else " !")
        table.add_row(
            escape(r["case"]), escape(r["runner"]), r["status"] + (" ~" if r.get("interference") else ""),
            _num(r.get("compile_s"), 2),
            _num(r.get("epoch_s"), 3), ratio,
            _num(r.get("fwd_ms"), 2), _num(r.get("fwdbwd_ms"), 2), _num(r.get("fwdbwd_ms_floor"), 2), agree,
            (f"{100 * r['accuracy']:.1f}%" + (" !" if r.get("accuracy_flag") else "")) if r.get("accuracy") is not None
            else "-",
            f"{r['peak_rss_bytes'] / 2**30:.2f} GiB" if r.get("peak_rss_bytes") else "-",
            _num(r.get("sparsity"), 3), engineering(r.get("synops_effective")),
            r.get("parity") or "-",
            escape((r.get("reason") or r.get("accuracy_flag") or r.get("interference") or "")[:80]),
        )
    return table


def _num(v: Any, digits: int) -> str:
    return "-" if v is None else f"{v:.{digits}f}"
