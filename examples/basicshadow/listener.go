package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/shadowsync/shadowsync/cmdkit"
	"github.com/shadowsync/shadowsync/shadowclient"
	"github.com/shadowsync/shadowsync/shadowstate"
)

// listen registers the delta listener, the Python sample's customShadowCallback_Delta:
// it prints each delta and reports the state it asks for, then sends the reported
// property on reported. It also handles a delta already pending when it starts.
func listen(ctx context.Context, out *cmdkit.Printer, h *shadowclient.Handle, reported chan<- string) error {
	handle := func(ctx context.Context, what string, delta shadowstate.Object, version int64) {
		state, _ := json.Marshal(delta)
		out.Printf("listener: %s %s at version %d", what, state, version)
		acc, err := h.UpdateReported(ctx, delta) // the device applies it, then reports
		if err != nil {
			out.Printf("listener: report failed: %v", err)
			return
		}
		out.Printf("listener: reported %s, now at version %d", state, acc.Version)
		select {
		case reported <- fmt.Sprint(delta["property"]):
		default:
		}
	}
	if _, err := h.OnDelta(ctx, func(ctx context.Context, d *shadowstate.DeltaMessage) {
		handle(ctx, "delta", d.State, d.Version)
	}); err != nil {
		return err
	}
	doc, err := h.Get(ctx)
	var rejected *shadowstate.Error
	switch {
	case errors.As(err, &rejected) && rejected.Code == 404: // no shadow yet: nothing pending
	case err != nil:
		return fmt.Errorf("listener: %w", err)
	case len(doc.State.Delta) > 0:
		handle(ctx, "pending delta", doc.State.Delta, doc.Version)
	}
	out.Printf("listener: waiting for deltas of %v", h.ID())
	return nil
}

// awaitReport waits until the listener has reported property value want.
func awaitReport(ctx context.Context, reported <-chan string, want string) error {
	timeout := time.After(10 * time.Second)
	for {
		select {
		case got := <-reported:
			if got == want {
				return nil
			}
		case <-timeout:
			return fmt.Errorf("updater: the listener did not report property %s within 10s", want)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
