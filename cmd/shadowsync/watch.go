package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/shadowsync/shadowsync/shadowstate"
	"github.com/shadowsync/shadowsync/transport"
)

// watchEvent is one line of `watch --json`. Event is "watching" (once, when the
// subscriptions are in place), "delta", "documents" or "deleted".
type watchEvent struct {
	Event     string                `json:"event"`
	Thing     string                `json:"thing"`
	Shadow    string                `json:"shadow,omitempty"`
	Version   int64                 `json:"version,omitempty"`
	Timestamp int64                 `json:"timestamp,omitempty"`
	State     shadowstate.Object    `json:"state,omitempty"`    // delta
	Previous  *shadowstate.Snapshot `json:"previous,omitempty"` // documents
	Current   *shadowstate.Snapshot `json:"current,omitempty"`  // documents
}

// runWatch streams a shadow's deltas and documents, one line per event, until ctx
// ends (SIGINT or SIGTERM). Connection losses and reconnects are reported on stderr;
// the subscriptions are restored after each reconnect.
func runWatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("watch", stdout)
	cf := addConnFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := cf.validate(); err != nil {
		return err
	}
	out := &lockedWriter{w: stdout}
	errOut := &lockedWriter{w: stderr}
	s, err := cf.open(ctx, func(cfg *transport.Config) {
		cfg.OnOffline = func(err error) {
			if ctx.Err() == nil {
				fmt.Fprintf(errOut, "connection lost (%v); reconnecting\n", err)
			}
		}
	})
	if err != nil {
		return err
	}
	defer s.close()
	id := cf.id()
	emit := func(e watchEvent, human string) {
		if cf.json {
			e.Thing, e.Shadow = id.Thing, id.Name
			_ = printJSON(out, e)
			return
		}
		fmt.Fprintln(out, human)
	}
	at := func(ts int64) string { return time.Unix(ts, 0).Format(time.TimeOnly) }

	subCtx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	if _, err := s.shadow.OnDelta(subCtx, func(_ context.Context, d *shadowstate.DeltaMessage) {
		emit(watchEvent{Event: "delta", Version: d.Version, Timestamp: d.Timestamp, State: d.State},
			fmt.Sprintf("%s delta     version %d  %s", at(d.Timestamp), d.Version, compact(d.State)))
	}); err != nil {
		return explain(id, err)
	}
	if _, err := s.shadow.OnDocuments(subCtx, func(_ context.Context, m *shadowstate.DocumentsMessage) {
		cur := m.Current.State
		emit(watchEvent{Event: "documents", Version: m.Current.Version, Timestamp: m.Timestamp, Previous: m.Previous, Current: &m.Current},
			fmt.Sprintf("%s document  version %d  desired %s  reported %s", at(m.Timestamp), m.Current.Version, compact(cur.Desired), compact(cur.Reported)))
	}); err != nil {
		return explain(id, err)
	}
	// A deletion publishes no documents message: the shadow service announces it on
	// delete/accepted, to every subscriber.
	if _, err := s.conn.Subscribe(subCtx, id.Topic(shadowstate.OpDelete, shadowstate.Accepted), transport.HandlerFunc(func(_ context.Context, m transport.Message) {
		var d shadowstate.DeleteAccepted
		if err := shadowstate.Unmarshal(m.Payload, &d); err != nil {
			fmt.Fprintf(errOut, "malformed delete/accepted message ignored: %v\n", err)
			return
		}
		emit(watchEvent{Event: "deleted", Version: d.Version, Timestamp: d.Timestamp},
			fmt.Sprintf("%s deleted   version %d", at(d.Timestamp), d.Version))
	}), transport.QoS(1)); err != nil {
		return explain(id, err)
	}
	emit(watchEvent{Event: "watching"}, fmt.Sprintf("watching shadow %s on %s (Ctrl-C to stop)", describe(id), cf.endpoint))
	<-ctx.Done()
	return nil
}
