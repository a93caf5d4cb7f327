#!/usr/bin/env bash
# One real Lambda bundle (issue 15): the exact command cargo-lambda-cdk runs
# for a function (infra/lib/constructs/rust-function.ts, pinned by
# infra/test/bundling.test.ts), so that a deploy's build is proven in CI, not
# only its synthesis with placeholder code. x86_64 here (arm64 stays the
# deploy default: this machine has no arm64 linker). CPIS_BUNDLE_FUNCTIONS
# picks the functions (default mesh-poll, the one function that links the
# MESH client, reqwest with client certificates, beside the AWS SDK; and
# portal, which links everything outbox-relay links, the AWS SDK and the
# Lambda runtime, with lambda_http, the portal's templates and assets and the
# OpenID Connect client).
set -euo pipefail
cd "$(dirname "$0")/../.."

# cargo-lambda from PyPI, with the Zig it builds with.
python3 -m pip install --quiet --disable-pip-version-check 'cargo-lambda==1.9.2'

for function in ${CPIS_BUNDLE_FUNCTIONS:-mesh-poll portal}; do

  flags=$(cd infra && node -e "
    require('ts-node/register');
    const { cargoLambdaFlags } = require('./lib/constructs/rust-function');
    console.log(cargoLambdaFlags(process.argv[1]).join(' '));
  " "$function")
  # As cargo-lambda-cdk: --release unless the function has a profile of its own.
  release=--release
  case " $flags " in *" --profile "*) release= ;; esac
  echo "cargo lambda build $release --x86-64 --bin $function $flags"
  # shellcheck disable=SC2086 # the flags are words; $release may be none
  cargo lambda build $release --x86-64 --bin "$function" $flags

  bootstrap="target/lambda/$function/bootstrap"
  test -x "$bootstrap" || { echo "no bootstrap at $bootstrap" >&2; exit 1; }
  # An ELF executable for x86-64 (e_machine 62), read without `file`, which a
  # fresh machine may lack.
  python3 - "$bootstrap" <<'PY' || { echo "$bootstrap is not an x86-64 ELF executable" >&2; exit 1; }
import struct, sys
head = open(sys.argv[1], "rb").read(20)
assert head[:4] == b"\x7fELF" and struct.unpack("<H", head[18:20])[0] == 62
PY
  bytes=$(stat -c %s "$bootstrap")
  # The size budget (issue 16, BENCHMARKS.md 5): a build's size is fixed by
  # the toolchain and Cargo.lock, so this is no timed assertion. The SDK's
  # legacy TLS stack or aws-lc coming back would put a function at 13 MB.
  budget=8000000
  if [ "$bytes" -gt "$budget" ]; then
    echo "$function is $bytes bytes, over the $budget-byte budget (BENCHMARKS.md, 5)" >&2
    exit 1
  fi
  echo "bundle ok: $function, $bytes bytes (budget $budget)"
done
