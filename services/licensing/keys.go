package licensing

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	_ "embed"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// defaultPublicKeyPEM is the public key Vigil releases trust when the configuration names
// none (licensing.public_key_file). Its private key is kept by the license issuer, never
// in this repository. A deployment that issues its own licenses (`vigil license keygen`)
// sets public_key_file to its own public key.
//
//go:embed keys/vigil-license.pub
var defaultPublicKeyPEM []byte

// DefaultPublicKey returns the embedded public key.
func DefaultPublicKey() ed25519.PublicKey {
	k, err := ParsePublicKey(defaultPublicKeyPEM)
	if err != nil {
		panic("licensing: embedded public key: " + err.Error()) // a broken build, caught by tests
	}
	return k
}

// KeyID is a key's fingerprint: the first 8 bytes of the SHA-256 of the public key, hex.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// EncodePublicKey returns pub as a PEM "PUBLIC KEY" block (PKIX).
func EncodePublicKey(pub ed25519.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// EncodePrivateKey returns priv as a PEM "PRIVATE KEY" block (PKCS #8).
func EncodePrivateKey(priv ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParsePublicKey reads an ed25519 public key from PEM.
func ParsePublicKey(data []byte) (ed25519.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, errors.New("not a PEM PUBLIC KEY block")
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("public key is %T, not ed25519", k)
	}
	return pub, nil
}

// ParsePrivateKey reads an ed25519 private key from PEM.
func ParsePrivateKey(data []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("not a PEM PRIVATE KEY block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("private key is %T, not ed25519", k)
	}
	return priv, nil
}

// LoadPublicKey reads the public key at path, or returns the embedded default when path
// is empty.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	if path == "" {
		return DefaultPublicKey(), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read public key: %w", err)
	}
	pub, err := ParsePublicKey(data)
	if err != nil {
		return nil, fmt.Errorf("public key %s: %w", path, err)
	}
	return pub, nil
}

// LoadPrivateKey reads the private key at path.
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read private key: %w", err)
	}
	priv, err := ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("private key %s: %w", path, err)
	}
	return priv, nil
}
