package licensing

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzDecodeFile feeds the license file parser two kinds of input: raw bytes (anything a
// user may point the service at) and files whose signature is valid for an arbitrary
// payload, so the JSON decoding and validation behind the signature check are reached
// too. The parser must never panic, must refuse with ErrMalformed or ErrBadSignature, and
// whatever it accepts must survive an encode/decode round trip unchanged.
//
//	go test ./services/licensing -run '^$' -fuzz FuzzDecodeFile -fuzztime 60s
func FuzzDecodeFile(f *testing.F) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	pub := priv.Public().(ed25519.PublicKey)
	valid, err := encodeFile(FreeTier(), priv)
	require.NoError(f, err)
	payload, _, _ := bytes.Cut(valid, []byte(sigBegin))
	f.Add(valid)
	f.Add(payload)
	f.Add([]byte(`{"licensee":"x","limits":{"max_persons":-1}}` + "\n"))
	f.Add([]byte("\n" + sigBegin + "AAAA\n" + sigEnd))
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, data []byte) {
		check := func(file []byte) {
			l, err := decodeFile(file, pub)
			if err != nil {
				require.True(t, errors.Is(err, ErrMalformed) || errors.Is(err, ErrBadSignature), "unexpected error kind: %v", err)
				return
			}
			again, err := encodeFile(l, priv)
			require.NoError(t, err)
			back, err := decodeFile(again, pub)
			require.NoError(t, err)
			// Compared in canonical encoded form: time.Time values parsed twice hold
			// different *Location pointers, so a struct comparison would differ.
			twice, err := encodeFile(back, priv)
			require.NoError(t, err)
			require.Equal(t, string(again), string(twice))
		}
		check(data)

		signed := bytes.TrimSuffix(data, []byte("\n"))
		signed = append(signed[:len(signed):len(signed)], '\n')
		var file bytes.Buffer
		file.Write(signed)
		file.WriteString(sigBegin)
		file.WriteString(base64.StdEncoding.EncodeToString(ed25519.Sign(priv, signed)))
		file.WriteString("\n" + sigEnd)
		check(file.Bytes())
	})
}
