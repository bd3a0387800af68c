package main

import (
	"context"
	"fmt"
	"io"

	"github.com/shadowsync/shadowsync/shadowstate"
)

// runGet prints a shadow's document: desired, reported, delta and version, or with
// --json the document as the shadow service sent it.
func runGet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("get", stdout)
	cf := addConnFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := cf.validate(); err != nil {
		return err
	}
	s, err := cf.open(ctx, nil)
	if err != nil {
		return err
	}
	defer s.close()
	doc, err := s.shadow.Get(ctx)
	if err != nil {
		return explain(cf.id(), err)
	}
	if cf.json {
		return printJSON(stdout, doc)
	}
	delta := doc.State.Delta
	if delta == nil { // AWS's get/accepted carries it; compute it should it be left out
		delta = shadowstate.Delta(doc.State.Desired, doc.State.Reported)
	}
	fmt.Fprintf(stdout, "shadow    %s\n", describe(cf.id()))
	fmt.Fprintf(stdout, "version   %d\n", doc.Version)
	fmt.Fprintf(stdout, "desired   %s\n", compact(doc.State.Desired))
	fmt.Fprintf(stdout, "reported  %s\n", compact(doc.State.Reported))
	fmt.Fprintf(stdout, "delta     %s\n", compact(delta))
	return nil
}
