// Command delayproxy forwards TCP connections from local addresses to others, delaying
// every byte by a fixed time in each direction, as a network between a client and a
// server would. run.sh puts it between the AWS IoT Device SDK for Python v1's
// integration suite and `shadowsync serve`, whose loopback round trips are otherwise
// far shorter than any to AWS IoT.
//
//	delayproxy -delay 10ms 127.0.0.1:8883=127.0.0.1:18883 127.0.0.1:443=127.0.0.1:10443
//
// It prints "ready" once every address is bound, and runs until SIGINT or SIGTERM. What
// one side sends reaches the other delay later, in order; an end of stream (FIN) is
// passed on delay later too, as a half-close, and a connection ends when both
// directions have ended. A reset or other read error closes both sides.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
)

// dialTimeout bounds the dial to a target.
const dialTimeout = 5 * time.Second

func main() {
	delay := flag.Duration("delay", 10*time.Millisecond, "one-way `delay` added in each direction")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: delayproxy [-delay D] LISTEN=TARGET...\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 || *delay < 0 {
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var (
		lns     []net.Listener
		targets []string
	)
	for _, arg := range flag.Args() {
		listen, target, ok := strings.Cut(arg, "=")
		if !ok || listen == "" || target == "" {
			log.Fatalf("delayproxy: %q: want LISTEN=TARGET", arg)
		}
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			log.Fatalf("delayproxy: %v", err)
		}
		lns = append(lns, ln)
		targets = append(targets, target)
	}
	fmt.Println("ready")
	serve(ctx, lns, targets, *delay)
}

// serve forwards the connections each listener accepts to its target until ctx ends,
// then closes the listeners and every connection and returns.
func serve(ctx context.Context, lns []net.Listener, targets []string, delay time.Duration) {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]struct{}{}
	)
	track := func(c net.Conn) bool {
		mu.Lock()
		defer mu.Unlock()
		if ctx.Err() != nil {
			return false
		}
		conns[c] = struct{}{}
		return true
	}
	untrack := func(c net.Conn) {
		mu.Lock()
		delete(conns, c)
		mu.Unlock()
	}
	for i, ln := range lns {
		target := targets[i]
		wg.Go(func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				if !track(c) {
					c.Close()
					return
				}
				wg.Go(func() {
					defer untrack(c)
					forward(c, target, delay)
				})
			}
		})
	}
	<-ctx.Done()
	for _, ln := range lns {
		ln.Close()
	}
	mu.Lock()
	for c := range conns {
		c.Close()
	}
	mu.Unlock()
	wg.Wait()
}

// forward connects client to target and copies both ways with delay, returning once
// both directions have ended and both connections are closed.
func forward(client net.Conn, target string, delay time.Duration) {
	defer client.Close()
	server, err := net.DialTimeout("tcp", target, dialTimeout)
	if err != nil {
		log.Printf("delayproxy: dial %s: %v", target, err)
		return
	}
	defer server.Close()
	var wg sync.WaitGroup
	abort := func() {
		client.Close()
		server.Close()
	}
	wg.Go(func() { pipe(client, server, delay, abort) })
	wg.Go(func() { pipe(server, client, delay, abort) })
	wg.Wait()
}

// chunk is what one read returned and when; err is set, with no data, at the end.
type chunk struct {
	data []byte
	at   time.Time
	err  error
}

// pipe copies src to dst, each chunk written delay after it was read. At src's end
// of stream it half-closes dst; on any other read or write error it calls abort.
func pipe(src, dst net.Conn, delay time.Duration, abort func()) {
	chunks := make(chan chunk, 256)
	go func() {
		defer close(chunks)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			now := time.Now()
			if n > 0 {
				chunks <- chunk{data: buf[:n], at: now}
			}
			if err != nil {
				chunks <- chunk{at: now, err: err}
				return
			}
		}
	}()
	failed := false
	for c := range chunks {
		if failed {
			continue // drain, so that the reader can end
		}
		if wait := time.Until(c.at.Add(delay)); wait > 0 {
			time.Sleep(wait) // the emulated network's delay, not a wait for an event
		}
		if c.err != nil {
			if errors.Is(c.err, io.EOF) {
				if hc, ok := dst.(interface{ CloseWrite() error }); ok {
					_ = hc.CloseWrite()
					continue
				}
			}
			abort()
			failed = true
			continue
		}
		if _, err := dst.Write(c.data); err != nil {
			abort()
			failed = true
		}
	}
}
