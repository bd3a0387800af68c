package main

import (
	"context"
	"fmt"
	"io"
)

// runDelete deletes a shadow and prints the version it had.
func runDelete(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("delete", stdout)
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
	acc, err := s.shadow.Delete(ctx)
	if err != nil {
		return explain(cf.id(), err)
	}
	if cf.json {
		return printJSON(stdout, acc)
	}
	fmt.Fprintf(stdout, "deleted shadow %s at version %d\n", describe(cf.id()), acc.Version)
	return nil
}
