package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/shadowsync/shadowsync/shadowclient"
	"github.com/shadowsync/shadowsync/shadowstate"
)

// stdin is what `update --file -` reads; tests replace it.
var stdin io.Reader = os.Stdin

// runUpdate updates the desired or the reported section of a shadow, from a JSON
// argument, a file, or --set paths, and prints the version the update was accepted
// at.
func runUpdate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("update", stdout)
	cf := addConnFlags(fs)
	desired := fs.Bool("desired", false, "update the desired section (what the device should be)")
	reported := fs.Bool("reported", false, "update the reported section (what the device is)")
	file := fs.String("file", "", "read the state (a JSON object) from `FILE`; - reads standard input")
	var sets listFlag
	fs.Var(&sets, "set", "set `KEY.PATH=VALUE` (repeatable): nested keys build nested objects; VALUE is JSON if it parses, else a string; null deletes the key")
	version := fs.Int64("version", 0, "apply only if the shadow is at version `N` (optimistic locking; 0: only if it does not exist)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: shadowsync update --thing NAME (--desired | --reported) ('{\"key\": value}' | --file FILE | --set KEY.PATH=VALUE...) [flags]")
		fs.PrintDefaults()
	}
	positional, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if err := cf.validate(); err != nil {
		return err
	}
	if *desired == *reported {
		return fmt.Errorf("%w: give exactly one of --desired and --reported", errUsage)
	}
	versionSet := false
	fs.Visit(func(f *flag.Flag) { versionSet = versionSet || f.Name == "version" })
	if versionSet && *version < 0 {
		return fmt.Errorf("%w: --version must not be negative", errUsage)
	}

	sources := 0
	for _, given := range []bool{len(positional) > 0, *file != "", len(sets) > 0} {
		if given {
			sources++
		}
	}
	if sources != 1 || len(positional) > 1 {
		return fmt.Errorf("%w: give the state once: as one JSON argument, with --file, or with --set", errUsage)
	}
	var state json.RawMessage
	switch {
	case len(positional) == 1:
		state, err = objectJSON("the state argument", []byte(positional[0]))
	case *file != "":
		var data []byte
		if *file == "-" {
			data, err = io.ReadAll(stdin)
		} else {
			data, err = os.ReadFile(*file)
		}
		if err != nil {
			return fmt.Errorf("read state: %w", err)
		}
		state, err = objectJSON(*file, data)
	default:
		var obj map[string]any
		if obj, err = setPaths(sets); err == nil {
			state, err = json.Marshal(obj)
		}
	}
	if err != nil {
		return err
	}

	s, err := cf.open(ctx, nil)
	if err != nil {
		return err
	}
	defer s.close()
	var section shadowstate.StateUpdate
	name := "desired"
	if *desired {
		section.Desired = state
	} else {
		section.Reported, name = state, "reported"
	}
	var opts []shadowclient.UpdateOption
	if versionSet {
		opts = append(opts, shadowclient.ExpectVersion(*version))
	}
	acc, err := s.shadow.Update(ctx, section, opts...)
	if err != nil {
		return explain(cf.id(), err)
	}
	if cf.json {
		return printJSON(stdout, acc)
	}
	fmt.Fprintf(stdout, "updated %s state of shadow %s: version %d\n", name, describe(cf.id()), acc.Version)
	return nil
}

// parseInterleaved parses args into fs, allowing positional arguments between the
// flags, and returns the positional arguments.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// objectJSON checks that data is one JSON object and returns it; what names the
// data's source in the error.
func objectJSON(what string, data []byte) (json.RawMessage, error) {
	var v any
	if err := shadowstate.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("%w: %s is not JSON: %v", errUsage, what, err)
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, fmt.Errorf("%w: %s must be a JSON object, like {\"key\": \"value\"}", errUsage, what)
	}
	return json.RawMessage(strings.TrimSpace(string(data))), nil
}

// setPaths builds a state object from KEY.PATH=VALUE assignments: each dot goes one
// object deeper, and VALUE is taken as JSON when it parses as JSON (numbers, true,
// null, objects, quoted strings) and as a plain string otherwise. A later assignment
// to the same path wins; a path through a key already set to a non-object is an error.
func setPaths(sets []string) (map[string]any, error) {
	root := map[string]any{}
	for _, s := range sets {
		path, raw, ok := strings.Cut(s, "=")
		if !ok || path == "" {
			return nil, fmt.Errorf("%w: --set %q: want KEY.PATH=VALUE", errUsage, s)
		}
		keys := strings.Split(path, ".")
		for _, k := range keys {
			if k == "" {
				return nil, fmt.Errorf("%w: --set %q: empty key in %q", errUsage, s, path)
			}
		}
		var value any
		if err := shadowstate.Unmarshal([]byte(raw), &value); err != nil {
			value = raw
		}
		node := root
		for i, k := range keys[:len(keys)-1] {
			child, exists := node[k]
			if !exists {
				next := map[string]any{}
				node[k], node = next, next
				continue
			}
			next, isObject := child.(map[string]any)
			if !isObject {
				return nil, fmt.Errorf("%w: --set %q: %s is already set to a value, not an object", errUsage, s, strings.Join(keys[:i+1], "."))
			}
			node = next
		}
		node[keys[len(keys)-1]] = value
	}
	return root, nil
}
