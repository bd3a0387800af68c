package reconciler

import "context"

// ResyncAll asks every controller of m to re-read all its shadows, as the periodic
// resync does, without waiting.
func ResyncAll(ctx context.Context, m *Manager, why string) {
	m.mu.Lock()
	cs := append([]runnable(nil), m.controllers...)
	m.mu.Unlock()
	for _, c := range cs {
		c.resync(ctx, why, true, nil)
	}
}

// ShuttingDown reports whether every controller of m has stopped taking work.
func ShuttingDown(m *Manager) bool {
	m.mu.Lock()
	cs := append([]runnable(nil), m.controllers...)
	m.mu.Unlock()
	for _, c := range cs {
		if !c.(interface{ shuttingDown() bool }).shuttingDown() {
			return false
		}
	}
	return len(cs) > 0
}

func (c *Controller[T]) shuttingDown() bool { return c.queue.ShuttingDown() }
