#!/usr/bin/env bash
# Runs the AWS IoT Device SDK for Python v1's own integration suite
# (test-integration/IntegrationTests/ in github.com/aws/aws-iot-device-sdk-python),
# unmodified, against a freshly built `shadowsync serve`, in the suite's MutualAuth,
# ALPN and Websocket modes, and prints a table of the results.
#
# The SDK's source tree is not part of this repository: check it out anywhere and
# name it in SHADOWSYNC_PYTHON_SDK. The suite itself is run from a scratch copy.
#
# What the suite expects of AWS IoT, and how it gets it here:
#   - an endpoint name like abcdefghijklmn-ats.iot.us-east-1.amazonaws.com: a
#     sitecustomize.py on the Python process's PYTHONPATH resolves that one name to
#     127.0.0.1 for that process only; the server certificate is issued for that name
#     alone (serve --server-name), so connecting to the bare IP address fails as it
#     does against AWS (HostnameVerification checks it);
#   - MQTT with a client certificate on port 8883 (MutualAuth), MQTT with ALPN
#     x-amzn-mqtt-ca and MQTT over WebSocket with SigV4 on port 443 (ALPN,
#     Websocket): `serve --mqtts 127.0.0.1:8883 --ws 127.0.0.1:443`. The ports are
#     fixed in the suite, so by default server and suite run in a private network
#     namespace of their own (unshare), where 127.0.0.1:443 and :8883 are free
#     whatever else runs on the machine;
#   - a CA file, a certificate and a key in test-integration/Credentials/: the
#     generated CA, and the operator certificate (the suite's client IDs are not thing
#     names, so it connects as an operator, as its AWS account's policy lets it);
#   - AWS credentials for WebSocket: made-up ones, given to both sides;
#   - a network between them: AWS IoT is at least a few milliseconds and several round
#     trips (TCP, TLS, CONNECT) away, and two of the suite's tests
#     (ConfigurablePublishMessageQueueing, OfflineQueueingForSubscribeUnsubscribe)
#     rely on a reconnect taking longer than 10 ms (docs/localiot.md says why). On
#     loopback a reconnect takes about a millisecond, so by default a small proxy
#     (delayproxy) sits on the suite's ports and adds PYSDK_RTT_MS of round-trip
#     time, half each way, in front of the server on ports 18883, 10443 and 18443 (discovery).
#
# Environment:
#   SHADOWSYNC_PYTHON_SDK  the SDK's source tree (required)
#   PYSDK_MODES            modes to run (default: "MutualAuth ALPN Websocket")
#   PYSDK_TESTS            tests to run, by name without IntegrationTest and .py
#                          (default: every test of the suite)
#   PYSDK_RUNS             runs of each test in each mode (default 1)
#   PYSDK_SCALE            the suite's run.sh scale arguments: MQTT messages, shadow
#                          string length, network failures (default "1000 100 7",
#                          the values its run.sh documents)
#   PYSDK_TEST_TIMEOUT     seconds one run of one test may take (default 600)
#   PYSDK_RTT_MS           round-trip time in milliseconds added between the suite
#                          and the server (default 20); 0 connects the suite to the
#                          server directly
#   PYSDK_NETNS            "0" runs on the machine's own network (ports 443 and 8883
#                          of 127.0.0.1 must be free and bindable); default: a private
#                          network namespace when unshare allows it
#   PYSDK_BROKER           "shadowsync" (default) or "mosquitto": the same suite, with
#                          the same certificates, against mosquitto (MutualAuth only),
#                          to tell the suite's own faults from localiot's
#   PYSDK_MOSQUITTO_NODELAY "1" sets TCP_NODELAY on mosquitto's sockets (as Go sets it
#                          on localiot's): without it, Nagle's algorithm holds
#                          mosquitto's CONNACK back ~40 ms on loopback
#   PYSDK_WORK             directory for the scratch copy, certificates and logs
#                          (default: a new temporary directory, kept)
#
# Exit status: 0 when every run passed, was skipped by the suite, or is an expected
# failure (listed below, each with its reason); 1 otherwise; 2 for a usage error.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)

HOST=abcdefghijklmn-ats.iot.us-east-1.amazonaws.com
ACCESS_KEY_ID=AKIDSHADOWSYNCPYSDK
SECRET_ACCESS_KEY=shadowsync-python-sdk-made-up-secret

# Tests expected to fail against shadowsync serve, and why (more with PYSDK_RTT_MS=0,
# below).
declare -A EXPECTED_FAIL=(
	[Discovery]="the test compares the answer with fixed data of AWS's own test account (group 627bf63d-..., a core at 192.168.101.0-2:8080-8082, that account's CA); localiot answers with itself as the group's one core"
)

die() {
	echo "run.sh: $*" >&2
	exit 2
}

if [[ -z ${_PYSDK_INNER:-} ]]; then
	sdk=${SHADOWSYNC_PYTHON_SDK:-}
	[[ -n $sdk ]] || die "SHADOWSYNC_PYTHON_SDK is not set: name a checkout of github.com/aws/aws-iot-device-sdk-python"
	sdk=$(cd "$sdk" && pwd) || die "SHADOWSYNC_PYTHON_SDK=$sdk is not a directory"
	[[ -d $sdk/test-integration/IntegrationTests && -d $sdk/AWSIoTPythonSDK ]] ||
		die "$sdk has no test-integration/IntegrationTests or AWSIoTPythonSDK: not the AWS IoT Device SDK for Python v1"
	command -v python3 >/dev/null || die "python3 not found"
	broker=${PYSDK_BROKER:-shadowsync}
	case $broker in
	shadowsync) ;;
	mosquitto) command -v mosquitto >/dev/null || die "PYSDK_BROKER=mosquitto: mosquitto not found" ;;
	*) die "PYSDK_BROKER=$broker: want shadowsync or mosquitto" ;;
	esac

	work=${PYSDK_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/shadowsync-pysdk.XXXXXX")}
	mkdir -p "$work/bin" "$work/logs"
	work=$(cd "$work" && pwd)
	echo "work directory: $work"

	echo "building shadowsync from $repo"
	(cd "$repo" && go build -o "$work/bin/shadowsync" ./cmd/shadowsync &&
		go build -o "$work/bin/delayproxy" ./test/interop/python-sdk/delayproxy)

	# The scratch copy is laid out as the suite's run.sh lays out its checkout: the SDK
	# package copied under TestToolLibrary/SDKPackage, credentials in
	# test-integration/Credentials.
	rm -rf "$work/sdk"
	mkdir -p "$work/sdk"
	cp -R "$sdk/test-integration" "$work/sdk/"
	cp -R "$sdk/AWSIoTPythonSDK" "$work/sdk/test-integration/IntegrationTests/TestToolLibrary/SDKPackage/"
	mkdir -p "$work/sdk/test-integration/Credentials"

	export _PYSDK_INNER=1 _PYSDK_WORK=$work _PYSDK_BROKER=$broker _PYSDK_SDK=$sdk
	if [[ ${PYSDK_NETNS:-} != 0 ]] && command -v unshare >/dev/null && command -v ip >/dev/null; then
		netns=(unshare --net)
		if [[ $(id -u) != 0 ]]; then
			netns=(unshare --user --map-root-user --net)
		fi
		if "${netns[@]}" true 2>/dev/null; then
			echo "network: a private namespace ($(IFS=' '; echo "${netns[*]}"))"
			exec "${netns[@]}" -- bash "${BASH_SOURCE[0]}" "$@"
		fi
		echo "network: unshare is not permitted here; using the machine's loopback"
	fi
	echo "network: the machine's loopback (127.0.0.1:443 and :8883 must be free)"
	exec bash "${BASH_SOURCE[0]}" "$@"
fi

# ---- From here on: inside the namespace, if any. ----
work=$_PYSDK_WORK
broker=$_PYSDK_BROKER
sdkdir=$work/sdk
certs=$work/certs
logs=$work/logs

if [[ $(ip -brief link show lo 2>/dev/null) == *DOWN* ]]; then
	ip link set lo up
fi

read -r scale_msgs scale_shadow scale_failures <<<"${PYSDK_SCALE:-1000 100 7}"
rtt_ms=${PYSDK_RTT_MS:-20}
[[ $rtt_ms =~ ^[0-9]+$ ]] || die "PYSDK_RTT_MS=$rtt_ms: want a whole number of milliseconds"
# The ports the suite connects to, and the ones the server listens on.
mqtts_port=8883 wss_port=443 disc_port=8443
if ((rtt_ms > 0)); then
	mqtts_port=18883 wss_port=10443 disc_port=18443
else
	for t in ConfigurablePublishMessageQueueing OfflineQueueingForSubscribeUnsubscribe; do
		EXPECTED_FAIL[$t]="needs a reconnect to take over 10 ms, as it does to AWS IoT, not ~1 ms as on loopback; fails against mosquitto with TCP_NODELAY too (docs/localiot.md)"
	done
fi
modes=${PYSDK_MODES:-MutualAuth ALPN Websocket}
runs=${PYSDK_RUNS:-1}
test_timeout=${PYSDK_TEST_TIMEOUT:-600}
if [[ -n ${PYSDK_TESTS:-} ]]; then
	tests=$PYSDK_TESTS
else
	tests=$(cd "$sdkdir/test-integration/IntegrationTests" && ls IntegrationTest*.py | sed -e 's/^IntegrationTest//' -e 's/\.py$//')
fi
if [[ $broker == mosquitto ]]; then
	modes=MutualAuth
fi

# Certificates: generated by serve itself (--certs DIR --server-name HOST); a first run
# that exits at once would need a listener, so let one start and stop.
server_pid= proxy_pid=
# stop PID: SIGTERM, then SIGKILL if it has not exited within 15 s.
stop() {
	kill -TERM "$1" 2>/dev/null || true
	for _ in $(seq 150); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$1" 2>/dev/null; then
		echo "process $1 did not stop within 15 s of SIGTERM; killing it" >&2
		kill -KILL "$1" 2>/dev/null || true
	fi
	wait "$1" 2>/dev/null || true
}
stop_server() {
	[[ -n $server_pid ]] || return 0
	stop "$server_pid"
	server_pid=
}
stop_all() {
	stop_server
	[[ -z $proxy_pid ]] || stop "$proxy_pid"
}
trap stop_all EXIT

# wait_ready waits (at most 30 s) until file $1 holds a line starting with $2, or the
# server has exited.
wait_ready() {
	for _ in $(seq 300); do
		grep -q "^$2" "$1" 2>/dev/null && return 0
		kill -0 "$server_pid" 2>/dev/null || break
		sleep 0.1
	done
	echo "server not ready; its output:" >&2
	cat "$1" "${1%.out}.log" >&2 || true
	return 1
}

start_server() { # $1: log name
	local out=$logs/$1.server.out
	if [[ $broker == mosquitto ]]; then
		cat >"$work/mosquitto.conf" <<-EOF
			user root
			per_listener_settings false
			allow_anonymous true
			listener $mqtts_port 127.0.0.1
			cafile $certs/ca.pem
			certfile $certs/server.pem
			keyfile $certs/server.key
			require_certificate true
			log_dest stderr
		EOF
		if [[ ${PYSDK_MOSQUITTO_NODELAY:-} == 1 ]]; then
			echo "set_tcp_nodelay true" >>"$work/mosquitto.conf"
		fi
		mosquitto -c "$work/mosquitto.conf" >"$out" 2>"$logs/$1.server.log" &
		server_pid=$!
		for _ in $(seq 300); do
			grep -q "mosquitto version .* running" "$logs/$1.server.log" 2>/dev/null && return 0
			kill -0 "$server_pid" 2>/dev/null || break
			sleep 0.1
		done
		cat "$logs/$1.server.log" >&2
		return 1
	fi
	AWS_ACCESS_KEY_ID=$ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$SECRET_ACCESS_KEY AWS_SESSION_TOKEN= \
		"$work/bin/shadowsync" serve --mqtts "127.0.0.1:$mqtts_port" --ws "127.0.0.1:$wss_port" \
		--discovery "127.0.0.1:$disc_port" \
		--certs "$certs" --server-name "$HOST" --log-level "${PYSDK_LOG_LEVEL:-info}" \
		>"$out" 2>"$logs/$1.server.log" &
	server_pid=$!
	wait_ready "$out" data
}

# Generate the certificates once, with serve itself.
AWS_ACCESS_KEY_ID=$ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$SECRET_ACCESS_KEY \
	"$work/bin/shadowsync" serve --mqtts 127.0.0.1:0 --certs "$certs" --server-name "$HOST" \
	>"$logs/certs.out" 2>"$logs/certs.log" &
server_pid=$!
wait_ready "$logs/certs.out" data
stop_server
creds=$sdkdir/test-integration/Credentials
cp "$certs/ca.pem" "$creds/rootCA.crt"
for suffix in "" _drs; do
	cp "$certs/operator.pem" "$creds/certificate$suffix.pem.crt"
	cp "$certs/operator.key" "$creds/privateKey$suffix.pem.key"
done

if ((rtt_ms > 0)); then
	half=$((rtt_ms * 500))us
	"$work/bin/delayproxy" -delay "$half" 127.0.0.1:8883=127.0.0.1:$mqtts_port 127.0.0.1:443=127.0.0.1:$wss_port \
		127.0.0.1:8443=127.0.0.1:$disc_port \
		>"$logs/delayproxy.out" 2>"$logs/delayproxy.log" &
	proxy_pid=$!
	for _ in $(seq 300); do
		grep -q '^ready' "$logs/delayproxy.out" 2>/dev/null && break
		kill -0 "$proxy_pid" 2>/dev/null || {
			cat "$logs/delayproxy.log" >&2
			exit 1
		}
		sleep 0.1
	done
	grep -q '^ready' "$logs/delayproxy.out" || {
		echo "delayproxy not ready within 30 s" >&2
		exit 1
	}
fi

scale_of() { # the suite's run.sh: which tests take a scale argument
	case $1 in
	MQTTConnection) echo "$scale_msgs" ;;
	Shadow) echo "$scale_shadow" ;;
	ProgressiveBackoff) echo "$scale_failures" ;;
	esac
}

declare -A passed ran skipped
for t in $tests; do
	file=IntegrationTest$t.py
	[[ -f $sdkdir/test-integration/IntegrationTests/$file ]] || {
		echo "no test $file in the suite" >&2
		exit 2
	}
	for mode in $modes; do
		for run in $(seq "$runs"); do
			name=$t.$mode.$run
			start_server "$name" || {
				echo "could not start the server for $name" >&2
				exit 1
			}
			begin=$(date +%s)
			set +e
			(
				cd "$sdkdir"
				# shellcheck disable=SC2046 # the scale is one word or none
				PYTHONPATH=$here SHADOWSYNC_PYSDK_HOST=$HOST PYTHONUNBUFFERED=1 HOME=$work \
					AWS_ACCESS_KEY_ID=$ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$SECRET_ACCESS_KEY AWS_SESSION_TOKEN= \
					timeout --kill-after=10 "$test_timeout" \
					python3 "./test-integration/IntegrationTests/$file" "$mode" "$HOST" $(scale_of "$t")
			) >"$logs/$name.log" 2>&1
			status=$?
			set -e
			stop_server
			secs=$(($(date +%s) - begin))
			key=$t/$mode
			ran[$key]=$((${ran[$key]:-0} + 1))
			if [[ $status == 0 ]] && grep -q "Skipping" "$logs/$name.log"; then
				skipped[$key]=1
				verdict=skip
			elif [[ $status == 0 ]]; then
				passed[$key]=$((${passed[$key]:-0} + 1))
				verdict=pass
			elif [[ $status == 124 || $status == 137 ]]; then
				verdict="FAIL (timed out after ${test_timeout}s)"
			else
				verdict="FAIL (exit $status)"
			fi
			printf '%-40s %-10s run %d/%d: %s in %ds (log: %s)\n' "$t" "$mode" "$run" "$runs" "$verdict" "$secs" "$logs/$name.log"
		done
	done
done

# The table.
sdk_rev=$(sed -n 's/^__version__ = "\(.*\)"/version \1/p' "$_PYSDK_SDK/AWSIoTPythonSDK/__init__.py")
if commit=$(git -C "$_PYSDK_SDK" rev-parse --short HEAD 2>/dev/null); then
	sdk_rev+=", commit $commit"
fi
echo
against=$broker
if [[ $broker == mosquitto && ${PYSDK_MOSQUITTO_NODELAY:-} == 1 ]]; then
	against+=" (TCP_NODELAY)"
fi
echo "AWS IoT Device SDK for Python v1 integration suite ($sdk_rev) against $against, ${rtt_ms} ms round trip added, $runs run(s) each:"
echo
header="| test |"
rule="|---|"
for mode in $modes; do
	header+=" $mode |"
	rule+="---|"
done
echo "$header"
echo "$rule"
bad=0
declare -A expected_seen
for t in $tests; do
	row="| $t |"
	for mode in $modes; do
		key=$t/$mode
		n=${ran[$key]:-0}
		p=${passed[$key]:-0}
		if [[ -n ${skipped[$key]:-} ]]; then
			cell="skipped by the suite"
		elif [[ $p == "$n" ]]; then
			cell="pass"
			[[ $n == 1 ]] || cell="pass ($p/$n)"
			[[ $broker == shadowsync && -n ${EXPECTED_FAIL[$t]:-} ]] && cell+=" (expected to fail)"
		else
			cell="**fail** ($p/$n passed)"
			[[ $n == 1 ]] && cell="**fail**"
			if [[ $broker == shadowsync && -n ${EXPECTED_FAIL[$t]:-} ]]; then
				cell="expected failure ($p/$n passed)"
				[[ $n == 1 ]] && cell="expected failure"
				expected_seen[$t]=1
			else
				bad=1
			fi
		fi
		row+=" $cell |"
	done
	echo "$row"
done
for t in $tests; do
	if [[ -n ${expected_seen[$t]:-} ]]; then
		echo
		echo "Expected failures:"
		for t in $tests; do
			[[ -z ${expected_seen[$t]:-} ]] || echo "- $t: ${EXPECTED_FAIL[$t]}"
		done
		break
	fi
done
echo
echo "logs: $logs"
exit $bad
