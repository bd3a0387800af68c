package main

import (
	"fmt"
	"os"

	"github.com/shadowsync/shadowsync/localiot"
)

// httpsListener configures serve's HTTPS data plane at addr with the server
// certificate and the one access key serve knows (its session token from
// $AWS_SESSION_TOKEN, as for --ws).
func httpsListener(addr, keyID, secret string, certs *localiot.CertSet) (*localiot.HTTPSListener, error) {
	if keyID == "" || secret == "" {
		return nil, fmt.Errorf("%w: --https needs --access-key-id and --secret-access-key (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)", errUsage)
	}
	return &localiot.HTTPSListener{
		Addr:        addr,
		Certificate: certs.Server,
		Credentials: []localiot.Credential{{AccessKeyID: keyID, SecretAccessKey: secret, SessionToken: os.Getenv("AWS_SESSION_TOKEN")}},
	}, nil
}
