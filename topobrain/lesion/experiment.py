"""The lesion experiment end to end: targets, matched controls, measures, tables, report.

:func:`run_lesions` is what ``topobrain lesion`` calls. Output folder::

    lesions.csv        one row per lesion x measure (targets: one per control kind, with
                       the controls' mean, sd, z and Monte Carlo p)
    lesion_units.csv   lesion_id, layer, unit (unit indices in the model's order)
    items.csv          lesion_id, set, item_id, condition, surprisal_nats, n_tokens
    figures/lesion_controls.png, lesion_maps.png
    report.html        one self-contained page
    run.yaml           settings, versions, input identities
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .._utils._validation import check_option
from ._interventions import MODES, Lesion
from .controls import CONTROL_KINDS, draw_controls, z_and_p
from .measures import NONE, item_surprisal, score_sequences, text_windows, tokenize_items
from .targets import LocalizerMaps, localizer_maps, parse_target, read_localizer

__all__ = ["LesionResult", "run_lesions", "summarize"]

logger = logging.getLogger("topobrain")

# the direction in which a measure shows harm (the p-value's alternative)
_HARM = {"surprisal": "greater", "loss": "greater", "accuracy": "less", "contrast_t": "less"}


@dataclass(frozen=True)
class LesionResult:
    """What :func:`run_lesions` computed (and wrote, when given ``out``).

    Attributes
    ----------
    lesions : DataFrame
        ``lesions.csv``: ``lesion_id, kind, target, layers, n_units, measure, value,
        change`` (value minus the unlesioned one) and, on target rows, ``against``,
        ``n_controls``, ``control_mean``, ``control_sd``, ``z``, ``p``, ``alternative``.
    units : DataFrame
        ``lesion_units.csv``.
    items : DataFrame
        ``items.csv``.
    out : Path or None
    settings : dict
    """

    lesions: pd.DataFrame
    units: pd.DataFrame
    items: pd.DataFrame
    out: Path | None = None
    settings: dict = field(default_factory=dict)

    def summary(self) -> pd.DataFrame:
        """Target rows only: measure, control kind, change, z and p."""
        return summarize(self.lesions)

    def __repr__(self) -> str:
        n = self.lesions["lesion_id"].nunique()
        return (f"LesionResult({n} lesions, {self.lesions['measure'].nunique()} measures"
                f"{', out=' + repr(str(self.out)) if self.out else ''})")


def summarize(lesions: pd.DataFrame) -> pd.DataFrame:
    """The target rows of a lesions table (one per target x control kind x measure)."""
    t = lesions[lesions["kind"] == "target"]
    cols = ["lesion_id", "n_units", "measure", "value", "change", "against", "n_controls",
            "control_mean", "control_sd", "z", "p"]
    return t[[c for c in cols if c in t]].reset_index(drop=True)


def _deepest(model, lesion: Lesion) -> int:
    order = {k: i for i, k in enumerate(model.layer_names)}
    return max(order[k] for k in lesion.units)


def _later_layers(model, lesion: Lesion) -> list[str]:
    """Layers of later blocks than the lesion's deepest layer."""
    from .measures import _first_block

    deepest = model.layer_names[_deepest(model, lesion)]
    b = _first_block(deepest)
    if b is None:
        return model.layer_names[_deepest(model, lesion) + 1:]
    return [k for k in model.layer_names if (_first_block(k) or -1) > b]


def run_lesions(model, stimuli, contrast: str, *, targets: Sequence = ("top5%",),
                controls: Sequence[str] = ("random-units", "random-patch"),
                n_controls: int = 100, mode: str = "zero", localizer=None,
                eval_text=None, minimal_pairs: Sequence = (), bos: bool = False,
                avoid_target: bool = True, alpha: float = 0.05, cluster_p: float = 0.001,
                seed=0, n_jobs: int | None = None, device="auto", out=None,
                overwrite: bool = False,
                max_eval_windows: int | None = None, surprisal_stimuli=None,
                verbose: int = 1) -> LesionResult:
    """Lesion localized units against matched controls and measure what the model loses.

    Parameters
    ----------
    model : SheetModel, str or path-like
    stimuli : StimulusSet, str or path-like
        The localizer items (the units are selected on them, mean ablation uses their
        mean responses, and surprisal is reported per condition).
    contrast : str
        The localizer contrast (``"S - N"``).
    targets : list of str or Lesion, default=("top5%",)
        Spellings of :func:`topobrain.lesion.parse_target` (``top5%``, ``top1%/layer``,
        ``fdr``, ``cluster:ID``, ``cluster:largest``, ``disc:...``, ``square:...``,
        ``mask:FILE.npz``) or Lesion objects.
    controls : list of {"random-units", "random-patch", "magnitude"}
    n_controls : int, default=100
        Controls per target and kind.
    mode : {"zero", "mean"}, default="zero"
        Mean ablation uses each unit's mean response over the stimuli.
    localizer : path-like, optional
        A ``topobrain localize`` output folder to take the unit statistics and clusters
        from (default: computed here from the stimuli, by the same rules).
    eval_text : str or path-like, optional
        Held-out text (a file path, or the text): mean loss per token.
    minimal_pairs : list
        Minimal-pair sets (bundled names, BLiMP JSONL, SyntaxGym suites, or DataFrames).
    bos : bool, default=False
        Prepend the BOS token to items and pairs (then every item token is scored).
    avoid_target : bool, default=True
        Controls never share a unit with their target.
    alpha, cluster_p : float
        FDR level and cluster-forming p of the localizer.
    seed : int, Generator, SeedSequence or None, default=0
        Seeds the controls (stream ``lesion_controls``).
    n_jobs : int or None
        Parallel jobs for drawing controls.
    device : str, default="auto"
        Where the forwards run (``"auto"``: a GPU when there is one); the model is moved
        back afterwards.
    out : path-like, optional
        Write the tables, figures and report there.
    overwrite : bool, default=False
        Replace a folder that holds other files than a previous lesion run.
    max_eval_windows : int, optional
        Use only the first windows of ``eval_text``.
    surprisal_stimuli : StimulusSet, str or path-like, optional
        Items whose surprisal is reported per condition (default: ``stimuli``; a subset
        keeps many lesions cheap). The localizer contrast after the lesion is measured on
        them too.
    verbose : int, default=1

    Returns
    -------
    LesionResult
    """
    from .._utils._validation import check_device
    from ..models import load as load_model

    check_option("mode", mode, MODES)
    controls = list(controls)
    for c in controls:
        check_option("controls", c, CONTROL_KINDS)
    if isinstance(targets, (str, Lesion)):
        targets = [targets]
    if not targets:
        raise ValueError("Give at least one target, e.g. 'top5%'.")
    if controls and (isinstance(n_controls, bool) or not isinstance(n_controls, (int, np.integer))
                     or n_controls < 2):
        raise ValueError(f"n_controls must be an integer >= 2 (a z needs a spread); got "
                         f"{n_controls!r}.")
    m = model if hasattr(model, "module") else load_model(model)
    before = m.device
    m.to(check_device(device))
    try:
        return _run(m, model, stimuli, contrast, targets, controls, n_controls, mode,
                    localizer, eval_text, minimal_pairs, bos, avoid_target, alpha, cluster_p,
                    seed, n_jobs, device, out, overwrite, max_eval_windows, surprisal_stimuli,
                    verbose)
    finally:
        m.to(before)


def _run(m, model, stimuli, contrast, targets, controls, n_controls, mode, localizer,
         eval_text, minimal_pairs, bos, avoid_target, alpha, cluster_p, seed, n_jobs, device,
         out, overwrite, max_eval_windows, surprisal_stimuli, verbose) -> LesionResult:
    from .. import __version__
    from ..extract import extract
    from ..stimuli import StimulusSet, load_minimal_pairs, load_stimuli

    stim = stimuli if isinstance(stimuli, StimulusSet) else load_stimuli(stimuli)
    stim.contrast(contrast)  # unknown conditions fail here
    acts = extract(m, stim, pooling="mean", bos=bos, device=device, verbose=verbose)
    maps: LocalizerMaps
    if localizer is not None:
        maps = read_localizer(localizer, contrast=contrast, alpha=alpha)
        for k, t in maps.t.items():
            if k not in m.sheets or t.size != m.sheets[k].n_units:
                raise ValueError(f"The localizer folder {localizer} does not belong to "
                                 f"{m.name!r}: layer {k!r} does not match.")
    else:
        maps = localizer_maps(acts, stim.labels, contrast, alpha=alpha, cluster_p=cluster_p)
    means = {k: np.asarray(acts[k], float).mean(0) for k in acts.layers}
    magnitude = {k: np.abs(np.asarray(acts[k], float)).mean(0) for k in acts.layers}

    target_lesions = []
    for spec in targets:
        les = spec if isinstance(spec, Lesion) else parse_target(spec, maps, m.sheets)
        if les.is_empty:
            raise ValueError(f"Target {les.name!r} selects no unit; choose another target.")
        target_lesions.append(Lesion(les.units, name=les.name, kind="target",
                                     params=les.params))
    names = [t.name for t in target_lesions]
    if len(set(names)) != len(names):
        raise ValueError(f"Targets must have distinct names; got {names}.")
    groups = []  # (target, {kind: [controls]})
    for t in target_lesions:
        ctl = {kind: [Lesion(c.units, name=f"{t.name}|{c.name}", kind=kind,
                             params=c.params)
                      for c in draw_controls(t, m.sheets, kind, n_controls, seed=seed,
                                             avoid_target=avoid_target, magnitude=magnitude,
                                             n_jobs=n_jobs)]
               for kind in controls}
        groups.append((t, ctl))
    all_lesions = [NONE] + [x for t, ctl in groups for x in [t, *[c for v in ctl.values()
                                                                   for c in v]]]
    owner = {NONE.name: None}
    for t, ctl in groups:
        owner[t.name] = t
        for v in ctl.values():
            for c in v:
                owner[c.name] = t

    # -- measures ------------------------------------------------------------------------
    values: dict[str, dict[str, float]] = {}  # measure -> lesion -> value
    contrast_base: dict[str, float] = {}
    item_frames = []
    mstim = stim
    if surprisal_stimuli is not None:
        mstim = (surprisal_stimuli if isinstance(surprisal_stimuli, StimulusSet)
                 else load_stimuli(surprisal_stimuli))
    conditions = list(mstim.conditions)
    later = {t.name: _later_layers(m, t) for t in target_lesions}
    capture = sorted({k for v in later.values() for k in v}, key=m.layer_names.index)
    s = item_surprisal(m, mstim.texts, all_lesions, mode=mode, means=means, bos=bos,
                       capture=capture, verbose=verbose)
    labels = np.asarray(mstim.labels)
    for cond in conditions:
        sel = labels == cond
        values[f"surprisal[{cond}]"] = dict(zip(s.lesions, s.nats[:, sel].mean(1), strict=True))
    item_frames.append(_items_frame(s, mstim.name or "stimuli", list(mstim.item_ids),
                                    list(labels)))
    if capture and set(contrast_conditions(contrast)) <= set(conditions):
        values["contrast_t[later]"], contrast_base = _contrast_after(
            m, s, labels, contrast, maps, later, owner, alpha)
    if eval_text is not None:
        text = _read_eval_text(eval_text)
        wins = text_windows(m, text, max_windows=max_eval_windows)
        e = score_sequences(m, wins, all_lesions, mode=mode, means=means, verbose=verbose)
        values["loss[eval]"] = dict(zip(e.lesions, e.nats.sum(1) / e.n_tokens.sum(),
                                        strict=True))
    for mp in minimal_pairs:
        frame = mp if isinstance(mp, pd.DataFrame) else load_minimal_pairs(mp)
        set_name = (Path(str(mp)).stem if not isinstance(mp, pd.DataFrame)
                    else "minimal-pairs")
        texts = list(frame["good"]) + list(frame["bad"])
        seqs, _ = tokenize_items(m, texts, bos=bos)
        r = score_sequences(m, seqs, all_lesions, mode=mode, means=means, verbose=verbose)
        n = len(frame)
        acc = (r.nats[:, :n] < r.nats[:, n:]).mean(1)
        values[f"accuracy[{set_name}]"] = dict(zip(r.lesions, acc, strict=True))
        ids = list(frame["pair_id"]) * 2
        conds = ["good"] * n + ["bad"] * n
        item_frames.append(_items_frame(r, set_name, ids, conds))

    lesions_df = _lesions_table(all_lesions, owner, groups, values, contrast_base)
    units_df = pd.concat([les.to_frame() for les in all_lesions if not les.is_empty],
                         ignore_index=True)
    items_df = pd.concat(item_frames, ignore_index=True)
    settings = {
        "topobrain": __version__, "model": getattr(m, "name", str(model)),
        "model_identity": m.identity, "stimuli": stim.name, "stimuli_identity": stim.identity,
        "surprisal_stimuli": None if surprisal_stimuli is None else mstim.name,
        "contrast": contrast, "targets": names, "controls": controls,
        "n_controls": int(n_controls), "mode": mode, "bos": bos,
        "avoid_target": avoid_target, "alpha": alpha, "cluster_p": cluster_p,
        "localizer": None if localizer is None else str(localizer),
        "eval_text": None if eval_text is None else (str(eval_text) if Path(
            str(eval_text)).is_file() else "<text>"),
        "max_eval_windows": max_eval_windows,
        "minimal_pairs": [str(x) if not isinstance(x, pd.DataFrame) else "<DataFrame>"
                          for x in minimal_pairs],
        "input_hashes": _input_hashes(eval_text, minimal_pairs),
        "seed": seed if isinstance(seed, (int, type(None))) else repr(seed),
        "surprisal": "sum over an item's tokens after its first of -log p, nats"
                     + (" (BOS prepended: every item token scored)" if bos else ""),
    }
    result = LesionResult(lesions=lesions_df, units=units_df, items=items_df, settings=settings)
    if out is not None:
        result = _write(result, Path(out), overwrite, m, maps, groups)
    return result


def _input_hashes(eval_text, minimal_pairs) -> dict:
    """SHA-256 of the held-out text and of each minimal-pair file or table."""
    from .._utils._hashing import hash_bytes, hash_file, hash_files

    out = {}
    if eval_text is not None:
        p = Path(str(eval_text))
        out["eval_text"] = (hash_file(p) if len(str(eval_text)) < 4096 and p.is_file()
                            else hash_bytes(str(eval_text)))
    for k, mp in enumerate(minimal_pairs):
        if isinstance(mp, pd.DataFrame):
            out[f"minimal_pairs[{k}]"] = hash_bytes(mp.to_csv(index=False))
        else:
            from ..stimuli import _minimal_pairs_root, available_minimal_pairs

            p = Path(str(mp))
            if not p.exists() and str(mp) in available_minimal_pairs():
                p = _minimal_pairs_root() / f"{mp}.jsonl"
            files = sorted(p.glob("*.jsonl")) if p.is_dir() else [p]
            out[f"minimal_pairs[{k}]"] = hash_files(files)
    return out


def contrast_conditions(contrast) -> list[str]:
    from ..contrast import parse_contrast

    return parse_contrast(contrast).conditions


def _read_eval_text(eval_text) -> str:
    p = Path(str(eval_text))
    if len(str(eval_text)) < 4096 and p.is_file():
        return p.read_text(encoding="utf-8", errors="replace")
    if isinstance(eval_text, str) and ("\n" in eval_text or " " in eval_text):
        return eval_text
    raise FileNotFoundError(f"eval_text {str(eval_text)!r} is neither a file nor a text.")


def _items_frame(scores, set_name, item_ids, conditions) -> pd.DataFrame:
    n_les, n = scores.nats.shape
    return pd.DataFrame({
        "lesion_id": np.repeat(np.array(scores.lesions, dtype=object), n),
        "set": set_name,
        "item_id": np.tile(np.array(item_ids, dtype=object), n_les),
        "condition": np.tile(np.array(conditions, dtype=object), n_les),
        "surprisal_nats": scores.nats.ravel(),
        "n_tokens": np.tile(scores.n_tokens, n_les),
    })


def _contrast_after(m, s, labels, contrast, maps, later, owner, alpha):
    """Mean t, after the lesion, of the units in later layers that were selective before.

    Returns the value per lesion and, per target, the unlesioned value over the same
    units (from the unlesioned model's responses, row 0 of ``s``)."""
    from ..activations import Activations
    from ..pipeline import unit_statistics

    sel = maps.selective(alpha)

    def mean_t(i, layers):
        layers = [k for k in layers if sel[k].any()]
        if not layers:
            return np.nan
        acts = Activations.from_arrays({k: s.pooled[k][i] for k in layers},
                                       {k: m.sheets[k] for k in layers}, labels=labels)
        t = unit_statistics(acts, labels, contrast).t
        return float(np.nanmean(np.concatenate([t[k][sel[k]] for k in layers])))

    out, base = {}, {}
    for i, name in enumerate(s.lesions):
        t = owner.get(name)
        out[name] = mean_t(i, later[t.name]) if t is not None and later[t.name] else np.nan
    for tname, layers in later.items():
        base[tname] = mean_t(0, layers) if layers else np.nan
    return out, base


def _lesions_table(all_lesions, owner, groups, values, contrast_base) -> pd.DataFrame:
    rows = []
    base = {meas: v.get(NONE.name, np.nan) for meas, v in values.items()}
    for les in all_lesions:
        t = owner.get(les.name)
        for meas, v in values.items():
            val = float(v[les.name])
            if meas.startswith("contrast_t") and not np.isfinite(val):
                continue  # no later layer to measure (or the unlesioned model)
            ref = base[meas]
            if meas.startswith("contrast_t"):  # unlesioned, over the target's later layers
                ref = contrast_base.get(t.name, np.nan) if t is not None else np.nan
            row = {"lesion_id": les.name, "kind": les.kind,
                   "target": None if t is None else t.name,
                   "layers": ";".join(les.layers), "n_units": les.n_units,
                   "measure": meas, "value": val, "change": val - ref}
            if les.kind != "target":
                rows.append(row)
                continue
            ctl = next(c for tt, c in groups if tt.name == les.name)
            if not ctl:
                rows.append(row)
                continue
            alt = _HARM[meas.split("[")[0]]
            for kind, lst in ctl.items():
                cv = np.array([v[c.name] for c in lst], float)
                mean, sd, z, p = z_and_p(val, cv, alternative=alt)
                rows.append({**row, "against": kind, "n_controls": len(lst),
                             "control_mean": mean, "control_sd": sd, "z": z, "p": p,
                             "alternative": alt})
    cols = ["lesion_id", "kind", "target", "layers", "n_units", "measure", "value", "change",
            "against", "n_controls", "control_mean", "control_sd", "z", "p", "alternative"]
    return pd.DataFrame(rows).reindex(columns=cols)


def _write(result: LesionResult, out: Path, overwrite: bool, model, maps, groups):
    import yaml

    from .._utils._io import atomic_save
    from .._utils._outdir import RunFolder
    from .._utils._versions import versions
    from ..report import Section, write_report

    def accept(folder: Path):
        if not overwrite and not (folder / "lesions.csv").is_file():
            raise FileExistsError(f"{folder} holds other files than a lesion run; pick "
                                  f"another folder or pass overwrite=True (--overwrite).")

    settings = {**result.settings, "out": str(out), "versions": versions()}
    with RunFolder(out, accept=accept) as rf:
        work = rf.work

        def csv(df, name):
            atomic_save(work / name, lambda tmp: df.to_csv(tmp, index=False,
                                                           float_format="%.6g"))
        csv(result.lesions, "lesions.csv")
        csv(result.units, "lesion_units.csv")
        csv(result.items, "items.csv")
        (work / "run.yaml").write_text(yaml.safe_dump(settings, sort_keys=False),
                                       encoding="utf-8")
        from ..plotting import save_figure
        from ._figures import plot_controls, plot_lesion_maps

        figs = work / "figures"
        figs.mkdir()
        p1 = save_figure(plot_controls(result.lesions), figs / "lesion_controls", svg=False)[0]
        p2 = save_figure(plot_lesion_maps(model, maps, groups), figs / "lesion_maps",
                         svg=False)[0]
        summ = result.summary()
        sentences = _sentences(summ)
        sections = [
            Section("Targets against matched controls", sentences=sentences,
                    tables=[("Targets: value, change from the unlesioned model, controls' "
                             "mean and sd, z and Monte Carlo p (+1 rule)", summ)],
                    figures=[(f"{p1.stem}: each target (line) against its controls "
                              f"(histograms); dashed: unlesioned", p1.relative_to(work))]),
            Section("The lesions on their sheets",
                    figures=[("Localizer t maps with each target's units (black) and one "
                              "control of each kind (colours)", p2.relative_to(work))]),
        ]
        # the report embeds the figures, so give it absolute paths inside the work folder
        for sec in sections:
            sec.figures = [(c, work / p) for c, p in sec.figures]
        write_report(work / "report.html",
                     title=f"topobrain lesions: {settings['model']} on {settings['stimuli']}",
                     settings={k: v for k, v in settings.items() if k != "versions"},
                     sections=sections)
        rf.publish()
    return LesionResult(lesions=result.lesions, units=result.units, items=result.items,
                        out=out, settings=settings)


def _sentences(summ: pd.DataFrame) -> list[str]:
    out = []
    for _, r in summ.iterrows():
        if pd.isna(r.get("z")):
            continue
        out.append(f"{r['lesion_id']} ({int(r['n_units'])} units), {r['measure']}: change "
                   f"{r['change']:+.4g} against {r['against']} controls "
                   f"(mean {r['control_mean']:.4g}, sd {r['control_sd']:.3g}): "
                   f"z = {r['z']:.2f}, p = {r['p']:.3g}.")
    return out
