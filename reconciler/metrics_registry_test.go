package reconciler_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shadowsync/shadowsync/reconciler"
	"github.com/shadowsync/shadowsync/shadowclient"
	"github.com/shadowsync/shadowsync/transport"
)

func TestFailedNewManagerUnregistersItsMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	_, err := reconciler.NewManager(transport.Config{Endpoint: "mqtt://127.0.0.1:1883"}, reconciler.Options{Registry: reg, Client: shadowclient.Options{Subscriptions: 7}})
	if err == nil {
		t.Fatal("want an error for bad options")
	}
	_, err = reconciler.NewManager(transport.Config{Endpoint: "mqtt://127.0.0.1:1883"}, reconciler.Options{Registry: reg})
	if err != nil {
		t.Errorf("second NewManager with the same registry after the first failed: %v", err)
	}
}
