#!/usr/bin/env bash
# Fuzzes the running server-example API against its own OpenAPI document with
# schemathesis (PyPI): every operation gets generated valid and invalid
# requests, and each answer must be no 5xx, a documented status, the
# documented content type and a body that fits the documented schema.
#
#   scripts/api-fuzz.sh [MAX_EXAMPLES]   (default 30 per operation)
#
# Uses the release binary in $CARGO_TARGET_DIR (built when missing), the
# embedded configuration in a temporary folder, and a stand-in for Stripe's
# checkout API on 127.0.0.1 so the billing operations answer.
set -euo pipefail
cd "$(dirname "$0")/.."
examples="${1:-30}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/splitsound/target}"

st_version=4.32.5
venv="$HOME/.cache/splitsound/schemathesis-$st_version"
if ! "$venv/bin/schemathesis" --version >/dev/null 2>&1; then
  echo "==> installing schemathesis $st_version (PyPI) into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "schemathesis==$st_version"
fi
bin=$(./scripts/server-bin.sh)

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Stripe's POST /v1/checkout/sessions, answered as Stripe answers.
stripe_port=$(free_port)
python3 - "$stripe_port" >"$work/stripe.log" 2>&1 <<'EOF' &
import http.server, json, sys, uuid
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        sid = "cs_test_" + uuid.uuid4().hex
        body = json.dumps({"id": sid, "object": "checkout.session", "url": "https://checkout.stripe.test/" + sid}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF
pids+=($!)

# An OpenID Connect provider of our own (an RSA key from openssl, its JWKS in
# a file) and an ID token it signed: the fuzzer signs in as an admin through
# it, since dev sign-ins never carry admin rights.
openssl genrsa -out "$work/oidc.pem" 2048 2>/dev/null
python3 - "$work" <<'EOF'
import base64, json, subprocess, sys, time
work = sys.argv[1]
def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
modulus = subprocess.check_output(["openssl", "rsa", "-in", f"{work}/oidc.pem", "-noout", "-modulus"], text=True)
n = bytes.fromhex(modulus.strip().split("=", 1)[1])
key = {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": "fuzz", "n": b64(n), "e": b64((65537).to_bytes(3, "big"))}
json.dump({"keys": [key]}, open(f"{work}/jwks.json", "w"))
now = int(time.time())
head = b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "fuzz"}).encode())
body = b64(json.dumps({"iss": "https://id.fuzz.test", "aud": "fuzz", "sub": "fuzz-admin",
                       "email": "fuzz-admin@example.com", "email_verified": True,
                       "iat": now, "exp": now + 3600}).encode())
sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", f"{work}/oidc.pem"],
                     input=f"{head}.{body}".encode(), capture_output=True, check=True).stdout
open(f"{work}/id_token", "w").write(f"{head}.{body}.{b64(sig)}")
EOF

port=$(free_port)
cat >"$work/config.json" <<EOF
{
  "listen": "127.0.0.1:$port",
  "data_dir": "$work/data",
  "auth": {"dev_login": true, "admin_emails": ["fuzz-admin@example.com"],
           "oidc": [{"issuer": "https://id.fuzz.test", "audience": "fuzz", "jwks": "$work/jwks.json"}]},
  "limits": {"rate_per_ip": {"per_sec": 0, "burst": 0}, "rate_per_user": {"per_sec": 0, "burst": 0}},
  "worker": {"poll_secs": 1},
  "billing": {"stripe_secret_key": "sk_test_fuzz", "webhook_secret": "whsec_fuzz", "api_base": "http://127.0.0.1:$stripe_port"}
}
EOF
RUST_LOG=warn "$bin" --config "$work/config.json" all >"$work/server.log" 2>&1 &
pids+=($!)
base="http://127.0.0.1:$port"
for _ in $(seq 100); do
  curl -fs "$base/health" >/dev/null 2>&1 && break
  sleep 0.2
done
token=$(curl -fs -X POST "$base/v1/auth/oauth/login" -H 'content-type: application/json' \
  -d "{\"id_token\": \"$(cat "$work/id_token")\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
admin=$(curl -fs "$base/v1/me" -H "Authorization: Bearer $token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["admin"])')
[ "$admin" = True ] || { echo "the fuzzer's session is not an admin's"; exit 1; }

echo "==> schemathesis: $examples examples per operation against $base/v1/openapi.json"
status=0
cd "$work"   # schemathesis keeps its cache in the working directory
# positive_data_acceptance expects 2xx for any schema-valid body, which ids
# that name nothing (404) or a balance that runs out (402) cannot give.
"$venv/bin/schemathesis" run "$base/v1/openapi.json" \
  --header "Authorization: Bearer $token" \
  --checks all --exclude-checks positive_data_acceptance \
  --max-examples "$examples" --seed 20261124 --workers 2 \
  --request-timeout 30 --suppress-health-check all \
  --warnings off --no-color || status=$?
if [ "$status" != 0 ]; then
  echo "---- server log (last 80 lines)"
  tail -n 80 "$work/server.log"
fi
if grep -q '"level":"ERROR"\|ERROR' "$work/server.log"; then
  echo "---- the server logged errors:"
  grep 'ERROR' "$work/server.log" | head -20
  status=1
fi
exit "$status"
