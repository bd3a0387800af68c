// Package jsoncompare holds a benchmark, not code anyone imports: shadowstate's
// hand-written decoder (shadowstate/fastjson.go) against github.com/go-json-experiment/json
// (the prototype, now a mirror, of encoding/json/v2) and encoding/json, doing the same
// operations on the same shadow messages, with a test that reports how each treats the
// edge cases shadowstate's contract names. It is a module of its own so that the main
// module does not depend on the library it lost to (docs/performance.md, issue 14's
// section, "fastjson.go against encoding/json/v2"). Run it from this directory:
//
//	go test -run '^$' -bench Interleaved -count 6
//	go test -run '^$' -bench . -benchmem
//	go test -run TestEdgeCases -v
package jsoncompare
