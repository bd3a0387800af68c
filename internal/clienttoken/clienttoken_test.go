package clienttoken

import "testing"

func TestQuick(t *testing.T) {
	for _, tc := range []struct{ payload, want string }{
		{`{"state":{},"version":1,"clientToken":"0123abcd"}`, "0123abcd"},
		{`{"state":{"desired":{"clientToken":"ffff"}},"clientToken":"abcd"}`, "abcd"},
		{`{"clientToken":"abcd","state":{"reported":{"clientToken":"dead"}}}`, "dead"}, // found, but wrong: the caller decodes
		{`{"clientToken":"not-hex"}`, ""},
		{`{"clientToken":"a\"b"}`, ""},
		{`{"clientToken":""}`, ""},
		{`{"code":404,"message":"x"}`, ""},
		{`{"clientToken":"` + string(make([]byte, 65)) + `"}`, ""},
		{`"clientToken":"abc`, ""},
	} {
		if got := Quick([]byte(tc.payload)); got != tc.want {
			t.Errorf("Quick(%q) = %q, want %q", tc.payload, got, tc.want)
		}
	}
}

func TestNewIsFoundByQuick(t *testing.T) {
	tok := New()
	if len(tok) != 32 || tok == New() {
		t.Fatalf("New() = %q: want 32 hex digits, fresh each time", tok)
	}
	if got := Quick([]byte(`{"timestamp":1,"clientToken":"` + tok + `"}`)); got != tok {
		t.Errorf("Quick found %q, want %q", got, tok)
	}
}
