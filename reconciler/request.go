package reconciler

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/shadowsync/shadowsync/shadowstate"
)

// Request is what Reconcile is given: one shadow's latest state, read from the
// framework's cache when the work queue hands out its key, never a stale event.
type Request[T any] struct {
	// Thing is the thing's name; Shadow the shadow's name, "" for the classic shadow.
	Thing  string
	Shadow string
	// Desired is the shadow's whole desired state decoded into T. It has passed T's
	// JSON Schema.
	Desired T
	// Reported is the shadow's reported state decoded into T. Reconcile updates it to
	// what the device really is now; the framework then reports the fields that
	// changed, also when Reconcile returns an error.
	Reported *T
	// Delta is the difference between desired and reported, as the service computes
	// it; nil when they agree.
	Delta shadowstate.Object
	// Version is the shadow's version the state was read at.
	Version int64
}

// Result tells the framework when to run Reconcile again for this shadow without
// a change to the shadow.
type Result struct {
	// RequeueAfter, when positive, runs Reconcile again after this long: for devices
	// that converge step by step. Zero means only when the shadow changes.
	RequeueAfter time.Duration
}

// Reconciler moves a device towards its desired state.
//
// Reconcile is called for a shadow whenever its desired state changes (and on start,
// after every reconnect, and when requeued), one call at a time per shadow; not while
// the shadow has no desired state at all. It must be
// idempotent: it gets the whole state, not an event. It sets *req.Reported to what the
// device is after acting, and the framework reports the changed fields with the
// version req carried (a conflicting write makes it read the shadow again and call
// Reconcile once more).
//
// Returning an error retries the shadow with per-shadow exponential backoff, and the
// Result is ignored; wrap the error with TerminalError to give up until the shadow
// changes. Returning a Result with RequeueAfter runs it again after that long; a
// zero Result runs it again only when the shadow changes. A panic is recovered,
// logged and retried like an error.
type Reconciler[T any] interface {
	Reconcile(ctx context.Context, req Request[T]) (Result, error)
}

// ReconcilerFunc adapts a function to Reconciler.
type ReconcilerFunc[T any] func(ctx context.Context, req Request[T]) (Result, error)

// Reconcile calls f(ctx, req).
func (f ReconcilerFunc[T]) Reconcile(ctx context.Context, req Request[T]) (Result, error) {
	return f(ctx, req)
}

// terminalError marks an error that retrying cannot fix.
type terminalError struct{ err error }

func (e terminalError) Error() string { return e.err.Error() }
func (e terminalError) Unwrap() error { return e.err }

// TerminalError wraps err so that Reconcile is not retried for it: the shadow waits
// for its desired state to change. It returns nil for a nil err.
func TerminalError(err error) error {
	if err == nil {
		return nil
	}
	return terminalError{err}
}

// IsTerminal reports whether err was wrapped with TerminalError.
func IsTerminal(err error) bool {
	var t terminalError
	return errors.As(err, &t)
}

type loggerKey struct{}

// Logger returns the logger of the reconcile ctx belongs to: the Manager's logger
// with the thing and shadow attached. Outside a reconcile it returns a logger that
// discards everything.
func Logger(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
		return l
	}
	return slog.New(slog.DiscardHandler)
}
