# Sourced by the device check scripts (on the GPU machine, from the repository root): installs the wheels that
# prepare_packages.sh put in .whl/ (carried with the call) and points Python at them and at this checkout.
python3 -m pip uninstall -q -y peft  # the image's peft does not import with transformers 5.23
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
