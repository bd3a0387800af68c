package sigv4

import (
	"encoding/hex"
	"net/url"
	"testing"
)

// The worked example AWS published for SigV4 (IAM ListUsers at 20150830T123600Z with
// the example secret key), formerly in the AWS General Reference's SigV4 pages.
const (
	awsExampleSecret        = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
	awsExampleDate          = "20150830T123600Z"
	awsExampleSigningKey    = "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
	awsExampleCanonicalHash = "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
	awsExampleSignature     = "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
)

// TestAWSExample: signing key, string to sign and signature of AWS's worked example.
func TestAWSExample(t *testing.T) {
	key := SigningKey(awsExampleSecret, "20150830", "us-east-1", "iam")
	if got := hex.EncodeToString(key); got != awsExampleSigningKey {
		t.Errorf("signing key %s, want %s", got, awsExampleSigningKey)
	}
	q := url.Values{"Action": {"ListUsers"}, "Version": {"2010-05-08"}}
	headers := CanonicalHeader("Content-Type", "application/x-www-form-urlencoded;  charset=utf-8 ") +
		CanonicalHeader("host", "iam.amazonaws.com") + CanonicalHeader("x-amz-date", awsExampleDate)
	canonical := CanonicalRequest("GET", CanonicalURI(&url.URL{}), CanonicalQuery(q), headers, "content-type;host;x-amz-date", EmptyPayloadHash)
	toSign := StringToSign(awsExampleDate, Scope("20150830", "us-east-1", "iam"), canonical)
	want := "AWS4-HMAC-SHA256\n" + awsExampleDate + "\n20150830/us-east-1/iam/aws4_request\n" + awsExampleCanonicalHash
	if toSign != want {
		t.Errorf("string to sign:\n%s\nwant\n%s", toSign, want)
	}
	if got := Signature(key, toSign); got != awsExampleSignature {
		t.Errorf("signature %s, want %s", got, awsExampleSignature)
	}
}

func TestEscape(t *testing.T) {
	tests := map[string]string{
		"AZaz09-_.~":    "AZaz09-_.~",
		"a b+c/d=e&f":   "a%20b%2Bc%2Fd%3De%26f",
		"tok/en+x=":     "tok%2Fen%2Bx%3D",
		"é":             "%C3%A9",
		"*!'()":         "%2A%21%27%28%29",
		"\x00\x7f\xff%": "%00%7F%FF%25",
	}
	for in, want := range tests {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCanonicalURI(t *testing.T) {
	tests := map[string]string{
		"":        "/",
		"/mqtt":   "/mqtt",
		"/a b/c":  "/a%2520b/c",
		"/x+y@z":  "/x%2By%40z",
		"/%6Dqtt": "/%256Dqtt",
	}
	for raw, want := range tests {
		u, err := url.Parse("wss://h" + raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := CanonicalURI(u); got != want {
			t.Errorf("CanonicalURI(%q) = %q, want %q", raw, got, want)
		}
	}
}

// TestCanonicalQuery: names and values escaped, sorted by name then value, omitted
// names left out.
func TestCanonicalQuery(t *testing.T) {
	q := url.Values{
		"b":                {"2", "1 x"},
		"a+":               {"/"},
		ParamSignature:     {"sig"},
		ParamSecurityToken: {"tok"},
	}
	if got, want := CanonicalQuery(q, ParamSignature, ParamSecurityToken), "a%2B=%2F&b=1%20x&b=2"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := CanonicalQuery(q, ParamSignature), "X-Amz-Security-Token=tok&a%2B=%2F&b=1%20x&b=2"; got != want {
		t.Errorf("with token: got %q, want %q", got, want)
	}
}
