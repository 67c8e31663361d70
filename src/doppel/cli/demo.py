"""`doppel demo`: the whole job end to end on built-in public-domain material, in one folder."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import typer

from doppel.cli.common import JsonOpt, console, emit_json, progress_bar
from doppel.core.progress import ProgressFn
from doppel.provenance.verify import payload_text
from doppel.workflow.demo import DemoConfig, DemoReport, run_demo

_UNITS = {"clips": "clips", "extract": "frames", "train": "s", "merge": "frames", "verify": "frames",
          "eval": "frames"}


def _fmt(value: object, fmt: str = ".3f") -> str:
    return format(value, fmt) if isinstance(value, (int, float)) else "--"


def summary(report: DemoReport) -> list[str]:
    ev, tr = report.eval, report.train
    vf, cred = report.verify.get("watermark", {}), report.verify.get("credentials", {})
    return [
        f"demo finished in {report.seconds / 60:.1f} min: {report.out}",
        f"  output       {report.output}  ({report.merge.get('swapped')} of {report.merge.get('frames')} "
        "frames swapped)",
        f"  trained      {tr.get('steps')} steps in {_fmt(tr.get('seconds'), '.0f')} s "
        f"({_fmt(tr.get('images_per_s'), '.1f')} images/s, {tr.get('arch')} {tr.get('resolution')} px, "
        f"{'from the base model ' + tr['base'] if tr.get('base') else 'from random weights'})"
        + (f", then {tr['detail_steps']} detail-network steps" if tr.get("detail_steps") else ""),
        f"  identity     id_sim_src {_fmt(ev.get('id_sim_src'))} vs id_sim_dst {_fmt(ev.get('id_sim_dst'))}; "
        f"more source than destination in {_fmt(ev.get('id_src_wins'), '.0%')} of frames, "
        f"recognised as the source in {_fmt(ev.get('id_match_src'), '.0%')}",
        f"  expression   nme {_fmt(ev.get('expression_nme'), '.4f')}, "
        f"pose error {_fmt(ev.get('pose_error_deg'), '.1f')} deg; "
        f"seam {_fmt(ev.get('seam_score'), '.2f')}",
        f"  detail       sharpness ratio {_fmt(ev.get('sharpness_ratio'), '.2f')}; "
        f"warp error ratio {_fmt(ev.get('warp_error_ratio'), '.2f')} (1 = as steady as the plate)",
        f"  provenance   watermark {'found' if vf.get('detected') else 'NOT found'} ({payload_text(vf)}); "
        f"content credentials {'intact' if cred.get('valid') else 'NOT intact'}"
        f"{', signer trusted by the demo workspace (verify --workspace)' if cred.get('trusted') else ''}",
        f"  reports      {report.eval_report}, {report.verify_report}",
        f"  contact      {report.contact_sheet}",
    ]


def demo(
    out: Path = typer.Option(Path("demo-out"), "--out", help="Folder for everything the demo makes (an earlier "
                                                              "demo's folder is replaced)."),
    minutes: float = typer.Option(10.0, "--minutes", min=0.1, max=600,
                                  help="Training budget in minutes (the rest takes about 1-2 more on 2 cores)."),
    json_out: bool = JsonOpt,
) -> None:
    """Run the whole job end to end on built-in public-domain portraits, into one folder.

    Makes two clips, records consent, extracts, trains for --minutes, merges, verifies and
    evaluates; leaves the output video, contact sheet and reports in --out.
    """
    config = DemoConfig(out=out, minutes=minutes)
    stack = contextlib.ExitStack()

    def stage(name: str) -> ProgressFn:
        stack.close()
        return stack.enter_context(_bar(name, not json_out))

    with stack:
        report = run_demo(config, stage=stage, note=(lambda line: console.print(line, highlight=False))
                          if not json_out else (lambda line: None))
    if json_out:
        emit_json(report.to_dict())
        return
    for line in summary(report):
        console.print(line, highlight=False, soft_wrap=True)


@contextlib.contextmanager
def _bar(name: str, enabled: bool) -> Iterator[ProgressFn]:
    with progress_bar(f"{name:8s}", _UNITS.get(name, "items"), enabled=enabled) as progress:
        yield progress
