package transport

import (
	"context"
	"errors"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// TestPresignURL: service iotdevicegateway, region and date in the scope, only host
// signed, and the session token appended after the signature without changing it.
func TestPresignURL(t *testing.T) {
	u := &url.URL{Scheme: "wss", Host: "abc-ats.iot.us-east-1.amazonaws.com", Path: "/mqtt"}
	at := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	creds := aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "secret/key+x", SessionToken: "tok/en+with=chars"}
	withToken := presignURL(u, creds, "us-east-1", at)
	creds.SessionToken = ""
	without := presignURL(u, creds, "us-east-1", at)
	if want := without + "&X-Amz-Security-Token=tok%2Fen%2Bwith%3Dchars"; withToken != want {
		t.Errorf("with token:\n got %s\nwant %s", withToken, want)
	}
	p, _ := url.Parse(without)
	q := p.Query()
	checks := map[string]string{
		"X-Amz-Algorithm":     "AWS4-HMAC-SHA256",
		"X-Amz-Credential":    "AKIDEXAMPLE/20240506/us-east-1/iotdevicegateway/aws4_request",
		"X-Amz-Date":          "20240506T070809Z",
		"X-Amz-SignedHeaders": "host",
		"X-Amz-Expires":       "86400",
	}
	for k, want := range checks {
		if got := q.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if len(q.Get("X-Amz-Signature")) != 64 {
		t.Errorf("signature %q", q.Get("X-Amz-Signature"))
	}
	if strings.Contains(without, "secret") {
		t.Error("secret in URL")
	}
	if r := redactURL(withToken); strings.Contains(r, "tok") || strings.Contains(r, q.Get("X-Amz-Signature")) {
		t.Errorf("redactURL leaks: %s", r)
	}
}

// TestCredentialSources: explicit provider first, then environment, then the shared
// credentials file under HOME; nothing found says where it looked.
func TestCredentialSources(t *testing.T) {
	ClearAWSEnv(t)
	home := t.TempDir()
	t.Setenv("HOME", home)

	src := &credentialSource{}
	_, err := src.retrieve(t.Context())
	if !errors.Is(err, ErrNoCredentials) {
		t.Fatalf("no credentials anywhere: %v", err)
	}
	for _, want := range []string{"Config.Credentials", "AWS_ACCESS_KEY_ID", filepath.Join(home, ".aws", "credentials"), `"default"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}

	WriteSharedCredentials(t, home, "default", "AKIDFILE", "file-secret")
	if c, err := src.retrieve(t.Context()); err != nil || c.AccessKeyID != "AKIDFILE" {
		t.Fatalf("shared file: %v %v", c.AccessKeyID, err)
	}

	src = &credentialSource{}
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
	if c, err := src.retrieve(t.Context()); err != nil || c.AccessKeyID != "AKIDENV" {
		t.Fatalf("environment before file: %v %v", c.AccessKeyID, err)
	}

	src = &credentialSource{explicit: credentials.NewStaticCredentialsProvider("AKIDCODE", "code-secret", "")}
	if c, err := src.retrieve(t.Context()); err != nil || c.AccessKeyID != "AKIDCODE" {
		t.Fatalf("explicit before environment: %v %v", c.AccessKeyID, err)
	}

	src = &credentialSource{explicit: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{}, errors.New("sts down")
	})}
	if _, err := src.retrieve(t.Context()); !errors.Is(err, ErrNoCredentials) || !strings.Contains(err.Error(), "sts down") {
		t.Errorf("failing provider: %v", err)
	}
}

func TestPlannedReconnect(t *testing.T) {
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		creds  *aws.Credentials
		maxAge time.Duration
		want   time.Duration // after t0; -1 for none
	}{
		{"tls, no expiry", nil, -1, -1},
		{"websocket 24h", &aws.Credentials{}, 23*time.Hour + 30*time.Minute, 23*time.Hour + 30*time.Minute},
		{"expiring in 1h", &aws.Credentials{CanExpire: true, Expires: t0.Add(time.Hour)}, 23 * time.Hour, 58 * time.Minute},
		{"expiring in 60s", &aws.Credentials{CanExpire: true, Expires: t0.Add(60 * time.Second)}, -1, 6 * time.Second},
		{"already expired", &aws.Credentials{CanExpire: true, Expires: t0.Add(-time.Second)}, -1, -1},
	}
	for _, tt := range tests {
		at, ok := plannedReconnect(t0, tt.creds, tt.maxAge)
		switch {
		case tt.want < 0 && ok:
			t.Errorf("%s: planned at %v, want none", tt.name, at.Sub(t0))
		case tt.want >= 0 && (!ok || at.Sub(t0) != tt.want):
			t.Errorf("%s: planned at %v (%v), want %v", tt.name, at.Sub(t0), ok, tt.want)
		}
	}
}
