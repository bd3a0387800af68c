package transport

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

// credentialSource finds the AWS credentials that sign WebSocket URLs: the
// configured provider, else the standard chain (environment, then shared files),
// which is loaded on first use and again after a lookup that found nothing. It is
// safe for concurrent use.
type credentialSource struct {
	explicit aws.CredentialsProvider
	profile  string

	mu    sync.Mutex
	chain aws.CredentialsProvider // nil until loaded
}

// retrieve asks the provider for credentials; it is called on every connect
// attempt. Errors never carry a secret.
func (s *credentialSource) retrieve(ctx context.Context) (aws.Credentials, error) {
	if s.explicit != nil {
		creds, err := s.explicit.Retrieve(ctx)
		if err != nil {
			return aws.Credentials{}, fmt.Errorf("%w: Config.Credentials: %w", ErrNoCredentials, err)
		}
		if !creds.HasKeys() {
			return aws.Credentials{}, fmt.Errorf("%w: Config.Credentials returned no access key", ErrNoCredentials)
		}
		return creds, nil
	}
	s.mu.Lock()
	chain := s.chain
	s.mu.Unlock()
	if chain == nil {
		// The SDK fixes its default file paths when it is initialised; naming them here
		// follows HOME (and the AWS_* file variables) as they are now.
		credFile, confFile := sharedFiles()
		opts := []func(*awsconfig.LoadOptions) error{
			awsconfig.WithEC2IMDSClientEnableState(imds.ClientDisabled),
			awsconfig.WithSharedCredentialsFiles([]string{credFile}),
			awsconfig.WithSharedConfigFiles([]string{confFile}),
		}
		if s.profile != "" {
			opts = append(opts, awsconfig.WithSharedConfigProfile(s.profile))
		}
		cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
		if err != nil {
			return aws.Credentials{}, fmt.Errorf("%w: loading the standard chain: %w (%s)", ErrNoCredentials, err, s.lookedAt())
		}
		chain = cfg.Credentials
		if chain == nil {
			return aws.Credentials{}, fmt.Errorf("%w: looked at %s", ErrNoCredentials, s.lookedAt())
		}
	}
	creds, err := chain.Retrieve(ctx)
	if err != nil || !creds.HasKeys() {
		return aws.Credentials{}, fmt.Errorf("%w: looked at %s", ErrNoCredentials, s.lookedAt())
	}
	s.mu.Lock()
	s.chain = chain // keep a chain that works; one that found nothing is reloaded
	s.mu.Unlock()
	return creds, nil
}

// lookedAt says where the standard chain looked, for ErrNoCredentials.
func (s *credentialSource) lookedAt() string {
	profile := s.profile
	if profile == "" {
		profile = os.Getenv("AWS_PROFILE")
	}
	if profile == "" {
		profile = "default"
	}
	credFile, confFile := sharedFiles()
	return fmt.Sprintf("Config.Credentials (not set), environment variables AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (%s), shared credentials file %s and shared config file %s for profile %q",
		envState(), credFile, confFile, profile)
}

// sharedFiles returns the shared credentials and config file paths in effect now.
func sharedFiles() (credFile, confFile string) {
	credFile = os.Getenv("AWS_SHARED_CREDENTIALS_FILE")
	if credFile == "" {
		credFile = awsconfig.DefaultSharedCredentialsFilename()
	}
	confFile = os.Getenv("AWS_CONFIG_FILE")
	if confFile == "" {
		confFile = awsconfig.DefaultSharedConfigFilename()
	}
	return credFile, confFile
}

func envState() string {
	_, id := os.LookupEnv("AWS_ACCESS_KEY_ID")
	_, secret := os.LookupEnv("AWS_SECRET_ACCESS_KEY")
	switch {
	case id && secret:
		return "both set"
	case id:
		return "secret not set"
	case secret:
		return "key ID not set"
	}
	return "not set"
}

// loggedCredentials logs credentials as their access key ID, source and expiry,
// never the secret or token.
type loggedCredentials aws.Credentials

// LogValue implements slog.LogValuer.
func (c loggedCredentials) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("access_key_id", c.AccessKeyID),
		slog.String("source", c.Source),
		slog.Bool("session_token", c.SessionToken != ""),
	}
	if c.CanExpire {
		attrs = append(attrs, slog.Time("expires", c.Expires))
	}
	return slog.GroupValue(attrs...)
}

// plannedReconnect returns when a connection made at connected should be replaced:
// before the credentials that signed it expire (WebSocket), and before maxAge (AWS
// cuts WebSocket connections at 24 h). ok is false when neither applies.
func plannedReconnect(connected time.Time, creds *aws.Credentials, maxAge time.Duration) (at time.Time, ok bool) {
	if maxAge > 0 {
		at, ok = connected.Add(maxAge), true
	}
	if creds != nil && creds.CanExpire && creds.Expires.After(connected) {
		// Leave a margin for the reconnect itself, but never plan it sooner than a
		// tenth of the credentials' remaining life, so short-lived credentials do not
		// make the connection flap.
		life := creds.Expires.Sub(connected)
		margin := min(credentialsRefreshMargin, life/10*9)
		exp := creds.Expires.Add(-margin)
		if !ok || exp.Before(at) {
			at, ok = exp, true
		}
	}
	return at, ok
}
