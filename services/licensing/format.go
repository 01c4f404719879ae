package licensing

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
)

// A license file is the license as indented JSON (readable with cat), followed by a
// signature block:
//
//	{ ...license JSON... }
//	-----BEGIN VIGIL LICENSE SIGNATURE-----
//	<base64 of the ed25519 signature of every byte before this block>
//	-----END VIGIL LICENSE SIGNATURE-----
//
// The signature covers the JSON byte for byte, and the block must be exactly what Sign
// writes, so changing any byte of the file makes it invalid.
const (
	sigBegin = "-----BEGIN VIGIL LICENSE SIGNATURE-----\n"
	sigEnd   = "-----END VIGIL LICENSE SIGNATURE-----\n"
)

// encodeFile signs l with priv and returns the license file.
func encodeFile(l *License, priv ed25519.PrivateKey) ([]byte, error) {
	payload, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode license: %w", err)
	}
	payload = append(payload, '\n')
	sig := ed25519.Sign(priv, payload)
	var b bytes.Buffer
	b.Write(payload)
	b.WriteString(sigBegin)
	b.WriteString(base64.StdEncoding.EncodeToString(sig))
	b.WriteByte('\n')
	b.WriteString(sigEnd)
	return b.Bytes(), nil
}

// decodeFile verifies data with pub and returns the license it carries. Expiry is not
// judged here (see Verify).
func decodeFile(data []byte, pub ed25519.PublicKey) (*License, error) {
	// The block starts on its own line; raw newlines cannot occur inside JSON strings, so
	// the first "\n-----BEGIN" is the block whatever the licensee's name contains.
	i := bytes.Index(data, []byte("\n"+sigBegin))
	if i < 0 {
		return nil, fmt.Errorf("%w: no signature block", ErrMalformed)
	}
	payload := data[:i+1]
	sigLine, rest, ok := bytes.Cut(data[i+1+len(sigBegin):], []byte("\n"))
	if !ok || string(rest) != sigEnd {
		return nil, fmt.Errorf("%w: signature block must end the file with %q", ErrMalformed, sigEnd)
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(string(sigLine))
	if err != nil || len(sig) != ed25519.SignatureSize || base64.StdEncoding.EncodeToString(sig) != string(sigLine) {
		return nil, fmt.Errorf("%w: the signature line is not a base64 ed25519 signature", ErrMalformed)
	}
	if !ed25519.Verify(pub, payload, sig) {
		hint := ""
		// Read, never trusted: only to tell "changed" from "signed with another key".
		var claimed struct {
			KeyID string `json:"key_id"`
		}
		if json.Unmarshal(payload, &claimed) == nil && claimed.KeyID != "" && claimed.KeyID != KeyID(pub) {
			hint = fmt.Sprintf(" (the file names signing key %s; this deployment trusts key %s)", claimed.KeyID, KeyID(pub))
		} else {
			hint = " (the file was changed after it was signed)"
		}
		return nil, fmt.Errorf("%w%s", ErrBadSignature, hint)
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	var l License
	if err := dec.Decode(&l); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the license", ErrMalformed)
	}
	if err := l.validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return &l, nil
}
