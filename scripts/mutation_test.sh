#!/usr/bin/env bash
# Mutation testing of the maths modules with cosmic-ray (pip install -e '.[mutation]').
#
#   scripts/mutation_test.sh [WORKDIR] [MODULE_NAME ...]
#
# Each module (table below) is mutated in a clone of the repository's HEAD under
# WORKDIR/src (the working tree is never touched) and every mutant runs the module's
# tests (`pytest -x`, default suite, `not slow`). One cosmic-ray session per module in
# WORKDIR/sessions/<name>.sqlite; rerun the same command to resume where it stopped.
# A compact operator set, as mutmut's: + -> - or *, - -> +, * -> / or +, / -> *,
# ** -> *; comparisons to their boundary (< <-> <=) and negation (< -> >=, == <-> !=);
# unary signs dropped or flipped; numbers +-1; True <-> False; and/or; loops run zero
# times; break <-> continue. Bitwise, shift, floor-div and modulo replacements of
# float maths (type errors), decorator and exception-type removals and inserted
# variables are filtered out before the run, and so are mutants outside a module's
# listed definitions (fourth column of the table; module-level lines included). Compiled XLA
# programs are cached in WORKDIR/xla so a mutant recompiles only what it changed.
# WORKDIR/report.md (scripts/mutation_report.py) counts killed / survived / timed
# out per module and lists every survivor with its diff. Default WORKDIR:
# ~/runs/mutation. Runs niced: it takes hours on two cores.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
WORKDIR="$(realpath -m "${1:-$HOME/runs/mutation}")"
shift || true
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
COSMIC_RAY="${COSMIC_RAY:-cosmic-ray}"
CR_FILTER="${CR_FILTER:-cr-filter-operators}"
TIMEOUT="${MUTANT_TIMEOUT:-300}"  # seconds; a mutant past it counts as timed out

# name | module path | tests that guard it | definitions mutated (empty: all)
# The study modules mix maths with the pipelines that drive it (training loops,
# checkpoints, logging); there only the functions that compute a quantity are mutated.
MODULES="
distributions|vae_jax/distributions.py|tests/test_distributions.py|
objectives|vae_jax/objectives.py|tests/test_objectives.py tests/test_iwae.py|
ae_objectives|vae_jax/ae_objectives.py|tests/test_ae_objectives.py|
corruptions|vae_jax/corruptions.py|tests/test_corruptions.py|
evaluate|vae_jax/evaluate.py|tests/test_iwae.py tests/test_train.py tests/test_evaluate_run.py|
linear_gaussian|vae_jax/linear_gaussian.py|tests/test_linear_gaussian.py|
iwae_objectives|vae_jax/iwae_objectives.py|tests/test_iwae_objectives.py|
vae|vae_jax/models/vae.py|tests/models tests/test_iwae_log_weights.py tests/test_objectives.py tests/test_iwae_objectives.py|
full_covariance|vae_jax/models/full_covariance.py|tests/studies/test_theory.py tests/models|
hierarchical|vae_jax/models/hierarchical.py|tests/models/test_hierarchical.py tests/models/test_hierarchical_log_weights.py|
clustering|vae_jax/studies/clustering.py|tests/studies/test_clustering_maths.py tests/studies/test_clustering.py|log_soft_assignment soft_assignment target_distribution kl_to_assignment clustering_loss changed_fraction should_stop
cluster_metrics|vae_jax/studies/cluster_metrics.py|tests/studies/test_clustering_maths.py tests/studies/test_anomaly.py|
pca|vae_jax/studies/pca.py|tests/studies/test_pca.py|
theory|vae_jax/studies/theory.py|tests/studies/test_theory.py|negative_elbo_squared_error beta_for_sigma gaussian_constant rate_distortion elbo_full kl_to_posterior_full linear_gaussian_vae diagonal_gap_floor q_of exact_terms
gradient_estimators|vae_jax/studies/gradient_estimators.py|tests/studies/test_theory.py|
sample_quality|vae_jax/studies/sample_quality.py|tests/studies/test_sample_quality.py|frechet_distance_gaussians frechet_distance"

KEEP_BINARY='Add_Sub|Add_Mul|Sub_Add|Mul_Div|Mul_Add|Div_Mul|Pow_Mul'
KEEP_COMPARE='Lt_LtE|LtE_Lt|Gt_GtE|GtE_Gt|Lt_GtE|Gt_LtE|LtE_Gt|GtE_Lt|Eq_NotEq|NotEq_Eq'
EXCLUDE="\"core/ReplaceBinaryOperator_(?!($KEEP_BINARY)\$)\", \"core/ReplaceComparisonOperator_(?!($KEEP_COMPARE)\$)\", \"core/ReplaceUnaryOperator_.*_Invert\", \"core/ReplaceUnaryOperator_Invert_.*\", \"core/RemoveDecorator\", \"core/ExceptionReplacer\", \"core/VariableInserter\", \"core/VariableReplacer\""

mkdir -p "$WORKDIR/sessions" "$WORKDIR/xla"
if [ ! -d "$WORKDIR/src/.git" ]; then
  git clone --quiet "$REPO" "$WORKDIR/src"
fi
echo "mutating $(git -C "$WORKDIR/src" rev-parse --short HEAD) in $WORKDIR/src"
cd "$WORKDIR/src"
git checkout --quiet -- .  # a mutant left applied by a killed run is undone

wanted=" $* "
echo "$MODULES" | while IFS='|' read -r name module tests definitions; do
  [ -z "$name" ] && continue
  if [ "$#" -gt 0 ] && [[ "$wanted" != *" $name "* ]]; then continue; fi
  if [ ! -f "$module" ]; then echo "skip $name: no $module"; continue; fi
  config="$WORKDIR/sessions/$name.toml"
  session="$WORKDIR/sessions/$name.sqlite"
  cat > "$config" <<EOF
[cosmic-ray]
module-path = "$module"
timeout = $TIMEOUT
excluded-modules = []
test-command = "env VAE_JAX_TEST_COMPILATION_CACHE=$WORKDIR/xla PYTHONPATH=$WORKDIR/src $PYTHON -m pytest -x -q -n 0 -p no:cacheprovider $tests"

[cosmic-ray.distributor]
name = "local"

[cosmic-ray.filters.operators-filter]
exclude-operators = [$EXCLUDE]
EOF
  if [ ! -f "$session" ]; then
    "$COSMIC_RAY" init "$config" "$session"
    "$CR_FILTER" "$session" "$config"
    if [ -n "$definitions" ]; then  # mutants outside them are skipped, as filtered ones
      "$PYTHON" - "$session" $definitions <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
keep = ",".join("?" * len(sys.argv[2:]))
db.execute(
    "INSERT INTO work_results (worker_outcome, output, job_id) SELECT 'SKIPPED',"
    " 'Outside the maths definitions', job_id FROM mutation_specs WHERE job_id NOT IN"
    " (SELECT job_id FROM work_results) AND (definition_name IS NULL OR"
    f" definition_name NOT IN ({keep}))",
    sys.argv[2:],
)
db.commit()
PY
    fi
  fi
  echo "== $name ($module): $(date -u +%H:%M:%S)"
  nice -n 19 "$COSMIC_RAY" exec "$config" "$session"
  git checkout --quiet -- .
  "$COSMIC_RAY" dump "$session" > "$WORKDIR/sessions/$name.jsonl"
done
"$PYTHON" "$REPO/scripts/mutation_report.py" "$WORKDIR"
