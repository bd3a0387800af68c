// Package faultproxy is a TCP proxy for tests that can break the link between a
// client and a server on demand: pass traffic through, cut every connection, or
// black-hole them (keep them open but forward nothing, so only a keep-alive can
// notice), and restore. It listens on 127.0.0.1 only.
package faultproxy

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Mode is what the proxy does with connections.
type Mode int

const (
	// Pass forwards traffic both ways.
	Pass Mode = iota
	// Cut closes every open connection and closes new ones as soon as they are
	// accepted, as a broken link or a refusing server would.
	Cut
	// BlackHole stops forwarding on every open connection and on new ones, while
	// keeping them open and reading (and discarding) what the client sends.
	BlackHole
)

// String returns the mode's name.
func (m Mode) String() string {
	switch m {
	case Pass:
		return "pass"
	case Cut:
		return "cut"
	case BlackHole:
		return "black-hole"
	}
	return "unknown"
}

// dialTimeout bounds the proxy's dial to the target.
const dialTimeout = 5 * time.Second

// Proxy forwards TCP connections from its own address to a target. It is safe for
// concurrent use.
type Proxy struct {
	ln     net.Listener
	target string

	accepted atomic.Int64
	wg       sync.WaitGroup // the accept loop and every connection's goroutines

	mu     sync.Mutex
	mode   Mode
	closed bool
	links  map[*link]struct{}
}

// link is one proxied connection: the client's side and the target's side.
type link struct {
	client net.Conn
	holed  atomic.Bool // black-holed: forward nothing

	mu     sync.Mutex
	server net.Conn // nil while dialing
	closed bool
}

// close closes both sides; server is nil while the link is being set up.
func (l *link) close() {
	l.mu.Lock()
	l.closed = true
	server := l.server
	l.mu.Unlock()
	_ = l.client.Close()
	if server != nil {
		_ = server.Close()
	}
}

// attach sets the target's side; it reports false if the link was closed meanwhile.
func (l *link) attach(s net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.server = s
	return true
}

// Start listens on an ephemeral port of 127.0.0.1 and forwards to target
// (host:port) until Close. It starts one goroutine for accepting.
func Start(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, links: make(map[*link]struct{})}
	p.wg.Go(p.accept)
	return p, nil
}

// Addr returns the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Accepted returns how many connections the proxy has accepted so far, in any mode.
func (p *Proxy) Accepted() int64 { return p.accepted.Load() }

// Mode returns the current mode.
func (p *Proxy) Mode() Mode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// Cut closes every open connection and, until Restore, every new one.
func (p *Proxy) Cut() {
	p.mu.Lock()
	p.mode = Cut
	links := p.takeLinksLocked()
	p.mu.Unlock()
	for _, l := range links {
		l.close()
	}
}

// CutOnce closes every open connection and keeps passing new ones through.
func (p *Proxy) CutOnce() {
	p.mu.Lock()
	links := p.takeLinksLocked()
	p.mu.Unlock()
	for _, l := range links {
		l.close()
	}
}

// BlackHole stops forwarding on every open connection and, until Restore, on every
// new one; connections stay open.
func (p *Proxy) BlackHole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = BlackHole
	for l := range p.links {
		l.holed.Store(true)
	}
}

// Restore makes new connections pass through again. Connections black-holed before
// stay black-holed until either side closes them.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = Pass
}

// Close stops listening, closes every connection and waits for the proxy's
// goroutines to end. It is idempotent.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	links := p.takeLinksLocked()
	p.mu.Unlock()
	err := p.ln.Close()
	for _, l := range links {
		l.close()
	}
	p.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

func (p *Proxy) takeLinksLocked() []*link {
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
		delete(p.links, l)
	}
	return links
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.accepted.Add(1)
		p.mu.Lock()
		mode, closed := p.mode, p.closed
		l := &link{client: c}
		l.holed.Store(mode == BlackHole)
		if !closed && mode != Cut {
			p.links[l] = struct{}{} // tracked from now on, so Cut and CutOnce reach it
		}
		p.mu.Unlock()
		if closed || mode == Cut {
			_ = c.Close()
			continue
		}
		p.wg.Go(func() { p.serve(l) })
	}
}

// serve dials the target for link l and forwards until either side ends.
func (p *Proxy) serve(l *link) {
	s, err := net.DialTimeout("tcp", p.target, dialTimeout)
	if err != nil || !l.attach(s) { // not attached when cut or closed while dialing
		if s != nil {
			_ = s.Close()
		}
		_ = l.client.Close()
		p.forget(l)
		return
	}

	var wg sync.WaitGroup
	wg.Go(func() { pipe(l, l.client, s) })
	wg.Go(func() { pipe(l, s, l.client) })
	wg.Wait()
	p.forget(l)
}

func (p *Proxy) forget(l *link) {
	p.mu.Lock()
	delete(p.links, l)
	p.mu.Unlock()
}

// pipe copies from src to dst until an error, dropping what it reads while the link
// is black-holed; it closes both sides when done so the other direction ends too.
func pipe(l *link, src, dst net.Conn) {
	defer l.close()
	buf := make([]byte, 32*1024)
	for {
		n, err := src.Read(buf)
		if n > 0 && !l.holed.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // io.EOF or a closed connection alike
		}
	}
}
