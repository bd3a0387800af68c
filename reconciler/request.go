package reconciler

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/shadowsync/shadowsync/shadowstate"
)

// Request is what Reconcile is given: one shadow's latest state, read from the
// framework's cache when the work queue hands out its key, never a stale event.
//
// The contract, for a device type T and a shadow whose desired state is partial (an
// app desired only {"brightness":60} of a light with On, Brightness and Color):
//
//   - Desired is the state the device should be in: every field an app desires, and
//     for every other field what the device last reported. A Reconcile that applies
//     Desired whole is correct; it never sees zero values for fields nobody desired
//     (Desired.On is true if the light last reported on). RawDesired and Delta say
//     which fields apps actually named.
//   - After Reconcile, every field of *Reported whose value differs from the stored
//     reported state, or is absent from it, is written, zero values included and
//     omitempty or not: a field desired as 0 or false is reported as 0 or false, so
//     the delta clears. Fields holding nil (pointers, slices, maps) are not written.
//     Keys of reported state that T does not declare are never touched, and a key is
//     deleted only when Reconcile asks for it with DeleteReported.
//   - Reconcile runs whenever desired state changes, also to a value the device
//     already reports (no delta); with ControllerOptions.StatusField the status then
//     names that version (see Status).
type Request[T any] struct {
	// Thing is the thing's name; Shadow the shadow's name, "" for the classic shadow.
	Thing  string
	Shadow string
	// Desired is the state the device should be in: the shadow's desired state merged
	// onto its reported state by the shadow service's rules (objects key by key,
	// arrays and scalars whole), decoded into T. The desired state has passed T's
	// JSON Schema.
	Desired T
	// Reported is the shadow's reported state decoded into T. Reconcile updates it to
	// what the device really is now; the framework then reports the fields that
	// differ from the stored reported state, also when Reconcile returns an error.
	Reported *T
	// RawDesired is the shadow's desired state as stored: only the keys apps set.
	// Treat it as read-only.
	RawDesired shadowstate.Object
	// Delta is the difference between desired and reported, as the service computes
	// it; nil when they agree. Treat it as read-only.
	Delta shadowstate.Object
	// Version is the shadow's version the state was read at.
	Version int64

	deletes *[][]string // the keys DeleteReported asked for
}

// DeleteReported asks the framework to delete one key of the shadow's reported
// state (write it as null) with this reconcile's report: path is the key, with the
// keys of the objects it is nested in first, e.g. DeleteReported("lights", "porch").
// A deleted key is not written even when Reported holds a value for it. It is how a
// device removes a map entry, or a key an older version of T reported; zero values
// never delete anything. It does nothing for a key the stored reported state lacks.
func (r Request[T]) DeleteReported(path ...string) {
	if r.deletes != nil && len(path) > 0 {
		*r.deletes = append(*r.deletes, append([]string(nil), path...))
	}
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
// Reconcile is called for a shadow whenever its desired state changes, also when the
// change leaves no delta (and once on start, after a reconnect when the shadow
// differs, and when requeued), one call at a time per shadow; not while the shadow
// has no desired state at all. It must be
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

// scopeKey is the ctx key of a reconcile's *scope.
type scopeKey struct{}

// scope is what the ctx of one run of process carries: the shadow's entry, so that a
// Report for that shadow from inside its Reconcile fails at once instead of waiting
// for itself, and its logger. The logger (the controller's with the thing and shadow
// attached) is built on first use: most runs log nothing, and attaching attributes
// formats them. It is safe for concurrent use (a Reconcile may log from goroutines).
type scope struct {
	base *slog.Logger
	id   shadowstate.ID
	e    *entry
	log  atomic.Pointer[slog.Logger]
}

// logger returns the run's logger, building it the first time.
func (s *scope) logger() *slog.Logger {
	if l := s.log.Load(); l != nil {
		return l
	}
	s.log.CompareAndSwap(nil, s.base.With("thing", s.id.Thing, "shadow", s.id.Name))
	return s.log.Load()
}

// debugging reports whether the run's debug logs would be written, so that a caller
// builds their attributes only then.
func (s *scope) debugging(ctx context.Context) bool {
	return s.base.Enabled(ctx, slog.LevelDebug)
}

// Logger returns the logger of the reconcile ctx belongs to: the Manager's logger
// with the thing and shadow attached. Outside a reconcile it returns a logger that
// discards everything.
func Logger(ctx context.Context) *slog.Logger {
	if s, ok := ctx.Value(scopeKey{}).(*scope); ok {
		return s.logger()
	}
	return slog.New(slog.DiscardHandler)
}
