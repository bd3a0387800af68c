package benchfleet

import (
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		d := make([]time.Duration, len(v))
		for i, x := range v {
			d[i] = time.Duration(x) * time.Millisecond
		}
		return d
	}
	tests := []struct {
		name string
		d    []time.Duration
		q    float64
		want time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one", ms(7), 0.99, 7 * time.Millisecond},
		{"median of unsorted", ms(5, 1, 4, 2, 3), 0.5, 3 * time.Millisecond},
		{"p99 of 1..100 is 99", ms(hundred()...), 0.99, 99 * time.Millisecond},
		{"max", ms(3, 9, 1), 1, 9 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.d, tt.q); got != tt.want {
				t.Errorf("percentile(%v, %v) = %v, want %v", tt.d, tt.q, got, tt.want)
			}
		})
	}
}

func TestOptionsDefaults(t *testing.T) {
	o, err := Options{Endpoint: "mqtt://127.0.0.1:1883"}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if o.Things != DefaultThings || o.Rounds != DefaultRounds || o.Workers != 0 || o.Window != DefaultWindow || o.RoundTimeout != DefaultRoundTimeout || o.Logger == nil {
		t.Errorf("defaults %+v", o)
	}
	for _, bad := range []Options{
		{},
		{Endpoint: "mqtts://example.com:8883"},
		{Endpoint: "mqtt://"},
		{Endpoint: "mqtt://127.0.0.1:1883", Things: -1},
		{Endpoint: "mqtt://127.0.0.1:1883", Things: 100000},
	} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func hundred() []int {
	v := make([]int, 100)
	for i := range v {
		v[i] = 100 - i
	}
	return v
}
