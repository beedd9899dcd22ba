#!/usr/bin/env bash
# End-to-end checks of the repro command line, run by ctest:
#   cli_test.sh <repro binary> <source dir> errors|run|resume
# Each check prints what it ran; the script fails on the first broken expectation.
set -uo pipefail
REPRO="$1" SRC="$2" MODE="$3"
T=$(mktemp -d /tmp/hacm-cli-XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok() { echo "ok: $*"; pass=$((pass + 1)); }
bad() { echo "FAILED: $*"; fail=$((fail + 1)); }
# expect <code> <substring of stderr> -- command...
expect() {
  local code="$1" want="$2"; shift 3
  "$@" >"$T/out" 2>"$T/err"; local rc=$?
  if [ "$rc" != "$code" ]; then bad "$* -> exit $rc, wanted $code; stderr: $(head -c 400 "$T/err")"; return; fi
  if [ -n "$want" ] && ! grep -qF -- "$want" "$T/err"; then bad "$* -> stderr lacks '$want': $(head -c 400 "$T/err")"; return; fi
  ok "$* -> exit $code"
}

# interrupt <file> <seconds> <stderr file> -- command...: run the command in the background, send
# SIGTERM <seconds> after <file> appears, and return the command's exit code.
interrupt() {
  local file="$1" extra="$2" err="$3"; shift 4
  "$@" >/dev/null 2>"$err" &
  local pid=$!
  for _ in $(seq 1 900); do [ -e "$file" ] && break; sleep 0.1; done
  sleep "$extra"
  kill -TERM $pid
  wait $pid
}

# stage_curves <result json> <kind>: the curves of the first stage of that kind (sorted JSON).
stage_curves() {
  python3 -c 'import json, sys
r = json.load(open(sys.argv[1]))
print(json.dumps([s["curves"] for s in r["runs"][0]["stages"] if s["kind"] == sys.argv[2]][:1], sort_keys=True))' "$1" "$2"
}

# kill_resume_compare <protocol> <stage tag> <stage kind> <seconds> <dir>: run the protocol once
# uninterrupted; again with SIGTERM <seconds> after the stage's first checkpoint; then resume it;
# the stage must stop with a checkpoint, resume from it and end with the uninterrupted curves.
kill_resume_compare() {
  local P="$1" tag="$2" kind="$3" wait="$4" D="$5" rc a b
  mkdir -p "$D"
  "$REPRO" run "$P" --work "$D/full" --results "$D/rfull" --no-progress >/dev/null 2>"$D/full.err" || bad "$tag: uninterrupted run failed: $(tail -3 "$D/full.err")"
  interrupt "$D/cut/seed0/$tag.ckpt.npz" "$wait" "$D/cut1.err" -- "$REPRO" run "$P" --work "$D/cut" --results "$D/rcut" --no-progress
  rc=$?
  [ $rc = 1 ] && grep -q "$tag\] stopped by signal" "$D/cut1.err" && ok "$tag: SIGTERM gives exit 1 with a checkpoint" || bad "$tag: SIGTERM run: exit $rc; $(tail -3 "$D/cut1.err")"
  "$REPRO" run "$P" --work "$D/cut" --results "$D/rcut" --no-progress >/dev/null 2>"$D/cut2.err" || bad "$tag: resume failed: $(tail -3 "$D/cut2.err")"
  grep -q "$tag\] resuming from" "$D/cut2.err" && ok "$tag: resumed from its checkpoint" || bad "$tag: did not resume: $(head -5 "$D/cut2.err")"
  a=$(stage_curves "$D"/rfull/*.json "$kind")
  b=$(stage_curves "$D"/rcut/*.json "$kind")
  [ -n "$a" ] && [ "$a" != "[]" ] && [ "$a" = "$b" ] && ok "$tag: resumed run has the same curves" || bad "$tag: curves differ: '$a' vs '$b'"
}

case "$MODE" in
errors)
  expect 0 "" -- "$REPRO" --help
  expect 2 "" -- "$REPRO" frobnicate
  printf '{\n  "dataset": {"kind": "synthetic"},\n  "stages": [ {"kind": "pretrain",} ]\n}\n' >"$T/badjson.json"
  expect 2 "badjson.json:3" -- "$REPRO" run "$T/badjson.json"
  echo '{"dataset": {"kind": "synthetic"}, "stages": [{"kind": "pretrain", "epocs": 3}]}' >"$T/unknown.json"
  expect 2 "stages[0].epocs: unknown key" -- "$REPRO" run "$T/unknown.json"
  echo '{"dataset": {"kind": "synthetic"}, "stages": [{"kind": "linear", "lr": "fast"}]}' >"$T/type.json"
  expect 2 "stages[0].lr: must be a number" -- "$REPRO" run "$T/type.json"
  echo '{"dataset": {"kind": "synthetic"}, "method": {"heads": 7}, "stages": [{"kind": "pretrain"}]}' >"$T/range.json"
  expect 2 "method.heads" -- "$REPRO" run "$T/range.json"
  echo '{"dataset": {"kind": "npz", "name": "ntu60", "path": "'"$T"'/none.npz"}, "stages": [{"kind": "pretrain"}]}' >"$T/missing.json"
  expect 2 "repro prepare ntu60" -- "$REPRO" run "$T/missing.json"
  expect 2 "" -- "$REPRO" run "$T/does-not-exist.json"
  echo '{"dataset": {"kind": "synthetic"}, "backend": "reference", "device": "cuda", "stages": [{"kind": "finetune"}]}' >"$T/refft.json"
  expect 2 "device: \"cuda\" cannot be used with backend \"reference\"" -- "$REPRO" run "$T/refft.json"
  echo '{"dataset": {"kind": "synthetic"}, "precision": "fp16", "stages": [{"kind": "pretrain"}]}' >"$T/prec.json"
  expect 2 "precision: 'fp16' is not one of: fp32, tf32, bf16" -- "$REPRO" run "$T/prec.json"
  echo '{"dataset": {"kind": "synthetic"}, "backend": "reference", "precision": "bf16", "stages": [{"kind": "pretrain"}]}' >"$T/refprec.json"
  expect 2 "precision: the reference backend computes in float64" -- "$REPRO" run "$T/refprec.json"
  expect 0 "" -- "$REPRO" run "$SRC/protocols/quickstart.json" --validate
  expect 2 "unknown kernel 'bogus'" -- env HACM_CUSTOM_KERNELS_OFF=bogus "$REPRO" run "$SRC/protocols/test/tiny_linear.json" --work "$T/wk" --results "$T/rk" --no-progress
  [ ! -e "$T/wk" ] && [ ! -e "$T/rk" ] && ok "no output after a bad HACM_CUSTOM_KERNELS_OFF" || bad "output left after a bad HACM_CUSTOM_KERNELS_OFF"
  for f in "$SRC"/protocols/*.json; do
    # Every shipped protocol is valid apart from its (absent) dataset files.
    "$REPRO" run "$f" --validate >"$T/out" 2>"$T/err"
    rc=$?
    if [ $rc = 0 ] || { [ $rc = 2 ] && grep -q "not found; make it with" "$T/err"; }; then ok "validate $(basename "$f")"; else bad "validate $f: $(cat "$T/err")"; fi
  done
  expect 2 "--raw" -- "$REPRO" prepare ntu60 --out "$T/x"
  printf '3\n1\n' >"$T/S001C001P001R001A001.skeleton"
  mkdir -p "$T/raw" && cp "$T/S001C001P001R001A001.skeleton" "$T/raw/"
  expect 2 "S001C001P001R001A001.skeleton" -- "$REPRO" prepare ntu60 --raw "$T/raw" --out "$T/o" --no-progress
  [ -z "$(ls "$T/o" 2>/dev/null)" ] && ok "no partial output after a failed prepare" || bad "partial output left in $T/o: $(ls "$T/o")"
  ;;
run)
  for p in tiny_linear tiny_corrected_mamp tiny_mamp tiny_reference tiny_reference_finetune tiny_transfer; do
    expect 0 "" -- "$REPRO" run "$SRC/protocols/test/$p.json" --work "$T/w_$p" --results "$T/r_$p" --no-progress
    f=$(ls "$T/r_$p"/*.json 2>/dev/null | head -1)
    if [ -n "$f" ] && grep -q '"top1_final"' "$f" && grep -q '"protocol_sha256"' "$f"; then ok "$p result $f"; else bad "$p: no result with top1_final"; fi
  done
  grep -q '"device_name": "cpu (.*; torch kernels [A-Z0-9_]*)"' "$T"/r_tiny_linear/*.json && ok "device_name recorded" || bad "no device_name: $(grep -o '"device_name": [^,]*' "$T"/r_tiny_linear/*.json)"
  grep -q '"linear_random"' "$T"/r_tiny_linear/*.json && ok "random-init baseline recorded" || bad "no linear_random"
  grep -q '"subset_ids"' "$T"/r_tiny_linear/*.json && ok "semi subset ids recorded" || bad "no subset_ids"
  grep -q '"confusion_final"' "$T"/r_tiny_linear/*.json && grep -q '"confusion_final"' "$T"/r_tiny_reference/*.json && ok "confusion matrices recorded (both backends)" || bad "no confusion_final"
  expect 0 "" -- "$REPRO" table "$T/r_tiny_linear"
  [ -s "$T/r_tiny_linear/TABLE.md" ] && ok "table written" || bad "no TABLE.md"
  # Several results of one protocol: the table shows the newest (finished_utc).
  f=$(ls "$T"/r_tiny_linear/tiny_linear-*.json | head -1)
  grep -q '"finished_utc": "20' "$f" && ok "finished_utc recorded" || bad "no finished_utc in $f"
  sed -E 's/"finished_utc": "[^"]*"/"finished_utc": "2999-01-01T00:00:00Z"/; s/"top1_final": [-0-9.e]+/"top1_final": 12.34/' "$f" >"$T/r_tiny_linear/newer.json"
  sed -E 's/"finished_utc": "[^"]*"/"finished_utc": "1999-01-01T00:00:00Z"/; s/"top1_final": [-0-9.e]+/"top1_final": 56.78/' "$f" >"$T/r_tiny_linear/zz-older.json"
  "$REPRO" table "$T/r_tiny_linear" >/dev/null 2>&1
  grep -q "12.34" "$T/r_tiny_linear/TABLE.md" && ! grep -q "56.78" "$T/r_tiny_linear/TABLE.md" && ok "table shows the newest result" || bad "table does not show the newest result: $(cat "$T/r_tiny_linear/TABLE.md")"
  # Two synthetic protocols in one column get a row each (neither hides the other).
  mkdir -p "$T/r_two"
  cp "$f" "$T/r_two/a.json"
  sed -E 's/"protocol": "tiny_linear"/"protocol": "tiny_other"/; s/"top1_final": [-0-9.e]+/"top1_final": 65.43/' "$f" >"$T/r_two/b.json"
  "$REPRO" table "$T/r_two" >/dev/null 2>&1
  grep -q "· tiny_other .*65.43" "$T/r_two/TABLE.md" && grep -q "· tiny_linear |" "$T/r_two/TABLE.md" && ok "one row per synthetic protocol" || bad "synthetic rows: $(cat "$T/r_two/TABLE.md")"
  # Stages trained from a random init (no pretraining) go to the random-init encoder's row.
  mkdir -p "$T/r_scratch"
  sed -E 's/"from": "pretrain"/"from": "scratch"/; s/"encoder": "pretrained"/"encoder": "random init"/; s/"top1_final": [-0-9.e]+/"top1_final": 43.21/' "$f" >"$T/r_scratch/s.json"
  "$REPRO" table "$T/r_scratch" >/dev/null 2>&1
  grep -q "random-init encoder (ours).*43.21" "$T/r_scratch/TABLE.md" && ! grep -q "HA-CM.*43.21" "$T/r_scratch/TABLE.md" && ok "from-scratch stages in the random-init row" || bad "from-scratch row: $(cat "$T/r_scratch/TABLE.md")"
  ;;
resume)
  P="$SRC/protocols/test/tiny_resume.json"
  "$REPRO" run "$P" --work "$T/full" --results "$T/rfull" --no-progress >/dev/null 2>"$T/full.err" || bad "uninterrupted run failed: $(tail -3 "$T/full.err")"
  # Interrupt with SIGTERM once the first checkpoint exists, then resume with the same command.
  interrupt "$T/cut/seed0/stage0_pretrain.ckpt.npz" 0.3 "$T/cut1.err" -- "$REPRO" run "$P" --work "$T/cut" --results "$T/rcut" --no-progress
  rc=$?
  [ $rc = 1 ] && grep -q "stopped by signal" "$T/cut1.err" && ok "SIGTERM: exit 1 with checkpoint" || bad "SIGTERM run: exit $rc; $(tail -3 "$T/cut1.err")"
  "$REPRO" run "$P" --work "$T/cut" --results "$T/rcut" --no-progress >/dev/null 2>"$T/cut2.err" || bad "resume failed: $(tail -3 "$T/cut2.err")"
  grep -q "resuming from" "$T/cut2.err" && ok "resumed from the checkpoint" || bad "did not resume"
  a=$(grep -o '"final_loss": [-0-9.e]*' "$T"/rfull/*.json)
  b=$(grep -o '"final_loss": [-0-9.e]*' "$T"/rcut/*.json)
  [ -n "$a" ] && [ "$a" = "$b" ] && ok "resumed run ends with the same loss ($a)" || bad "loss differs: uninterrupted '$a' vs resumed '$b'"
  # SIGTERM while the synthetic set is being generated: exit 1 promptly, no data file left.
  sed 's/"clips": 200, "seed": 6/"clips": 3000, "seed": 61/' "$P" >"$T/gen.json"
  grep -q '"clips": 3000' "$T/gen.json" || bad "could not make the generation protocol"
  "$REPRO" run "$T/gen.json" --work "$T/gen" --results "$T/rgen" --no-progress >/dev/null 2>"$T/gen.err" &
  pid=$!
  for _ in $(seq 1 200); do [ -n "$(find "$T/gen/data" -type f 2>/dev/null)" ] && break; sleep 0.05; done
  kill -TERM $pid
  wait $pid; rc=$?
  [ $rc = 1 ] && grep -q "stopped by signal while generating" "$T/gen.err" && ok "SIGTERM during data generation: exit 1" || bad "SIGTERM during generation: exit $rc; $(tail -3 "$T/gen.err")"
  [ -z "$(find "$T/gen/data" -type f 2>/dev/null)" ] && ok "no partial data file" || bad "partial data left: $(find "$T/gen/data" -type f)"
  # The same for `repro prepare`: exit 1, a message, no file (not even a temporary) in --out.
  "$REPRO" prepare synthetic --clips 3000 --seed 62 --out "$T/prep" --no-progress >/dev/null 2>"$T/prep.err" &
  pid=$!
  for _ in $(seq 1 200); do [ -n "$(find "$T/prep" -type f 2>/dev/null)" ] && break; sleep 0.05; done
  kill -TERM $pid
  wait $pid; rc=$?
  [ $rc = 1 ] && grep -q "interrupted: prepare synthetic stopped by a signal" "$T/prep.err" && ok "SIGTERM during prepare: exit 1" || bad "SIGTERM during prepare: exit $rc; $(tail -3 "$T/prep.err")"
  [ -z "$(find "$T/prep" -type f 2>/dev/null)" ] && ok "prepare left no file" || bad "prepare left: $(find "$T/prep" -type f)"
  # Changed stage settings never resume another run's checkpoints: they are moved aside, kept.
  sed 's/"epochs": 4/"epochs": 3/' "$P" >"$T/changed.json"
  cmp -s "$P" "$T/changed.json" && bad "could not change the protocol"
  "$REPRO" run "$T/changed.json" --work "$T/cut" --results "$T/rchg" --no-progress >/dev/null 2>"$T/chg.err" || bad "run of the changed protocol failed: $(tail -3 "$T/chg.err")"
  grep -q "settings for this stage or an earlier one changed" "$T/chg.err" && ! grep -q "resuming from" "$T/chg.err" && ok "changed protocol: starts afresh" || bad "changed protocol: $(head -3 "$T/chg.err")"
  ls "$T"/cut/stale-*/seed0/stage0_pretrain.ckpt.npz >/dev/null 2>&1 && ok "old checkpoints moved to stale-*" || bad "old checkpoints not kept: $(ls "$T/cut")"
  # A protocol that only differs in description / devices / later stages reuses the pretraining.
  sed 's/"description": "[^"]*"/"description": "same pretraining"/' "$T/changed.json" >"$T/shared.json"
  "$REPRO" run "$T/shared.json" --work "$T/cut" --results "$T/rsh" --no-progress >/dev/null 2>"$T/sh.err" || bad "shared run failed: $(tail -3 "$T/sh.err")"
  grep -q "resuming from .*(3 epochs" "$T/sh.err" && ! grep -q "starting afresh" "$T/sh.err" && ok "same stage settings: pretraining reused" || bad "shared pretraining not reused: $(head -3 "$T/sh.err")"
  ;;
resume_finetune)
  # A downstream stage stopped by SIGTERM resumes at the same step and ends with the same curves:
  # the accelerated fine-tuning, and the reference backend's linear probe.
  kill_resume_compare "$SRC/protocols/test/tiny_resume_finetune.json" stage1_finetune finetune 0.5 "$T/a"
  kill_resume_compare "$SRC/protocols/test/tiny_reference_resume.json" stage1_linear linear 0.3 "$T/r"
  ;;
data_device)
  # Clips resident on the device (accelerated/feeder.h; here a CPU tensor) give the same run as
  # the host feeder: same batches, so the same loss curves and accuracies.
  sed 's/"device": "cpu",/"device": "cpu", "data_device": "device",/' "$SRC/protocols/test/tiny_linear.json" >"$T/tiny_dd.json"
  grep -q '"data_device": "device"' "$T/tiny_dd.json" || bad "could not make the data_device protocol"
  "$REPRO" run "$SRC/protocols/test/tiny_linear.json" --work "$T/wh" --results "$T/rh" --no-progress >/dev/null 2>"$T/h.err" || bad "host run failed: $(tail -3 "$T/h.err")"
  "$REPRO" run "$T/tiny_dd.json" --work "$T/wd" --results "$T/rd" --no-progress >/dev/null 2>"$T/d.err" || bad "device run failed: $(tail -3 "$T/d.err")"
  grep -q "split resident on cpu" "$T/d.err" && ok "train split resident on the device" || bad "no residency message: $(head -3 "$T/d.err")"
  grep -q '"data_device": "device"' "$T"/rd/*.json && ok "data_device recorded" || bad "data_device not recorded"
  a=$(tr -d ' \n' <"$T"/rh/*.json | grep -o '"curves":{[^}]*}' | tr '\n' ' ')
  b=$(tr -d ' \n' <"$T"/rd/*.json | grep -o '"curves":{[^}]*}' | tr '\n' ' ')
  [ -n "$a" ] && [ "$a" = "$b" ] && ok "same curves with clips on the device" || bad "curves differ: host '$a' vs device '$b'"
  ;;
precision)
  # bf16 autocast on the CPU runs all stages (fp32 master weights), is recorded, and changes the
  # curves (it really computes in bfloat16); cuda_graphs on a CPU run falls back to eager steps
  # with a note.
  sed 's/"device": "cpu",/"device": "cpu", "precision": "bf16", "cuda_graphs": true,/' "$SRC/protocols/test/tiny_linear.json" >"$T/tiny_bf16.json"
  grep -q '"precision": "bf16"' "$T/tiny_bf16.json" || bad "could not make the bf16 protocol"
  "$REPRO" run "$SRC/protocols/test/tiny_linear.json" --work "$T/w32" --results "$T/r32" --no-progress >/dev/null 2>"$T/32.err" || bad "fp32 run failed: $(tail -3 "$T/32.err")"
  "$REPRO" run "$T/tiny_bf16.json" --work "$T/w16" --results "$T/r16" --no-progress >/dev/null 2>"$T/16.err" || bad "bf16 run failed: $(tail -3 "$T/16.err")"
  grep -q "cuda_graphs: no CUDA device" "$T/16.err" && ok "cuda_graphs falls back on the CPU with a note" || bad "no cuda_graphs note: $(head -3 "$T/16.err")"
  grep -q '"precision": "bf16"' "$T"/r16/*.json && grep -q '"cuda_graphs": false' "$T"/r16/*.json && ok "precision and cuda_graphs recorded" || bad "precision / cuda_graphs not recorded"
  grep -q '"custom_kernels": false' "$T"/r16/*.json && ok "custom_kernels recorded (false: a CPU run)" || bad "custom_kernels not recorded as false on the CPU"
  grep -q '"top1_final"' "$T"/r16/*.json && ok "bf16 run evaluated every stage" || bad "no top1_final in the bf16 result"
  "$REPRO" table "$T/r16" >"$T/table.out" 2>&1 && grep -q "(ours, cpu, bf16)" "$T/r16/TABLE.md" && ok "repro table marks the bf16 row" || bad "table: $(grep -m1 ours "$T/r16/TABLE.md" 2>/dev/null) $(tail -2 "$T/table.out")"
  a=$(tr -d ' \n' <"$T"/r32/*.json | grep -o '"curves":{[^}]*}' | head -1)
  b=$(tr -d ' \n' <"$T"/r16/*.json | grep -o '"curves":{[^}]*}' | head -1)
  [ -n "$a" ] && [ -n "$b" ] && [ "$a" != "$b" ] && ok "bf16 changes the pretraining curve" || bad "curves: fp32 '$a' vs bf16 '$b'"
  # On a GPU: the runner's CUDA-graph pretraining and fine-tuning (semi stage) follow their eager
  # curves (the replays run the eager step's kernels and draw its dropout masks; only the order of
  # atomic adds may differ: float32 rounding, 1e-4).
  sed 's/"device": "cpu",/"device": "cuda",/' "$SRC/protocols/test/tiny_linear.json" >"$T/tiny_cuda.json"
  sed 's/"device": "cpu",/"device": "cuda", "cuda_graphs": true,/' "$SRC/protocols/test/tiny_linear.json" >"$T/tiny_graph.json"
  "$REPRO" run "$T/tiny_cuda.json" --work "$T/wc" --results "$T/rc" --no-progress >/dev/null 2>"$T/c.err"
  if [ $? = 2 ] && grep -q "no GPU is present" "$T/c.err"; then
    echo "no CUDA device present: CUDA-graph run skipped"
  else
    "$REPRO" run "$T/tiny_graph.json" --work "$T/wg" --results "$T/rg" --no-progress >/dev/null 2>"$T/g.err" || bad "graph run failed: $(tail -3 "$T/g.err")"
    grep -q '"device_name": ".*(sm_[0-9]*, [0-9.]* GiB)"' "$T"/rg/*.json && ok "the GPU's name recorded" || bad "device_name: $(grep -o '"device_name": [^,]*' "$T"/rg/*.json)"
    [ "$(tr -d ' \n' <"$T"/rg/*.json | grep -o '"cuda_graph":true' | wc -l)" = 2 ] && ok "pretraining and fine-tuning ran as CUDA graphs (recorded)" || bad "not both graphed: $(grep -o '"cuda_graph[_a-z]*": [^,]*' "$T"/rg/*.json)"
    python3 - "$T"/rc/*.json "$T"/rg/*.json <<'PY' && ok "CUDA-graph curves follow the eager ones" || bad "CUDA-graph curve differs"
import json, sys
ra, rb = (json.load(open(f))["runs"][0]["stages"] for f in sys.argv[1:3])
ok = True
for sa, sb in zip(ra, rb):  # pretrain and semi (fine-tuning, with dropout / drop-path masks)
    a, b = sa["curves"]["loss"], sb["curves"]["loss"]
    worst = max(abs(x - y) / abs(y) for x, y in zip(a, b))
    print(f"  {sa['kind']}: eager {a}\n  {sb['kind']}: graph {b}\n  worst relative difference {worst:.2e} (bound 1e-4)")
    ok = ok and len(a) == len(b) and worst <= 1e-4
sys.exit(0 if ok else 1)
PY
  fi
  ;;
nan)
  # A NaN loss stops the run with a clear message and keeps the last good checkpoint.
  P="$SRC/protocols/test/tiny_resume.json"
  HACM_FAULT_NAN_STEP=40 "$REPRO" run "$P" --work "$T/nan" --results "$T/rnan" --no-progress >/dev/null 2>"$T/nan.err"
  rc=$?
  [ $rc = 1 ] && grep -q "loss became NaN at epoch 1" "$T/nan.err" && ok "NaN stops the run (exit 1)" || bad "NaN run: exit $rc; $(tail -3 "$T/nan.err")"
  grep -q "last good checkpoint is kept" "$T/nan.err" && [ -e "$T/nan/seed0/stage0_pretrain.ckpt.npz" ] && ok "last good checkpoint kept" || bad "no checkpoint kept"
  [ -z "$(ls "$T/rnan" 2>/dev/null)" ] && ok "no result written for a failed run" || bad "a result was written"
  # The same in a fine-tuning stage, whose losses are read back in groups of 16: the NaN of
  # global step 40 (epoch 1) is named, the epoch-0 checkpoint is kept, no result is written.
  P="$SRC/protocols/test/tiny_resume_finetune.json"
  HACM_FAULT_NAN_DOWNSTREAM_STEP=40 "$REPRO" run "$P" --work "$T/nanft" --results "$T/rnanft" --no-progress >/dev/null 2>"$T/nanft.err"
  rc=$?
  [ $rc = 1 ] && grep -q "stage1_finetune: loss became NaN at epoch 1" "$T/nanft.err" && ok "NaN in fine-tuning stops the run (exit 1)" || bad "fine-tuning NaN run: exit $rc; $(tail -3 "$T/nanft.err")"
  grep -q "last good checkpoint is kept: .*stage1_finetune.ckpt.npz" "$T/nanft.err" && [ -e "$T/nanft/seed0/stage1_finetune.ckpt.npz" ] && ok "fine-tuning checkpoint of epoch 0 kept" || bad "no fine-tuning checkpoint named / kept: $(tail -2 "$T/nanft.err")"
  [ -z "$(ls "$T/rnanft" 2>/dev/null)" ] && ok "no result written for the failed fine-tuning" || bad "a result was written"
  ;;
esac
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
