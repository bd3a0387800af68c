package shadowtest

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/onsi/gomega/types"

	"github.com/shadowsync/shadowsync/shadowstate"
)

// The matchers below take a shadow as the service stores it (shadowstate.Shadow, or a
// pointer to one, from Env.Shadow) or as a client reads it (*shadowstate.Document, from
// Handle.Get). Their failure messages show the whole shadow and its delta. Use them
// with Eventually, since shadows change asynchronously:
//
//	Eventually(env.Shadow).WithArguments("lamp-1").Should(shadowtest.HaveReported("brightness", 80))

// HaveReported succeeds when the shadow's reported state holds value at path, a
// dotted path of object keys and array indices ("temp", "lights.0.on"). Numbers
// compare by value (22 equals 22.0), objects and arrays deeply, as the delta rules
// compare them. value may also be a Gomega matcher, applied to the field decoded
// with numbers as float64: HaveReported("temp", BeNumerically(">=", 21)).
func HaveReported(path string, value any) types.GomegaMatcher {
	return &fieldMatcher{section: "reported", path: path, want: value}
}

// HaveDesired is HaveReported for the desired state.
func HaveDesired(path string, value any) types.GomegaMatcher {
	return &fieldMatcher{section: "desired", path: path, want: value}
}

// BeInSync succeeds when the shadow exists and has no delta: every desired field is
// reported with the desired value.
func BeInSync() types.GomegaMatcher { return inSyncMatcher{} }

// HaveVersionAtLeast succeeds when the shadow's version is n or more.
func HaveVersionAtLeast(n int64) types.GomegaMatcher { return versionMatcher{min: n} }

// view is the part of a shadow the matchers look at.
type view struct {
	name     string
	exists   bool
	desired  shadowstate.Object
	reported shadowstate.Object
	version  int64
}

func (v view) delta() shadowstate.Object { return shadowstate.Delta(v.desired, v.reported) }

// String renders the shadow for failure messages.
func (v view) String() string {
	if !v.exists {
		return fmt.Sprintf("shadow %s does not exist (version %d)", v.name, v.version)
	}
	return fmt.Sprintf("shadow %s at version %d:\n  desired:  %s\n  reported: %s\n  delta:    %s",
		v.name, v.version, render(v.desired), render(v.reported), render(v.delta()))
}

func render(o shadowstate.Object) string {
	if o == nil {
		return "(none)"
	}
	data, err := json.Marshal(o)
	if err != nil {
		return fmt.Sprintf("%v", o)
	}
	return string(data)
}

// toView accepts the shadow types the matchers work on.
func toView(actual any) (view, error) {
	switch s := actual.(type) {
	case shadowstate.Shadow:
		return view{name: s.ID.String(), exists: s.Exists, desired: s.Desired, reported: s.Reported, version: s.Version}, nil
	case *shadowstate.Shadow:
		if s != nil {
			return toView(*s)
		}
	case shadowstate.Document:
		return view{name: "document", exists: true, desired: s.State.Desired, reported: s.State.Reported, version: s.Version}, nil
	case *shadowstate.Document:
		if s != nil {
			return toView(*s)
		}
	}
	return view{}, fmt.Errorf("shadowtest matcher: want a shadowstate.Shadow or *shadowstate.Document, got %T", actual)
}

type fieldMatcher struct {
	section string // "desired" or "reported"
	path    string
	want    any
	// set by Match, for the failure messages
	got   any
	found bool
}

func (m *fieldMatcher) Match(actual any) (bool, error) {
	v, err := toView(actual)
	if err != nil {
		return false, err
	}
	m.got, m.found = nil, false
	if !v.exists {
		return false, nil
	}
	sec := v.reported
	if m.section == "desired" {
		sec = v.desired
	}
	m.got, m.found = lookup(sec, m.path)
	if !m.found {
		return false, nil
	}
	if inner, ok := m.want.(types.GomegaMatcher); ok {
		return inner.Match(plain(m.got))
	}
	want, err := normalize(m.want)
	if err != nil {
		return false, fmt.Errorf("shadowtest: %s %q: expected value %#v is not JSON: %w", m.section, m.path, m.want, err)
	}
	return shadowstate.Equal(m.got, want), nil
}

func (m *fieldMatcher) describeWant() string {
	if inner, ok := m.want.(types.GomegaMatcher); ok {
		if m.found {
			return "to satisfy the matcher: " + inner.FailureMessage(plain(m.got))
		}
		return fmt.Sprintf("to satisfy %T", inner)
	}
	data, err := json.Marshal(m.want)
	if err != nil {
		return fmt.Sprintf("to equal %#v", m.want)
	}
	return "to equal " + string(data)
}

func (m *fieldMatcher) describeGot() string {
	if !m.found {
		return "it is absent"
	}
	data, _ := json.Marshal(m.got)
	return "it is " + string(data)
}

func (m *fieldMatcher) FailureMessage(actual any) string {
	v, _ := toView(actual)
	return fmt.Sprintf("expected %s.%s %s, but %s\n%s", m.section, m.path, m.describeWant(), m.describeGot(), v)
}

func (m *fieldMatcher) NegatedFailureMessage(actual any) string {
	v, _ := toView(actual)
	return fmt.Sprintf("expected %s.%s not %s, but %s\n%s", m.section, m.path, m.describeWant(), m.describeGot(), v)
}

type inSyncMatcher struct{}

func (inSyncMatcher) Match(actual any) (bool, error) {
	v, err := toView(actual)
	if err != nil {
		return false, err
	}
	return v.exists && v.delta() == nil, nil
}

func (inSyncMatcher) FailureMessage(actual any) string {
	v, _ := toView(actual)
	return "expected the shadow to be in sync (no delta), but it is not\n" + v.String()
}

func (inSyncMatcher) NegatedFailureMessage(actual any) string {
	v, _ := toView(actual)
	return "expected the shadow to have a delta, but it is in sync\n" + v.String()
}

type versionMatcher struct{ min int64 }

func (m versionMatcher) Match(actual any) (bool, error) {
	v, err := toView(actual)
	if err != nil {
		return false, err
	}
	return v.version >= m.min, nil
}

func (m versionMatcher) FailureMessage(actual any) string {
	v, _ := toView(actual)
	return fmt.Sprintf("expected version %d or later, but it is %d\n%s", m.min, v.version, v)
}

func (m versionMatcher) NegatedFailureMessage(actual any) string {
	v, _ := toView(actual)
	return fmt.Sprintf("expected a version before %d, but it is %d\n%s", m.min, v.version, v)
}

// lookup follows a dotted path of object keys and array indices.
func lookup(o shadowstate.Object, path string) (any, bool) {
	var cur any = o
	for _, key := range strings.Split(path, ".") {
		switch c := cur.(type) {
		case shadowstate.Object:
			v, ok := c[key]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(key)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// normalize turns a Go value into the form shadowstate decodes JSON into.
func normalize(v any) (any, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	if err := shadowstate.Unmarshal(data, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// plain turns json.Number into float64 throughout, for Gomega's own matchers.
func plain(v any) any {
	switch v := v.(type) {
	case json.Number:
		f, err := v.Float64()
		if err != nil {
			return v.String()
		}
		return f
	case shadowstate.Object:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = plain(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = plain(x)
		}
		return out
	}
	return v
}
