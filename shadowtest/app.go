package shadowtest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shadowsync/shadowsync/shadowclient"
	"github.com/shadowsync/shadowsync/shadowstate"
	"github.com/shadowsync/shadowsync/transport"
)

// appClient is the Env's own app: one connection with operator rights and a shadow
// client on it, made on first use.
type appClient struct {
	conn   *transport.Conn
	client *shadowclient.Client
}

func (a *appClient) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	return errors.Join(a.client.Close(ctx), a.conn.Close(ctx))
}

// App returns the Env's app client, connecting it on first use: a shadow client with
// operator rights over Options.Listener, as an application or a fleet service uses
// the Device Shadow service. The Env closes it when it stops.
func (e *Env) App(ctx context.Context) (*shadowclient.Client, error) {
	app, err := e.appClient(ctx)
	if err != nil {
		return nil, err
	}
	return app.client, nil
}

func (e *Env) appClient(ctx context.Context) (*appClient, error) {
	e.appMu.Lock()
	defer e.appMu.Unlock()
	e.mu.Lock()
	app, stopped := e.app, e.stopped
	e.mu.Unlock()
	switch {
	case stopped:
		return nil, errors.New("shadowtest: the Env is stopped")
	case app != nil:
		return app, nil
	}
	conn, err := transport.Dial(ctx, e.AppConfig())
	if err != nil {
		return nil, fmt.Errorf("shadowtest: app: %w", err)
	}
	client, err := shadowclient.New(conn, shadowclient.Options{Logger: e.log.With("client", conn.ClientID())})
	if err != nil {
		_ = conn.Close(ctx)
		return nil, fmt.Errorf("shadowtest: app: %w", err)
	}
	app = &appClient{conn: conn, client: client}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped { // stopped while connecting
		_ = app.close()
		return nil, errors.New("shadowtest: the Env is stopped")
	}
	e.app = app
	return app, nil
}

// SetDesired updates thing's desired state to v (merged into what is desired, as
// an app's update is; a nil field deletes it) over MQTT, as an app would, and waits
// for the service to accept it. If the app's connection is down (after Restart) it
// waits for it to come back, within ctx.
func (e *Env) SetDesired(ctx context.Context, thing string, v any) error {
	_, err := e.UpdateDesired(ctx, thing, "", v)
	return err
}

// UpdateDesired is SetDesired for any shadow (name "" is the classic shadow); it
// returns the accepted update, with the shadow's new version.
func (e *Env) UpdateDesired(ctx context.Context, thing, name string, v any) (*shadowstate.UpdateAccepted, error) {
	app, err := e.appClient(ctx)
	if err != nil {
		return nil, err
	}
	h, err := app.client.Shadow(thing, name)
	if err != nil {
		return nil, err
	}
	for {
		if err := app.conn.AwaitConnection(ctx); err != nil {
			return nil, fmt.Errorf("shadowtest: set desired of %s: %w", thing, err)
		}
		acc, err := h.UpdateDesired(ctx, v)
		if errors.Is(err, shadowclient.ErrOffline) && ctx.Err() == nil {
			// The connection was lost (a Restart) before the app noticed; it
			// reconnects by itself, so wait for that and try again.
			select {
			case <-time.After(10 * time.Millisecond): // until the loss is noticed
			case <-ctx.Done():
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("shadowtest: set desired of %s: %w", shadowstate.ID{Thing: thing, Name: name}, err)
		}
		return acc, nil
	}
}
