// Package sigv4 is the AWS Signature Version 4 arithmetic that a client presigning an
// AWS IoT WebSocket URL (package transport) and a server verifying one (package
// localiot) must compute identically: URI escaping, the canonical request, the
// string to sign, the signing key and the signature. Keeping one copy means the two
// sides cannot drift apart.
//
// It uses the standard library only, so that the server does not pull in the AWS SDK
// through it.
//
// The rules: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html
// and, for AWS IoT's WebSocket gateway,
// https://docs.aws.amazon.com/iot/latest/developerguide/protocols.html.
package sigv4
