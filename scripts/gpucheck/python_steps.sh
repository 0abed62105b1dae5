# Sourced by run.sh in its `python` mode (bash gpucheck/run.sh python), on the GPU machine: the
# prefix_attn package's tests on CUDA tensors (the CPU cases ran in CI), then its timing against
# FlexAttention (same mask) and SDPA (paired rows). Uses run.sh's run_step / skip_step, $HERE,
# $WORK and $TMP_ROOT. The wheel and tests come from python_build.sh (gpucheck/python/).
PYDIR="$HERE/python"
wheel="$(ls "$PYDIR"/prefix_attn-*.whl 2>/dev/null | head -n 1)"
if [ -z "$wheel" ]; then
    skip_step python "no wheel in gpucheck/python (scripts/gpucheck/build.sh builds it)"
else
    SITE="$TMP_ROOT/pysite"
    run_step python_install 60 python3 -m pip install --quiet --no-deps --no-index --no-compile \
        --target "$SITE" "$wheel"
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
    # -k cuda: the CUDA-parametrised cases; PREFIX_ATTN_REQUIRE_GPU=1 makes a skipped one fail.
    run_step python_tests 240 env HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
        python3 -m pytest -c "$PYDIR/pyproject.toml" -q -rs -p no:cacheprovider -k cuda \
        "$PYDIR/tests"
    run_step python_bench 180 python3 "$PYDIR/bench/time_attention.py" --out "$WORK/bench"
fi
