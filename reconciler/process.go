package reconciler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/shadowsync/shadowsync/schemas"
	"github.com/shadowsync/shadowsync/shadowclient"
	"github.com/shadowsync/shadowsync/shadowstate"
)

// errInvalidDesired marks desired state that does not decode into T or fails its
// schema: it never reaches Reconcile and is not retried until it changes.
var errInvalidDesired = errors.New("invalid desired state")

// process reconciles one shadow: read it if the cache has not, decode and validate
// desired state, call Reconcile, report what changed, and decide when to run again.
// why is why the shadow was queued (runFor): after an event (runEvent) or only to
// check the cache (runCheck) it reconciles only if the cache, read first if need
// be, still holds something no reconcile has handled. It returns the result for
// the reconciles metric ("" when Reconcile did not run).
func (c *Controller[T]) process(ctx context.Context, id shadowstate.ID, why int32) string {
	e := c.set.get(id)
	if e == nil {
		return ""
	}
	if err := e.run.Lock(ctx); err != nil {
		return "" // shutting down
	}
	defer e.run.Unlock()
	if e.isRemoved() {
		return ""
	}
	sc := &scope{base: c.log, id: id, e: e}
	ctx = context.WithValue(ctx, scopeKey{}, sc)

	if !e.current() {
		if err := c.refresh(ctx, id, e); err != nil {
			sc.logger().Warn("cannot read the shadow; retrying", "error", err)
			c.retry(id)
			return ""
		}
		if !e.current() {
			// An event, or another read (a re-read after a reconnect), came while the
			// shadow was read, and the read did not settle the cache: read it again in
			// another run (the same run as the one an event queued, if it did).
			if why == runNone {
				why = runReconcile
			}
			c.enqueueFor(id, why)
			return ""
		}
	}
	if err := c.flushPending(ctx, id, e); err != nil {
		sc.logger().Warn("cannot report the device's last state; retrying", "error", err)
		c.retry(id)
		return ""
	}
	// Queued only to check the cache after an event older than it, the read found
	// the versions where they were (the event was a late copy) and no version that
	// no event announced; queued by an event, the run under way when it came
	// reconciled the state it announced (or a later one).
	if why == runCheck && !e.needsReconcile(false) || why == runEvent && !e.differs() {
		if sc.debugging(ctx) {
			queuedFor := "event"
			if why == runCheck {
				queuedFor = "check"
			}
			sc.logger().Debug("nothing left to reconcile", "queued_for", queuedFor)
		}
		return "" // the backoff, if any, is left as it is: nothing ran
	}
	desired, reported, version, exists := e.snapshot()
	if desired == nil {
		if sc.debugging(ctx) {
			sc.logger().Debug("nothing desired", "version", version)
		}
		// Nothing is desired (the shadow is new, or an app cleared desired): there is
		// nothing to move the device towards until desired state appears.
		e.observe(version)
		c.queue.Forget(id)
		return ""
	}

	desiredT, err := c.decodeDesired(desired, reported)
	if err != nil {
		sc.logger().Error("desired state refused; the device keeps its last good state until desired changes", "version", version, "error", err)
		c.m.metrics.invalidDesired.WithLabelValues(c.opts.Name).Inc()
		if c.opts.StatusField == "" || c.writeStatus(ctx, id, e, Status{ObservedVersion: version, Error: err.Error()}) {
			e.observe(version)
		}
		c.queue.Forget(id)
		return resultInvalid
	}
	var reportedT T
	if err := decodeInto(reported, &reportedT); err != nil {
		sc.logger().Warn("reported state does not fit the device type; unknown or mistyped fields are left as they are", "error", err)
	}
	var deletes [][]string
	if sc.debugging(ctx) {
		sc.logger().Debug("calling Reconcile", "version", version)
	}
	res, rerr := c.reconcile(ctx, Request[T]{
		Thing: id.Thing, Shadow: id.Name,
		Desired: desiredT, Reported: &reportedT,
		RawDesired: desired, Delta: shadowstate.Delta(desired, reported), Version: version,
		deletes: &deletes,
	})

	var status *Status
	if c.opts.StatusField != "" {
		status = &Status{ObservedVersion: version, OK: rerr == nil}
		if rerr != nil {
			status.Error = rerr.Error()
		}
	}
	werr := c.report(ctx, id, e, reported, &reportedT, deletes, status, version, exists)
	if werr == nil {
		e.observe(version)
	}
	return c.outcome(id, sc, res, rerr, werr)
}

// outcome decides, in one place, what follows a reconcile: its report's failure
// first (a conflict reconciles again at once, anything else retries with backoff),
// then Reconcile's own error (terminal or retried), then a requeue it asked for. It
// returns the result for the reconciles metric.
func (c *Controller[T]) outcome(id shadowstate.ID, sc *scope, res Result, rerr, werr error) string {
	switch {
	case errors.Is(werr, errConflict):
		sc.logger().Debug("report conflicted with another writer; reading the shadow and reconciling again")
		c.enqueue(id)
		return resultConflict
	case werr != nil:
		sc.logger().Error("report failed; retrying", "error", werr)
		c.retry(id)
		return resultReport
	case rerr != nil && IsTerminal(rerr):
		sc.logger().Error("reconcile failed for good; waiting for desired state to change", "error", rerr)
		c.queue.Forget(id)
		return resultTerminal
	case rerr != nil:
		sc.logger().Error("reconcile failed; retrying with backoff", "error", rerr, "retries", c.queue.NumRequeues(id))
		c.retry(id)
		return resultError
	case res.RequeueAfter > 0:
		c.queue.Forget(id)
		c.requeueAfter(id, res.RequeueAfter)
		return resultRequeue
	default:
		c.queue.Forget(id)
		return resultSuccess
	}
}

// reconcile calls the user's Reconcile, turning a panic into an error.
func (c *Controller[T]) reconcile(ctx context.Context, req Request[T]) (res Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			Logger(ctx).Error("Reconcile panicked", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			res, err = Result{}, fmt.Errorf("reconcile panicked: %v", r)
		}
	}()
	return c.r.Reconcile(ctx, req)
}

// decodeDesired checks desired state against T's schema and returns the state the
// device should be in: desired merged onto reported by the shadow service's rules
// (every field an app desires, and what the device last reported for the others),
// decoded into T. A reported value that does not fit T is left out (it was logged
// when reported was decoded); a desired one makes the desired state invalid.
func (c *Controller[T]) decodeDesired(desired, reported shadowstate.Object) (T, error) {
	var t T
	if desired == nil {
		return t, nil
	}
	if c.schema != nil {
		if err := c.schema.Validate(desired); err != nil {
			var se *schemas.Error
			if errors.As(err, &se) {
				return t, fmt.Errorf("%w: %w", errInvalidDesired, err)
			}
			return t, err
		}
	}
	if err := decodeInto(shadowstate.Merge(reported, desired), &t); err != nil {
		// Whose value did not fit: desired's makes it invalid; reported's is left out.
		var probe T
		if derr := decodeInto(desired, &probe); derr != nil {
			return t, fmt.Errorf("%w: %w", errInvalidDesired, derr)
		}
	}
	return t, nil
}

// decodeInto decodes a state section into v through its JSON form, keeping numbers
// exact in untyped values (json.Number). A field of the wrong type is reported, and
// the other fields are still decoded.
func decodeInto(section shadowstate.Object, v any) error {
	if section == nil {
		return nil
	}
	if o, ok := v.(*shadowstate.Object); ok && *o == nil {
		c, err := copyObject(section)
		*o = c
		return err
	}
	data, err := encodeObject(section)
	if err != nil {
		return err
	}
	return shadowstate.Unmarshal(data, v)
}

// errConflict reports a report rejected with 409: the cache has been re-read.
var errConflict = errors.New("version conflict")

// report writes what Reconcile (or a Report) changed: the members of the device
// state after that stored (the reported object the state was read from) lacks or holds
// differently, the deletions asked for, and the status when enabled, with the cached
// version for optimistic locking. Nothing is written when nothing changed. When the
// write fails, the device state is kept as pending and written before anything else
// acts on the shadow, whatever desired state says by then.
func (c *Controller[T]) report(ctx context.Context, id shadowstate.ID, e *entry, stored shadowstate.Object, after *T, deletes [][]string, status *Status, version int64, exists bool) error {
	state, err := stateJSON(after)
	if err != nil {
		return fmt.Errorf("encode reported state: %w", err)
	}
	return c.writeState(ctx, id, e, stored, state, deletes, status, version, exists)
}

// writeState writes the device state (its JSON form) onto stored; see report.
func (c *Controller[T]) writeState(ctx context.Context, id shadowstate.ID, e *entry, stored, state shadowstate.Object, deletes [][]string, status *Status, version int64, exists bool) error {
	patch := withDeletes(patchOf(stored, state), stored, deletes)
	if status != nil {
		if patch == nil {
			patch = shadowstate.Object{}
		}
		patch[c.opts.StatusField] = statusObject(*status)
	}
	if len(patch) == 0 {
		e.setPending(nil, nil)
		return nil
	}
	err := c.write(ctx, id, e, patch, version, exists)
	if err != nil && !refusedForGood(err) {
		e.setPending(state, deletes)
	} else {
		// Written, or refused in a way no retry changes (too large, invalid): the
		// next Reconcile decides what to report instead.
		e.setPending(nil, nil)
	}
	return err
}

// refusedForGood reports whether the shadow service rejected a report for what it
// holds (400, 413, 415, ...), rather than for a conflict (409), throttling (429) or
// its own failure (5xx).
func refusedForGood(err error) bool {
	var rej *shadowstate.Error
	return errors.As(err, &rej) && rej.Code >= 400 && rej.Code < 500 && rej.Code != 409 && rej.Code != 429
}

// flushPending writes the device state an earlier report failed to write, onto the
// shadow as the cache holds it now (read again after a conflict, a few times).
func (c *Controller[T]) flushPending(ctx context.Context, id shadowstate.ID, e *entry) error {
	for attempt := 0; ; attempt++ {
		state, deletes := e.takePending()
		if state == nil && deletes == nil {
			return nil
		}
		_, reported, version, exists := e.snapshot()
		err := c.writeState(ctx, id, e, reported, state, deletes, nil, version, exists)
		if !errors.Is(err, errConflict) || attempt == 3 {
			return err
		}
	}
}

// write sends patch as reported state at version (no version check for a shadow
// that does not exist yet) and updates the cache.
func (c *Controller[T]) write(ctx context.Context, id shadowstate.ID, e *entry, patch shadowstate.Object, version int64, exists bool) error {
	raw, err := encodeObject(patch)
	if err != nil {
		return err
	}
	h, err := c.m.clientFor(id.Thing).Shadow(id.Thing, id.Name)
	if err != nil {
		return err
	}
	if exists {
		e.expectOwn(version + 1)
	}
	acc, err := c.send(ctx, h, e, shadowstate.StateUpdate{Reported: raw}, patch, version, exists)
	if err != nil {
		// The version this report expected may now be someone else's, and the
		// events about it were taken for this controller's own: reconcile again.
		if exists {
			e.clearOwn(version + 1)
		}
		var rej *shadowstate.Error
		if errors.As(err, &rej) && rej.Code == 409 {
			// Another writer got there first: read its state; the caller reconciles
			// again.
			if rerr := c.refresh(ctx, id, e); rerr != nil {
				return fmt.Errorf("%w; and reading the shadow again failed: %w", errConflict, rerr)
			}
			return errConflict
		}
		return err
	}
	e.reportAccepted(patch, acc.Version)
	if c.log.Enabled(ctx, slog.LevelDebug) {
		c.log.Debug("reported", "thing", id.Thing, "shadow", id.Name, "version", acc.Version)
	}
	return nil
}

// send sends a report: fenced by version when the shadow exists, and then, unless
// the fleet is shared, confirmed by its documents message (UpdateByDocuments), which
// this controller receives anyway, rather than by an /update/accepted reply. In a
// shared fleet the documents message may go to another member, so the report waits
// for its accepted reply; a report that creates the shadow has no version to fence.
func (c *Controller[T]) send(ctx context.Context, h *shadowclient.Handle, e *entry, state shadowstate.StateUpdate, patch shadowstate.Object, version int64, exists bool) (*shadowstate.UpdateAccepted, error) {
	switch {
	case !exists:
		return h.Update(ctx, state)
	case c.sharedFleet():
		return h.Update(ctx, state, shadowclient.ExpectVersion(version))
	}
	return h.UpdateByDocuments(ctx, state, version, e.reportResult(patch, version))
}

// writeStatus reports only the status, for desired state that never reached
// Reconcile, and reports whether it was written; when not, the shadow is retried.
func (c *Controller[T]) writeStatus(ctx context.Context, id shadowstate.ID, e *entry, s Status) bool {
	_, _, version, exists := e.snapshot()
	patch := shadowstate.Object{c.opts.StatusField: statusObject(s)}
	if err := c.write(ctx, id, e, patch, version, exists); err != nil {
		Logger(ctx).Warn("status report failed; retrying", "error", err)
		c.retry(id)
		return false
	}
	return true
}

func statusObject(s Status) shadowstate.Object {
	var o shadowstate.Object
	data, _ := json.Marshal(s)
	_ = shadowstate.Unmarshal(data, &o)
	if s.Error == "" {
		o["error"] = nil // clears an earlier error
	}
	return o
}

// ErrReportInReconcile is returned by Controller.Report called from inside Reconcile
// for the shadow being reconciled (with Reconcile's ctx or one derived from it): that
// shadow's state is reported when Reconcile returns, so set the fields on
// req.Reported instead.
var ErrReportInReconcile = errors.New("reconciler: Report called from inside Reconcile of the same shadow; set the fields on req.Reported instead")

// Report publishes state that changed on the device by itself (a sensor reading):
// fn edits the device's reported state, and the fields it changed are reported
// through the same path as Reconcile's, serialised with it. thing must be managed by
// c.
//
// Report waits while the shadow's Reconcile runs, until ctx ends. Called from inside
// Reconcile with Reconcile's ctx, it returns at once: ErrReportInReconcile for the
// shadow being reconciled; for another shadow, it works (or gives up when ctx ends).
func (c *Controller[T]) Report(ctx context.Context, thing string, fn func(*T)) error {
	id := shadowstate.ID{Thing: thing, Name: c.opts.Shadow}
	e := c.set.get(id)
	if e == nil {
		return fmt.Errorf("reconciler: Report: %v is not managed by controller %s", id, c.opts.Name)
	}
	if sc, _ := ctx.Value(scopeKey{}).(*scope); sc != nil && sc.e == e {
		return fmt.Errorf("%w (%v)", ErrReportInReconcile, id)
	}
	if err := e.run.Lock(ctx); err != nil {
		return fmt.Errorf("reconciler: Report %v: waiting for its Reconcile to finish: %w", id, err)
	}
	defer e.run.Unlock()
	if e.isRemoved() {
		return fmt.Errorf("reconciler: Report: %v was removed from controller %s", id, c.opts.Name)
	}
	for attempt := 0; ; attempt++ {
		if !e.current() {
			if err := c.refresh(ctx, id, e); err != nil {
				return fmt.Errorf("reconciler: Report %v: %w", id, err)
			}
		}
		if err := c.flushPending(ctx, id, e); err != nil {
			return fmt.Errorf("reconciler: Report %v: writing the device's earlier state: %w", id, err)
		}
		_, reported, version, exists := e.snapshot()
		var t T
		_ = decodeInto(reported, &t)
		fn(&t)
		err := c.report(ctx, id, e, reported, &t, nil, nil, version, exists)
		if errors.Is(err, errConflict) {
			// Another writer's change may have been taken for this report's own; if
			// the shadow differs now, reconcile it.
			if e.differs() {
				c.enqueue(id)
			}
			if attempt < 5 {
				continue // re-read; fn runs again on the fresh state
			}
		}
		if err != nil {
			if e.differs() {
				c.retry(id) // the failed report may have hidden another writer's change
			}
			return fmt.Errorf("reconciler: Report %v: %w", id, err)
		}
		if e.differs() {
			// The device moved away from its desired state by itself: reconcile it back,
			// as a device acting on the service's delta would.
			c.enqueue(id)
		}
		return nil
	}
}
