package shadowtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/shadowsync/shadowsync/reconciler"
)

// StartManager runs mgr (reconciler.Manager.Start) until the test or suite ends, and
// returns once its connection is online, so that its controllers have subscribed to
// their shadows' deltas. At the end it stops mgr and fails t if Start returned an
// error or did not return within a minute. It fails t if mgr is not online within
// 30 s.
func StartManager(t TB, mgr *reconciler.Manager) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("shadowtest: manager: %v", err)
			}
		case <-time.After(time.Minute):
			t.Fatalf("shadowtest: manager did not stop within a minute of its ctx ending")
		}
	})
	online, stop := context.WithTimeout(ctx, startTimeout)
	defer stop()
	if err := mgr.Conn().AwaitConnection(online); err != nil {
		t.Fatalf("shadowtest: manager not online: %v", err)
	}
}

// Device is a device program under test that the test can switch off and on: each
// Start makes a new reconciler.Manager with the function given to StartDevice and runs
// it; Stop shuts it down as the program's end would. Between the two the device is
// offline, and whatever apps do meanwhile is what it must catch up with when it comes
// back. Its methods are safe for concurrent use.
type Device struct {
	t          TB
	newManager func() (*reconciler.Manager, error)

	mu     sync.Mutex
	mgr    *reconciler.Manager
	cancel context.CancelFunc
	done   chan error
}

// StartDevice starts a device whose manager newManager makes (with its controllers
// registered), returns once it is online, and stops it when the test or suite ends.
// It fails t if the device cannot start.
//
//	dev := shadowtest.StartDevice(GinkgoT(), newLampManager)
//	Expect(dev.Stop()).To(Succeed())   // the device is off
//	Expect(env.SetDesired(ctx, "lamp-1", map[string]any{"on": true})).To(Succeed())
//	Expect(dev.Start()).To(Succeed())  // on again: it reads its shadow and converges
func StartDevice(t TB, newManager func() (*reconciler.Manager, error)) *Device {
	t.Helper()
	d := &Device{t: t, newManager: newManager}
	if err := d.Start(); err != nil {
		t.Fatalf("shadowtest: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Stop(); err != nil {
			t.Fatalf("shadowtest: %v", err)
		}
	})
	return d
}

// ErrDeviceRunning is returned by Device.Start while the device runs.
var ErrDeviceRunning = errors.New("shadowtest: the device is already running; Stop it first")

// Start switches the device on: a new manager from the function given to
// StartDevice, run until Stop, online when Start returns (within 30 s).
func (d *Device) Start() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.mgr != nil {
		return ErrDeviceRunning
	}
	mgr, err := d.newManager()
	if err != nil {
		return fmt.Errorf("device: make its manager: %w", err)
	}
	if mgr == nil {
		return errors.New("device: the function given to StartDevice returned no manager")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	online, stop := context.WithTimeout(ctx, startTimeout)
	defer stop()
	if err := mgr.Conn().AwaitConnection(online); err != nil {
		cancel()
		<-done
		return fmt.Errorf("device: not online: %w", err)
	}
	d.mgr, d.cancel, d.done = mgr, cancel, done
	return nil
}

// Stop switches the device off: its manager finishes the reconciles in flight and
// disconnects (Manager.Start returns). Stopping a device that is off does nothing.
func (d *Device) Stop() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.mgr == nil {
		return nil
	}
	d.cancel()
	defer func() { d.mgr, d.cancel, d.done = nil, nil, nil }()
	select {
	case err := <-d.done:
		if err != nil {
			return fmt.Errorf("device: manager: %w", err)
		}
		return nil
	case <-time.After(time.Minute):
		return errors.New("device: the manager did not stop within a minute of its ctx ending")
	}
}

// Manager returns the running manager (its connection, metrics and controllers'
// clients), or nil while the device is off.
func (d *Device) Manager() *reconciler.Manager {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.mgr
}
