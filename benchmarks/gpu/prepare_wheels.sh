#!/usr/bin/env bash
# Run here, before a GPU session: downloads the wheels the GPU machine lacks into benchmarks/gpu/wheels
# (git-ignored; pass it to the device run as a carried path). The machine has torch, transformers and
# accelerate of its own and no network; run.sh installs these into a private folder ahead of them, so the
# benchmark runs with the versions the test suite pins (pyproject.toml), torch excepted.
#   bash benchmarks/gpu/prepare_wheels.sh            # CPython 3.12, manylinux x86_64 (the device machine)
#   PYVER=3.11 bash benchmarks/gpu/prepare_wheels.sh # this machine's Python, to try run.sh --tiny here
set -euo pipefail
cd "$(dirname "$0")"
PIP=${PIP:-../../.venv/bin/pip}
PYVER=${PYVER:-3.12}
ABI="cp${PYVER/./}"
# every package the benchmark imports beyond torch, at the versions this tree is tested with
PINS=(
  transformers==5.24.0 huggingface_hub==2.4.0 tokenizers==0.23.3 safetensors==0.8.0 hf-xet==1.8.0
  accelerate==1.15.0 peft==0.21.2 numpy==2.4.6 PyYAML==6.0.4 tqdm==4.70.1 regex==2026.11.19 psutil==7.2.2
  packaging==26.4 filelock==4.3.1 fsspec==2026.9.0 typing_extensions==4.16.0
  typer==0.29.2 rich==15.0.0 shellingham==1.5.4 markdown-it-py==4.3.0 mdurl==0.1.2 pygments==2.21.0 click==8.5.1
  soundfile==0.14.0 cffi==2.1.1 pycparser==3.12 soxr==1.1.0
  fastapi==0.165.0 starlette==1.10.0 uvicorn==0.54.0 h11==0.16.0 pydantic==2.14.4 pydantic_core==2.50.5
  annotated-types==0.8.0 annotated-doc==0.0.7 typing-inspection==0.4.5 opentelemetry-api==1.45.2
  anyio==4.16.0 sniffio==1.3.1 idna==3.20 httpx2==2.16.2 httpcore2==2.16.2 truststore==0.10.5
  certifi==2026.10.19.post1
)
rm -rf wheels && mkdir wheels
"$PIP" download -q --no-deps --only-binary=:all: -d wheels --python-version "$PYVER" --implementation cp \
  --abi "$ABI" --abi abi3 --abi none --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform any "${PINS[@]}"
# DeepSpeed for the ZeRO-2 section: PyPI has only its source; built here as a pure-Python wheel (no ops are
# compiled now: DeepSpeed compiles what it uses with the GPU machine's nvcc and ninja), with its own deps
"$PIP" wheel -q --no-deps -w wheels deepspeed==0.19.8
"$PIP" download -q --no-deps --only-binary=:all: -d wheels --python-version "$PYVER" --implementation cp \
  --abi "$ABI" --abi abi3 --abi none --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 --platform any \
  einops==0.8.2 hjson==3.1.0 msgpack==1.2.4 ninja==1.13.2 py-cpuinfo==9.0.0 nvidia-ml-py==13.615.71
du -sh wheels
