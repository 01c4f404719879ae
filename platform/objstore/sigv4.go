package objstore

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// AWS Signature Version 4, verified the way S3 does
// (https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-authenticating-requests.html):
// header authentication, query-string (presigned URL) authentication, and the
// signed-chunk streaming upload whose chunks are each checked in chunked.go.

const (
	sigV4Algorithm   = "AWS4-HMAC-SHA256"
	iso8601Format    = "20060102T150405Z"
	yyyymmdd         = "20060102"
	unsignedPayload  = "UNSIGNED-PAYLOAD"
	streamingPayload = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
	// maxClockSkew is how far a request's date may be from ours (S3 allows 15 minutes).
	maxClockSkew = 15 * time.Minute
	// maxPresignExpiry is S3's limit for a presigned URL (7 days).
	maxPresignExpiry = 7 * 24 * time.Hour
)

// authError is a refused request: its S3 error code and a message.
type authError struct {
	code string
	msg  string
}

func (e *authError) Error() string { return e.code + ": " + e.msg }

func denied(code, format string, args ...any) error {
	return &authError{code: code, msg: fmt.Sprintf(format, args...)}
}

// credentials are the one key pair the embedded store accepts.
type credentials struct {
	accessKey string
	secretKey string
	region    string
}

// verified describes an authenticated request.
type verified struct {
	// payloadHash is the signed x-amz-content-sha256 value (a hex hash, UNSIGNED-PAYLOAD
	// or the streaming marker).
	payloadHash string
	// For streaming uploads: the seed signature, the signing key, the scope and time that
	// chain each chunk's signature.
	seedSignature string
	signingKey    []byte
	scope         string
	amzDate       string
}

// verify authenticates r, by header or by query string.
func (c credentials) verify(r *http.Request, now time.Time) (*verified, error) {
	if auth := r.Header.Get("Authorization"); auth != "" {
		return c.verifyHeader(r, auth, now)
	}
	if r.URL.Query().Get("X-Amz-Signature") != "" {
		return c.verifyQuery(r, now)
	}
	return nil, denied("AccessDenied", "request is not signed")
}

type credentialScope struct {
	accessKey, date, region, service string
}

func parseCredential(s string) (credentialScope, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 5 || parts[4] != "aws4_request" {
		return credentialScope{}, denied("AuthorizationHeaderMalformed", "malformed credential %q", s)
	}
	return credentialScope{accessKey: parts[0], date: parts[1], region: parts[2], service: parts[3]}, nil
}

func (c credentials) checkScope(cs credentialScope, t time.Time) error {
	if subtle(cs.accessKey, c.accessKey) {
		return denied("InvalidAccessKeyId", "unknown access key")
	}
	if cs.service != "s3" {
		return denied("AuthorizationHeaderMalformed", "service must be s3")
	}
	if cs.region != c.region {
		return denied("AuthorizationHeaderMalformed", "region %q, expected %q", cs.region, c.region)
	}
	if cs.date != t.Format(yyyymmdd) {
		return denied("AuthorizationHeaderMalformed", "credential date does not match the request date")
	}
	return nil
}

// subtle reports whether a and b differ, in constant time.
func subtle(a, b string) bool { return !hmac.Equal([]byte(a), []byte(b)) }

func (c credentials) verifyHeader(r *http.Request, auth string, now time.Time) (*verified, error) {
	alg, rest, ok := strings.Cut(auth, " ")
	if !ok || alg != sigV4Algorithm {
		return nil, denied("AccessDenied", "only %s signatures are accepted", sigV4Algorithm)
	}
	fields := map[string]string{}
	for f := range strings.SplitSeq(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(f), "=")
		if !ok {
			return nil, denied("AuthorizationHeaderMalformed", "malformed authorization field %q", f)
		}
		fields[k] = v
	}
	cs, err := parseCredential(fields["Credential"])
	if err != nil {
		return nil, err
	}
	signedHeaders, signature := fields["SignedHeaders"], fields["Signature"]
	if signedHeaders == "" || signature == "" {
		return nil, denied("AuthorizationHeaderMalformed", "SignedHeaders and Signature are required")
	}
	amzDate := r.Header.Get("X-Amz-Date")
	t, err := time.Parse(iso8601Format, amzDate)
	if err != nil {
		return nil, denied("AccessDenied", "missing or malformed X-Amz-Date")
	}
	if d := now.Sub(t); d > maxClockSkew || d < -maxClockSkew {
		return nil, denied("RequestTimeTooSkewed", "request time is %s away from the server's", d.Round(time.Second))
	}
	if err := c.checkScope(cs, t); err != nil {
		return nil, err
	}
	payload := r.Header.Get("X-Amz-Content-Sha256")
	if payload == "" {
		return nil, denied("InvalidRequest", "missing X-Amz-Content-Sha256")
	}
	canonical, err := canonicalRequest(r, r.URL.Query(), signedHeaders, payload)
	if err != nil {
		return nil, err
	}
	key := signingKey(c.secretKey, cs.date, c.region)
	scope := cs.date + "/" + c.region + "/s3/aws4_request"
	want := hmacHex(key, stringToSign(amzDate, scope, canonical))
	if subtle(want, signature) {
		return nil, denied("SignatureDoesNotMatch", "the request signature does not match")
	}
	return &verified{payloadHash: payload, seedSignature: signature, signingKey: key, scope: scope, amzDate: amzDate}, nil
}

func (c credentials) verifyQuery(r *http.Request, now time.Time) (*verified, error) {
	q := r.URL.Query()
	if q.Get("X-Amz-Algorithm") != sigV4Algorithm {
		return nil, denied("AccessDenied", "only %s signatures are accepted", sigV4Algorithm)
	}
	cs, err := parseCredential(q.Get("X-Amz-Credential"))
	if err != nil {
		return nil, err
	}
	amzDate := q.Get("X-Amz-Date")
	t, err := time.Parse(iso8601Format, amzDate)
	if err != nil {
		return nil, denied("AuthorizationQueryParametersError", "malformed X-Amz-Date")
	}
	secs, err := strconv.ParseInt(q.Get("X-Amz-Expires"), 10, 64)
	if err != nil || secs < 0 || time.Duration(secs)*time.Second > maxPresignExpiry {
		return nil, denied("AuthorizationQueryParametersError", "X-Amz-Expires must be 0 to 604800 seconds")
	}
	if now.Before(t.Add(-maxClockSkew)) {
		return nil, denied("AccessDenied", "presigned URL is not valid yet")
	}
	if now.After(t.Add(time.Duration(secs) * time.Second)) {
		return nil, denied("AccessDenied", "presigned URL has expired")
	}
	if err := c.checkScope(cs, t); err != nil {
		return nil, err
	}
	signature := q.Get("X-Amz-Signature")
	q.Del("X-Amz-Signature")
	payload := unsignedPayload
	if v := r.Header.Get("X-Amz-Content-Sha256"); v != "" {
		payload = v
	}
	canonical, err := canonicalRequest(r, q, q.Get("X-Amz-SignedHeaders"), payload)
	if err != nil {
		return nil, err
	}
	key := signingKey(c.secretKey, cs.date, c.region)
	scope := cs.date + "/" + c.region + "/s3/aws4_request"
	if subtle(hmacHex(key, stringToSign(amzDate, scope, canonical)), signature) {
		return nil, denied("SignatureDoesNotMatch", "the request signature does not match")
	}
	return &verified{payloadHash: payload}, nil
}

// canonicalRequest builds the canonical form of r over the headers the client signed.
func canonicalRequest(r *http.Request, query url.Values, signedHeaders, payload string) (string, error) {
	names := strings.Split(signedHeaders, ";")
	if !sort.StringsAreSorted(names) {
		return "", denied("AuthorizationHeaderMalformed", "SignedHeaders must be sorted")
	}
	hasHost := false
	var hb strings.Builder
	for _, n := range names {
		if n == "" || n != strings.ToLower(n) {
			return "", denied("AuthorizationHeaderMalformed", "bad signed header name %q", n)
		}
		hb.WriteString(n)
		hb.WriteByte(':')
		switch n {
		case "host":
			hasHost = true
			hb.WriteString(r.Host)
		case "content-length":
			hb.WriteString(strconv.FormatInt(r.ContentLength, 10))
		default:
			vals := r.Header.Values(n)
			if len(vals) == 0 {
				return "", denied("AccessDenied", "signed header %q is missing", n)
			}
			for i, v := range vals {
				if i > 0 {
					hb.WriteByte(',')
				}
				hb.WriteString(trimAll(v))
			}
		}
		hb.WriteByte('\n')
	}
	if !hasHost {
		return "", denied("AuthorizationHeaderMalformed", "the host header must be signed")
	}
	return strings.Join([]string{
		r.Method,
		s3utils.EncodePath(r.URL.Path),
		strings.ReplaceAll(query.Encode(), "+", "%20"),
		hb.String(),
		signedHeaders,
		payload,
	}, "\n"), nil
}

// trimAll trims a header value and folds inner runs of spaces to one, as SigV4 requires.
func trimAll(s string) string { return strings.Join(strings.Fields(s), " ") }

func stringToSign(amzDate, scope, canonical string) string {
	h := sha256.Sum256([]byte(canonical))
	return sigV4Algorithm + "\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(h[:])
}

func signingKey(secret, date, region string) []byte {
	k := hmacSum([]byte("AWS4"+secret), date)
	k = hmacSum(k, region)
	k = hmacSum(k, "s3")
	return hmacSum(k, "aws4_request")
}

func hmacSum(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

func hmacHex(key []byte, data string) string { return hex.EncodeToString(hmacSum(key, data)) }
