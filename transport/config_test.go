package transport

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseEndpoint(t *testing.T) {
	tests := []struct {
		in   string
		want string // endpoint.String()
		ws   bool
	}{
		{"", "mqtt://127.0.0.1:1883", false},
		{"mqtts://abc-ats.iot.us-east-1.amazonaws.com", "mqtts://abc-ats.iot.us-east-1.amazonaws.com:8883", false},
		{"mqtts://abc-ats.iot.us-east-1.amazonaws.com:443", "mqtts://abc-ats.iot.us-east-1.amazonaws.com:443", false},
		{"wss://abc-ats.iot.us-east-1.amazonaws.com", "wss://abc-ats.iot.us-east-1.amazonaws.com/mqtt", true},
		{"wss://abc-ats.iot.us-east-1.amazonaws.com/mqtt", "wss://abc-ats.iot.us-east-1.amazonaws.com/mqtt", true},
		{"ws://127.0.0.1:9001/mqtt", "ws://127.0.0.1:9001/mqtt", true},
		{"mqtt://[::1]:1884", "mqtt://[::1]:1884", false},
	}
	for _, tt := range tests {
		e, err := parseEndpoint(tt.in)
		if err != nil {
			t.Errorf("parseEndpoint(%q): %v", tt.in, err)
			continue
		}
		if e.String() != tt.want || e.websocket() != tt.ws {
			t.Errorf("parseEndpoint(%q) = %s (ws %v), want %s (ws %v)", tt.in, e, e.websocket(), tt.want, tt.ws)
		}
	}
	for _, bad := range []string{"http://x", "mqtts://", "mqtt://host/path", "mqtts://user:pw@host", "mqtt://h?x=1", "tcp://host:1883"} {
		if _, err := parseEndpoint(bad); err == nil {
			t.Errorf("parseEndpoint(%q) succeeded", bad)
		}
	}
}

func TestRegionFromHost(t *testing.T) {
	tests := map[string]string{
		"abc123-ats.iot.us-east-1.amazonaws.com":               "us-east-1",
		"abc123.iot.eu-central-1.amazonaws.com":                "eu-central-1",
		"abc.iot.cn-north-1.amazonaws.com.cn":                  "cn-north-1",
		"vpce-0abc.data.iot.ap-southeast-2.vpce.amazonaws.com": "ap-southeast-2",
		"abc-ats.iot.us-gov-west-1.amazonaws.com":              "us-gov-west-1",
		"iot.example.com":                                      "",
		"mqtt.mycompany.com":                                   "",
		"127.0.0.1":                                            "",
		"abc-ats.iot.notaregion.amazonaws.com":                 "",
		"abc-ats.iot.us-east-1.amazonaws.com.evil.example":     "",
	}
	for host, want := range tests {
		got, ok := regionFromHost(host)
		if got != want || ok != (want != "") {
			t.Errorf("regionFromHost(%q) = %q, %v; want %q", host, got, ok, want)
		}
	}
}

// TestConfigDefaults: the zero Config works and gets the documented defaults.
func TestConfigDefaults(t *testing.T) {
	s, err := Config{}.validate()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]any{
		"endpoint": s.ep.String(), "op": s.OperationTimeout, "connect": s.ConnectTimeout,
		"keepalive": s.keepAlive, "stable": s.StableAfter, "queue": s.OfflineQueueSize,
		"drop": s.OfflineDropPolicy, "drain": s.drainGap, "subs": s.MaxSubscriptions,
		"filters": s.MaxFiltersPerSubscribe, "pubgap": s.pubGap, "buffer": s.HandlerBuffer,
		"backoff": []time.Duration{s.Backoff(0), s.Backoff(1), s.Backoff(5), s.Backoff(6), s.Backoff(100)},
	}
	want := map[string]any{
		"endpoint": "mqtt://127.0.0.1:1883", "op": 5 * time.Second, "connect": 30 * time.Second,
		"keepalive": 600 * time.Second, "stable": 20 * time.Second, "queue": 20,
		"drop": DropNewest, "drain": 500 * time.Millisecond, "subs": 0,
		"filters": 8, "pubgap": time.Duration(0), "buffer": 1024,
		"backoff": []time.Duration{time.Second, 2 * time.Second, 32 * time.Second, 32 * time.Second, 32 * time.Second},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(s.ClientID, "shadowsync-") || len(s.ClientID) != len("shadowsync-")+16 {
		t.Errorf("generated ClientID = %q", s.ClientID)
	}
	s2, _ := Config{}.validate()
	if s2.ClientID == s.ClientID {
		t.Errorf("two generated client IDs are equal: %q", s.ClientID)
	}
	if s.username != "?SDK=GoShadowsync&Version="+Version {
		t.Errorf("metrics username = %q", s.username)
	}
}

// AWS IoT's per-connection quotas are the defaults only on AWS IoT's endpoints; a
// broker elsewhere enforces its own limits, if any, and an explicit value wins.
func TestConfigQuotasOnlyOnAWS(t *testing.T) {
	for _, tc := range []struct {
		cfg     Config
		subs    int
		pubGap  time.Duration
		comment string
	}{
		{Config{Endpoint: "mqtts://abc123-ats.iot.eu-west-1.amazonaws.com:8883"}, 50, 10 * time.Millisecond, "AWS IoT"},
		{Config{Endpoint: "mqtts://abc123-ats.iot.cn-north-1.amazonaws.com.cn:8883"}, 50, 10 * time.Millisecond, "AWS IoT in China"},
		{Config{Endpoint: "mqtts://broker.example.com:8883"}, 0, 0, "another broker"},
		{Config{Endpoint: "mqtt://127.0.0.1:1883"}, 0, 0, "a local broker"},
		{Config{Endpoint: "mqtt://127.0.0.1:1883", MaxPublishRate: 20, MaxSubscriptions: 7}, 7, 50 * time.Millisecond, "explicit caps"},
		{Config{Endpoint: "mqtts://abc123-ats.iot.eu-west-1.amazonaws.com:8883", MaxPublishRate: -1, MaxSubscriptions: -1}, -1, 0, "caps lifted on AWS"},
	} {
		s, err := tc.cfg.validate()
		if err != nil {
			t.Fatalf("%s: %v", tc.comment, err)
		}
		if s.MaxSubscriptions != tc.subs || s.pubGap != tc.pubGap {
			t.Errorf("%s: MaxSubscriptions %d, publish gap %v; want %d, %v", tc.comment, s.MaxSubscriptions, s.pubGap, tc.subs, tc.pubGap)
		}
	}
}

func TestMetricsUsername(t *testing.T) {
	tests := []struct {
		user    string
		disable bool
		want    string
	}{
		{"", false, "?SDK=GoShadowsync&Version=" + Version},
		{"bob", false, "bob?SDK=GoShadowsync&Version=" + Version},
		{"bob?x-amz-customauthorizer-name=a", false, "bob?x-amz-customauthorizer-name=a&SDK=GoShadowsync&Version=" + Version},
		{"bob", true, "bob"},
		{"", true, ""},
	}
	for _, tt := range tests {
		s, err := Config{Username: tt.user, DisableMetrics: tt.disable}.validate()
		if err != nil {
			t.Fatal(err)
		}
		if s.username != tt.want {
			t.Errorf("user %q disable %v: username %q, want %q", tt.user, tt.disable, s.username, tt.want)
		}
	}
}

func TestConfigInvalid(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		is   error
		says string
	}{
		{"scheme", Config{Endpoint: "http://x"}, ErrInvalidConfig, "scheme"},
		{"keepalive fraction", Config{KeepAlive: 1500 * time.Millisecond}, ErrInvalidConfig, "KeepAlive"},
		{"keepalive negative", Config{KeepAlive: -time.Second}, ErrInvalidConfig, "KeepAlive"},
		{"op timeout", Config{OperationTimeout: -1}, ErrInvalidConfig, "OperationTimeout"},
		{"queue size", Config{OfflineQueueSize: -5}, ErrInvalidConfig, "OfflineQueueSize"},
		{"drop policy", Config{OfflineDropPolicy: 9}, ErrInvalidConfig, "OfflineDropPolicy"},
		{"drain", Config{DrainRate: -1}, ErrInvalidConfig, "DrainRate"},
		{"client id", Config{ClientID: strings.Repeat("x", 129)}, ErrInvalidConfig, "ClientID"},
		{"will qos2", Config{Will: &Will{Topic: "a", QoS: 2}}, ErrQoS2, "Will.QoS"},
		{"will topic", Config{Will: &Will{Topic: "a/+"}}, ErrInvalidTopic, "Will.Topic"},
		{"cert without key", Config{Endpoint: "mqtts://h", CertFile: "c.pem"}, ErrInvalidConfig, "KeyFile"},
		{"missing CA file", Config{Endpoint: "mqtts://h", CAFile: "/nonexistent/ca.pem"}, ErrInvalidConfig, "CAFile"},
		{"no region", Config{Endpoint: "wss://mqtt.example.com"}, ErrNoRegion, "Config.Region"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if !errors.Is(err, tt.is) || !strings.Contains(err.Error(), tt.says) {
				t.Errorf("New = %v; want %v mentioning %q", err, tt.is, tt.says)
			}
		})
	}
}

// TestRegionConfigFirst: Config.Region wins over the host name; custom domains work
// with a configured region (the AWS IoT Device SDK for Python v1 takes the region from
// the host name with a regular expression, and fails on them).
func TestRegionConfigFirst(t *testing.T) {
	for _, tt := range []struct{ endpoint, region, want string }{
		{"wss://abc-ats.iot.us-east-1.amazonaws.com", "eu-west-1", "eu-west-1"},
		{"wss://abc-ats.iot.us-east-1.amazonaws.com", "", "us-east-1"},
		{"wss://iot.mycompany.example/mqtt", "ap-south-1", "ap-south-1"},
	} {
		s, err := Config{Endpoint: tt.endpoint, Region: tt.region}.validate()
		if err != nil {
			t.Fatal(err)
		}
		if s.Region != tt.want {
			t.Errorf("%s with Region %q: region %q, want %q", tt.endpoint, tt.region, s.Region, tt.want)
		}
	}
}

func TestALPN(t *testing.T) {
	for _, tt := range []struct {
		endpoint string
		alpn     []string
		want     []string
	}{
		{"mqtts://h:443", nil, []string{"x-amzn-mqtt-ca"}},
		{"mqtts://h:8883", nil, nil},
		{"mqtts://h:9000", []string{"x-amzn-mqtt-ca"}, []string{"x-amzn-mqtt-ca"}},
		{"wss://h.iot.us-east-1.amazonaws.com", nil, nil},
	} {
		s, err := Config{Endpoint: tt.endpoint, ALPN: tt.alpn}.validate()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tt.want, s.tls.NextProtos); diff != "" {
			t.Errorf("%s: ALPN (-want +got):\n%s", tt.endpoint, diff)
		}
		if s.tls.MinVersion < 0x0303 || s.tls.ServerName != "h" && !strings.HasPrefix(s.tls.ServerName, "h.") {
			t.Errorf("%s: MinVersion %x ServerName %q", tt.endpoint, s.tls.MinVersion, s.tls.ServerName)
		}
	}
}

// TestSecretsRedacted: the password never shows in fmt or slog output.
func TestSecretsRedacted(t *testing.T) {
	cfg := Config{Password: "hunter2", Username: "u"}
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("cfg", "config", cfg, "pw", cfg.Password)
	for _, out := range []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), b.String()} {
		if strings.Contains(out, "hunter2") {
			t.Errorf("password leaked: %s", out)
		}
	}
}

func TestBackoff(t *testing.T) {
	b := ExponentialBackoff(time.Second, 32*time.Second, 0)
	var got []time.Duration
	for n := range 8 {
		got = append(got, b(n))
	}
	want := []time.Duration{1, 2, 4, 8, 16, 32, 32, 32}
	for i := range want {
		want[i] *= time.Second
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sequence (-want +got):\n%s", diff)
	}
	if d := b(1 << 20); d != 32*time.Second {
		t.Errorf("huge attempt: %v", d)
	}
	j := ExponentialBackoff(time.Second, 32*time.Second, 0.5)
	for n := range 8 {
		for range 20 {
			if d := j(n); d > want[n] || d < want[n]/2 {
				t.Fatalf("jittered attempt %d: %v outside [%v, %v]", n, d, want[n]/2, want[n])
			}
		}
	}
}
