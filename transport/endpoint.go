package transport

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
)

// Endpoint schemes.
const (
	schemeMQTT  = "mqtt"  // plain TCP, for local brokers
	schemeMQTTS = "mqtts" // TLS with X.509 mutual auth
	schemeWSS   = "wss"   // WebSocket over TLS with SigV4
	schemeWS    = "ws"    // WebSocket without TLS with SigV4, for local brokers
)

// alpnAWSMQTT is the ALPN protocol AWS IoT requires for MQTT with X.509 on port 443.
const alpnAWSMQTT = "x-amzn-mqtt-ca"

// defaultEndpoint is where the zero Config connects.
const defaultEndpoint = "mqtt://127.0.0.1:1883"

// endpoint is a parsed Config.Endpoint.
type endpoint struct {
	scheme string
	host   string // host name or IP, without brackets
	port   string
	path   string // WebSocket path, "/mqtt" by default
}

// parseEndpoint parses and checks an endpoint URL, filling in default ports
// (1883, 8883, 443, 80) and the WebSocket path /mqtt.
func parseEndpoint(s string) (endpoint, error) {
	if s == "" {
		s = defaultEndpoint
	}
	u, err := url.Parse(s)
	if err != nil {
		return endpoint{}, fmt.Errorf("endpoint %q: %w", s, err)
	}
	e := endpoint{scheme: strings.ToLower(u.Scheme), host: u.Hostname(), port: u.Port(), path: u.Path}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return endpoint{}, fmt.Errorf("endpoint %q: user info, query and fragment are not allowed", s)
	}
	if e.host == "" {
		return endpoint{}, fmt.Errorf("endpoint %q: no host (want e.g. mqtts://xxx-ats.iot.us-east-1.amazonaws.com)", s)
	}
	defaultPort := map[string]string{schemeMQTT: "1883", schemeMQTTS: "8883", schemeWSS: "443", schemeWS: "80"}[e.scheme]
	if defaultPort == "" {
		return endpoint{}, fmt.Errorf("endpoint %q: scheme %q: want mqtts, wss, mqtt or ws", s, u.Scheme)
	}
	if e.port == "" {
		e.port = defaultPort
	}
	if e.websocket() {
		if e.path == "" {
			e.path = "/mqtt"
		}
	} else if e.path != "" && e.path != "/" {
		return endpoint{}, fmt.Errorf("endpoint %q: a path is only meaningful for ws and wss", s)
	}
	return e, nil
}

// addr returns host:port.
func (e endpoint) addr() string { return net.JoinHostPort(e.host, e.port) }

// websocket reports whether e is MQTT over WebSocket.
func (e endpoint) websocket() bool { return e.scheme == schemeWSS || e.scheme == schemeWS }

// secure reports whether e uses TLS.
func (e endpoint) secure() bool { return e.scheme == schemeMQTTS || e.scheme == schemeWSS }

// url returns the WebSocket URL without a query.
func (e endpoint) url() *url.URL {
	host := e.addr()
	if (e.scheme == schemeWSS && e.port == "443") || (e.scheme == schemeWS && e.port == "80") {
		host = e.host
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
	}
	return &url.URL{Scheme: e.scheme, Host: host, Path: e.path}
}

// String returns the endpoint as a URL.
func (e endpoint) String() string {
	if e.websocket() {
		return e.url().String()
	}
	return e.scheme + "://" + e.addr()
}

// awsRegion matches an AWS region name such as us-east-1 or cn-north-1.
var awsRegion = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)

// regionFromHost reads the region from an AWS IoT host name: the label after "iot"
// in a name under amazonaws.com or amazonaws.com.cn, as in
// xxx-ats.iot.us-east-1.amazonaws.com or vpce-….data.iot.eu-west-1.vpce.amazonaws.com.
// Custom domains carry no region; ok is false for them.
func regionFromHost(host string) (region string, ok bool) {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if !strings.HasSuffix(host, ".amazonaws.com") && !strings.HasSuffix(host, ".amazonaws.com.cn") {
		return "", false
	}
	labels := strings.Split(host, ".")
	for i := 0; i+1 < len(labels); i++ {
		if labels[i] == "iot" && awsRegion.MatchString(labels[i+1]) {
			return labels[i+1], true
		}
	}
	return "", false
}

// awsIoTHost reports whether host is one of AWS's (amazonaws.com or amazonaws.com.cn),
// where AWS IoT's per-connection quotas apply.
func awsIoTHost(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	return strings.HasSuffix(host, ".amazonaws.com") || strings.HasSuffix(host, ".amazonaws.com.cn")
}

// isLoopback reports whether host names this machine.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
