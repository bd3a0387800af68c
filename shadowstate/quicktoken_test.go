package shadowstate

import "testing"

func TestQuickToken(t *testing.T) {
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
		if got := quickToken([]byte(tc.payload)); got != tc.want {
			t.Errorf("quickToken(%q) = %q, want %q", tc.payload, got, tc.want)
		}
	}
}
