"""An extra check with TensorBoard itself, outside the npm test suite (it needs Python and
`pip install tensorboard`). For each run folder of a log dir written by `retrace tensorboard`, it
loads the files with TensorBoard's own EventAccumulator (orphaned-data purging on, as TensorBoard
runs) and compares every scalar with the run's `retrace log RUN --json` output.

    retrace tensorboard RUN --out DIR
    retrace log RUN --json > RUN.ndjson
    python test/tensorboard/check_with_tensorboard.py DIR/RUN RUN.ndjson
"""
import json
import math
import struct
import sys

from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.plugins.hparams import plugin_data_pb2


def f32(x):
    return struct.unpack("<f", struct.pack("<f", float(x)))[0]


def expected(ndjson):
    records = [json.loads(line) for line in open(ndjson) if line.strip()]
    origin = records[0]["data"]["origin"]["step"]
    out = {}
    for r in records:
        d = r["data"]
        if r["type"] == "step.finished":
            pairs = [("loss", d["loss"]), ("lr", d["lr"]), ("examples_seen", d["examplesSeen"])]
        elif r["type"] == "eval.finished":
            pairs = [("val_loss", d["valLoss"]), ("val_acc", d["valAccuracy"])]
        else:
            continue
        for tag, value in pairs:
            out.setdefault(tag, []).append((origin + d["step"], f32(value)))
    return records[0]["data"]["config"], out


def same(a, b):
    return (math.isnan(a) and math.isnan(b)) or a == b


def main(run_dir, ndjson):
    config, want = expected(ndjson)
    acc = ea.EventAccumulator(run_dir, size_guidance={ea.SCALARS: 0, ea.TENSORS: 0}, purge_orphaned_data=True)
    acc.Reload()
    got = {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}
    assert sorted(got) == sorted(want), (sorted(got), sorted(want))
    for tag, points in want.items():
        assert len(got[tag]) == len(points), (tag, len(got[tag]), len(points))
        for (gs, gv), (ws, wv) in zip(got[tag], points):
            assert gs == ws and same(gv, wv), (tag, gs, gv, ws, wv)
    meta = acc.SummaryMetadata("_hparams_/session_start_info")
    assert meta.plugin_data.plugin_name == "hparams"
    info = plugin_data_pb2.HParamsPluginData.FromString(meta.plugin_data.content).session_start_info
    for key, value in config.items():
        if isinstance(value, bool):
            assert info.hparams[key].bool_value == value, key
        elif isinstance(value, (int, float)):
            assert info.hparams[key].number_value == value, key
        elif isinstance(value, str):
            assert info.hparams[key].string_value == value, key
    print(f"ok: {sum(len(p) for p in want.values())} scalars in {len(want)} tags, {len(info.hparams)} hparams")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
