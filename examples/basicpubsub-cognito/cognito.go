package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cognitoidentity"
)

// cognitoCredentials is an aws.CredentialsProvider of temporary credentials for an
// unauthenticated identity of an Amazon Cognito identity pool, the Python sample's
// boto3 calls: GetId once, then GetCredentialsForIdentity on every Retrieve. Both
// calls are unsigned (the identity pool must allow unauthenticated identities).
// Wrap it in aws.NewCredentialsCache, so that it is asked again only shortly before
// the credentials expire; transport asks the cache on every connect. It is safe for
// concurrent use.
type cognitoCredentials struct {
	client *cognitoidentity.Client
	poolID string

	mu         sync.Mutex
	identityID string // from GetId; empty until the first Retrieve
}

// newCognitoCredentials returns a cached Cognito provider for the identity pool.
// region is the pool's region; empty means the prefix of the pool ID
// ("eu-west-1:1234..."). endpoint, when set, replaces Cognito's endpoint (a VPC
// endpoint, or a stand-in in tests).
func newCognitoCredentials(poolID, region, endpoint string) (aws.CredentialsProvider, error) {
	if region == "" {
		region, _, _ = strings.Cut(poolID, ":")
	}
	if region == "" || !strings.Contains(poolID, ":") {
		return nil, fmt.Errorf("identity pool ID %q: want REGION:UUID", poolID)
	}
	opts := cognitoidentity.Options{Region: region}
	if endpoint != "" {
		opts.BaseEndpoint = aws.String(endpoint)
	}
	p := &cognitoCredentials{client: cognitoidentity.New(opts), poolID: poolID}
	return aws.NewCredentialsCache(p), nil
}

// Retrieve gets the identity's ID on first use and fresh temporary credentials for it.
func (p *cognitoCredentials) Retrieve(ctx context.Context) (aws.Credentials, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.identityID == "" {
		id, err := p.client.GetId(ctx, &cognitoidentity.GetIdInput{IdentityPoolId: aws.String(p.poolID)})
		if err != nil {
			return aws.Credentials{}, fmt.Errorf("cognito GetId for pool %s: %w", p.poolID, err)
		}
		p.identityID = aws.ToString(id.IdentityId)
	}
	out, err := p.client.GetCredentialsForIdentity(ctx, &cognitoidentity.GetCredentialsForIdentityInput{IdentityId: aws.String(p.identityID)})
	if err != nil {
		return aws.Credentials{}, fmt.Errorf("cognito GetCredentialsForIdentity for %s: %w", p.identityID, err)
	}
	c := out.Credentials
	if c == nil || c.AccessKeyId == nil || c.SecretKey == nil {
		return aws.Credentials{}, errors.New("cognito GetCredentialsForIdentity: no credentials in the answer")
	}
	creds := aws.Credentials{
		AccessKeyID:     aws.ToString(c.AccessKeyId),
		SecretAccessKey: aws.ToString(c.SecretKey),
		SessionToken:    aws.ToString(c.SessionToken),
		Source:          "Cognito identity " + p.identityID,
	}
	if c.Expiration != nil {
		creds.CanExpire, creds.Expires = true, *c.Expiration
	}
	return creds, nil
}
